"""``manifest.json``: what made an output folder, so every result can be traced and redone.

A manifest records the inputs (path, size, sha256), the parameters and seed, the dnabird
version, the creation time and, per stage, its own counts and output files. Stages add
their fields under their own keys; this module only fixes the common frame and writes it
atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from dnabird import __version__
from dnabird.errors import InputError
from dnabird.files import sha256_file, write_text_atomic

MANIFEST_NAME = "manifest.json"


def describe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Return ``{"path", "bytes", "sha256"}`` for an input or output file."""
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def new_manifest(stage: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Start a manifest for ``stage`` (e.g. ``"preprocess"``) with its parameters.

    ``parameters`` must be JSON-serialisable and should include the seed. Extra keyword
    fields (inputs, counts, outputs) are stored as given.
    """
    return {
        "stage": stage,
        "dnabird_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "parameters": parameters,
        **fields,
    }


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as ``folder/manifest.json`` (atomically, sorted keys, indented)."""
    path = Path(folder) / MANIFEST_NAME
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: str | os.PathLike, stage: str | None = None) -> dict[str, Any]:
    """Read ``folder/manifest.json``; if ``stage`` is given, check the manifest is for it."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise InputError(f"{path}: no manifest.json; is {folder} an output folder of dnabird?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if stage is not None and manifest.get("stage") != stage:
        raise InputError(
            f"{path}: manifest is for stage {manifest.get('stage')!r}, expected {stage!r}"
        )
    return manifest


def verified_shards(
    folder: str | os.PathLike, manifest: dict[str, Any], verify: bool = True
) -> tuple[list[Path], list[int]]:
    """Check the Parquet shards a manifest lists; return (paths, rows per shard).

    Each entry of ``manifest["shards"]`` holds ``file``, ``rows``, ``bytes`` and ``sha256``.
    Every shard must exist with the recorded size and row count; with ``verify`` its sha256
    is checked too (reads every byte: use ``verify=False`` in data-loader workers).
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    try:
        entries = manifest["shards"]
        rows = [int(entry["rows"]) for entry in entries]
        paths = [folder / entry["file"] for entry in entries]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{folder}/{MANIFEST_NAME}: missing or malformed 'shards' list") from None
    for entry, path, count in zip(entries, paths, rows, strict=True):
        if not path.is_file():
            raise InputError(f"{path}: shard listed in the manifest is missing")
        if path.stat().st_size != entry["bytes"]:
            raise InputError(f"{path}: size differs from the manifest (truncated or replaced)")
        if verify and sha256_file(path) != entry["sha256"]:
            raise InputError(f"{path}: sha256 differs from the manifest (corrupt or replaced)")
        if pq.ParquetFile(path).metadata.num_rows != count:
            raise InputError(f"{path}: row count differs from the manifest")
    return paths, rows
