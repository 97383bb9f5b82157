"""Making a FASTA readable at random (by pyfaidx) without touching the user's files.

The data's path: a FASTA -> :class:`FastaSource` (the file pyfaidx reads and its ``.fai``
and ``.gzi``) -> :class:`dnabird.genome.regions.IndexedFasta`. Two ways in:

- :func:`prepare_source` after :func:`~dnabird.genome.fasta.scan_fasta` (``preprocess``):
  an index beside the FASTA is used when it holds exactly what the scan computed (a
  samtools, htslib or pyfaidx ``.gzi`` alike); otherwise ours is written into a cache folder.
- :func:`indexed_source` for a path alone (:class:`~dnabird.genome.regions.Genome`):
  a current index beside the FASTA is trusted as samtools and pyfaidx trust it; else a
  cache entry for this file (path, size, mtime) is reused; else the file is scanned
  (validated) and :func:`prepare_source` fills the cache entry.

Nothing is ever written beside the FASTA: an index the user has there keeps its bytes and
mtime, whether it matches or not. Plain gzip cannot be read at random, so it is decompressed
once into the cache; ragged line widths are rewritten there as a normalised copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from dnabird.errors import InputError
from dnabird.files import atomic_path, write_bytes_atomic, write_text_atomic
from dnabird.genome.fasta import (
    FastaScan,
    decompressed_chunks,
    detect_compression,
    gzi_bytes,
    iter_raw_records,
    scan_fasta,
)

#: The 28-byte empty block that ends every BGZF file (SAM/BAM specification, 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_SOURCE_RECORD = "source.json"
_NORMALISED_LINE_BP = 60


@dataclass(frozen=True)
class FastaSource:
    """A FASTA pyfaidx can read at random, with its index paths (picklable, for workers)."""

    fasta: str
    fai: str
    gzi: str | None = None


def default_cache_dir() -> Path:
    """Where :func:`indexed_source` keeps indexes and copies: ``$DNABIRD_CACHE_DIR/genome``,
    default ``~/.cache/dnabird/genome`` (the root the CPU kernel cache uses too)."""
    root = os.environ.get("DNABIRD_CACHE_DIR") or Path.home() / ".cache" / "dnabird"
    return Path(root) / "genome"


def prepare_source(scan: FastaScan, cache_dir: str | os.PathLike) -> FastaSource:
    """Return a pyfaidx-readable source for the scanned FASTA, writing what is missing
    into ``cache_dir`` (never beside the FASTA).

    Plain and bgzip files with regular lines are read in place; a ``.fai`` (``.gzi``) beside
    them is used when it holds exactly what the scan computed, each file on its own.
    """
    cache_dir = Path(cache_dir)
    if not scan.regular_lines:
        return _indexed_by_pyfaidx(_normalised_copy(scan, cache_dir), scan)
    fasta, bgzip = scan.path, scan.compression == "bgzip"
    if scan.compression == "gzip":
        fasta = _decompressed_copy(scan, cache_dir)
    fai = Path(f"{fasta}.fai")
    if not _holds(fai, [scan.fai_text().encode()]):
        fai = cache_dir / f"{fasta.name}.fai"
        if not _holds(fai, [scan.fai_text().encode()]):
            write_text_atomic(fai, scan.fai_text())
    gzi = None
    if bgzip:
        gzi = Path(f"{fasta}.gzi")
        if not _holds(gzi, accepted_gzi(scan)):
            gzi = cache_dir / f"{fasta.name}.gzi"
            if not _holds(gzi, [scan.gzi_bytes()]):
                write_bytes_atomic(gzi, scan.gzi_bytes())
    return FastaSource(str(fasta), str(fai), str(gzi) if gzi else None)


def accepted_gzi(scan: FastaScan) -> list[bytes]:
    """The ``.gzi`` contents that index ``scan``'s file correctly: htslib's (every block
    after the first, the end-of-file block included) and, when the file ends with the BGZF
    end-of-file block, the same without that last entry (pyfaidx, ``bgzip -i``)."""
    forms = [scan.gzi_bytes()]
    blocks = scan.bgzf_blocks
    if blocks and _ends_with_eof_block(scan.path, blocks[-1][0]):
        forms.append(gzi_bytes(blocks[:-1]))
    return forms


def _ends_with_eof_block(path: Path, offset: int) -> bool:
    """Whether the block at compressed ``offset`` is the file's final BGZF EOF block."""
    size = path.stat().st_size
    if offset != size - len(BGZF_EOF):
        return False
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read() == BGZF_EOF


def _holds(path: Path, contents: list[bytes]) -> bool:
    """Whether the file at ``path`` exists and holds exactly one of ``contents``."""
    try:
        if path.stat().st_size not in {len(c) for c in contents}:
            return False
        return path.read_bytes() in contents
    except OSError:
        return False


def indexed_source(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> FastaSource:
    """A pyfaidx-readable source for the FASTA at ``path`` (see the module docstring):
    a current index beside it, a cache entry of this very file, or a fresh scan."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: FASTA file not found")
    beside = _current_index_beside(path)
    if beside is not None:
        return beside
    entry = Path(cache_dir or default_cache_dir()) / _cache_key(path)
    stamp = _file_stamp(path)
    cached = _cached_source(entry, stamp)
    if cached is not None:
        return cached
    scan = scan_fasta(path)
    try:
        source = prepare_source(scan, entry)
    except OSError as err:
        raise InputError(
            f"{entry}: cannot write the FASTA index cache ({err.strerror or err}); "
            "set DNABIRD_CACHE_DIR to a writable folder"
        ) from None
    record = {"stamp": stamp, "source": asdict(source)}
    write_text_atomic(entry / _SOURCE_RECORD, json.dumps(record, indent=2) + "\n")
    return source


def _current_index_beside(path: Path) -> FastaSource | None:
    """The samtools convention: ``PATH.fai`` (and ``PATH.gzi`` for bgzip) exist, are not
    older than the FASTA and are well formed. Plain gzip has no usable index."""
    compression = detect_compression(path)
    if compression == "gzip":
        return None
    source = FastaSource(
        str(path), f"{path}.fai", f"{path}.gzi" if compression == "bgzip" else None
    )
    files = [Path(source.fai)] + ([Path(source.gzi)] if source.gzi else [])
    try:
        mtime = path.stat().st_mtime
        if any(f.stat().st_mtime < mtime for f in files):
            return None
    except OSError:
        return None
    if read_fai_lengths(Path(source.fai)) is None:
        return None
    if source.gzi and not _well_formed_gzi(Path(source.gzi)):
        return None
    return source


def _well_formed_gzi(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) >= 8 and len(data) == 8 + 16 * struct.unpack("<Q", data[:8])[0]


def read_fai_lengths(fai: Path) -> dict[str, int] | None:
    """``{record name: length}`` in file order from a ``.fai``, or None if it is not one."""
    lengths: dict[str, int] = {}
    try:
        for line in fai.read_text(encoding="ascii").splitlines():
            row = line.split("\t")
            if len(row) not in (5, 6) or row[0] in lengths or int(row[1]) < 0:
                return None
            lengths[row[0]] = int(row[1])
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return lengths or None


def _cache_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def _file_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cached_source(entry: Path, stamp: dict[str, int]) -> FastaSource | None:
    """The source recorded in a cache entry, if made from this very file and complete."""
    try:
        record = json.loads((entry / _SOURCE_RECORD).read_text(encoding="utf-8"))
        if record["stamp"] != stamp:
            return None
        source = FastaSource(**record["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [source.fasta, source.fai] + ([source.gzi] if source.gzi else [])
    return source if all(Path(f).is_file() for f in files) else None


def _decompressed_copy(scan: FastaScan, cache_dir: Path) -> Path:
    """Decompress a plain-gzip FASTA byte for byte into ``cache_dir`` (reused if current)."""
    target = cache_dir / scan.path.name.removesuffix(".gz")
    if target.is_file() and target.stat().st_mtime >= scan.path.stat().st_mtime:
        return target
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for chunk in decompressed_chunks(scan.path, scan.compression):
            out.write(chunk)
    return target


def _normalised_copy(scan: FastaScan, cache_dir: Path) -> Path:
    """Write a ragged FASTA as plain text with 60 bp lines into ``cache_dir`` (streamed:
    one record in memory; characters kept as they are)."""
    name = scan.path.name.removesuffix(".gz").removesuffix(".bgz")
    target = cache_dir / f"{name}.normalised.fa"
    if target.is_file() and target.stat().st_mtime >= scan.path.stat().st_mtime:
        return target
    step = _NORMALISED_LINE_BP
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for record, sequence in iter_raw_records(scan.path):
            out.write(f">{record}\n".encode())
            out.writelines(sequence[i : i + step] + b"\n" for i in range(0, len(sequence), step))
    return target


def _indexed_by_pyfaidx(fasta: Path, scan: FastaScan) -> FastaSource:
    """Index a normalised copy with pyfaidx itself and check it against the scan."""
    import pyfaidx

    source = FastaSource(str(fasta), f"{fasta}.fai")
    expected = {r.name: r.length for r in scan.records}
    if read_fai_lengths(Path(source.fai)) != expected:
        Path(source.fai).unlink(missing_ok=True)
        pyfaidx.Fasta(source.fasta, indexname=source.fai).close()
    if read_fai_lengths(Path(source.fai)) != expected:
        raise InputError(f"{scan.path}: the FASTA index built by pyfaidx disagrees with the file")
    return source
