"""Tests of dnabird.data.region_splits: parsing held-out regions and assigning bins, against
a per-base brute force."""

from __future__ import annotations

import numpy as np
import pytest

from dnabird.data.region_splits import TEST, TRAIN, VALIDATION, SplitLayout, parse_regions
from dnabird.errors import ConfigError
from dnabird.genome.intervals import Interval

LENGTHS = {"chr1": 1000, "chr2": 600, "chr3": 90}


def test_parse_regions():
    regions = parse_regions(["chr2", "chr1:100-250,chr3:0-90"], LENGTHS, "test")
    assert regions == [
        Interval("chr2", 0, 600),
        Interval("chr1", 100, 250),
        Interval("chr3", 0, 90),
    ]
    assert parse_regions([], LENGTHS, "validation") == []


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("chr9", "test chr9: no chromosome 'chr9' among the binned ones (chr1, chr2, chr3)"),
        ("chr9:1-5", "no chromosome 'chr9'"),
        ("chr1:900-1001", "test chr1:900-1001: empty or outside chr1 (0-1000"),
        ("chr1:5-5", "empty or outside chr1"),
        ("chr1:5-x", "test chr1:5-x: not CHROM or CHROM:START-END"),
    ],
)
def test_parse_regions_errors(item, expected):
    with pytest.raises(ConfigError) as info:
        parse_regions([item], LENGTHS, "test")
    assert expected in str(info.value)


def test_overlapping_test_and_validation_are_refused():
    test = parse_regions(["chr1:100-300"], LENGTHS, "test")
    validation = parse_regions(["chr1:299-400"], LENGTHS, "validation")
    with pytest.raises(ConfigError, match="chr1:100-300 and --validation chr1:299-400 overlap"):
        SplitLayout(LENGTHS, test, validation)
    SplitLayout(LENGTHS, test, parse_regions(["chr1:300-400"], LENGTHS, "validation"))


def _brute_force(lengths, test, validation, chrom, starts, ends, gap):
    """Per-base split labels; a bin's split is its start's, and it is near another split
    when any base of its clipped reach has another label."""
    base = np.full(lengths[chrom], TRAIN)
    for regions, which in ((validation, VALIDATION), (test, TEST)):
        for r in regions:
            if r.chrom == chrom:
                base[r.start : r.end] = which
    split, near = [], []
    for start, end in zip(starts, ends, strict=True):
        own = base[start]
        reach = base[max(start - gap, 0) : min(end + gap, lengths[chrom])]
        split.append(own)
        near.append(bool(np.any(reach != own)))
    return split, near


def test_assign_equals_brute_force():
    rng = np.random.default_rng(0)
    lengths = {"chr1": 3000, "chr2": 1000}
    for _ in range(40):
        cuts = np.sort(rng.choice(np.arange(1, 3000), size=6, replace=False))
        test = [Interval("chr1", int(cuts[0]), int(cuts[1])), Interval("chr1", *map(int, cuts[4:]))]
        validation = [Interval("chr1", int(cuts[2]), int(cuts[3]))]
        if rng.random() < 0.3:
            validation.append(Interval("chr2", 0, 1000))
        layout = SplitLayout(lengths, test, validation)
        bin_size, gap = int(rng.integers(1, 300)), int(rng.integers(0, 500))
        for chrom, length in lengths.items():
            starts = np.arange(length // bin_size) * bin_size
            split, near = layout.assign(chrom, starts, starts + bin_size, gap)
            expected = _brute_force(
                lengths, test, validation, chrom, starts, starts + bin_size, gap
            )
            assert split.tolist() == expected[0]
            assert near.tolist() == expected[1]


def test_runs_are_maximal_and_cover_the_chromosome():
    test = [Interval("chr1", 100, 200), Interval("chr1", 150, 300), Interval("chr1", 300, 400)]
    layout = SplitLayout(LENGTHS, test, [Interval("chr1", 900, 1000)])
    starts, split = layout.runs["chr1"]
    assert starts.tolist() == [0, 100, 400, 900]
    assert split.tolist() == [TRAIN, TEST, TRAIN, VALIDATION]
    assert layout.runs["chr3"][1].tolist() == [TRAIN]
