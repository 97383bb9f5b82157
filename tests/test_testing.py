"""The real-data fixture and the locator behind it."""

from __future__ import annotations

import pytest

from dnabird import testing


def test_env_variable_overrides_location(tmp_path, monkeypatch):
    monkeypatch.setenv(testing.SHARED_DATA_ENV, str(tmp_path))
    assert testing.shared_data_dir() == tmp_path


def test_missing_folder_gives_none(tmp_path, monkeypatch):
    monkeypatch.setenv(testing.SHARED_DATA_ENV, str(tmp_path / "absent"))
    assert testing.shared_data_dir() is None


@pytest.mark.realdata
def test_shared_data_fixture_finds_real_files(shared_data):
    assert (shared_data / "README.md").is_file()
    assert (shared_data / "genome" / "hg38_chr2_1-2333275.fa.gz").is_file()
    assert (shared_data / "promoters" / "human_TATA_EPDnew_300bp.txt").is_file()
    assert (shared_data / "deepsea" / "deepsea_test_sample_100.csv.gz").is_file()
