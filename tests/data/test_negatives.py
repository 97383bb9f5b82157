"""Tests of dnabird.data.negatives: DeePromoter negatives (substitute) and the harder
shuffle scheme: part boundaries, kept parts, composition, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dnabird.data.negatives import SCHEMES, part_bounds, promoter_negatives
from dnabird.errors import ConfigError, InputError


def biased_sequences(count: int, length: int, seed: int = 0) -> list[str]:
    """GC-rich random sequences (A, T 15% each; C, G 35%), so uniform substitutions stand
    out from the source composition."""
    rng = np.random.default_rng(seed)
    bases = rng.choice(list("ACGT"), size=(count, length), p=[0.15, 0.35, 0.35, 0.15])
    return ["".join(row) for row in bases]


def cut(sequence: str, parts: int = 20) -> list[str]:
    """The parts of ``sequence`` by np.array_split, the independent reference."""
    return ["".join(p) for p in np.array_split(np.array(list(sequence)), parts)]


@pytest.mark.parametrize("length", [20, 39, 101, 300, 301])
def test_part_bounds_are_those_of_array_split(length):
    bounds = part_bounds(length, 20)
    reference = np.array_split(np.arange(length), 20)
    assert len(bounds) == 21
    assert [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)] == [
        (int(r[0]), int(r[-1]) + 1) for r in reference
    ]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("length", [300, 101])
def test_eight_parts_kept_in_place_and_negative_differs(scheme, length):
    positives = biased_sequences(300, length)
    negatives = promoter_negatives(positives, scheme, seed=3)
    assert len(negatives) == len(positives)
    kept_counts = []
    for positive, negative in zip(positives, negatives, strict=True):
        assert len(negative) == len(positive)
        assert negative != positive
        assert set(negative) <= set("ACGT")
        same = [a == b for a, b in zip(cut(positive), cut(negative), strict=True)]
        kept_counts.append(sum(same))
    # at least the 8 kept parts are unchanged; a moved part stays equal to its source only
    # by chance: a random base draw (often for 5 bp parts, essentially never for 15 bp) or
    # a fixed point of the permutation (about one of 12 on average)
    assert min(kept_counts) >= 8
    if length == 300 and scheme == "substitute":
        assert set(kept_counts) == {8}
    assert np.mean(kept_counts) < 10.5


def test_kept_positions_vary_between_sequences():
    positives = biased_sequences(400, 300)
    negatives = promoter_negatives(positives, "substitute", seed=0)
    kept = np.array(
        [
            [a == b for a, b in zip(cut(p), cut(n), strict=True)]
            for p, n in zip(positives, negatives, strict=True)
        ]
    )  # bool [sequences, 20]
    assert len({row.tobytes() for row in kept}) > 390  # C(20, 8) = 125,970 patterns
    share = kept.mean(axis=0)  # each part kept 8/20 = 40% of the time
    assert np.all(np.abs(share - 0.4) < 0.1)


def test_substituted_bases_are_uniform_although_the_source_is_gc_rich():
    positives = biased_sequences(500, 300, seed=1)
    negatives = promoter_negatives(positives, "substitute", seed=5)
    drawn: Counter[str] = Counter()
    for positive, negative in zip(positives, negatives, strict=True):
        for a, b in zip(cut(positive), cut(negative), strict=True):
            if a != b:
                drawn.update(b)
    total = sum(drawn.values())
    assert total == 500 * 12 * 15
    for base in "ACGT":
        assert abs(drawn[base] / total - 0.25) < 0.01, drawn


@pytest.mark.parametrize("length", [300, 101, 47])
def test_shuffle_keeps_composition_and_the_multiset_of_parts(length):
    positives = biased_sequences(200, length, seed=2)
    negatives = promoter_negatives(positives, "shuffle", seed=9)
    for positive, negative in zip(positives, negatives, strict=True):
        assert Counter(negative) == Counter(positive)
        assert sorted(cut(negative)) == sorted(cut(positive))
        assert negative != positive


def test_shuffle_works_when_most_parts_are_identical_and_refuses_when_all_are():
    part = "ACGTACGTACGTACG"  # 15 bp
    mostly = part * 19 + "TTTTTTTTTTTTTTT"
    (negative,) = promoter_negatives([mostly], "shuffle", seed=0)
    assert negative != mostly and Counter(negative) == Counter(mostly)
    with pytest.raises(InputError, match="sequence 0"):
        promoter_negatives([part * 20], "shuffle", seed=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_and_independent_of_batching(scheme):
    positives = biased_sequences(60, 300, seed=4)
    whole = promoter_negatives(positives, scheme, seed=11)
    assert promoter_negatives(positives, scheme, seed=11) == whole
    pieces = [
        promoter_negatives(positives[i : i + 7], scheme, seed=11, first_index=i)
        for i in range(0, 60, 7)
    ]
    assert [n for piece in pieces for n in piece] == whole
    other = promoter_negatives(positives, scheme, seed=12)
    assert sum(a != b for a, b in zip(whole, other, strict=True)) == 60


def test_n_bases_in_kept_parts_stay_and_replaced_ones_become_bases():
    positive = "N" * 300
    (negative,) = promoter_negatives([positive], "substitute", seed=0)
    assert negative.count("N") == 8 * 15
    assert set(negative) - {"N"} <= set("ACGT")


def test_bad_parameters():
    with pytest.raises(ConfigError, match="substitute, shuffle"):
        promoter_negatives(["ACGT" * 10], "reverse", seed=0)
    with pytest.raises(ConfigError, match="kept"):
        promoter_negatives(["ACGT" * 10], "substitute", seed=0, kept=20)
    with pytest.raises(ConfigError, match="seed"):
        promoter_negatives(["ACGT" * 10], "substitute", seed=-1)
    with pytest.raises(InputError, match="sequence 1 is 19 bp"):
        promoter_negatives(["ACGT" * 10, "A" * 19], "substitute", seed=0)
