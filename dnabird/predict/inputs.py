"""What gets scored: rows of fixed bp windows from a FASTA file or from BED intervals on a
reference genome.

Each input yields :class:`Row` s in input order: the row's identifier values (the output's
first columns), its window(s) of sequence, or the reason it cannot be scored (those rows
go to the ``.NA`` file with ``na_ids``). Coordinates are 0-based and half-open.

**FASTA** (:class:`FastaWindows`; columns ``index name start end``; ``index`` is the
record's 0-based position in the file). With ``window_bp = W``:

- a record of at most ``W`` bp is one window, centred and padded with ``N``: ``(W - L) // 2``
  on the left, the rest on the right, so ``start = -((W - L) // 2)`` and ``end = start + W``
  in the record's coordinates (negative start: padding);
- a longer record gives sliding windows ``[k * S, k * S + W)`` for ``k = 0 ..
  ceil((L - W) / S)`` (stride ``S``, default ``W``); the last one is padded with ``N``
  past the record's end when the grid does not land on it;
- ``window_bp = None``: each record whole (``start 0``, ``end L``).

**BED** (:class:`BedWindows`; columns ``index chrom start end strand contains_unk``, as
Selene writes them, with ``start end`` the window scored). The window is ``W`` bp centred
on the interval: ``start = s + (e - s) // 2 - W // 2``; strand ``-`` is scored as the
reverse complement. Intervals on a chromosome the genome lacks, or whose window reaches
past either end of the chromosome, are not scored: the ``.NA`` file lists them (with
their own coordinates) and the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dnabird.errors import InputError


@dataclass(frozen=True)
class Row:
    """One output row: ``ids`` (values of the input's ``columns``), ``sequences`` (the
    window(s) to score, empty when skipped), ``skipped`` (why not scored, or None) and
    ``na_ids`` (values of the input's ``na_columns``, for the ``.NA`` file)."""

    ids: tuple[Any, ...]
    sequences: tuple[str, ...]
    na_ids: tuple[Any, ...]
    skipped: str | None = None


class FastaWindows:
    """The windows of every record of a FASTA file (see the module docstring)."""

    columns = (("index", "int"), ("name", "str"), ("start", "int"), ("end", "int"))
    na_columns = ("index", "name", "start", "end")

    def __init__(
        self, fasta: str | os.PathLike, window_bp: int | None, stride_bp: int | None = None
    ) -> None:
        if stride_bp is not None and window_bp is None:
            raise InputError("--stride-bp needs a window (--window-bp, or a model that has one)")
        if stride_bp is not None and stride_bp < 1:
            raise InputError(f"the stride must be at least 1 bp, got {stride_bp}")
        self.fasta = fasta
        self.source = str(fasta)
        self.window_bp = window_bp
        self.stride_bp = stride_bp or window_bp

    def spans(self, length: int) -> list[tuple[int, int]]:
        """The windows ``(start, end)`` of a record of ``length`` bp, in its coordinates."""
        width = self.window_bp
        if width is None:
            return [(0, length)]
        if length <= width:
            start = -((width - length) // 2)
            return [(start, start + width)]
        count = 1 + math.ceil((length - width) / self.stride_bp)
        return [(k * self.stride_bp, k * self.stride_bp + width) for k in range(count)]

    def rows(self) -> Iterator[Row]:
        """The rows, record by record (one record in memory at a time)."""
        from dnabird.genome.fasta import iter_fasta

        for index, (name, sequence) in enumerate(iter_fasta(self.fasta)):
            if not sequence:
                yield Row((), (), (index, name, 0, 0), "empty record")
                continue
            for start, end in self.spans(len(sequence)):
                window = (
                    "N" * max(0, -start)
                    + sequence[max(0, start) : end]
                    + "N" * max(0, end - len(sequence))
                )
                ids = (index, name, start, end)
                yield Row(ids, (window,), ids)

    def count(self) -> int:
        """How many rows :meth:`rows` yields (reads the file once)."""
        from dnabird.genome.fasta import iter_raw_records

        return sum(len(self.spans(len(raw))) for _, raw in iter_raw_records(self.fasta))


class BedWindows:
    """Windows centred on the intervals of a BED file, fetched from a genome (see the
    module docstring)."""

    columns = (
        ("index", "int"),
        ("chrom", "str"),
        ("start", "int"),
        ("end", "int"),
        ("strand", "str"),
        ("contains_unk", "bool"),
    )
    na_columns = ("index", "chrom", "start", "end", "strand")

    def __init__(self, bed: str | os.PathLike, genome: str | os.PathLike, window_bp: int) -> None:
        self.bed = bed
        self.genome = genome
        self.source = str(bed)
        self.window_bp = window_bp

    def window(self, start: int, end: int) -> tuple[int, int]:
        """The window ``(start, end)`` centred on the interval ``[start, end)``."""
        left = start + (end - start) // 2 - self.window_bp // 2
        return left, left + self.window_bp

    def rows(self) -> Iterator[Row]:
        """The rows, interval by interval (each window fetched from the genome)."""
        from dnabird.genome.intervals import iter_bed
        from dnabird.genome.regions import Genome

        with Genome(self.genome) as genome:
            for index, interval in enumerate(iter_bed(self.bed)):
                na_ids = (index, interval.chrom, interval.start, interval.end, interval.strand)
                start, end = self.window(interval.start, interval.end)
                reason = off_genome(genome, interval.chrom, start, end)
                if reason is not None:
                    yield Row((), (), na_ids, reason)
                    continue
                strand = "-" if interval.strand == "-" else "+"
                sequence = genome.fetch(interval.chrom, start, end, strand)
                ids = (index, interval.chrom, start, end, interval.strand, "N" in sequence)
                yield Row(ids, (sequence,), na_ids)

    def count(self) -> int:
        """How many rows :meth:`rows` yields (reads the BED file once)."""
        from dnabird.genome.intervals import iter_bed

        return sum(1 for _ in iter_bed(self.bed))


def off_genome(genome: Any, chrom: str, start: int, end: int) -> str | None:
    """Why the window ``chrom[start:end)`` cannot be read from ``genome`` (unknown
    chromosome, or past either end), or None when it can."""
    if chrom not in genome.lengths:
        return f"chromosome {chrom} is not in {genome.path.name}"
    length = genome.lengths[chrom]
    if start < 0 or end > length:
        return f"window {chrom}:{start}-{end} extends past the chromosome (0-{length})"
    return None
