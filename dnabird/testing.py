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


def planted_motif_sequences(
    count: int, length: int = 60, motif: str = "TATAAAAGGCGC", seed: int = 0
) -> tuple[list[str], list[int]]:
    """``count`` random ACGT sequences of ``length`` bp, every second one (label 1) with
    ``motif`` planted at a random position: a learnable two-class task for fine-tuning
    tests. Returns (sequences, labels)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(count):
        bases = rng.choice(list("ACGT"), size=length)
        if i % 2:
            start = int(rng.integers(0, length - len(motif) + 1))
            bases[start : start + len(motif)] = list(motif)
        sequences.append("".join(bases))
        labels.append(i % 2)
    return sequences, labels
