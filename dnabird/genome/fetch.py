"""``fetch-genome``: download a reference assembly with resume, then verify its checksum.

Sources come from the assembly manifest (``data_manifests/<assembly>.json``); a URL given
by the user (``https://``, ``http://``, ``ftp://``, ``file://`` or a plain local path)
replaces the manifest's. Bytes go to ``<name>.part`` and a rerun continues from its size
(an HTTP Range request, or a seek for local files). The finished file is checked against
``--sha256``/``--md5``, else the manifest's checksum, else the provider's checksum file
(``checksum_url``, md5sum format), and renamed into place only when it matches; a mismatch
deletes the partial file and raises DownloadError. Nothing else in dnabird downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dnabird.errors import ConfigError, DownloadError, InputError
from dnabird.files import write_text_atomic
from dnabird.genome.assemblies import load_assembly
from dnabird.progress import progress

_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60


def _local_path(url: str) -> Path | None:
    """The file a ``file://`` URL or plain path names, or None for a network URL."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # plain path (or a Windows drive)
        return Path(url)
    return None


def _open_from(url: str, offset: int):
    """Open ``url`` at byte ``offset``; return (stream, resumed, total bytes or None)."""
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{url}: source file not found")
        total = local.stat().st_size
        handle = open(local, "rb")  # noqa: SIM115 - the caller closes it
        resumed = 0 < offset <= total
        handle.seek(offset if resumed else 0)
        return handle, resumed, total
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416:  # range past the end: the .part is already complete or wrong
            return _open_from(url, 0)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({err})") from None
    resumed = offset > 0 and getattr(response, "status", 200) == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (offset if resumed else 0) if length else None
    return response, resumed, total


def download(url: str, target: Path) -> None:
    """Fetch ``url`` into ``target``, continuing a partial ``target`` when the source allows."""
    offset = target.stat().st_size if target.exists() else 0
    stream, resumed, total = _open_from(url, offset)
    mode = "ab" if resumed else "wb"
    try:
        with (
            stream,
            open(target, mode) as out,
            progress(
                total=total,
                initial=offset if resumed else 0,
                unit="B",
                unit_scale=True,
                desc=f"fetch {target.name.removesuffix('.part')}",
            ) as bar,
        ):
            while chunk := stream.read(_CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: download interrupted ({err}); rerun to resume") from None


def file_checksums(path: Path) -> dict[str, str]:
    """``{"md5", "sha256"}`` (hex) of ``path`` in one read."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _checksum_from_list(checksum_url: str, filename: str) -> str:
    """The md5 of ``filename`` in an md5sum-format list at ``checksum_url``."""
    stream, _, _ = _open_from(checksum_url, 0)
    with stream:
        text = stream.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower()
    raise DownloadError(f"{checksum_url}: no checksum listed for {filename}")


def expected_checksum(
    source: dict[str, Any], url_overridden: bool, filename: str, sha256: str | None, md5: str | None
) -> tuple[str, str] | None:
    """(algorithm, hex) to verify against: user's, manifest's, provider list's, or None."""
    if sha256:
        return "sha256", sha256.lower()
    if md5:
        return "md5", md5.lower()
    if url_overridden:
        return None
    for algorithm in ("sha256", "md5"):
        if source.get(algorithm):
            return algorithm, source[algorithm].lower()
    if source.get("checksum_url") and source.get("checksum_format") == "md5sum":
        return "md5", _checksum_from_list(source["checksum_url"], filename)
    return None


def _fetched_record(path: Path) -> dict[str, Any]:
    """The record a finished download left beside its file, or {} (absent or unreadable)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def fetch_genome(
    assembly: str,
    out: str | os.PathLike,
    source: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    verify: bool = True,
) -> Path:
    """Download ``assembly`` (e.g. ``grch37``) into folder ``out``; return the file path.

    ``source`` picks a manifest source (``ucsc``, ``ensembl``); ``url`` replaces its URL
    (a local path or ``file://`` URL works offline). Without a known checksum the download
    is refused unless ``verify=False``. A file already fetched and verified is kept.
    """
    for option, value, digits in (("--sha256", sha256, 64), ("--md5", md5, 32)):
        if value is not None and not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
            raise ConfigError(f"{option}: expected {digits} hexadecimal digits, got {value!r}")
    manifest = load_assembly(assembly)
    name = source or manifest["default_source"]
    if name not in manifest["sources"]:
        raise ConfigError(
            f"{assembly}: unknown source {name!r} (choose from {', '.join(manifest['sources'])})"
        )
    entry = manifest["sources"][name]
    link = url or entry["url"]
    filename = _local_path(link).name if _local_path(link) else Path(urlparse(link).path).name
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{out}: cannot create the download folder ({err.strerror or err}); "
            "choose another --out"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write the download folder (no write permission)")
    target, part, record_path = out / filename, out / f"{filename}.part", out / f"{filename}.json"
    if target.is_file() and _fetched_record(record_path).get("bytes") == target.stat().st_size:
        return target
    expected = expected_checksum(entry, url is not None, filename, sha256, md5) if verify else None
    if verify and expected is None:
        raise DownloadError(
            f"{link}: no checksum known for this file; pass --sha256 or --md5, or --no-verify"
        )
    download(link, part)
    sums = file_checksums(part)
    if expected is not None and sums[expected[0]] != expected[1]:
        part.unlink()
        raise DownloadError(
            f"{link}: {expected[0]} mismatch (got {sums[expected[0]]}, expected {expected[1]}); "
            "the partial file was deleted, rerun to download again"
        )
    os.replace(part, target)
    record = {
        "assembly": manifest["name"],
        "source": name,
        "url": link,
        "bytes": target.stat().st_size,
        **sums,
        "verified_with": expected[0] if expected else None,
    }
    write_text_atomic(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return target
