"""Train / validation / test splits of a genome by chromosomes or contiguous regions.

Neighbouring genome bins share sequence (their windows overlap) and their labels are
correlated, so bins are never split at random: the test and validation splits are given as
chromosomes (``chr8``) or regions (``chr2:1980000-2333275``, 0-based half-open, like BED);
everything else is train. A bin belongs to the split whose region holds its start.

The gap rule: a bin is *dropped* when its reach ``[start - gap, end + gap)`` (clipped to the
chromosome; beyond the ends there is only N padding) touches another split's region. With
``gap >= flank`` every window of a split lies inside that split's regions, so no base of
sequence is shared by two splits.

:func:`parse_regions` reads the option text; :class:`SplitLayout` assigns bins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from dnabird.data.splits import SPLITS
from dnabird.errors import ConfigError
from dnabird.genome.intervals import Interval

TRAIN, VALIDATION, TEST = (SPLITS.index(name) for name in ("train", "validation", "test"))
_REGION = re.compile(r"(?P<chrom>[^:\s]+):(?P<start>[\d_]+)-(?P<end>[\d_]+)")


def parse_regions(items: Sequence[str], lengths: dict[str, int], option: str) -> list[Interval]:
    """The regions that ``items`` name (each ``CHROM`` for a whole chromosome or
    ``CHROM:START-END``, 0-based half-open; commas separate several in one item), checked
    against ``lengths`` (``{chrom: bp}`` of the binned chromosomes). ConfigError, naming
    ``option``, for a bad spelling, an unknown chromosome or a region outside it."""
    regions = []
    for item in items:
        for text in filter(None, (part.strip() for part in item.split(","))):
            match = _REGION.fullmatch(text)
            if ":" in text and not match:
                raise ConfigError(
                    f"{option} {text}: not CHROM or CHROM:START-END (0-based, half-open)"
                )
            chrom = match["chrom"] if match else text
            if chrom not in lengths:
                shown = ", ".join(list(lengths)[:5]) + (", ..." if len(lengths) > 5 else "")
                raise ConfigError(
                    f"{option} {text}: no chromosome {chrom!r} among the binned ones ({shown})"
                )
            start, end = (int(match["start"]), int(match["end"])) if match else (0, lengths[chrom])
            if not 0 <= start < end <= lengths[chrom]:
                raise ConfigError(
                    f"{option} {text}: empty or outside {chrom} (0-{lengths[chrom]}, 0-based "
                    "half-open)"
                )
            regions.append(Interval(chrom, start, end))
    return regions


class SplitLayout:
    """Which split every base of every chromosome belongs to, as maximal runs.

    ``lengths``: ``{chrom: bp}``; ``test`` / ``validation``: regions from
    :func:`parse_regions` (they may not overlap each other; overlaps within one split are
    fine). ``runs[chrom]`` is ``(starts int64 [R], split int8 [R])``: run ``r`` covers
    ``[starts[r], starts[r + 1])`` (the last one up to the chromosome's end) and adjacent
    runs belong to different splits (indices into :data:`~dnabird.data.splits.SPLITS`).
    """

    def __init__(
        self, lengths: dict[str, int], test: Sequence[Interval], validation: Sequence[Interval]
    ) -> None:
        self.lengths = dict(lengths)
        for a in test:
            for b in validation:
                if a.chrom == b.chrom and a.start < b.end and b.start < a.end:
                    raise ConfigError(
                        f"--test {a.label} and --validation {b.label} overlap; a region "
                        "belongs to one split"
                    )
        self.runs = {
            chrom: _runs(
                length,
                [r for r in test if r.chrom == chrom],
                [r for r in validation if r.chrom == chrom],
            )
            for chrom, length in self.lengths.items()
        }

    def assign(
        self, chrom: str, starts: np.ndarray, ends: np.ndarray, gap: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The split of each bin ``[starts[i], ends[i])`` (int8 [N], by the run holding its
        start) and whether its reach ``[start - gap, end + gap)``, clipped to the chromosome,
        touches another split (bool [N]: drop it, see the module docstring)."""
        run_starts, split = self.runs[chrom]
        length = self.lengths[chrom]
        own = np.searchsorted(run_starts, starts, side="right") - 1
        low = np.searchsorted(run_starts, np.maximum(starts - gap, 0), side="right") - 1
        last = np.minimum(ends + gap, length) - 1  # last base reached
        high = np.searchsorted(run_starts, np.maximum(last, starts), side="right") - 1
        return split[own], (low != own) | (high != own)


def _runs(
    length: int, test: list[Interval], validation: list[Interval]
) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of one split over ``[0, length)`` (see :class:`SplitLayout`): cut at
    every region edge, each piece goes to test if a test region covers it, else to
    validation if a validation region does, else to train."""
    edges = [0] + [p for r in (*test, *validation) for p in (r.start, r.end) if p < length]
    starts = np.unique(np.asarray(edges, dtype=np.int64))
    split = np.full(len(starts), TRAIN, dtype=np.int8)
    for regions, which in ((validation, VALIDATION), (test, TEST)):
        for r in regions:
            split[(starts >= r.start) & (starts < r.end)] = which
    keep = np.r_[True, split[1:] != split[:-1]]
    return starts[keep], split[keep]
