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
