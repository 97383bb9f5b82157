"""Interpolated k-mer Markov model of DNA: the n-gram baseline for bits per character.

The BigBird paper reports an SRILM n-gram model next to the transformers (1.57 bpc). This
is the same kind of model, small enough to read: an order-``k`` Markov chain over A, C, G,
T (case ignored) whose estimates of every order 0..k are blended by Witten-Bell
interpolation down to the uniform distribution::

    p_n(x | h) = lam(h) * c(h x) / c(h) + (1 - lam(h)) * p_{n-1}(x | h'),
    lam(h) = c(h) / (c(h) + T(h)),   p_{-1}(x) = 1/4

where ``h`` is the last ``n`` bases, ``h'`` drops its oldest base, ``c`` are training
counts and ``T(h)`` is the number of distinct bases seen after ``h``. Any other character
(N, IUPAC codes) breaks the context: it is neither predicted nor used as history, and the
bases after it are predicted with the shorter history available.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dnabird.errors import ConfigError

MAX_ORDER = 11
"""Largest supported order: counts of order k take 4**(k+1) int64 (k = 11: 128 MiB)."""

_CODES = np.full(256, -1, dtype=np.int8)
for _i, _base in enumerate("ACGT"):
    _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _i


def encode_bases(sequence: str) -> np.ndarray:
    """ACGT (either case) -> 0..3 and anything else -> -1, as int8 [len(sequence)]."""
    return _CODES[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]


def _run_lengths(codes: np.ndarray) -> np.ndarray:
    """For each position, the number of consecutive valid bases ending there (int64)."""
    valid = codes >= 0
    index = np.arange(codes.size)
    last_invalid = np.maximum.accumulate(np.where(valid, -1, index))
    return np.where(valid, index - last_invalid, 0)


def _window_codes(codes: np.ndarray, width: int) -> np.ndarray:
    """Base-4 code of the ``width`` bases ending at each position (garbage where the window
    is not all valid or starts before 0), int64 [len(codes)]."""
    result = np.zeros(codes.size, dtype=np.int64)
    clean = np.where(codes >= 0, codes, 0).astype(np.int64)
    for offset in range(width - 1, -1, -1):
        shifted = np.zeros_like(clean)
        shifted[offset:] = clean[: clean.size - offset]
        result = result * 4 + shifted
    return result


class KmerMarkovModel:
    """Witten-Bell interpolated Markov model of order ``order`` over ACGT."""

    def __init__(self, order: int) -> None:
        if not 0 <= order <= MAX_ORDER:
            raise ConfigError(f"n-gram order must be in [0, {MAX_ORDER}], got {order}")
        self.order = order
        self.counts = [np.zeros(4 ** (n + 1), dtype=np.int64) for n in range(order + 1)]

    def fit(self, sequences: Iterable[str]) -> KmerMarkovModel:
        """Add the (k+1)-mer counts of every sequence; returns ``self``."""
        for sequence in sequences:
            codes = encode_bases(sequence)
            runs = _run_lengths(codes)
            for n in range(self.order + 1):
                ok = runs >= n + 1
                self.counts[n] += np.bincount(
                    _window_codes(codes, n + 1)[ok], minlength=self.counts[n].size
                )
        return self

    def log2_probabilities(self, sequence: str) -> np.ndarray:
        """log2 p(base_i | history) for every valid base of ``sequence`` (float64 [n_valid])."""
        codes = encode_bases(sequence)
        runs = _run_lengths(codes)
        prob = np.full(codes.size, 0.25)
        for n in range(self.order + 1):
            ok = runs >= n + 1
            full = _window_codes(codes, n + 1)[ok]  # context (n bases) * 4 + base
            table = self.counts[n].reshape(-1, 4)  # [4**n contexts, 4 bases]
            context_total = table.sum(axis=1)
            distinct = (table > 0).sum(axis=1)
            context, base = full // 4, full % 4
            total = context_total[context].astype(np.float64)
            lam = np.divide(
                total, total + distinct[context], out=np.zeros_like(total), where=total > 0
            )
            ml = np.divide(table[context, base], total, out=np.zeros_like(total), where=total > 0)
            prob[ok] = lam * ml + (1.0 - lam) * prob[ok]
        return np.log2(prob[codes >= 0])

    def bits_per_character(self, sequences: Iterable[str]) -> tuple[float, int]:
        """(bits per base, number of bases scored) over all valid bases of ``sequences``."""
        bits, count = 0.0, 0
        for sequence in sequences:
            logp = self.log2_probabilities(sequence)
            bits -= float(logp.sum())
            count += logp.size
        return (bits / count if count else math.nan), count
