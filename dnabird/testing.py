"""Helpers shared by the test-suite and the benchmarks: locating the real data folder."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "DNABIRD_SHARED_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """Return the real-data folder, or None when it is absent.

    ``$DNABIRD_SHARED_DATA`` wins; otherwise ``../shared/data`` next to the repository root.
    The folder is read-only: copy a file elsewhere before anything writes beside it.
    """
    env = os.environ.get(SHARED_DATA_ENV)
    folder = Path(env) if env else _REPO_ROOT.parent / "shared" / "data"
    return folder if folder.is_dir() else None
