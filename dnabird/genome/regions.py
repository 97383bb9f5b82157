"""Random access to regions of a reference genome, without loading whole chromosomes.

The data's path: FASTA -> :func:`~dnabird.genome.index.indexed_source` (``.fai``/``.gzi``
beside it or in the cache) -> :class:`IndexedFasta` (one open pyfaidx reader) ->
:class:`Genome` (``fetch``: padding, strand, case)::

    with Genome("hg38.fa.gz") as genome:
        genome.lengths["chr2"]                      # bp
        genome.fetch("chr2", 10_000, 10_010)        # 'TAACCCTAAC' (0-based, half-open)
        genome.fetch("chr2", -3, 2)                 # 'NNNNN': N beyond either end
        genome.fetch("chr2", 10_000, 10_010, "-")   # reverse complement

Coordinates are 0-based and half-open, like BED, on the forward strand for either strand.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from dnabird.errors import InputError
from dnabird.genome.chromosomes import canonical_name
from dnabird.genome.fasta import normalise, reverse_complement
from dnabird.genome.index import FastaSource, indexed_source

STRANDS = ("+", "-", ".")


class IndexedFasta:
    """One open pyfaidx reader of a :class:`~dnabird.genome.index.FastaSource`, reused for
    every read (opening re-reads the ``.fai``: open once per process, not per record).

    Reads return the bytes as in the file (case and IUPAC codes kept), within bounds.
    """

    def __init__(self, source: FastaSource) -> None:
        import pyfaidx

        self.source = source
        with warnings.catch_warnings():  # an index older than its FASTA is checked by us
            warnings.simplefilter("ignore", RuntimeWarning)
            self._faidx = pyfaidx.Faidx(
                source.fasta,
                indexname=source.fai,
                gzi_indexname=source.gzi,
                as_raw=True,
                rebuild=False,
                build_index=False,
            )
        self.lengths: dict[str, int] = {name: r.rlen for name, r in self._faidx.index.items()}

    def read(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of record ``name``; needs 0 <= start <= end <= its length."""
        if start == end:
            return b""
        return self._faidx.fetch(name, start + 1, end).encode("ascii")

    def record(self, name: str) -> bytes:
        """The whole record ``name``."""
        return self.read(name, 0, self.lengths[name])

    def close(self) -> None:
        self._faidx.close()

    def __enter__(self) -> IndexedFasta:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Genome:
    """A reference genome opened for random access (plain, gzip or bgzip FASTA).

    Arguments:
        fasta: the FASTA file. Its ``.fai`` (and ``.gzi``) beside it are used when current;
            otherwise the file is scanned once (validated: one-line errors naming file,
            record and line) and an index is written into ``cache_dir``, never beside it.
            A plain-gzip file is decompressed once into the cache (bgzip avoids that).
        cache_dir: folder for indexes and copies (default
            :func:`~dnabird.genome.index.default_cache_dir`).
        keep_case: keep soft-masking (lowercase repeats) in fetched sequence. By default
            :meth:`fetch` returns uppercase ``ACGTN``, what models take; either way IUPAC
            ambiguity codes come back as ``N`` (``n``).

    ``lengths`` ({name: bp}, file order) and ``chromosomes`` (names) describe the records.
    Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        fasta: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        keep_case: bool = False,
    ) -> None:
        self.path = Path(fasta)
        self.keep_case = keep_case
        self._cache_dir = cache_dir
        self._reader = IndexedFasta(indexed_source(self.path, cache_dir))
        self.lengths: dict[str, int] = dict(self._reader.lengths)

    def __getstate__(self) -> dict:
        """Pickled as its path and settings: an unpickled copy (in another process, say)
        opens its own file handles."""
        return {"fasta": self.path, "cache_dir": self._cache_dir, "keep_case": self.keep_case}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["fasta"], cache_dir=state["cache_dir"], keep_case=state["keep_case"])

    @property
    def chromosomes(self) -> list[str]:
        """Record names in file order."""
        return list(self.lengths)

    def fetch(self, chrom: str, start: int, end: int, strand: str = "+") -> str:
        """The sequence of ``chrom[start:end)`` (0-based, half-open, forward coordinates).

        Positions before 0 or at/after the chromosome's length read as ``N``, so the result
        always has ``end - start`` characters; ``strand`` ``"-"`` gives the reverse
        complement of the same interval (``"."`` reads as ``"+"``). Only the requested bytes
        are read. Raises InputError for an unknown chromosome, ``start > end`` or a bad
        strand.
        """
        length = self._length(chrom)
        start, end = int(start), int(end)
        if start > end:
            raise InputError(
                f"{self.path}: region {chrom}:{start}-{end} has start > end (0-based, half-open)"
            )
        if strand not in STRANDS:
            raise InputError(f"{self.path}: strand must be '+', '-' or '.', got {strand!r}")
        inner_start, inner_end = max(start, 0), min(end, length)
        inside = (
            self._reader.read(chrom, inner_start, inner_end) if inner_start < inner_end else b""
        )
        left = min(inner_start, end) - start
        sequence = b"N" * left + normalise(inside, self.keep_case)
        sequence += b"N" * (end - start - len(sequence))
        if strand == "-":
            sequence = reverse_complement(sequence)
        return sequence.decode("ascii")

    def _length(self, chrom: str) -> int:
        try:
            return self.lengths[chrom]
        except KeyError:
            pass
        names = list(self.lengths)
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} records)" if len(names) > 5 else "")
        alias = canonical_name(chrom)
        same = [n for n in names if alias is not None and canonical_name(n) == alias]
        hint = f"; did you mean {same[0]!r}?" if same else "; check the name and its style"
        raise InputError(f"{self.path}: no chromosome {chrom!r} (has {shown}){hint}")

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, records={len(self.lengths)})"
