"""Tests of dnabird.data.masking: rate, 80/10/10 split, specials untouched, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dnabird.data.masking import IGNORE_INDEX, MaskingConfig, TokenMasker, sequence_rng
from dnabird.errors import ConfigError

VOCAB = 40
SPECIALS = (0, 1, 2, 3, 4)
MASK = 4


def _sequences(rng: np.random.Generator, count: int, length: int) -> list[np.ndarray]:
    """Random ids in [0, VOCAB), so about 1 in 8 is special."""
    return [rng.integers(0, VOCAB, size=length) for _ in range(count)]


def test_rate_and_80_10_10_split() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    rng = np.random.default_rng(0)
    chosen = maskable = masked = randomised = kept = 0
    for ids in _sequences(rng, 400, 500):
        inputs, labels = masker(ids, rng)
        special = np.isin(ids, SPECIALS)
        picked = labels != IGNORE_INDEX
        # specials are never chosen and never changed
        assert not picked[special].any()
        assert np.array_equal(inputs[special], ids[special])
        # unchosen tokens are unchanged; labels hold the original ids
        assert np.array_equal(inputs[~picked], ids[~picked])
        assert np.array_equal(labels[picked], ids[picked])
        # the count is round(rate * maskable) exactly
        assert picked.sum() == round(0.1 * (~special).sum())
        chosen += picked.sum()
        maskable += (~special).sum()
        masked += (inputs[picked] == MASK).sum()
        randomised += ((inputs[picked] != MASK) & (inputs[picked] != ids[picked])).sum()
        kept += (inputs[picked] == ids[picked]).sum()
        # random replacements are never special tokens
        assert not np.isin(inputs[picked & (inputs != ids) & (inputs != MASK)], SPECIALS).any()
    assert abs(chosen / maskable - 0.1) < 0.002
    n = chosen  # ~17,500 chosen tokens: binomial standard error of a 10% share is ~0.23%
    assert abs(masked / n - 0.8) < 0.015
    # a random replacement equals the original with probability 1/35: kept gains ~0.3%
    replaced_same = 0.1 / (VOCAB - len(SPECIALS))
    assert abs(randomised / n - (0.1 - replaced_same)) < 0.012
    assert abs(kept / n - (0.1 + replaced_same)) < 0.012


def test_configurable_rate_and_fractions() -> None:
    config = MaskingConfig(rate=0.5, mask_fraction=1.0, random_fraction=0.0)
    masker = TokenMasker(config, VOCAB, SPECIALS, MASK)
    ids = np.arange(40) % 35 + 5  # 40 non-special tokens
    inputs, labels = masker(ids, np.random.default_rng(1))
    picked = labels != IGNORE_INDEX
    assert picked.sum() == 20
    assert (inputs[picked] == MASK).all()


def test_deterministic_given_seed_and_key() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    ids = np.random.default_rng(5).integers(0, VOCAB, size=300)
    a = masker(ids, sequence_rng(7, 0, 3, 11, 0))
    b = masker(ids, sequence_rng(7, 0, 3, 11, 0))
    c = masker(ids, sequence_rng(7, 0, 3, 11, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_all_special_sequence_has_no_labels() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    inputs, labels = masker(np.array([2, 0, 0, 3]), np.random.default_rng(0))
    assert (labels == IGNORE_INDEX).all()
    assert inputs.tolist() == [2, 0, 0, 3]


@pytest.mark.parametrize(
    "kwargs", [dict(rate=0.0), dict(rate=1.5), dict(mask_fraction=0.9, random_fraction=0.2)]
)
def test_bad_config_is_config_error(kwargs) -> None:
    with pytest.raises(ConfigError):
        MaskingConfig(**kwargs)
