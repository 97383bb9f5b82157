"""Multi-label chromatin datasets from a genome and peak files (``dnabird make-dataset``).

What DeepSEA did with ENCODE/Roadmap peaks, for any peaks: :func:`make_dataset` cuts every
chromosome into bins of ``bin_size`` bp (from 0, the last partial bin dropped; 0-based,
half-open coordinates throughout), labels each bin 1 for a track when the union of the
track's peaks covers at least ``min_overlap`` of it (:mod:`dnabird.data.peaks`), and keeps

- every bin with at least one positive label, and
- a seeded sample of the all-negative bins: ``round(negatives x positives)`` of them per
  chromosome and split (``negatives="all"`` keeps them all),

except bins whose own bases are more than ``max_n`` N (counted as ``n_rich``) and bins whose
reach ``[start - gap, end + gap)`` touches another split's region (``near_other_split``;
``gap`` defaults to ``flank``, so no sequence is shared by two splits; see
:mod:`dnabird.data.region_splits`). Splits go by chromosomes or contiguous regions, never by
random bins. The bin selection depends on ``flank`` only through that default ``gap``: two
builds with the same explicit ``gap`` keep the same bins whatever their flanks.

Each kept bin becomes one row: the window ``[start - flank, end + flank)`` from
:meth:`Genome.fetch <dnabird.genome.regions.Genome.fetch>` (uppercase ACGTN, N beyond the
chromosome's ends) and its labels. Layout of the output folder (claimed through
:class:`~dnabird.outputs.OutputFolder`, stage ``make-dataset``)::

    manifest.json            inputs with sha256, every parameter, the seed, counts of bins
                             kept / skipped by reason, peaks skipped, positives per split
                             and track, shards (written last: the folder is complete)
    train-00000.parquet      rows of each split in genome order, shard_size rows a shard,
    validation-00000.parquet in the layout of :mod:`dnabird.data.multilabel` (``sequence``,
    test-00000.parquet       ``labels``; features = the track names) plus ``chrom``,
                             ``start``, ``end`` (the bin), ``window_start``, ``window_end``
                             (the sequence's coordinates) and ``split``

Same inputs, parameters and seed give identical bytes. :func:`read_dataset` reads the
folder back as ``{split: MultiLabelExamples}``, checking it against its manifest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.data.multilabel import (
    Features,
    MultiLabelExamples,
    concatenate,
    read_parquet,
    write_parquet,
)
from dnabird.data.peaks import (
    PeakTrack,
    TrackSource,
    bin_labels,
    positive_bins,
    read_tracks,
    threshold_bp,
)
from dnabird.data.region_splits import TEST, TRAIN, VALIDATION, SplitLayout, parse_regions
from dnabird.data.splits import SPLITS
from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError, InputError
from dnabird.manifest import describe_file, new_manifest, read_manifest, verified_shards
from dnabird.progress import progress

STAGE = "make-dataset"
log = logging.getLogger(__name__)
_N = ord("N")
_CHUNK_BP = 4_000_000  # sequence read at a time when counting N per bin


@document_fields
@dataclass(frozen=True)
class DatasetOptions:
    """Parameters of :func:`make_dataset` (all recorded in the manifest)."""

    bin_size: int = 200
    """Bin length, bp; bins tile each chromosome from 0 (the last partial bin dropped)."""
    flank: int = 400
    """bp added on each side of a bin to make its window (400: DeepSEA's 1,000 bp)."""
    min_overlap: float = 0.5
    """Share of a bin, in (0, 1], a track's peaks must cover to label it 1."""
    max_n: float = 0.5
    """Bins whose own bases are more than this share N are skipped."""
    negatives: float | str = 1.0
    """All-negative bins kept per positive bin (per chromosome and split), or ``"all"``."""
    seed: int = 0
    """Seed of the negative sampling."""
    test: tuple[str, ...] = ()
    """Test regions: chromosome names or ``CHROM:START-END`` (0-based, half-open)."""
    validation: tuple[str, ...] = ()
    """Validation regions, as ``test``; everything else is train."""
    gap: int | None = None
    """Drop bins whose ``[start - gap, end + gap)`` touches another split; None: ``flank``."""
    chromosomes: tuple[str, ...] | None = None
    """Chromosomes to bin (genome records); None: every record of the genome."""
    shard_size: int = 10_000
    """Rows per Parquet shard."""

    @property
    def reach(self) -> int:
        """The gap in effect (``gap``, or ``flank`` when it is None)."""
        return self.flank if self.gap is None else self.gap

    def check(self) -> None:
        """ConfigError, one line, for a value outside its range."""
        for name, minimum in (("bin_size", 1), ("flank", 0), ("shard_size", 1)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {getattr(self, name)}")
        if self.gap is not None and self.gap < 0:
            raise ConfigError(f"gap must be at least 0, got {self.gap}")
        threshold_bp(self.min_overlap, self.bin_size)
        if not 0.0 <= self.max_n <= 1.0:
            raise ConfigError(f"max_n must be in [0, 1], got {self.max_n}")
        if self.negatives != "all" and not (
            isinstance(self.negatives, int | float) and 0 <= self.negatives < math.inf
        ):
            raise ConfigError(f"negatives must be a ratio >= 0 or 'all', got {self.negatives!r}")
        if not self.test:
            raise ConfigError("no test regions; give chromosomes or regions to hold out for test")


@dataclass
class _Rows:
    """Kept bins of one chromosome in one split: bin ``starts`` (int64 [n]) and ``labels``
    (uint8 [n, tracks])."""

    chrom: str
    starts: np.ndarray
    labels: np.ndarray


def make_dataset(
    genome: str | os.PathLike,
    sources: Sequence[TrackSource],
    out: str | os.PathLike,
    options: DatasetOptions,
    *,
    overwrite: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the dataset of the module docstring into ``out``; return its manifest.

    ``genome``: FASTA (plain, gzip or bgzip); ``sources``: the peak tracks, in column order;
    ``cache_dir``: where FASTA indexes go when none is beside the file. A folder that
    already holds this dataset (same input checksums and parameters) is returned as it is,
    an interrupted run resumes (shards already written are kept), a folder of other inputs
    is refused unless ``overwrite``. Errors (a malformed peak line, an unknown chromosome,
    an empty split) are one-line InputError / ConfigError and leave no folder that looks
    complete.
    """
    from dnabird.genome.regions import Genome
    from dnabird.outputs import OutputFolder

    started = time.perf_counter()
    options.check()
    if not sources:
        raise ConfigError("no peak files; give at least one track")
    with Genome(genome, cache_dir=cache_dir) as reference:
        lengths = _selected(reference.lengths, options.chromosomes, genome)
        test = parse_regions(options.test, lengths, "test")
        validation = parse_regions(options.validation, lengths, "validation")
        layout = SplitLayout(lengths, test, validation)
        inputs = {
            "genome": describe_file(genome),
            "tracks": [
                {"source": s.describe(), "files": [describe_file(p) for p in s.files]}
                for s in sources
            ],
        }
        parameters = {**asdict(options), "gap": options.reach}
        parameters = json.loads(json.dumps(parameters))  # as the manifest stores them
        parameters["threshold_bp"] = threshold_bp(options.min_overlap, options.bin_size)
        run = {
            "genome": inputs["genome"]["sha256"],
            "tracks": [
                [s.name, s.by_column, [f["sha256"] for f in t["files"]]]
                for s, t in zip(sources, inputs["tracks"], strict=True)
            ],
            "parameters": parameters,
        }
        with OutputFolder(out, STAGE, run, overwrite=overwrite) as folder:
            if folder.complete:
                log.info("%s already holds this dataset (same inputs and parameters)", out)
                return folder.manifest
            tracks = read_tracks(sources, lengths)
            plan, counts = _plan(reference, tracks, layout, lengths, options)
            _refuse_empty(counts, requested=bool(validation))
            features = Features.from_names([t.name for t in tracks])
            for leftover in folder.path.glob(".*.parquet.*.tmp"):  # from a killed run
                leftover.unlink()
            shards = _write(reference, plan, features, options, folder.path, folder.resuming)
            manifest = new_manifest(
                STAGE,
                parameters,
                inputs=inputs,
                features=features.to_json(),
                tracks=[
                    {"name": t.name, "files": [str(p) for p in t.files], "peaks": t.counts}
                    for t in tracks
                ],
                chromosomes=[
                    {"name": c, "length": n, "bins": n // options.bin_size}
                    for c, n in lengths.items()
                ],
                regions={
                    "test": [r.label for r in test],
                    "validation": [r.label for r in validation],
                },
                counts=counts,
                shards=shards,
                seconds=round(time.perf_counter() - started, 3),
            )
            folder.finish(manifest)
            return folder.manifest


def _selected(
    lengths: dict[str, int], chromosomes: Sequence[str] | None, genome: str | os.PathLike
) -> dict[str, int]:
    """``{chrom: bp}`` of the chromosomes to bin, in genome order."""
    if chromosomes is None:
        return dict(lengths)
    missing = [c for c in chromosomes if c not in lengths]
    if missing:
        raise InputError(f"{genome}: no chromosome {missing[0]!r} (asked for by chromosomes)")
    return {c: n for c, n in lengths.items() if c in set(chromosomes)}


# ----------------------------------------------------------------------------- planning
_BIN_COUNTS = ("bins", "n_rich", "near_other_split", "positive", "negative", "negative_kept")


def _plan(
    genome: Any,
    tracks: list[PeakTrack],
    layout: SplitLayout,
    lengths: dict[str, int],
    options: DatasetOptions,
) -> tuple[list[list[_Rows]], dict[str, Any]]:
    """The bins to keep, per split (``SPLITS`` order) and chromosome (genome order), and
    the counts of the manifest: ``bins[split]`` (``bins``: bins starting in the split,
    ``n_rich``, ``near_other_split``: skipped; ``positive``, ``negative``: usable bins with
    and without a positive label; ``negative_kept``) and ``splits[split]`` (``rows``,
    ``positive_rows``, ``positives`` per track)."""
    plan: list[list[_Rows]] = [[] for _ in SPLITS]
    bins_counts = {name: dict.fromkeys(_BIN_COUNTS, 0) for name in SPLITS}
    total = sum(n // options.bin_size for n in lengths.values())
    with progress(total=total, unit="bin", unit_scale=True, desc="label bins") as bar:
        for chrom, length in lengths.items():
            bins = length // options.bin_size
            if bins:
                kept, counts = _plan_chromosome(genome, chrom, bins, tracks, layout, options)
                for index, name in enumerate(SPLITS):
                    if len(kept[index].starts):
                        plan[index].append(kept[index])
                    for key, value in counts[index].items():
                        bins_counts[name][key] += value
            bar.update(bins)
    splits = {}
    for index, name in enumerate(SPLITS):
        labels = np.concatenate(
            [r.labels for r in plan[index]] or [np.zeros((0, len(tracks)), np.uint8)]
        )
        splits[name] = {
            "rows": len(labels),
            "positive_rows": int(labels.any(axis=1).sum()),
            "positives": {t.name: int(n) for t, n in zip(tracks, labels.sum(axis=0), strict=True)},
        }
    return plan, {"bins": bins_counts, "splits": splits}


def _plan_chromosome(
    genome: Any,
    chrom: str,
    bins: int,
    tracks: list[PeakTrack],
    layout: SplitLayout,
    options: DatasetOptions,
) -> tuple[list[_Rows], list[dict[str, int]]]:
    """The kept bins of ``chrom`` per split and, per split, the counts of :func:`_plan`."""
    size = options.bin_size
    threshold = threshold_bp(options.min_overlap, size)
    starts = np.arange(bins, dtype=np.int64) * size
    positives = [positive_bins(t, chrom, bins, size, threshold) for t in tracks]
    positive = np.zeros(bins, dtype=bool)
    for indices in positives:
        positive[indices] = True
    n_rich = _n_counts(genome, chrom, bins, size) > options.max_n * size
    split, near = layout.assign(chrom, starts, starts + size, options.reach)
    usable = ~n_rich & ~near
    kept, counts = [], []
    for index in range(len(SPLITS)):
        here = split == index
        pos = np.flatnonzero(here & usable & positive)
        neg = np.flatnonzero(here & usable & ~positive)
        kept_neg = _sample(neg, len(pos), options, chrom, index)
        rows = np.union1d(pos, kept_neg)
        kept.append(_Rows(chrom, starts[rows], bin_labels(rows, positives)))
        values = (
            here.sum(),
            (here & n_rich).sum(),
            (here & ~n_rich & near).sum(),
            len(pos),
            len(neg),
            len(kept_neg),
        )
        counts.append({key: int(v) for key, v in zip(_BIN_COUNTS, values, strict=True)})
    return kept, counts


def _n_counts(genome: Any, chrom: str, bins: int, bin_size: int) -> np.ndarray:
    """int64 [bins]: N bases (after normalisation: IUPAC codes count as N) in each bin,
    reading the chromosome a few Mbp at a time."""
    counts = np.zeros(bins, dtype=np.int64)
    step = max(1, _CHUNK_BP // bin_size)
    for first in range(0, bins, step):
        last = min(first + step, bins)
        sequence = genome.fetch(chrom, first * bin_size, last * bin_size).encode("ascii")
        codes = np.frombuffer(sequence, dtype=np.uint8).reshape(last - first, bin_size)
        counts[first:last] = (codes == _N).sum(axis=1)
    return counts


def _sample(
    negatives: np.ndarray, positives: int, options: DatasetOptions, chrom: str, split: int
) -> np.ndarray:
    """The all-negative bins kept (sorted): all of them for ``"all"``, else
    ``round(ratio x positives)`` (at most all) drawn without replacement from a generator
    seeded by (seed, chromosome name, split), so a chromosome's draw depends on nothing
    else."""
    if options.negatives == "all":
        return negatives
    wanted = min(len(negatives), math.floor(float(options.negatives) * positives + 0.5))
    rng = np.random.default_rng([options.seed, zlib.crc32(chrom.encode()), split])
    return np.sort(rng.choice(negatives, size=wanted, replace=False))


def _refuse_empty(counts: dict[str, Any], *, requested: bool) -> None:
    """ConfigError when train, test or a requested validation split kept no row."""
    needed = [TRAIN, TEST] + ([VALIDATION] if requested else [])
    for index in needed:
        name = SPLITS[index]
        if counts["splits"][name]["rows"]:
            continue
        c = counts["bins"][name]
        raise ConfigError(
            f"the {name} split has no examples ({c['bins']:,} bins: {c['n_rich']:,} mostly N, "
            f"{c['near_other_split']:,} within the gap of another split, {c['positive']:,} "
            "positive); choose other test/validation regions"
        )


# ----------------------------------------------------------------------------- writing
def _write(
    genome: Any,
    plan: list[list[_Rows]],
    features: Features,
    options: DatasetOptions,
    folder: Path,
    resuming: bool,
) -> list[dict[str, Any]]:
    """Write every split's rows as shards ``{split}-{k:05d}.parquet`` (skipping shards a
    resumed run already wrote); return the manifest's shard entries."""
    entries = []
    total = sum(len(r.starts) for rows in plan for r in rows)
    with progress(total=total, unit="row", desc="write windows") as bar:
        for index, name in enumerate(SPLITS):
            if not plan[index]:
                continue
            chroms = np.concatenate(
                [np.full(len(r.starts), r.chrom, dtype=object) for r in plan[index]]
            )
            starts = np.concatenate([r.starts for r in plan[index]])
            labels = np.concatenate([r.labels for r in plan[index]])
            for k, first in enumerate(range(0, len(starts), options.shard_size)):
                part = slice(first, first + options.shard_size)
                path = folder / f"{name}-{k:05d}.parquet"
                if not (resuming and path.is_file()):
                    examples = _examples(
                        genome, chroms[part], starts[part], labels[part], name, features, options
                    )
                    write_parquet(path, examples)
                entry = describe_file(path)
                entries.append(
                    {
                        "file": path.name,
                        "split": name,
                        "rows": len(starts[part]),
                        "bytes": entry["bytes"],
                        "sha256": entry["sha256"],
                    }
                )
                bar.update(len(starts[part]))
    return entries


def _examples(
    genome: Any,
    chroms: np.ndarray,
    starts: np.ndarray,
    labels: np.ndarray,
    split: str,
    features: Features,
    options: DatasetOptions,
) -> MultiLabelExamples:
    """Rows of one shard: each bin's window ``[start - flank, end + flank)``."""
    ends = starts + options.bin_size
    window_starts, window_ends = starts - options.flank, ends + options.flank
    sequences = [
        genome.fetch(chrom, int(a), int(b))
        for chrom, a, b in zip(chroms, window_starts, window_ends, strict=True)
    ]
    columns = {
        "chrom": chroms,
        "start": starts,
        "end": ends,
        "window_start": window_starts,
        "window_end": window_ends,
        "split": np.full(len(starts), split, dtype=object),
    }
    return MultiLabelExamples(sequences, labels, features, "", columns)


# ----------------------------------------------------------------------------- reading
def read_dataset(folder: str | os.PathLike, verify: bool = True) -> dict[str, MultiLabelExamples]:
    """``{split: examples}`` of a folder written by :func:`make_dataset`, for the splits
    that have rows (``train``, ``test`` and, when requested, ``validation``), rows in the
    order written. The manifest must be there (the run finished) and every shard must
    match it (size, rows and, with ``verify``, sha256); InputError names what is wrong."""
    folder = Path(folder)
    manifest = read_manifest(folder, stage=STAGE)
    paths, _ = verified_shards(folder, manifest, verify)
    features = Features.from_json(manifest["features"])
    parts: dict[str, list[MultiLabelExamples]] = {}
    for entry, path in zip(manifest["shards"], paths, strict=True):
        examples = read_parquet(path)
        if examples.features != features:
            raise InputError(f"{path}: its features differ from the manifest's")
        parts.setdefault(entry["split"], []).append(examples)
    return {name: concatenate(parts[name], str(folder)) for name in SPLITS if name in parts}
