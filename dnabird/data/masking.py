"""Masked-language-model corruption of token sequences (BERT recipe, BigBird's DNA rate).

Of the *maskable* tokens of a sequence (every token whose id is not a special id), a
fraction ``rate`` (10% by default, the BigBird paper's DNA setting) is chosen uniformly
without replacement; of the chosen tokens 80% become ``[MASK]``, 10% a random non-special
token and 10% stay unchanged. Labels hold the original id at chosen positions and -100
elsewhere (the Hugging Face "not predicted" convention). Special tokens ([PAD], [UNK],
[CLS], [SEP], [MASK]) are never chosen.

For evaluation, :meth:`TokenMasker.coverage` instead splits the maskable tokens into
``passes`` disjoint groups and masks one group per pass (same 80/10/10 treatment), so that
over the passes every maskable token is predicted exactly once.

Everything is a pure function of the token ids and a ``numpy.random.Generator``, so the
caller fixes determinism by how it seeds the generator (see :func:`sequence_rng`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError
from dnabird.model.config import IGNORE_INDEX


@document_fields
@dataclass(frozen=True)
class MaskingConfig:
    """How many tokens are chosen for prediction, and how the chosen ones are corrupted."""

    rate: float = 0.1
    """Fraction of maskable (non-special) tokens chosen for prediction, in (0, 1]."""
    mask_fraction: float = 0.8
    """Fraction of chosen tokens replaced by ``[MASK]``."""
    random_fraction: float = 0.1
    """Fraction of chosen tokens replaced by a uniformly drawn non-special token; the rest
    (``1 - mask_fraction - random_fraction``) keep their id."""

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ConfigError(f"masking.rate must be in (0, 1], got {self.rate}")
        if self.mask_fraction < 0 or self.random_fraction < 0:
            raise ConfigError("masking.mask_fraction and masking.random_fraction must be >= 0")
        if self.mask_fraction + self.random_fraction > 1.0 + 1e-9:
            raise ConfigError("masking.mask_fraction + masking.random_fraction must be <= 1")


class TokenMasker:
    """Applies :class:`MaskingConfig` to 1-D arrays of token ids from one vocabulary."""

    def __init__(
        self,
        config: MaskingConfig,
        vocab_size: int,
        special_ids: Iterable[int],
        mask_id: int,
    ) -> None:
        self.config = config
        self.mask_id = int(mask_id)
        self.special = np.zeros(vocab_size, dtype=bool)
        self.special[list(special_ids)] = True
        self.special[self.mask_id] = True
        self.replacement_ids = np.flatnonzero(~self.special)
        if self.replacement_ids.size == 0:
            raise ConfigError("vocabulary has no non-special token to mask")

    def maskable_positions(self, ids: np.ndarray) -> np.ndarray:
        """Indices (int64, ascending) of the tokens of ``ids`` ([L] int) that may be chosen."""
        return np.flatnonzero(~self.special[np.asarray(ids, dtype=np.int64)])

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Corrupt ``ids`` ([L] int) and return ``(input_ids, labels)``, both int64 [L].

        The number of chosen tokens is ``round(rate * n_maskable)``, at least 1 when any
        token is maskable.
        """
        maskable = self.maskable_positions(ids)
        chosen = maskable
        if maskable.size:
            count = max(1, int(round(self.config.rate * maskable.size)))
            chosen = rng.choice(maskable, size=count, replace=False)
        return self._corrupt(ids, chosen, rng)

    def coverage(
        self, ids: np.ndarray, passes: int, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``passes`` corruptions of ``ids`` ([L] int) that together predict every maskable
        token exactly once: one ``(input_ids, labels)`` pair (int64 [L] each) per pass.

        One random permutation of the maskable positions is cut into ``passes`` contiguous
        groups whose sizes differ by at most 1; pass ``p`` chooses group ``p`` (so each pass
        chooses about ``n_maskable / passes`` tokens, none when there are fewer maskable
        tokens than passes) and corrupts it 80/10/10 like :meth:`__call__`. ``rate`` is not
        used: ``passes`` sets the fraction chosen per pass.
        """
        if passes < 1:
            raise ConfigError(f"passes must be at least 1, got {passes}")
        order = rng.permutation(self.maskable_positions(ids))
        return [self._corrupt(ids, group, rng) for group in np.array_split(order, passes)]

    def _corrupt(
        self, ids: np.ndarray, chosen: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels at the ``chosen`` positions ([K] int, distinct, maskable) of ``ids`` ([L]
        int), and inputs with each chosen token replaced by ``[MASK]`` (``mask_fraction``),
        a random non-special token (``random_fraction``) or left as is; int64 [L] each."""
        ids = np.asarray(ids, dtype=np.int64)
        labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
        inputs = ids.copy()
        labels[chosen] = ids[chosen]
        action = rng.random(chosen.size)
        to_mask = chosen[action < self.config.mask_fraction]
        to_random = chosen[
            (action >= self.config.mask_fraction)
            & (action < self.config.mask_fraction + self.config.random_fraction)
        ]
        inputs[to_mask] = self.mask_id
        inputs[to_random] = rng.choice(self.replacement_ids, size=to_random.size)
        return inputs, labels


def sequence_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator determined by ``seed`` and a sequence's identity ``key`` (non-negative
    ints, e.g. epoch, shard, row, chunk): the same sequence is masked the same way whatever
    the number of workers or ranks."""
    return np.random.default_rng([int(seed), *(int(k) for k in key)])
