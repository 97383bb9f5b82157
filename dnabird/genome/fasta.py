"""Reading and validating FASTA: plain, gzip or bgzip, any line width, many records.

Two readers share one validation (:class:`_Scanner`) and so give the same one-line errors:

- :func:`scan_fasta` streams a whole file once and describes it (record names, lengths,
  ambiguity-code counts, line layout, bgzip blocks) without keeping any sequence: the first
  step of ``preprocess`` and of indexing (:mod:`dnabird.genome.index`).
- :func:`iter_fasta` / :func:`read_fasta` return the sequences of small inputs (query
  sequences, held-out regions): one record in memory at a time, or all of them as a dict.

Accepted sequence characters: ``ACGTN`` in either case and the IUPAC ambiguity codes
``RYKMSWBDHV`` (either case), which become N (counted). Anything else, an empty file, a
record without sequence, duplicate record names, a truncated or corrupt gzip stream and
bytes that are not FASTA raise :class:`~dnabird.errors.InputError` naming the file, the
record and the line. :func:`normalise` maps raw bytes to the output alphabet and
:func:`reverse_complement` turns ``ACGTNacgtn`` around.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabird.errors import InputError
from dnabird.files import atomic_path, require_file

_CHUNK_BYTES = 8 << 20
_BASES = b"ACGTNacgtn"
_IUPAC = b"RYKMSWBDHVrykmswbdhv"
_ALL_BYTES = bytes(range(256))
_ALLOWED = _BASES + _IUPAC + b"\r\n"
_NOT_ALLOWED = bytes(sorted(set(_ALL_BYTES) - set(_ALLOWED)))
_NOT_IUPAC = bytes(sorted(set(_ALL_BYTES) - set(_IUPAC)))
_BAD_CHAR = re.compile(b"[" + re.escape(_NOT_ALLOWED) + b"]")
_COMPLEMENT = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")

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
        """The ``.gzi`` index of a bgzip file exactly as htslib writes it when it indexes an
        existing file (``samtools faidx``, ``bgzip -r``): a little-endian uint64 count, then
        (compressed, decompressed) uint64 offset pairs of every block but the first, the
        empty end-of-file block included. (pyfaidx and ``bgzip -i`` leave that last entry
        out; :func:`dnabird.genome.index.prepare_source` accepts both forms.)"""
        return gzi_bytes(self.bgzf_blocks)


def gzi_bytes(blocks: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> bytes:
    """Serialise (compressed, decompressed) block offsets in htslib's ``.gzi`` format."""
    pairs = [value for block in blocks for value in block]
    return struct.pack(f"<Q{len(pairs)}Q", len(blocks), *pairs)


def detect_compression(path: Path) -> str:
    """``bgzip`` (gzip with a BGZF ``BC`` extra field), ``gzip``, or ``plain``."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def decompressed_chunks(
    path: Path, compression: str, blocks: list[tuple[int, int]] | None = None
) -> Iterator[bytes]:
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


def _line_blocks(
    path: Path, compression: str, blocks: list[tuple[int, int]] | None = None
) -> Iterator[bytes]:
    """The decompressed file as blocks of whole lines (a missing final newline is added).

    Fails fast (InputError) when the first non-blank byte is not ``>`` (binary files, other
    formats). A line longer than a chunk is joined once, not re-copied per chunk.
    """
    pending: list[bytes] = []  # the start of a line that continues in the next chunk
    checked = False
    for chunk in decompressed_chunks(path, compression, blocks):
        if not checked and chunk.strip():
            _require_header_first(path, b"".join(pending) + chunk)
            checked = True
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            pending.append(chunk)
            continue
        yield b"".join([*pending, chunk[:cut]]) if pending else chunk[:cut]
        pending = [chunk[cut:]] if cut < len(chunk) else []
    if pending:
        yield b"".join(pending) + b"\n"


def _require_header_first(path: Path, head: bytes) -> None:
    """Fail fast on a file whose first non-blank byte is not '>' (binary or other formats)."""
    first = head.lstrip()[:1]
    if first and first != b">":
        raise InputError(
            f"{path}: not a FASTA file (first character {first!r}, expected '>' header)"
        )


class _Scanner:
    """Incremental FASTA validation over complete lines; see :func:`scan_fasta`.

    With ``collect`` the sequence of each record is kept until the record ends and then
    offered in :attr:`ready` as (name, raw bytes without line ends).
    """

    def __init__(self, path: Path, collect: bool = False) -> None:
        self.path = path
        self.collect = collect
        self.ready: list[tuple[str, bytes]] = []
        self.parts: list[bytes] = []
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
        if self.collect:
            self.parts.append(text)
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
        if self.collect:
            self.ready.append((self.name, b"".join(self.parts).translate(None, b"\r\n")))
            self.parts = []

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
    for block in _line_blocks(path, compression, blocks if compression == "bgzip" else None):
        scanner.feed(block)
    return FastaScan(path, compression, scanner.finish(), scanner.regular, tuple(blocks))


def iter_raw_records(path: str | os.PathLike) -> Iterator[tuple[str, bytes]]:
    """(name, sequence bytes as in the file, line ends removed) of each record, validated
    like :func:`scan_fasta` and streamed: memory holds one record (plus one read chunk).
    An error in a later record is raised after the earlier records were yielded."""
    path = require_file(path, "FASTA file")
    scanner = _Scanner(path, collect=True)
    for block in _line_blocks(path, detect_compression(path)):
        scanner.feed(block)
        yield from scanner.ready
        scanner.ready.clear()
    scanner.finish()
    yield from scanner.ready


def iter_fasta(path: str | os.PathLike, keep_case: bool = False) -> Iterator[tuple[str, str]]:
    """(name, sequence) of each record of a FASTA file (plain, gzip or bgzip), one at a time.

    Sequences are uppercase ``ACGTN`` with every IUPAC ambiguity code written as ``N``
    (:func:`normalise`); ``keep_case`` keeps soft-masking (lowercase ``acgtn``). Validation
    and messages are those of ``preprocess`` (file, record, line, character). Memory is
    bounded by the largest record; for genome-scale random access use
    :class:`dnabird.genome.regions.Genome`.
    """
    for name, raw in iter_raw_records(path):
        yield name, normalise(raw, keep_case).decode("ascii")


def read_fasta(path: str | os.PathLike, keep_case: bool = False) -> dict[str, str]:
    """All records of a small FASTA file as ``{name: sequence}`` in file order, validated
    and normalised like :func:`iter_fasta` (uppercase ``ACGTN`` unless ``keep_case``).
    Nothing is returned unless the whole file is valid."""
    return dict(iter_fasta(path, keep_case))


def normalise(sequence: bytes, keep_case: bool = False) -> bytes:
    """Map raw sequence bytes to the output alphabet: uppercase ``ACGTN`` (ambiguity codes
    -> ``N``), or with ``keep_case`` soft-masking kept (codes -> ``N``/``n``)."""
    return sequence.translate(KEEP_CASE_TABLE if keep_case else UPPER_TABLE)


def reverse_complement(sequence: bytes) -> bytes:
    """Reverse complement of ``ACGTN`` bytes in either case (case kept)."""
    return sequence.translate(_COMPLEMENT)[::-1]


def reverse_complements(sequences: Iterable[str]) -> list[str]:
    """The reverse complement of each ACGTN text sequence (case kept)."""
    return [reverse_complement(s.encode("ascii")).decode("ascii") for s in sequences]


def write_fasta(
    path: str | os.PathLike, records: Iterable[tuple[str, str]], line_bp: int = 60
) -> None:
    """Write ``(name, sequence)`` records as a plain FASTA file, ``line_bp`` bases per line,
    atomically (:func:`dnabird.files.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii") as handle:
        for name, sequence in records:
            handle.write(f">{name}\n")
            handle.writelines(
                sequence[i : i + line_bp] + "\n" for i in range(0, len(sequence), line_bp)
            )
