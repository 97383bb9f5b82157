"""Reading and validating FASTA: plain, gzip or bgzip, any line width, many records.

The data's path: ``scan_fasta`` streams the whole file once (validation, record names and
lengths, ambiguity-code counts) before anything is written; ``prepare_source`` then makes
sure pyfaidx can read it at random (an index beside the FASTA, in a cache folder when that
folder is read-only, a decompressed copy of plain gzip, a normalised copy when lines are
ragged); workers call ``read_record`` to load one chromosome and
``normalise`` to map it to the output alphabet.

Accepted sequence characters: ``ACGTN`` in either case and the IUPAC ambiguity codes
``RYKMSWBDHV`` (either case), which become N (counted). Anything else, an empty file, a
record without sequence, duplicate record names, a truncated or corrupt gzip stream and
bytes that are not FASTA raise :class:`~dnabird.errors.InputError` naming the file, the
record and the line.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabird.errors import InputError
from dnabird.files import atomic_path, require_file, write_bytes_atomic, write_text_atomic

_CHUNK_BYTES = 8 << 20
_BASES = b"ACGTNacgtn"
_IUPAC = b"RYKMSWBDHVrykmswbdhv"
_ALL_BYTES = bytes(range(256))
_ALLOWED = _BASES + _IUPAC + b"\r\n"
_NOT_ALLOWED = bytes(sorted(set(_ALL_BYTES) - set(_ALLOWED)))
_NOT_IUPAC = bytes(sorted(set(_ALL_BYTES) - set(_IUPAC)))
_BAD_CHAR = re.compile(b"[" + re.escape(_NOT_ALLOWED) + b"]")

#: Map to uppercase ``ACGTN``: lowercase bases upper, every ambiguity code to ``N``.
UPPER_TABLE = bytes.maketrans(_BASES + _IUPAC, b"ACGTNACGTN" + b"N" * len(_IUPAC))
#: Keep soft-masking: ambiguity codes become ``N`` or ``n`` by their case.
KEEP_CASE_TABLE = bytes.maketrans(_IUPAC, b"N" * 10 + b"n" * 10)


@dataclass(frozen=True)
class RecordInfo:
    """One FASTA record: ``name`` (first word of the header), ``length`` in bp, the number
    of IUPAC ambiguity codes it holds (written as N), and its ``.fai`` layout: byte
    ``offset`` of its first base in the decompressed file, bases per line and bytes per line
    (meaningful when the file's lines are regular)."""

    name: str
    length: int
    ambiguous: int
    offset: int = 0
    line_bases: int = 0
    line_bytes: int = 0

    def fai_line(self) -> str:
        """This record's row of a samtools ``.fai`` index."""
        return f"{self.name}\t{self.length}\t{self.offset}\t{self.line_bases}\t{self.line_bytes}\n"


@dataclass(frozen=True)
class FastaScan:
    """What one streaming pass found: compression (``plain``/``gzip``/``bgzip``), the
    records in file order, whether every record has one line width (indexable), and for
    bgzip the (compressed, decompressed) byte offsets of every block after the first."""

    path: Path
    compression: str
    records: tuple[RecordInfo, ...]
    regular_lines: bool
    bgzf_blocks: tuple[tuple[int, int], ...] = ()

    @property
    def lengths(self) -> dict[str, int]:
        return {r.name: r.length for r in self.records}

    def fai_text(self) -> str:
        """The samtools ``.fai`` index of the (decompressed) file; needs regular lines."""
        return "".join(r.fai_line() for r in self.records)

    def gzi_bytes(self) -> bytes:
        """The htslib ``.gzi`` index of a bgzip file (little-endian uint64 count + pairs)."""
        pairs = [value for block in self.bgzf_blocks for value in block]
        return struct.pack(f"<Q{len(pairs)}Q", len(self.bgzf_blocks), *pairs)


@dataclass(frozen=True)
class FastaSource:
    """A FASTA pyfaidx can read at random, with its index paths (picklable, for workers)."""

    fasta: str
    fai: str
    gzi: str | None = None


def detect_compression(path: Path) -> str:
    """``bgzip`` (gzip with a BGZF ``BC`` extra field), ``gzip``, or ``plain``."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def _read_chunks(path: Path, compression: str, blocks: list[tuple[int, int]] | None = None):
    """Yield the decompressed bytes of ``path`` in chunks.

    gzip members (one, or the many blocks of bgzip) are decompressed with zlib directly;
    ``blocks``, if given, receives (compressed, decompressed) offsets of each member after
    the first. A truncated or corrupt stream raises InputError.
    """
    with open(path, "rb") as handle:
        if compression == "plain":
            while chunk := handle.read(_CHUNK_BYTES):
                yield chunk
            return
        member = zlib.decompressobj(wbits=31)
        fed = produced = 0  # compressed bytes read, decompressed bytes produced
        data = b""
        while True:
            if not data:
                data = handle.read(_CHUNK_BYTES)
                fed += len(data)
                if not data:
                    break
            try:  # bounded output: a long N run compresses ~1000:1
                out = member.decompress(data, _CHUNK_BYTES)
            except zlib.error as err:
                raise InputError(f"{path}: corrupt gzip data ({err})") from None
            data = member.unconsumed_tail
            produced += len(out)
            if out:
                yield out
            if member.eof:
                data = member.unused_data
                if data or handle.peek(1):
                    if blocks is not None:
                        blocks.append((fed - len(data), produced))
                    member = zlib.decompressobj(wbits=31)
        if not member.eof:
            raise InputError(f"{path}: truncated gzip stream (file ends early); download it again")


class _Scanner:
    """Incremental FASTA validation over complete lines; see :func:`scan_fasta`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[RecordInfo] = []
        self.names: set[str] = set()
        self.line = 0  # number of lines already consumed
        self.consumed = 0  # bytes already consumed
        self.name: str | None = None
        self.header_line = self.offset = 0
        self.length = self.ambiguous = 0
        self.width: int | None = None  # bytes before the newline on the record's first line
        self.carriage = False  # first line ends in \r\n
        self.short_line_seen = False  # a line shorter than width was seen
        self.regular = True

    def feed(self, block: bytes) -> None:
        """Consume ``block``: whole lines, each ending in a newline."""
        pos = 0
        while pos < len(block):
            if block[pos] == 0x3E:  # '>'
                end = block.index(b"\n", pos)
                self._header(block[pos + 1 : end], self.line + 1, self.consumed + end + 1)
                self.line += 1
                pos = end + 1
                continue
            nxt = block.find(b"\n>", pos)
            stop = len(block) if nxt < 0 else nxt + 1
            self._sequence(block[pos:stop])
            pos = stop
        self.consumed += len(block)

    def _header(self, raw: bytes, line: int, offset: int) -> None:
        self._close_record()
        text = raw.decode("ascii", errors="replace").strip()
        if not text or text[0].isspace() or not text.split()[0]:
            raise InputError(f"{self.path}: line {line}: FASTA header without a record name")
        name = text.split()[0]
        if name in self.names:
            raise InputError(f"{self.path}: line {line}: duplicate record name {name!r}")
        self.names.add(name)
        self.name, self.header_line, self.offset = name, line, offset
        self.length = self.ambiguous = 0
        self.width, self.carriage, self.short_line_seen = None, False, False

    def _sequence(self, text: bytes) -> None:
        if self.name is None:
            if not text.strip():
                self.line += text.count(b"\n")
                return
            raise InputError(
                f"{self.path}: line {self.line + 1}: not a FASTA file (expected '>' header, "
                f"found {text[:20]!r})"
            )
        if text.translate(None, _ALLOWED):
            bad = _BAD_CHAR.search(text)
            assert bad is not None
            line = self.line + text.count(b"\n", 0, bad.start()) + 1
            raise InputError(
                f"{self.path}: record {self.name!r}, line {line}: invalid sequence character "
                f"{bytes([text[bad.start()]])!r} (allowed: ACGTN and IUPAC codes, either case)"
            )
        newlines = text.count(b"\n")
        self.line += newlines
        self.length += len(text) - newlines - text.count(b"\r")
        self.ambiguous += len(text.translate(None, _NOT_IUPAC))
        if self.regular:
            self._check_widths(text)

    def _check_widths(self, text: bytes) -> None:
        """Track whether all lines but the last of the record share one width (blank lines
        may follow the last line). ``text`` holds whole lines."""
        newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 0x0A)
        widths = np.diff(newlines, prepend=-1) - 1  # int64 [lines]: bytes before each newline
        if not len(widths):
            return
        if self.width is None:
            self.width = int(widths[0])
            self.carriage = self.width > 0 and text[self.width - 1] == 0x0D
        if not self.short_line_seen:
            other = np.flatnonzero(widths != self.width)
            if not len(other):
                return
            if widths[other[0]] > self.width:
                self.regular = False
                return
            self.short_line_seen = True
            widths = widths[other[0] + 1 :]
        if widths.any():  # a non-blank line after a short one
            self.regular = False

    def _close_record(self) -> None:
        if self.name is None:
            return
        if self.length == 0:
            raise InputError(
                f"{self.path}: record {self.name!r} (line {self.header_line}) has no sequence"
            )
        width = self.width or 0
        bases = width - 1 if self.carriage else width
        self.records.append(
            RecordInfo(self.name, self.length, self.ambiguous, self.offset, bases, width + 1)
        )

    def finish(self) -> tuple[RecordInfo, ...]:
        self._close_record()
        if not self.records:
            raise InputError(f"{self.path}: empty FASTA file (no records)")
        return tuple(self.records)


def scan_fasta(path: str | os.PathLike) -> FastaScan:
    """Validate the whole FASTA at ``path`` in one streaming pass and describe its records."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: FASTA file not found")
    compression = detect_compression(path)
    scanner = _Scanner(path)
    blocks: list[tuple[int, int]] = []
    carry = b""
    for chunk in _read_chunks(path, compression, blocks if compression == "bgzip" else None):
        if not scanner.records and scanner.name is None and chunk.strip():
            _require_header_first(path, carry + chunk)
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            scanner.feed(data[:cut])
        carry = data[cut:]
    if carry:
        scanner.feed(carry + b"\n")
    return FastaScan(path, compression, scanner.finish(), scanner.regular, tuple(blocks))


def _require_header_first(path: Path, head: bytes) -> None:
    """Fail fast on a file whose first non-blank byte is not '>' (binary or other formats)."""
    first = head.lstrip()[:1]
    if first and first != b">":
        raise InputError(
            f"{path}: not a FASTA file (first character {first!r}, expected '>' header)"
        )


def prepare_source(scan: FastaScan, cache_dir: str | os.PathLike) -> FastaSource:
    """Return a pyfaidx-readable source for the scanned FASTA, writing what is missing.

    Plain and bgzip files with regular lines are read in place; plain gzip cannot be read at
    random, so it is decompressed once into ``cache_dir``; ragged line widths are rewritten
    there as a normalised plain copy (60 bp lines). The ``.fai`` (and ``.gzi``) come from the
    scan (samtools formats, which pyfaidx reads); an existing matching index beside the
    FASTA is used as is. New indexes go beside the FASTA when its folder is writable, else
    into ``cache_dir``.
    """
    cache_dir = Path(cache_dir)
    if not scan.regular_lines:
        return _indexed_by_pyfaidx(_normalised_copy(scan, cache_dir), scan)
    fasta, gzi = scan.path, scan.compression == "bgzip"
    if scan.compression == "gzip":
        fasta = _decompressed_copy(scan, cache_dir)
    beside = FastaSource(str(fasta), f"{fasta}.fai", f"{fasta}.gzi" if gzi else None)
    if _index_matches(beside, scan):
        return beside
    if os.access(fasta.parent, os.W_OK):
        source = beside
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        stem = cache_dir / fasta.name
        source = FastaSource(str(fasta), f"{stem}.fai", f"{stem}.gzi" if gzi else None)
    if source.gzi:
        write_bytes_atomic(source.gzi, scan.gzi_bytes())
    write_text_atomic(source.fai, scan.fai_text())
    return source


def _index_matches(source: FastaSource, scan: FastaScan) -> bool:
    """Whether the ``.fai`` (and ``.gzi``) exist, are not older than the FASTA and hold
    exactly what the scan computed."""
    paths = [Path(source.fai)] + ([Path(source.gzi)] if source.gzi else [])
    if not all(p.is_file() for p in paths):
        return False
    fasta_mtime = Path(source.fasta).stat().st_mtime
    if any(p.stat().st_mtime < fasta_mtime for p in paths):
        return False
    if source.gzi and Path(source.gzi).read_bytes() != scan.gzi_bytes():
        return False
    return Path(source.fai).read_bytes() == scan.fai_text().encode()


def _decompressed_copy(scan: FastaScan, cache_dir: Path) -> Path:
    """Decompress a plain-gzip FASTA byte for byte into ``cache_dir`` (reused if current)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / scan.path.name.removesuffix(".gz")
    if target.is_file() and target.stat().st_mtime >= scan.path.stat().st_mtime:
        return target
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for chunk in _read_chunks(scan.path, scan.compression):
            out.write(chunk)
    return target


def _normalised_copy(scan: FastaScan, cache_dir: Path) -> Path:
    """Write a ragged FASTA as plain text with 60 bp lines into ``cache_dir``."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    cache_dir.mkdir(parents=True, exist_ok=True)
    name = scan.path.name.removesuffix(".gz").removesuffix(".bgz")
    target = cache_dir / f"{name}.normalised.fa"
    if target.is_file() and target.stat().st_mtime >= scan.path.stat().st_mtime:
        return target
    opener = open if scan.compression == "plain" else gzip.open
    with (
        opener(scan.path, "rt", encoding="ascii") as text,  # streamed: one record in memory
        atomic_path(target) as tmp,
        open(tmp, "w") as out,
    ):
        for title, seq in SimpleFastaParser(text):
            out.write(f">{title}\n")
            for i in range(0, len(seq), 60):
                out.write(seq[i : i + 60])
                out.write("\n")
    return target


def _indexed_by_pyfaidx(fasta: Path, scan: FastaScan) -> FastaSource:
    """Index a normalised copy with pyfaidx itself and check it against the scan."""
    import pyfaidx

    source = FastaSource(str(fasta), f"{fasta}.fai")
    if not _lengths_match(source, scan):
        Path(source.fai).unlink(missing_ok=True)
        pyfaidx.Fasta(source.fasta, indexname=source.fai).close()
    if not _lengths_match(source, scan):
        raise InputError(f"{scan.path}: the FASTA index built by pyfaidx disagrees with the file")
    return source


def _lengths_match(source: FastaSource, scan: FastaScan) -> bool:
    fai = Path(source.fai)
    if not fai.is_file():
        return False
    rows = [line.split("\t") for line in fai.read_text().splitlines() if line]
    return [(row[0], int(row[1])) for row in rows] == [(r.name, r.length) for r in scan.records]


def read_record(source: FastaSource, name: str) -> bytes:
    """The whole sequence of record ``name`` as raw bytes (case and codes as in the file)."""
    import pyfaidx

    with pyfaidx.Fasta(
        source.fasta, indexname=source.fai, gzi_indexname=source.gzi, as_raw=True, rebuild=False
    ) as fasta:
        return fasta[name][:].encode("ascii")


def normalise(sequence: bytes, keep_case: bool = False) -> bytes:
    """Map raw sequence bytes to the output alphabet: uppercase ``ACGTN`` (ambiguity codes
    -> ``N``), or with ``keep_case`` soft-masking kept (codes -> ``N``/``n``)."""
    return sequence.translate(KEEP_CASE_TABLE if keep_case else UPPER_TABLE)


def read_fasta(path: str | os.PathLike) -> dict[str, str]:
    """All records of a FASTA file (plain, gzip or bgzip) as {name: sequence}, read whole
    with biopython: for small inputs (held-out regions, query sequences). Characters are
    kept as they are; genome-scale input goes through :func:`scan_fasta` instead."""
    from Bio import SeqIO

    path = require_file(path, "FASTA file")
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt") as handle:
            records = {r.id: str(r.seq) for r in SeqIO.parse(handle, "fasta")}
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: not a readable FASTA file ({err})") from None
    if not records:
        raise InputError(f"{path}: no FASTA records")
    return records
