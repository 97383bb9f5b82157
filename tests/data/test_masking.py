"""Tests of dnabird.data.masking: rate, 80/10/10 split, specials untouched, determinism,
and coverage passes (every maskable token predicted exactly once)."""

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


@pytest.mark.parametrize("passes", [1, 3, 10, 60])
def test_coverage_partitions_the_maskable_tokens(passes: int) -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    ids = np.random.default_rng(2).integers(0, VOCAB, size=503)
    maskable = np.flatnonzero(~np.isin(ids, SPECIALS))
    assert np.array_equal(masker.maskable_positions(ids), maskable)
    results = masker.coverage(ids, passes, sequence_rng(0, 1))
    assert len(results) == passes
    seen = np.zeros(ids.size, dtype=int)
    for inputs, labels in results:
        picked = labels != IGNORE_INDEX
        seen += picked
        assert abs(picked.sum() - maskable.size / passes) < 1
        assert np.array_equal(labels[picked], ids[picked])
        assert np.array_equal(inputs[~picked], ids[~picked])
    assert np.array_equal(np.flatnonzero(seen), maskable) and seen.max() == 1


def test_coverage_with_more_passes_than_tokens_leaves_passes_empty() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    ids = np.array([2, 10, 11, 0, 12, 3])
    counts = [
        (labels != IGNORE_INDEX).sum() for _, labels in masker.coverage(ids, 5, sequence_rng(0))
    ]
    assert sorted(counts) == [0, 0, 1, 1, 1]
    with pytest.raises(ConfigError):
        masker.coverage(ids, 0, sequence_rng(0))


def test_coverage_keeps_the_80_10_10_split() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    rng = np.random.default_rng(3)
    picked_ids, inputs_at = [], []
    for ids in _sequences(rng, 40, 500):
        for inputs, labels in masker.coverage(ids, 10, rng):
            picked = labels != IGNORE_INDEX
            picked_ids.append(ids[picked])
            inputs_at.append(inputs[picked])
    original, corrupted = np.concatenate(picked_ids), np.concatenate(inputs_at)
    n = original.size  # every maskable token of 40 x 500: ~17,500, as in the test above
    masked = (corrupted == MASK).sum()
    randomised = ((corrupted != MASK) & (corrupted != original)).sum()
    kept = (corrupted == original).sum()
    assert not np.isin(corrupted[(corrupted != MASK) & (corrupted != original)], SPECIALS).any()
    replaced_same = 0.1 / (VOCAB - len(SPECIALS))
    assert abs(masked / n - 0.8) < 0.015
    assert abs(randomised / n - (0.1 - replaced_same)) < 0.012
    assert abs(kept / n - (0.1 + replaced_same)) < 0.012


def test_coverage_is_deterministic_given_seed() -> None:
    masker = TokenMasker(MaskingConfig(), VOCAB, SPECIALS, MASK)
    ids = np.random.default_rng(5).integers(0, VOCAB, size=300)
    a, b, c = (masker.coverage(ids, 10, sequence_rng(seed, 4)) for seed in (7, 7, 8))
    flat = [np.concatenate([np.concatenate(pair) for pair in r]) for r in (a, b, c)]
    assert np.array_equal(flat[0], flat[1])
    assert not np.array_equal(flat[0], flat[2])


@pytest.mark.parametrize(
    "kwargs", [dict(rate=0.0), dict(rate=1.5), dict(mask_fraction=0.9, random_fraction=0.2)]
)
def test_bad_config_is_config_error(kwargs) -> None:
    with pytest.raises(ConfigError):
        MaskingConfig(**kwargs)
