"""Where a chromosome is cut: the seeded sentence/document math (pure functions).

The BigBird genomics recipe (Zaheer et al. 2020, Figure 7): for each chromosome and each
pass, split the sequence at random positions into sentences of ``min_sentence``..
``max_sentence`` bp (uniform) and group consecutive sentences into documents of
``min_doc``..``max_doc`` sentences (uniform).

The cutting sees a chromosome only as its length and its runs of N (:func:`n_runs`), and
returns intervals. All coordinates are 0-based, half-open, on the forward strand. Rules:

- A run of at least ``max_n_run`` N is a gap: it is never inside a sentence and it ends the
  current document. The stretches between gaps are *segments*.
- Each segment of at least ``min_sentence`` bp is partitioned exactly into sentences whose
  lengths lie in [min_sentence, max_sentence] (possible whenever
  ``max_sentence >= 2 * min_sentence - 1``, as with the defaults; otherwise a tail shorter
  than ``min_sentence`` is dropped and counted). Segments shorter than ``min_sentence`` are
  dropped and counted.
- A sentence that is more than ``max_n_fraction`` N is dropped (counted) and, because a
  document is one continuous strand, it also ends the current document.
- Each run of consecutive kept sentences is partitioned into documents of
  [min_doc, max_doc] sentences; a run shorter than ``min_doc`` sentences becomes one short
  document (it is bounded by gaps, dropped sentences or chromosome ends).

Every pass draws from its own generator, seeded from (seed, chromosome name, pass), so the
first cut of each segment falls at a different random offset in every pass and the result
never depends on which worker ran the unit or in what order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CuttingParams:
    """Lengths and N rules of the cutting (defaults: the BigBird paper's recipe)."""

    min_sentence: int = 500
    """Shortest sentence, bp."""
    max_sentence: int = 1000
    """Longest sentence, bp."""
    min_doc: int = 50
    """Fewest sentences in a document (fewer only where gaps or chromosome ends force it)."""
    max_doc: int = 100
    """Most sentences in a document."""
    max_n_run: int = 50
    """A run of at least this many N is a gap: excluded, and it ends the document."""
    max_n_fraction: float = 0.1
    """Sentences with a larger fraction of N than this are dropped."""

    def validate(self) -> None:
        """Raise ConfigError if the lengths are not positive and ordered."""
        from dnabird.errors import ConfigError

        if not 1 <= self.min_sentence <= self.max_sentence:
            raise ConfigError(
                f"sentence lengths must satisfy 1 <= min <= max, got "
                f"{self.min_sentence}..{self.max_sentence}"
            )
        if not 1 <= self.min_doc <= self.max_doc:
            raise ConfigError(
                f"document sizes must satisfy 1 <= min <= max sentences, got "
                f"{self.min_doc}..{self.max_doc}"
            )
        if self.max_n_run < 1:
            raise ConfigError(f"--max-n-run must be >= 1, got {self.max_n_run}")
        if not 0.0 <= self.max_n_fraction <= 1.0:
            raise ConfigError(f"--max-n-fraction must be in [0, 1], got {self.max_n_fraction}")


@dataclass(frozen=True)
class Cut:
    """The sentences and documents of one (chromosome, pass) unit.

    ``sentence_starts``/``sentence_ends``: int64 [S], kept sentences in forward order,
    0-based half-open. ``doc_offsets``: int64 [D + 1]; document d holds sentences
    ``doc_offsets[d]:doc_offsets[d + 1]`` (consecutive and touching).
    """

    sentence_starts: np.ndarray
    sentence_ends: np.ndarray
    doc_offsets: np.ndarray
    gap_bp: int
    """bp inside gaps (N runs >= max_n_run)."""
    short_segment_bp: int
    """bp of segments (or infeasible tails) too short for one sentence, dropped."""
    n_rich_sentences: int
    """Sentences dropped for having more than max_n_fraction N."""
    n_rich_bp: int
    """bp of those dropped sentences."""

    @property
    def num_documents(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def doc_starts(self) -> np.ndarray:
        """int64 [D]: forward start of each document."""
        return self.sentence_starts[self.doc_offsets[:-1]]

    @property
    def doc_ends(self) -> np.ndarray:
        """int64 [D]: forward end (exclusive) of each document."""
        return self.sentence_ends[self.doc_offsets[1:] - 1]


def unit_rng(seed: int, chrom: str, pass_index: int) -> np.random.Generator:
    """The generator of one (chromosome, pass) unit, independent of workers and order."""
    chrom_key = int.from_bytes(hashlib.sha256(chrom.encode("utf-8")).digest()[:8], "little")
    sequence = np.random.SeedSequence([seed, chrom_key, pass_index])
    return np.random.Generator(np.random.PCG64(sequence))


def partition(total: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` into consecutive parts with lengths drawn uniformly from [lo, hi].

    Returns int64 [P] summing to ``total``. Every part lies in [lo, hi] when
    ``total >= lo`` and ``hi >= 2 * lo - 1``; near the end the draw range is narrowed so the
    remainder stays splittable. Otherwise only the last part can be shorter than ``lo``
    (callers drop or keep it). ``total`` must be positive.
    """
    if total <= hi:
        return np.array([total], dtype=np.int64)
    draws = rng.integers(lo, hi + 1, size=total // lo + 1, dtype=np.int64)
    before = total - np.concatenate(([0], np.cumsum(draws[:-1])))  # remaining before each draw
    free = int(np.argmax(before < hi + lo))  # draws before this one need no narrowing
    parts = draws[:free].tolist()
    remaining = int(before[free])
    while remaining > hi:
        top = min(hi, remaining - lo)
        length = int(rng.integers(lo, top + 1)) if top >= lo else hi
        parts.append(length)
        remaining -= length
    parts.append(remaining)
    return np.asarray(parts, dtype=np.int64)


_NOT_N = re.compile(rb"[^Nn]")


def n_runs(sequence: bytes) -> tuple[np.ndarray, np.ndarray]:
    """All maximal runs of ``N``/``n`` in ``sequence``: (starts, ends) int64 [R], half-open.

    Jumps from run to run with ``bytes.find`` (memchr speed), so the cost is one scan of the
    sequence plus a step per run; genomes have few runs.
    """
    starts: list[int] = []
    ends: list[int] = []
    upper, lower, pos = sequence.find(b"N"), sequence.find(b"n"), 0
    while True:
        if 0 <= upper < pos:
            upper = sequence.find(b"N", pos)
        if 0 <= lower < pos:
            lower = sequence.find(b"n", pos)
        found = [i for i in (upper, lower) if i >= 0]
        if not found:
            break
        start = min(found)
        after = _NOT_N.search(sequence, start)
        pos = after.start() if after else len(sequence)
        starts.append(start)
        ends.append(pos)
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _n_before(run_starts: np.ndarray, run_ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int64 [K]: how many N positions (in the sorted runs) lie before each position ``x``."""
    total_before = np.concatenate(([0], np.cumsum(run_ends - run_starts)))  # [R + 1]
    j = np.searchsorted(run_starts, x, side="left")  # runs starting before x
    last_end = run_ends[np.maximum(j - 1, 0)] if len(run_ends) else np.zeros_like(x)
    overhang = np.where(j > 0, np.maximum(last_end - x, 0), 0)  # part of run j-1 at/after x
    return total_before[j] - overhang


def cut_chromosome(
    length: int,
    run_starts: np.ndarray,
    run_ends: np.ndarray,
    params: CuttingParams,
    rng: np.random.Generator,
) -> Cut:
    """Cut one chromosome of ``length`` bp for one pass; see the module rules.

    ``run_starts``/``run_ends``: int64 [R], every maximal run of N (see :func:`n_runs`),
    sorted, 0-based half-open. Runs of at least ``max_n_run`` are gaps.
    """
    long = (run_ends - run_starts) >= params.max_n_run
    gap_starts, gap_ends = run_starts[long], run_ends[long]
    seg_starts = np.concatenate(([0], gap_ends))
    seg_ends = np.concatenate((gap_starts, [length]))
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    doc_sizes: list[np.ndarray] = []
    short_bp = n_rich = n_rich_bp = 0
    for seg_start, seg_end in zip(seg_starts.tolist(), seg_ends.tolist(), strict=True):
        seg_len = seg_end - seg_start
        if seg_len < params.min_sentence:
            short_bp += max(seg_len, 0)
            continue
        lengths = partition(seg_len, params.min_sentence, params.max_sentence, rng)
        if lengths[-1] < params.min_sentence:  # infeasible tail (only if max < 2 * min - 1)
            short_bp += int(lengths[-1])
            lengths = lengths[:-1]
        bounds = seg_start + np.concatenate(([0], np.cumsum(lengths)))
        n_counts = np.diff(_n_before(run_starts, run_ends, bounds))
        keep = n_counts <= params.max_n_fraction * lengths
        n_rich += int((~keep).sum())
        n_rich_bp += int(lengths[~keep].sum())
        for run_first, run_last in _true_runs(keep):
            count = run_last - run_first
            doc_sizes.append(partition(count, params.min_doc, params.max_doc, rng))
            starts.append(bounds[run_first:run_last])
            ends.append(bounds[run_first + 1 : run_last + 1])
    sizes = np.concatenate(doc_sizes) if doc_sizes else np.zeros(0, dtype=np.int64)
    return Cut(
        sentence_starts=np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64),
        sentence_ends=np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64),
        doc_offsets=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        gap_bp=int((gap_ends - gap_starts).sum()),
        short_segment_bp=short_bp,
        n_rich_sentences=n_rich,
        n_rich_bp=n_rich_bp,
    )


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in ``mask: bool[K]`` as (first, last exclusive) index pairs."""
    padded = np.concatenate(([False], mask, [False])).view(np.int8)
    edges = np.flatnonzero(np.diff(padded)).tolist()
    return list(zip(edges[0::2], edges[1::2], strict=True))
