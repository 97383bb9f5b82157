"""Tests of dnabird.ngram against a plain-Python Witten-Bell reference."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from dnabird.errors import ConfigError
from dnabird.ngram import KmerMarkovModel


def _reference_log2_probs(train: list[str], test: str, order: int) -> list[float]:
    """Dictionary-based Witten-Bell interpolation, written independently of numpy."""
    counts = [Counter() for _ in range(order + 1)]
    for seq in train:
        seq = seq.upper()
        for i in range(len(seq)):
            for n in range(order + 1):
                window = seq[i - n : i + 1] if i - n >= 0 else ""
                if len(window) == n + 1 and set(window) <= set("ACGT"):
                    counts[n][window] += 1

    def prob(history: str, base: str) -> float:
        p = 0.25
        for n in range(len(history) + 1):
            h = history[len(history) - n :] if n else ""
            followers = {b: counts[n][h + b] for b in "ACGT"}
            total = sum(followers.values())
            if total == 0:
                continue
            distinct = sum(1 for c in followers.values() if c)
            lam = total / (total + distinct)
            p = lam * followers[base] / total + (1 - lam) * p
        return p

    out = []
    test = test.upper()
    for i, base in enumerate(test):
        if base not in "ACGT":
            continue
        start = i
        while start > 0 and test[start - 1] in "ACGT" and i - start < order:
            start -= 1
        out.append(math.log2(prob(test[start:i], base)))
    return out


@pytest.mark.parametrize("order", [0, 1, 3, 5])
def test_matches_reference(order: int) -> None:
    rng = np.random.default_rng(order)
    train = ["".join(rng.choice(list("ACGTacgtN"), size=400)) for _ in range(3)]
    test = "".join(rng.choice(list("ACGTN"), size=300, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
    model = KmerMarkovModel(order).fit(train)
    ours = model.log2_probabilities(test)
    assert np.allclose(ours, _reference_log2_probs(train, test, order), rtol=0, atol=1e-12)


def test_probabilities_sum_to_one_in_every_context() -> None:
    rng = np.random.default_rng(0)
    model = KmerMarkovModel(4).fit(["".join(rng.choice(list("ACGT"), size=2000))])
    for history in ("", "A", "ACG", "TTTT", "GATC"):
        total = sum(2 ** model.log2_probabilities(history + b)[-1] for b in "ACGT")
        assert total == pytest.approx(1.0, abs=1e-12)


def test_learns_a_markov_chain_down_to_its_entropy_rate() -> None:
    # order-2 chain: the next base is fixed by the previous two with prob 0.9
    rng = np.random.default_rng(1)
    seq = list("AC")
    for _ in range(60000):
        det = "ACGT"[("ACGT".index(seq[-2]) * 3 + "ACGT".index(seq[-1])) % 4]
        seq.append(det if rng.random() < 0.9 else rng.choice(list("ACGT")))
    text = "".join(seq)
    train, test = text[:50000], text[50000:]
    p = 0.9 + 0.1 / 4  # prob of the predicted base; the other 3 share the rest
    entropy = -(p * math.log2(p) + 3 * (0.025 * math.log2(0.025)))
    bpc2, n = KmerMarkovModel(2).fit([train]).bits_per_character([test])
    bpc0, _ = KmerMarkovModel(0).fit([train]).bits_per_character([test])
    assert n == len(test)
    assert bpc2 == pytest.approx(entropy, abs=0.02)
    assert bpc0 > 1.9


def test_non_acgt_breaks_context_and_is_not_scored() -> None:
    model = KmerMarkovModel(2).fit(["ACGTACGTACGT"])
    assert model.log2_probabilities("ACNNGT").size == 4
    assert model.bits_per_character(["NNNN"])[1] == 0


def test_bad_order_is_config_error() -> None:
    with pytest.raises(ConfigError):
        KmerMarkovModel(20)


@pytest.mark.realdata
def test_real_dna_is_predictable_below_two_bits(shared_data) -> None:
    from dnabird.genome.fasta import read_fasta

    (sequence,) = read_fasta(shared_data / "genome" / "hg38_chr2_1-2333275.fa.gz").values()
    train, test = sequence[10_000:1_010_000], sequence[2_033_275:2_133_275]
    bpc, bases = KmerMarkovModel(6).fit([train]).bits_per_character([test])
    assert bases == 100_000
    assert 1.8 < bpc < 1.97  # real DNA has short-range structure; uniform would be 2.0
