"""Atomic writes, checksums and manifests."""

from __future__ import annotations

import hashlib
import os

import pytest

from dnabird.errors import InputError
from dnabird.files import atomic_path, require_file, sha256_file, write_text_atomic
from dnabird.manifest import new_manifest, read_manifest, write_manifest


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_overwrite_keeps_old_file_until_complete(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise KeyError
    assert target.read_text() == "old"


def test_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_missing_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="absent.fa: input file not found"):
        require_file(tmp_path / "absent.fa")
    with pytest.raises(InputError, match="is not a regular file"):
        require_file(tmp_path)
    with pytest.raises(InputError, match="not found"):
        sha256_file(tmp_path / "absent")


def test_manifest_round_trip_and_stage_check(tmp_path):
    manifest = new_manifest("preprocess", {"seed": 0}, counts={"documents": 3})
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path, "preprocess") == manifest
    with pytest.raises(InputError, match="expected 'tokenize'"):
        read_manifest(tmp_path, "tokenize")
    with pytest.raises(InputError, match="no manifest.json"):
        read_manifest(tmp_path / "elsewhere")


def test_atomic_outputs_get_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_path_gives_normal_modes_even_to_writers_that_recreate_the_file(tmp_path):
    target = tmp_path / "weights.bin"
    umask = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.unlink()  # as safetensors does: a new file, created 0600
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644
