"""Genomic intervals from BED files: BED3 to BED6+, narrowPeak; plain or gzip.

Coordinates are 0-based and half-open, as BED stores them: ``chr1 100 200`` is the 100 bp
from position 100 up to, not including, 200 (``Genome.fetch(chrom, start, end)`` takes them
as they are). Columns: ``chrom start end [name [score [strand [extra ...]]]]``, separated by
tabs (or by runs of spaces when a line has no tab); ``bed_columns`` (3 to 6, default 6)
says how many leading columns follow BED, the others are kept raw in ``extra`` (a file
whose sixth column is not a strand is read with ``bed_columns=4`` or 5). Blank lines and
``track``, ``browser`` and ``#`` lines are skipped. ``narrowPeak`` files (ENCODE; name
ending ``.narrowPeak`` or ``narrow_peak=True``) must have exactly 10 columns: BED6 plus
signalValue, pValue, qValue (numbers) and the summit offset from start (``-1`` when
unknown), kept in ``extra``.

A malformed line raises :class:`~dnabird.errors.InputError` as one line ``FILE:LINE: what;
what to do``. A VCF reader belongs beside this one.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dnabird.errors import InputError
from dnabird.files import open_text_input, require_file, text_lines

STRANDS = ("+", "-", ".")
_NARROW_PEAK_FIELDS = 10


@dataclass(frozen=True)
class Interval:
    """One BED record: ``chrom[start:end)`` (0-based, half-open), optional ``name`` and
    ``score`` (None when absent or ``.``), ``strand`` (``+``, ``-`` or ``.`` when absent),
    the raw ``extra`` columns after the sixth, and the 1-based ``line`` it came from."""

    chrom: str
    start: int
    end: int
    name: str | None = None
    score: float | None = None
    strand: str = "."
    extra: tuple[str, ...] = ()
    line: int = 0

    @property
    def length(self) -> int:
        """``end - start`` in bp."""
        return self.end - self.start

    @property
    def label(self) -> str:
        """``chrom:start-end`` (0-based, half-open)."""
        return f"{self.chrom}:{self.start}-{self.end}"


def iter_bed(
    path: str | os.PathLike, *, bed_columns: int = 6, narrow_peak: bool | None = None
) -> Iterator[Interval]:
    """The intervals of a BED file in file order, streamed (see the module docstring).

    ``bed_columns``: how many leading columns (3..6) are parsed and checked as BED.
    ``narrow_peak``: require and check the 10 narrowPeak columns; default: when the file
    name contains ``.narrowPeak`` (any case).
    """
    if not 3 <= bed_columns <= 6:
        raise ValueError(f"bed_columns must be 3..6, got {bed_columns}")
    path = require_file(path, "BED file")
    if narrow_peak is None:
        narrow_peak = ".narrowpeak" in path.name.lower()
    for number, line in text_lines(path, "BED"):
        if not line.strip() or line.startswith("#"):
            continue
        if line.split(None, 1)[0] in ("track", "browser"):
            continue
        yield _parse(line, f"{path}:{number}", bed_columns, narrow_peak, number)


def read_bed(
    path: str | os.PathLike,
    *,
    bed_columns: int = 6,
    narrow_peak: bool | None = None,
    allow_empty: bool = False,
) -> list[Interval]:
    """All intervals of a BED file (see :func:`iter_bed`). A file without any interval is
    an InputError unless ``allow_empty``."""
    intervals = list(iter_bed(path, bed_columns=bed_columns, narrow_peak=narrow_peak))
    if not intervals and not allow_empty:
        raise InputError(f"{path}: no intervals (only blank, comment or track lines)")
    return intervals


def _parse(line: str, where: str, bed_columns: int, narrow_peak: bool, number: int) -> Interval:
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) < 3:
        raise InputError(
            f"{where}: expected at least 3 columns (chrom, start, end), found {len(fields)}; "
            "BED columns are tab-separated"
        )
    if narrow_peak and len(fields) != _NARROW_PEAK_FIELDS:
        raise InputError(
            f"{where}: a narrowPeak line has {_NARROW_PEAK_FIELDS} columns, found {len(fields)}"
        )
    chrom = fields[0]
    if not chrom or chrom != chrom.strip():
        raise InputError(f"{where}: empty chromosome name in column 1")
    start, end = _coordinate(fields[1], "start", where), _coordinate(fields[2], "end", where)
    if end < start:
        raise InputError(
            f"{where}: end {end} is before start {start} (0-based, half-open: end >= start)"
        )
    used = min(len(fields), 6 if narrow_peak else bed_columns)
    name = fields[3] if used > 3 else None
    score = _number(fields[4], "score", where) if used > 4 else None
    strand = fields[5] if used > 5 else "."
    if strand not in STRANDS:
        raise InputError(
            f"{where}: strand {strand!r} in column 6 must be '+', '-' or '.' "
            "(read the file with fewer BED columns if column 6 is something else)"
        )
    extra = tuple(fields[used:])
    if narrow_peak:
        for column, text in zip(("signalValue", "pValue", "qValue"), extra[:3], strict=True):
            _number(text, column, where)
        summit = extra[3]
        if summit != "-1" and not (summit.isascii() and summit.isdigit()):
            raise InputError(f"{where}: summit offset {summit!r} is not an integer >= -1")
        if summit != "-1" and int(summit) > end - start:  # ENCODE files use end - start too
            raise InputError(f"{where}: summit offset {summit} lies outside {start}-{end}")
    return Interval(chrom, start, end, name, score, strand, extra, number)


def _coordinate(text: str, what: str, where: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise InputError(f"{where}: {what} {text} is negative (BED positions start at 0)")
    raise InputError(f"{where}: {what} {text!r} is not an integer (0-based position)")


def _number(text: str, what: str, where: str) -> float | None:
    if text == ".":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{where}: {what} {text!r} is not a number")
    return value


#: Header names accepted for the chromosome column of :func:`iter_interval_csv`.
CSV_CHROM_COLUMNS = ("chrom", "chromosome", "chr", "seqname", "region")


def iter_interval_csv(path: str | os.PathLike) -> Iterator[Interval]:
    """The intervals of a comma-separated file with a header row, in file order, streamed.

    Columns (header names case-insensitive, any order, others ignored): the chromosome
    (one of :data:`CSV_CHROM_COLUMNS`; genomic-benchmarks calls it ``region``), ``start``
    and ``end`` (0-based, half-open, like BED), optionally ``name`` (or ``id``) and
    ``strand`` (``+``, ``-``, ``.``; empty reads as ``.``). Plain or gzip; blank lines are
    skipped. ``Interval.line`` is the 1-based line in the file (the header is line 1). A
    malformed row raises InputError as one line ``FILE:LINE: what``.
    """
    import csv
    import io

    path = require_file(path, "interval CSV file")
    with open_text_input(path) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file; expected a header row (chrom,start,end)")
            columns = _csv_columns(header, path)
            for row in reader:
                if not any(field.strip() for field in row):
                    continue
                yield _csv_interval(row, columns, f"{path}:{reader.line_num}", reader.line_num)
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; is this a CSV file?") from None
        except csv.Error as err:
            raise InputError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{path}: unreadable gzip data ({err}); get the file again") from None


def _csv_columns(header: list[str], path: Path) -> dict[str, int]:
    """{``chrom``, ``start``, ``end`` [, ``name``, ``strand``]: column index} of a header."""
    names = [name.strip().lower() for name in header]
    wanted = {"chrom": CSV_CHROM_COLUMNS, "start": ("start",), "end": ("end",)}
    wanted |= {"name": ("name", "id"), "strand": ("strand",)}
    columns = {}
    for key, aliases in wanted.items():
        found = [i for i, name in enumerate(names) if name in aliases]
        if found:
            columns[key] = found[0]
        elif key in ("chrom", "start", "end"):
            raise InputError(
                f"{path}:1: no {key!r} column in the header ({','.join(header)}); an interval "
                f"CSV names {'/'.join(aliases)}, start and end (0-based, half-open)"
            )
    return columns


def _csv_interval(row: list[str], columns: dict[str, int], where: str, number: int) -> Interval:
    needed = max(columns.values()) + 1
    if len(row) < needed:
        raise InputError(f"{where}: {len(row)} field(s), the header asks for at least {needed}")
    chrom = row[columns["chrom"]].strip()
    if not chrom:
        raise InputError(f"{where}: empty chromosome name")
    start = _coordinate(row[columns["start"]].strip(), "start", where)
    end = _coordinate(row[columns["end"]].strip(), "end", where)
    if end < start:
        raise InputError(
            f"{where}: end {end} is before start {start} (0-based, half-open: end >= start)"
        )
    name = (row[columns["name"]].strip() or None) if "name" in columns else None
    strand = (row[columns["strand"]].strip() or ".") if "strand" in columns else "."
    if strand not in STRANDS:
        raise InputError(f"{where}: strand {strand!r} must be '+', '-', '.' or empty")
    return Interval(chrom, start, end, name, None, strand, (), number)
