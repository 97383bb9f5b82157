"""The promoter probes (``benchmarks/promoter_probes.py``): the Markov chains against hand
counts, the generator's ratio against its formula, the CNN on a task only position solves,
and the script on the real promoters without the CNN (a few seconds)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def probes(load_benchmark):
    return load_benchmark("promoter_probes")


def test_chain_contexts_skip_n_and_name_parts(probes):
    sequence_of, part, index = probes.chain_contexts(["ACGT", "ACNGT"], order=1)
    # ACGT: AC CG GT at positions 1-3 of 4 bp; ACNGT: AC and GT (CN and NG hold an N)
    assert sequence_of.tolist() == [0, 0, 0, 1, 1]
    assert index.tolist() == [0 * 4 + 1, 1 * 4 + 2, 2 * 4 + 3, 0 * 4 + 1, 2 * 4 + 3]
    assert part.tolist() == [1 * 20 // 4, 2 * 20 // 4, 3 * 20 // 4, 1 * 20 // 5, 4 * 20 // 5]


def test_fit_chain_counts_transitions_with_half_smoothing(probes):
    chain = probes.fit_chain(["AAAC", "AAAC"], order=1)  # from A: A 4 times, C twice
    assert np.allclose(np.exp(chain[0]), np.array([4.5, 2.5, 0.5, 0.5]) / 8)
    assert np.allclose(np.exp(chain[1:]), 0.25)  # contexts never seen: uniform
    assert chain.shape == (4, 4)


def test_part_log_odds_sum_each_parts_transitions(probes):
    chain = np.log(np.full((4, 4), 0.25))
    chain[0] = np.log([0.7, 0.1, 0.1, 0.1])  # after A
    sequence = "A" * 40  # 20 parts of 2 bp; 39 AA transitions (positions 1..39)
    odds = probes.part_log_odds([sequence], chain, order=1)
    per_part = np.full(20, 2.0)
    per_part[0] = 1.0  # position 0 has no context
    assert np.allclose(odds[0], per_part * (np.log(0.7) - np.log(0.25)))


def test_generator_log_odds_average_over_every_choice_of_replaced_parts(probes):
    """Against the definition: the mean over all C(20, 12) choices of the replaced parts of
    the product of their ratios exp(-g), enumerated."""
    rng = np.random.default_rng(0)
    odds = np.stack([rng.normal(0, 3, 20), np.zeros(20), np.full(20, 2.0)])
    choices = np.array(list(itertools.combinations(range(20), probes.REPLACED)))  # [125970, 12]
    ratio = np.exp(-odds[:, choices].sum(axis=2)).mean(axis=1)  # P(x | neg) / P(x | pos)
    assert np.allclose(probes.generator_log_odds(odds), -np.log(ratio), rtol=1e-10)
    # parts as likely under the chain as random: no evidence; every part g = 2: 12 x 2
    assert np.allclose(probes.generator_log_odds(odds)[1:], [0.0, 24.0])


def test_cnn_learns_where_a_motif_sits(probes):
    """Positives hold TATAAA in segment 3, negatives the same motif in segment 15: equal
    composition, so only position separates them."""
    rng = np.random.default_rng(0)

    def make(n, at):
        seqs = []
        for _ in range(n):
            bases = list(rng.choice(list("ACGT"), 60))
            bases[at : at + 6] = "TATAAA"
            seqs.append("".join(bases))
        return seqs

    splits = {}
    for name, n in (("train", 128), ("validation", 64), ("test", 64)):
        seqs = make(n // 2, 9) + make(n // 2, 45)
        splits[name] = (seqs, np.array([1] * (n // 2) + [0] * (n // 2)))
    validation, test, training = probes.train_cnn(splits, seconds=20, seed=0, validate_every=10)
    assert training["steps"] >= 10 and training["best_val_auroc"] > 0.95
    assert probes.binary_metrics(splits["test"][1], test)["auroc"] > 0.95
    assert validation.shape == (64,) and test.shape == (64,)


@pytest.mark.realdata
def test_script_on_real_promoters_without_cnn(probes, shared_data, tmp_path, capsys):
    out = tmp_path / "probes.json"
    results = probes.main(
        ["--negatives", "substitute", "--draws", "1", "--cnn-seconds", "0", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == results
    assert results["sizes"] == {"train": 4686, "validation": 586, "test": 586}
    reports = results["reports"]
    assert set(reports) == {"Markov chain LLR (order 5)", "generator's likelihood ratio"}
    for report in reports.values():  # substituted random bases are easy to see, not trivial
        assert 0.9 < report["metrics"]["auroc"] < 1.0
        assert report["class_counts"] == {"non_promoter": 293, "promoter": 293}
    assert "| generator's likelihood ratio |" in capsys.readouterr().out
