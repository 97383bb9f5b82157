"""Tests of dnabird.genome.chromosomes: naming styles and primary-assembly selection."""

from __future__ import annotations

import pytest

from dnabird.errors import ConfigError
from dnabird.genome.chromosomes import PRIMARY_CHROMOSOMES, canonical_name, select_chromosomes

BIG = 50_000_000


def test_canonical_name_accepts_both_styles():
    assert canonical_name("chr7") == "chr7" and canonical_name("7") == "chr7"
    assert canonical_name("X") == "chrX" and canonical_name("chrY") == "chrY"
    assert canonical_name("MT") is None and canonical_name("chrM") is None
    assert canonical_name("chr23") is None and canonical_name("chr1_gl000191_random") is None


def test_default_selection_is_the_primary_assembly_in_karyotype_order():
    lengths = {"chrM": 16_571, "chr2": BIG, "chr1": BIG, "chr1_gl000191_random": 106_433}
    lengths |= {"chrUn_gl000211": 166_566, "chr6_apd_hap1": 4_622_290, "chrX": BIG}
    lengths |= {"chr10": BIG, "chrEBV": 171_823}
    selection = select_chromosomes(lengths)
    assert selection.chromosomes == ["chr1", "chr2", "chr10", "chrX"]
    assert selection.skipped["chrM"] == "mitochondrion"
    assert "unplaced" in selection.skipped["chrUn_gl000211"]
    assert "unplaced" in selection.skipped["chr1_gl000191_random"]
    assert "alternate" in selection.skipped["chr6_apd_hap1"]
    assert set(selection.skipped) == set(lengths) - set(selection.chromosomes)


def test_ensembl_names_select_the_same_chromosomes():
    lengths = {str(i): BIG for i in range(1, 23)} | {"X": BIG, "Y": BIG, "MT": 16_569}
    lengths |= {"GL000192.1": 547_496, "hs37d5": 35_477_943}
    selection = select_chromosomes(lengths)
    assert [canonical_name(n) for n in selection.chromosomes] == list(PRIMARY_CHROMOSOMES)
    assert set(selection.skipped) == {"MT", "GL000192.1", "hs37d5"}


def test_requested_names_in_either_style_and_skipped_kinds_when_listed():
    lengths = {"1": BIG, "2": BIG, "MT": 16_569, "GL000192.1": 547_496}
    selection = select_chromosomes(lengths, ["MT", "chr2", "1"])
    assert selection.chromosomes == ["1", "2", "MT"]
    assert selection.skipped == {"GL000192.1": "not listed in --chromosomes"}
    with pytest.raises(ConfigError, match="'chr9' is not a record"):
        select_chromosomes(lengths, ["chr9"])


def test_other_genomes_keep_long_records_and_skip_short_ones():
    lengths = {"2L": 23_513_712, "2R": 25_286_936, "Un_scaffold1": 5_000_000, "2110000222": 1_000}
    selection = select_chromosomes(lengths)
    assert selection.chromosomes == ["2L", "2R"]
    assert "shorter" in selection.skipped["2110000222"]
    with pytest.raises(ConfigError, match="no chromosome left"):
        select_chromosomes({"tiny": 10}, min_length=100)
