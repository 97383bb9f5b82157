"""Safe output files: atomic writes and checksums.

Every output of dnabird is written under a temporary name in the destination folder and
renamed into place only when complete, so an interrupted run never leaves a file that looks
finished. Checksums (sha256, hex) identify inputs and outputs in manifests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dnabird.errors import InputError

_CHUNK_BYTES = 1 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file lives in the same folder (same filesystem, so the rename is atomic)
    and is removed if the block raises. Use it for writers that want a file name
    (pyarrow, h5py, safetensors)::

        with atomic_path(out / "shard-00000.parquet") as tmp:
            pq.write_table(table, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    mode = 0o666 & ~_current_umask()  # mkstemp makes 0600; outputs get normal modes
    tmp.chmod(mode)
    try:
        yield tmp
        tmp.chmod(mode)  # again: some writers (safetensors) replace the file they are given
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (temporary file, then rename)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    return digest.hexdigest()


def open_text_input(path: str | os.PathLike) -> BinaryIO:
    """Open a line-oriented input (BED, VCF, CSV) for binary reading, decompressing it when
    it is gzip or bgzip (recognised by its magic bytes, not its name)."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def text_lines(path: Path, kind: str) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line without its end)`` of a plain, gzip or bgzip text file
    (``kind``, e.g. ``"BED"``, names the format in messages). InputError naming the line
    for bytes that are not UTF-8, naming the file for corrupt or truncated gzip data."""
    with open_text_input(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise InputError(
                        f"{path}:{number}: not text (binary data); is this a {kind} file?"
                    ) from None
                yield number, line
        except (OSError, EOFError, zlib.error) as err:  # a corrupt or truncated gzip stream
            raise InputError(f"{path}: unreadable gzip data ({err}); get the file again") from None


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """Return ``path`` as a Path, or raise InputError if it is not an existing file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a regular file")
    return path
