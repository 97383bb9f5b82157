"""Tests of dnabird.data.splits: stratified train/validation/test splits by sequence
identity, their determinism and the per-split class counts."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dnabird.data.splits import (
    SPLITS,
    group_by_identity,
    split_by_identity,
    split_counts,
    split_name,
)
from dnabird.errors import ConfigError


def unique_sequences(count: int, length: int = 30, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys("".join(rng.choice(list("ACGT"), length)) for _ in range(count)))


def normalised(sequence: str) -> str:
    """Independent reference of the identity: uppercase, IUPAC codes -> N."""
    return "".join(c if c in "ACGTN" else "N" for c in sequence.upper())


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.25, 0.15), (0.9, 0.0, 0.1)])
def test_each_class_gets_its_fraction_within_one_row(fractions):
    sequences = unique_sequences(1000)
    labels = np.array([0] * 700 + [1] * 250 + [2] * 50)[: len(sequences)]
    split = split_by_identity(sequences, labels, fractions, seed=0)
    assert split.shape == (len(sequences),)
    assert set(split) <= set(SPLITS)
    for c in range(3):
        rows = int((labels == c).sum())
        for name, fraction in zip(SPLITS, fractions, strict=True):
            got = int(((split == name) & (labels == c)).sum())
            assert abs(got - fraction * rows) <= 1, (name, c, got, fraction * rows)
    if fractions[1] == 0:
        assert "validation" not in set(split)


def test_identical_sequences_never_cross_splits():
    base = unique_sequences(400, seed=1)
    rng = np.random.default_rng(2)
    sequences, labels = [], []
    for i, seq in enumerate(base):
        copies = int(rng.integers(2, 6)) if i % 4 == 0 else 1  # planted duplicates
        # other spellings of the same sequence: lowercase; IUPAC R is N (R and N variants
        # are one sequence, different from the original)
        spellings = [seq, seq.lower(), seq[:-1] + "R", seq[:-1] + "N", seq]
        sequences += spellings[:copies]
        labels += [i % 2] * copies
    labels_arr = np.array(labels)
    split = split_by_identity(sequences, labels_arr, seed=3)
    where: dict[str, set[str]] = {}
    for seq, name in zip(sequences, split, strict=True):
        where.setdefault(normalised(seq), set()).add(str(name))
    assert all(len(names) == 1 for names in where.values())
    assert sum(len(v) for v in where.values()) == len({normalised(s) for s in sequences})
    # stratified still: each class close to its share even with groups of up to 6 rows
    for c in (0, 1):
        rows = (labels_arr == c).sum()
        for name, fraction in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
            got = ((split == name) & (labels_arr == c)).sum()
            assert abs(got - fraction * rows) <= 6


def test_deterministic_and_seeded():
    sequences = unique_sequences(500, seed=4)
    labels = np.arange(len(sequences)) % 2
    first = split_by_identity(sequences, labels, seed=7)
    assert np.array_equal(first, split_by_identity(list(sequences), labels.copy(), seed=7))
    other = split_by_identity(sequences, labels, seed=8)
    assert (first != other).sum() > 50


def test_every_split_gets_a_small_class_and_big_groups_do_not_starve_it():
    # class 1: three distinct sequences, one of them ten times; class 2: three sequences
    # (row targets 2.4 / 0.3 / 0.3 would round to 3 / 0 / 0): each split gets one of each
    sequences = unique_sequences(100, seed=5) + ["AAAA"] * 10 + ["CCCC", "GGGG", "TT", "GA", "CA"]
    labels = np.array([0] * 100 + [1] * 12 + [2] * 3)
    for seed in range(10):
        split = split_by_identity(sequences, labels, seed=seed)
        assert set(split[labels == 1]) == set(SPLITS)
        assert sorted(split[labels == 2]) == sorted(SPLITS)
        assert len(set(split[100:110])) == 1
    split = split_by_identity(sequences, labels, (0.9, 0.0, 0.1), seed=0)
    assert "validation" not in set(split)


def test_conflicting_labels_follow_the_majority_and_are_counted(caplog):
    sequences = ["ACGT", "ACGT", "acgt", "TTTT", "TTTT", "GGGG"]
    labels = np.array([1, 0, 1, 0, 1, 2])  # ACGT: 2x1 vs 1x0; TTTT: a tie -> 0
    groups = group_by_identity(sequences, labels)
    assert groups.group.tolist() == [0, 0, 0, 1, 1, 2]
    assert groups.label.tolist() == [1, 0, 2]
    assert groups.size.tolist() == [3, 2, 1]
    assert groups.conflicting == 2
    with caplog.at_level(logging.WARNING, logger="dnabird.data.splits"):
        split_by_identity(sequences, labels, seed=0)
    assert "2 groups of identical sequences carry different labels" in caplog.text


@pytest.mark.parametrize(
    "fractions, message",
    [
        ((0.8, 0.1), "give 3 numbers"),
        ((0.8, 0.1, 0.2), "sum to 1.1"),
        ((0.9, -0.1, 0.2), "train must be > 0"),
        ((0.0, 0.5, 0.5), "train must be > 0"),
    ],
)
def test_bad_fractions_are_config_errors(fractions, message):
    with pytest.raises(ConfigError, match=message) as err:
        split_by_identity(["ACGT", "CCCC"], np.array([0, 1]), fractions)
    assert "\n" not in str(err.value)


def test_split_counts_by_hand():
    split = np.array(["train", "test", "train", "train", "test", "dev-extra"])
    labels = np.array([0, 1, 1, 0, 1, 0])
    assert split_counts(split, labels, ("neg", "pos")) == {
        "train": {"neg": 2, "pos": 1},
        "validation": {"neg": 0, "pos": 0},
        "test": {"neg": 0, "pos": 2},
        "dev-extra": {"neg": 1, "pos": 0},
    }


def test_split_names():
    assert [split_name(t) for t in ("Train", "dev", "VAL", "valid", " test ", "holdout")] == [
        "train",
        "validation",
        "validation",
        "validation",
        "test",
        None,
    ]


def test_related_rows_share_a_split_and_pairs_stay_balanced():
    """A promoter and the negative made from it share 8 of 20 parts: they must never be
    split apart (a leak that put the k-mer baseline below chance on shuffle negatives)."""
    from dnabird.data.negatives import promoter_negatives

    rng = np.random.default_rng(3)
    positives = ["".join(rng.choice(list("ACGT"), 300)) for _ in range(400)]
    negatives = promoter_negatives(positives, "shuffle", seed=0)
    sequences = positives + negatives
    labels = np.array([1] * 400 + [0] * 400)
    source = np.tile(np.arange(400), 2)  # row -> the positive it comes from
    split = split_by_identity(sequences, labels, seed=1, related=source)
    assert (split[:400] == split[400:]).all()
    for name, share in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
        assert abs((split[:400] == name).sum() - 400 * share) <= 1  # positives
        assert abs((split[400:] == name).sum() - 400 * share) <= 1  # and their negatives
    unrelated = split_by_identity(sequences, labels, seed=1)
    assert (unrelated[:400] != unrelated[400:]).any()  # without the keys pairs do split


def test_related_keys_and_identity_join_transitively():
    sequences = ["AAAA", "CCCC", "AAAA", "GGGG", "TTTT"]
    labels = np.array([0, 1, 1, 0, 1])
    related = np.array([10, 10, 20, 20, 30])  # 0~1 by key, 0~2 identical, 2~3 by key
    groups = group_by_identity(sequences, labels, related)
    assert groups.group.tolist() == [0, 0, 0, 0, 1]
    assert groups.size.tolist() == [4, 1] and groups.conflicting == 1  # AAAA has labels 0, 1
