"""argparse ``type=`` functions shared by the subcommands: a bad value is a one-line usage
error (exit 2) naming the option, at parse time, before any work.

This module's name starts with ``_``, so :mod:`dnabird.cli` does not take it for a
subcommand module.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable


def at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """A whole number ``>= minimum``; ``why`` is appended to the error (e.g. the reason for
    the minimum)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{why}, got {value}")
        return value

    return parse


def between(low: float, high: float, *, closed: bool = False) -> Callable[[str], float]:
    """A finite number in ``(low, high)``, or ``[low, high]`` with ``closed``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = low <= value <= high if closed else low < value < high
        if not inside or math.isnan(value):
            kind = "inclusive" if closed else "exclusive"
            raise argparse.ArgumentTypeError(
                f"must be between {low:g} and {high:g} ({kind}), got {text}"
            )
        return value

    return parse


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (whether the machine has it is checked when the command
    runs)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text
