"""Progress bars for long steps.

A thin wrapper around tqdm so every long step looks the same and obeys one switch: bars
are drawn on stderr only when it is a terminal and ``--no-progress`` (or
:func:`set_enabled`) has not turned them off.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

_enabled: bool | None = None  # None: decide from whether stderr is a terminal


def set_enabled(enabled: bool | None) -> None:
    """Force progress bars on (True) or off (False), or back to auto-detection (None)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    """Whether progress bars are drawn now."""
    return sys.stderr.isatty() if _enabled is None else _enabled


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """Return a tqdm bar (same arguments as tqdm), disabled when bars are off."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not enabled(), **kwargs)
