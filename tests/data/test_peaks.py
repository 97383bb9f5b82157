"""Tests of dnabird.data.peaks: track specs, reading peak files, union, bin coverage and
labels, each against a per-base brute force."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dnabird.data.peaks import (
    TrackSource,
    bin_coverage,
    bin_labels,
    positive_bins,
    read_tracks,
    threshold_bp,
    union,
)
from dnabird.errors import ConfigError, InputError


def _covered(intervals) -> set[int]:
    """Brute force: every base some interval covers."""
    return {base for start, end in intervals for base in range(start, end)}


def _random_intervals(rng: np.random.Generator, count: int, span: int) -> np.ndarray:
    starts = rng.integers(0, span, size=count)
    return np.stack([starts, starts + rng.integers(0, 120, size=count)], axis=1)


def test_track_specs():
    assert TrackSource.parse("CTCF=a.narrowPeak.gz") == TrackSource(
        (Path("a.narrowPeak.gz"),), "CTCF"
    )
    assert TrackSource.parse("promoter=x/t.csv.gz,y/t.csv.gz").files == (
        Path("x/t.csv.gz"),
        Path("y/t.csv.gz"),
    )
    assert TrackSource.parse("dir/ENCFF252PLM.narrowPeak.gz").name == "ENCFF252PLM"
    assert TrackSource.parse("data/k=v/peaks.bed").name == "peaks"  # a path holding "=", no name
    assert TrackSource.column("brain.bed").by_column
    with pytest.raises(ConfigError, match="several files make one track; name it"):
        TrackSource.parse("a.bed,b.bed")
    with pytest.raises(ConfigError, match="no file given"):
        TrackSource.parse("name=")


def test_union_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        intervals = _random_intervals(rng, int(rng.integers(0, 30)), 2000)
        merged = union(intervals)
        assert _covered(merged.tolist()) == _covered(intervals.tolist())
        assert np.all(merged[:, 1] > merged[:, 0])
        assert np.all(merged[1:, 0] > merged[:-1, 1])  # disjoint, sorted, not touching


def test_bin_coverage_equals_brute_force():
    rng = np.random.default_rng(1)
    for bin_size in (1, 7, 50, 200):
        intervals = _random_intervals(rng, 40, 3000)
        covered = _covered(intervals.tolist())
        bins = 3000 // bin_size
        expected = [
            len(covered & set(range(k * bin_size, (k + 1) * bin_size))) for k in range(bins)
        ]
        assert bin_coverage(union(intervals), bins, bin_size).tolist() == expected
    assert bin_coverage(union(np.zeros((0, 2))), 3, 10).tolist() == [0, 0, 0]


def test_threshold_bp():
    assert threshold_bp(0.5, 200) == 100
    assert threshold_bp(0.3, 200) == 60  # not 61 from float noise
    assert threshold_bp(1.0, 200) == 200
    assert threshold_bp(1e-9, 200) == 1
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ConfigError, match=r"min_overlap must be in \(0, 1\]"):
            threshold_bp(bad, 200)


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_union_semantics_overlapping_peaks_never_count_twice(tmp_path):
    # bin [0, 200): two copies of [0, 60) and [30, 90) cover 90 bp (sum of lengths 180);
    # bin [200, 400): [200, 280) and [240, 320) cover 120 bp (sum 160) -> 1 at 0.5 either way;
    # bin [400, 600): [400, 450) and [550, 600) cover 100 bp -> exactly the threshold.
    bed = _write(
        tmp_path / "a.bed",
        "chr1\t0\t60\nchr1\t0\t60\nchr1\t30\t90\nchr1\t200\t280\nchr1\t240\t320\n"
        "chr1\t400\t450\nchr1\t550\t600\n",
    )
    (track,) = read_tracks([TrackSource.parse(f"A={bed}")], {"chr1": 1000})
    assert track.intervals["chr1"].tolist() == [[0, 90], [200, 320], [400, 450], [550, 600]]
    assert positive_bins(track, "chr1", 5, 200, threshold_bp(0.5, 200)).tolist() == [1, 2]
    assert positive_bins(track, "chr2", 5, 200, 100).tolist() == []


def test_read_tracks_formats_and_counts(tmp_path):
    bed = _write(tmp_path / "a.bed.gz", "#header\nchr1\t10\t20\tx\t0\t+\nchr9\t0\t5\n")
    csv = _write(tmp_path / "b.csv", "id,region,start,end,strand\n0,chr1,15,40,\n1,chr2,90,130,\n")
    narrow = _write(
        tmp_path / "c.narrowPeak",
        "chr2\t5\t15\t.\t0\t.\t1\t-1\t-1\t3\nchr2\t110\t120\t.\t0\t.\t1\t-1\t-1\t-1\n",
    )
    brain = _write(
        tmp_path / "brain.bed",
        "#chrom\tstart\tend\ttrack\thg19_start\thg19_end\n"
        "chr1\t0\t8\tZ_b\t1\t2\nchr1\t3\t4\tA_a\t1\t2\nchrUn\t3\t4\tA_a\t1\t2\n",
    )
    sources = [
        TrackSource.parse(f"AB={bed},{csv}"),
        TrackSource.column(brain),
        TrackSource.parse(str(narrow)),
    ]
    tracks = read_tracks(sources, {"chr1": 1000, "chr2": 110})
    assert [t.name for t in tracks] == ["AB", "A_a", "Z_b", "c"]
    ab, a_a, z_b, c = tracks
    assert ab.intervals["chr1"].tolist() == [[10, 40]]  # BED and CSV peaks in one union
    assert ab.intervals["chr2"].tolist() == [[90, 110]]  # clipped at the chromosome's end
    assert ab.counts == {
        "peaks": 4,
        "used": 3,
        "other_chromosome": 1,
        "beyond_end": 0,
        "clipped": 1,
    }
    assert a_a.counts["other_chromosome"] == 1 and a_a.intervals["chr1"].tolist() == [[3, 4]]
    assert list(z_b.intervals) == ["chr1"] and z_b.intervals["chr1"].tolist() == [[0, 8]]
    assert c.counts["beyond_end"] == 1 and c.intervals["chr2"].tolist() == [[5, 15]]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.bed", "chr1\t0\t10\nchr1\t5\n", "a.bed:2: expected at least 3 columns"),
        ("a.bed", "chr1\t0\t10\nchr1\tx\t10\n", "a.bed:2: start 'x' is not an integer"),
        ("a.csv", "region,start,end\nchr1,9,3\n", "a.csv:2: end 3 is before start 9"),
        ("a.narrowPeak", "chr1\t0\t10\t.\t0\t.\n", "a.narrowPeak:1: a narrowPeak line has 10"),
        ("a.bed", "# only a header\n", "a.bed: no peaks"),
        ("a.bed.gz", "", "a.bed.gz: no peaks"),
    ],
)
def test_malformed_or_empty_peak_files(tmp_path, name, text, expected):
    path = _write(tmp_path / name, text)
    with pytest.raises(InputError) as info:
        read_tracks([TrackSource.parse(f"T={path}")], {"chr1": 100})
    assert str(info.value).startswith(str(tmp_path)) and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_track_column_and_name_errors(tmp_path):
    brain = _write(tmp_path / "brain.bed", "chr1\t0\t8\tA\nchr1\t3\t4\n")
    with pytest.raises(InputError, match=r"brain.bed:2: no track name in column 4"):
        read_tracks([TrackSource.column(brain)], {"chr1": 100})
    one = _write(tmp_path / "one.bed", "chr1\t0\t8\tA\n")
    with pytest.raises(ConfigError, match="track name 'A' is given twice"):
        read_tracks([TrackSource.parse(f"A={one}"), TrackSource.column(one)], {"chr1": 100})
    with pytest.raises(InputError, match="peak file not found"):
        read_tracks([TrackSource.parse(f"B={tmp_path / 'absent.bed'}")], {"chr1": 100})


def test_bin_labels_equal_a_per_base_brute_force(tmp_path):
    rng = np.random.default_rng(2)
    lengths = {"chr1": 5000}
    files, raw = [], []
    for t in range(4):
        intervals = _random_intervals(rng, 30, 4900)
        raw.append(intervals.tolist())
        text = "".join(f"chr1\t{s}\t{e}\n" for s, e in intervals)
        files.append(_write(tmp_path / f"t{t}.bed", text))
    tracks = read_tracks([TrackSource.parse(f"T{t}={f}") for t, f in enumerate(files)], lengths)
    bin_size, threshold = 100, threshold_bp(0.4, 100)
    positives = [positive_bins(t, "chr1", 50, bin_size, threshold) for t in tracks]
    rows = np.array([0, 3, 7, 8, 20, 33, 49])
    labels = bin_labels(rows, positives)
    assert labels.dtype == np.uint8 and labels.shape == (7, 4)
    for t, intervals in enumerate(raw):
        covered = _covered(intervals)
        for i, k in enumerate(rows):
            bases = len(covered & set(range(k * bin_size, (k + 1) * bin_size)))
            assert labels[i, t] == (bases >= 40), (t, k, bases)
    assert labels.any()
