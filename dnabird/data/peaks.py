"""Peak tracks: peak files -> the union of each track's peaks per chromosome -> bin labels.

The data's path: a track spec (``[NAME=]FILE[,FILE...]``, or a file whose column 4 names
each peak's track) -> :class:`TrackSource` -> :func:`read_tracks` (one :class:`PeakTrack`
per track: disjoint, sorted intervals per chromosome) -> :func:`bin_coverage` (bp of each
bin covered by the union) -> :func:`positive_bins` (per track, the bins it labels 1) ->
:func:`bin_labels` (``uint8 [rows, tracks]`` for the bins kept).

Coordinates are 0-based and half-open, like BED, everywhere. Bins tile a chromosome from 0
in steps of ``bin_size`` bp (bin ``k`` is ``[k * bin_size, (k + 1) * bin_size)``); the last
partial bin is dropped. A bin is labelled 1 for a track when the union of that track's
peaks covers at least ``threshold_bp`` of it (overlapping peaks never count twice).

Peak files (gzip or plain; chosen by name): ``.csv`` files are interval CSVs
(:func:`~dnabird.genome.intervals.iter_interval_csv`: ``chrom``/``region``, ``start``,
``end``), names containing ``.narrowPeak`` are checked as ENCODE narrowPeak, anything else
is BED (the first three columns; with ``by_column``, column 4 names the track). Peaks on
chromosomes that are not binned (absent from the genome or not selected) are skipped and
counted, as are peaks lying wholly at or beyond their chromosome's end (a genome excerpt);
peaks reaching past the end are clipped to it and counted.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import require_file
from dnabird.genome.intervals import Interval, iter_bed, iter_interval_csv

#: Track-name column of a ``by_column`` BED (1-based, BED's ``name``).
TRACK_COLUMN = 4
_SUFFIXES = re.compile(r"(\.(gz|bgz|bed|narrowpeak|broadpeak|csv|tsv|txt))+$", re.IGNORECASE)


@dataclass(frozen=True)
class TrackSource:
    """Where peaks come from: ``files`` (read together) make one track called ``name``, or,
    with ``by_column``, one track per distinct name in column 4 (``name`` is then None)."""

    files: tuple[Path, ...]
    name: str | None = None
    by_column: bool = False

    @classmethod
    def parse(cls, text: str) -> TrackSource:
        """``[NAME=]FILE[,FILE...]``: one track from one or more files; without ``NAME``
        one file, named after the file (``ENCFF252PLM.narrowPeak.gz`` -> ``ENCFF252PLM``).
        Paths may not hold commas."""
        name, separator, files = text.partition("=")
        if not separator or "/" in name:  # a path holding "=" without a name
            name, files = "", text
        paths = tuple(Path(part) for part in files.split(",") if part)
        if not paths:
            raise ConfigError(f"peaks {text!r}: no file given; write [NAME=]FILE[,FILE...]")
        if not name:
            if len(paths) > 1:
                raise ConfigError(
                    f"peaks {text!r}: several files make one track; name it: NAME={files}"
                )
            name = _SUFFIXES.sub("", paths[0].name)
        return cls(paths, name.strip())

    @classmethod
    def column(cls, path: str | os.PathLike) -> TrackSource:
        """A BED file whose column 4 names each peak's track (several tracks in one file)."""
        return cls((Path(path),), None, by_column=True)

    def describe(self) -> str:
        """The spec as a user writes it (messages and manifests)."""
        files = ",".join(str(p) for p in self.files)
        return (
            f"{files} (tracks in column {TRACK_COLUMN})"
            if self.by_column
            else f"{self.name}={files}"
        )


@dataclass
class PeakTrack:
    """One track: ``intervals[chrom]`` is int64 ``[K, 2]`` (start, end): the union of its
    peaks on that chromosome as disjoint intervals sorted by start, clipped to the
    chromosome; ``counts``: ``peaks`` (read), ``used``, ``other_chromosome`` (skipped: on
    a chromosome not binned), ``beyond_end`` (skipped: starting at or past the end),
    ``clipped`` (reaching past the end, cut there)."""

    name: str
    files: tuple[Path, ...]
    intervals: dict[str, np.ndarray]
    counts: dict[str, int] = field(default_factory=dict)


def read_tracks(sources: Sequence[TrackSource], lengths: dict[str, int]) -> list[PeakTrack]:
    """Read every source into tracks, in the order given (a ``by_column`` file's tracks in
    sorted name order). ``lengths``: ``{chrom: bp}`` of the chromosomes that are binned.

    Raises InputError for a malformed line (``FILE:LINE: what``), a file without peaks or a
    ``by_column`` line without a track name, and ConfigError for a track name given twice.
    """
    tracks: list[PeakTrack] = []
    for source in sources:
        collected: dict[str, _Collector] = {}
        for path in source.files:
            for peak in _peaks(path, by_column=source.by_column):
                name = str(peak.name if source.by_column else source.name)
                collected.setdefault(name, _Collector(lengths)).add(peak)
        for name in sorted(collected) if source.by_column else [str(source.name)]:
            tracks.append(collected[name].track(name, source.files))
    repeated = [name for name, count in Counter(t.name for t in tracks).items() if count > 1]
    if repeated:
        raise ConfigError(
            f"track name {repeated[0]!r} is given twice (by {_owners(tracks, repeated[0])}); "
            "name the tracks apart with NAME=FILE"
        )
    return tracks


def _owners(tracks: list[PeakTrack], name: str) -> str:
    return " and ".join(",".join(map(str, t.files)) for t in tracks if t.name == name)


def _peaks(path: Path, *, by_column: bool) -> Iterator[Interval]:
    """The peaks of one file (format by name, see the module docstring); InputError when
    it holds none or, with ``by_column``, when a line names no track."""
    require_file(path, "peak file")
    if ".csv" in path.name.lower():
        if by_column:
            raise ConfigError(f"{path}: tracks by column need a BED file, not a CSV")
        records: Iterable[Interval] = iter_interval_csv(path)
    else:
        records = iter_bed(path, bed_columns=TRACK_COLUMN if by_column else 3)
    count = 0
    for peak in records:
        if by_column and peak.name in (None, "", "."):
            raise InputError(
                f"{path}:{peak.line}: no track name in column {TRACK_COLUMN} "
                "(a file of several tracks names each peak's track there)"
            )
        count += 1
        yield peak
    if not count:
        raise InputError(f"{path}: no peaks (only blank, comment or header lines)")


class _Collector:
    """The peaks of one track as they are read: per chromosome, compact arrays of starts
    and ends (clipped to the chromosome), and the counts of :class:`PeakTrack`."""

    def __init__(self, lengths: dict[str, int]) -> None:
        self.lengths = lengths
        self.counts = Counter(peaks=0, used=0, other_chromosome=0, beyond_end=0, clipped=0)
        self.bounds: dict[str, array] = {}  # chrom -> start, end, start, end, ...

    def add(self, peak: Interval) -> None:
        self.counts["peaks"] += 1
        length = self.lengths.get(peak.chrom)
        if length is None:
            self.counts["other_chromosome"] += 1
        elif peak.start >= length:
            self.counts["beyond_end"] += 1
        else:
            self.counts["clipped"] += peak.end > length
            self.counts["used"] += 1
            bounds = self.bounds.setdefault(peak.chrom, array("q"))
            bounds.extend((peak.start, min(peak.end, length)))

    def track(self, name: str, files: tuple[Path, ...]) -> PeakTrack:
        intervals = {
            chrom: union(np.frombuffer(bounds, dtype=np.int64).reshape(-1, 2))
            for chrom, bounds in self.bounds.items()
        }
        return PeakTrack(name, files, intervals, dict(self.counts))


def union(intervals: np.ndarray) -> np.ndarray:
    """The union of ``intervals`` (int64 ``[K, 2]``, start and end, 0-based half-open, any
    order, possibly overlapping) as disjoint intervals sorted by start (``[M, 2]``, M <= K;
    intervals that overlap or touch merge, empty ones vanish)."""
    intervals = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    intervals = intervals[intervals[:, 1] > intervals[:, 0]]
    if not len(intervals):
        return intervals
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    starts, reach = intervals[:, 0], np.maximum.accumulate(intervals[:, 1])
    first = np.flatnonzero(np.r_[True, starts[1:] > reach[:-1]])  # each merged run's first
    last = np.r_[first[1:] - 1, len(starts) - 1]
    return np.stack([starts[first], reach[last]], axis=1)


def bin_coverage(union_intervals: np.ndarray, bins: int, bin_size: int) -> np.ndarray:
    """bp of each bin ``[k * bin_size, (k + 1) * bin_size)``, ``k < bins``, covered by
    ``union_intervals`` (disjoint and sorted, as :func:`union` returns): int64 ``[bins]``.

    Uses the covered length before each bin edge, ``C(x) = prefix[j] - max(end[j-1] - x,
    0)`` with ``j`` the number of intervals starting before ``x``: O(bins + K log K),
    no per-base array.
    """
    edges = np.arange(bins + 1, dtype=np.int64) * bin_size
    if not len(union_intervals):
        return np.zeros(bins, dtype=np.int64)
    starts, ends = union_intervals[:, 0], union_intervals[:, 1]
    prefix = np.r_[0, np.cumsum(ends - starts)]
    j = np.searchsorted(starts, edges, side="left")
    overhang = np.where(j > 0, np.maximum(ends[np.maximum(j - 1, 0)] - edges, 0), 0)
    before = prefix[j] - overhang
    return np.diff(before)


def threshold_bp(min_overlap: float, bin_size: int) -> int:
    """bp of a bin a track must cover to label it 1: ``ceil(min_overlap * bin_size)``
    (at least 1; tolerant of float noise, so 0.3 of 200 bp is 60)."""
    if not 0.0 < min_overlap <= 1.0:
        raise ConfigError(f"min_overlap must be in (0, 1], got {min_overlap}")
    return max(1, math.ceil(min_overlap * bin_size - 1e-9))


def positive_bins(
    track: PeakTrack, chrom: str, bins: int, bin_size: int, threshold: int
) -> np.ndarray:
    """Sorted indices (int64 ``[P]``) of the bins of ``chrom`` (as in :func:`bin_coverage`)
    whose ``threshold`` bp or more the track's union covers: the bins it labels 1."""
    intervals = track.intervals.get(chrom)
    if intervals is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(bin_coverage(intervals, bins, bin_size) >= threshold)


def bin_labels(rows: np.ndarray, positives: Sequence[np.ndarray]) -> np.ndarray:
    """``uint8 [len(rows), len(positives)]``: 1 where bin ``rows[i]`` is among the sorted
    ``positives[j]`` of track ``j`` (from :func:`positive_bins`). Memory grows with the
    rows kept and the positives, never with all bins x tracks."""
    labels = np.zeros((len(rows), len(positives)), dtype=np.uint8)
    for column, bins in enumerate(positives):
        if len(bins):
            at = np.minimum(np.searchsorted(bins, rows), len(bins) - 1)
            labels[:, column] = bins[at] == rows
    return labels
