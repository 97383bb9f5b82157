"""Promoter negatives made from the positives (Oubounyt et al. 2019, "DeePromoter").

Each positive sequence of length L is cut into ``parts`` (20) consecutive parts with
``np.array_split`` boundaries: the first ``L % parts`` parts are one base longer (a 300 bp
sequence gives 20 parts of 15 bp). ``kept`` (8) parts, at positions drawn at random, are
kept where they are; the other ``parts - kept`` (12) become:

- ``substitute`` (DeePromoter): uniformly random bases (A, C, G, T), so the negative keeps
  the positive's local motifs in 8 parts and loses them elsewhere;
- ``shuffle``: the same parts permuted among themselves (a part only trades places with a
  part of the same length, so every kept part stays at its position). The base composition
  and the multiset of parts are exactly the positive's: composition-based models are at
  chance, which makes it much harder.

The third scheme, negatives from a file, needs no code here: read them with
:func:`dnabird.data.labelled.read_labelled` (e.g. ``label="negative"``).

One negative per positive, in order, never equal to its positive. Every negative is drawn
from its own generator seeded by ``(seed, index)``, so it does not depend on how many
sequences are processed together (pass ``first_index`` when processing a slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dnabird.errors import ConfigError, InputError

SCHEMES = ("substitute", "shuffle")
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_ATTEMPTS = 100  # draws tried before a sequence is declared unable to give a new negative


def part_bounds(length: int, parts: int) -> np.ndarray:
    """Start offsets of the ``parts`` parts of a sequence of ``length`` bp, plus ``length``:
    int64 [parts + 1] (part i is ``[bounds[i], bounds[i + 1])``, 0-based half-open), the
    boundaries of ``np.array_split``."""
    sizes = np.full(parts, length // parts, dtype=np.int64)
    sizes[: length % parts] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def promoter_negatives(
    sequences: Sequence[str],
    scheme: str,
    seed: int,
    parts: int = 20,
    kept: int = 8,
    first_index: int = 0,
) -> list[str]:
    """One negative per positive sequence (uppercase ``ACGTN``), in order; see the module
    docstring. ``first_index`` is the index of ``sequences[0]`` in the whole set (its
    negatives are seeded by ``(seed, first_index + i)``)."""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unknown negative scheme {scheme!r}; choose one of {', '.join(SCHEMES)} "
            "(or read negatives from a file)"
        )
    if seed < 0 or first_index < 0:
        raise ConfigError(f"negatives: seed ({seed}) and first_index must be >= 0")
    if not 0 < kept < parts:
        raise ConfigError(
            f"negatives: kept parts ({kept}) must be at least 1 and fewer than parts ({parts})"
        )
    if scheme == "shuffle" and parts - kept < 2:
        raise ConfigError(
            f"negatives: shuffle needs at least 2 moved parts (parts - kept = {parts - kept})"
        )
    make = _substitute if scheme == "substitute" else _shuffle
    negatives = []
    for offset, sequence in enumerate(sequences):
        index = first_index + offset
        positive = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        if len(positive) < parts:
            raise InputError(
                f"sequence {index} is {len(positive)} bp, shorter than the {parts} parts of "
                "the negative scheme; drop it or use fewer parts"
            )
        bounds = part_bounds(len(positive), parts)
        rng = np.random.default_rng([seed, index])
        for _ in range(_ATTEMPTS):
            keep = np.zeros(parts, dtype=bool)
            keep[rng.choice(parts, size=kept, replace=False)] = True
            negative = make(positive, bounds, keep, rng)
            if not np.array_equal(negative, positive):
                negatives.append(negative.tobytes().decode("ascii"))
                break
        else:
            raise InputError(
                f"sequence {index}: {_ATTEMPTS} draws of the {scheme!r} scheme all gave the "
                "positive itself (its parts are identical); drop it or use another scheme"
            )
    return negatives


def _substitute(
    positive: np.ndarray, bounds: np.ndarray, keep: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``positive`` (uint8 [L]) with the bases of every part not in ``keep`` drawn anew."""
    replaced = np.repeat(~keep, np.diff(bounds))  # bool [L]
    negative = positive.copy()
    negative[replaced] = _BASES[rng.integers(0, 4, size=int(replaced.sum()))]
    return negative


def _shuffle(
    positive: np.ndarray, bounds: np.ndarray, keep: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``positive`` (uint8 [L]) with the parts not in ``keep`` permuted among those of the
    same length."""
    sizes = np.diff(bounds)
    order = np.arange(len(sizes))  # order[i]: the source part placed at position i
    for size in np.unique(sizes[~keep]):
        moved = np.flatnonzero(~keep & (sizes == size))
        order[moved] = moved[rng.permutation(len(moved))]
    return np.concatenate([positive[bounds[i] : bounds[i + 1]] for i in order])
