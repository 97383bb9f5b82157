"""Baselines: features against plain Python counting, and sanity checks on generated data
(a planted k-mer, a base at a fixed position, shuffled labels)."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter

import numpy as np
import pytest

from dnabird.baselines import (
    C_GRID,
    KmerLogisticRegression,
    OneHotLogisticRegression,
    kmer_frequencies,
    one_hot_features,
    run_baselines,
)
from dnabird.errors import ConfigError, InputError
from dnabird.tasks.classification_metrics import (
    best_f1_threshold,
    binary_metrics,
    classification_report,
)


def _random_sequences(rng, count, length):
    codes = rng.integers(0, 4, (count, length))
    return ["".join("ACGT"[c] for c in row) for row in codes]


def _naive_kmer_frequencies(sequence, max_k):
    """Reference: count every k-mer of ``sequence`` with Python strings."""
    sequence = sequence.upper()
    sequence = "".join(c if c in "ACGT" else "N" for c in sequence)
    row = []
    for k in range(1, max_k + 1):
        kmers = [sequence[i : i + k] for i in range(len(sequence) - k + 1)]
        counts = Counter(kmer for kmer in kmers if "N" not in kmer)
        total = sum(counts.values())
        row += [
            counts["".join(kmer)] / total if total else 0.0
            for kmer in itertools.product("ACGT", repeat=k)
        ]
    return row


def test_kmer_frequencies_equal_python_counting():
    rng = np.random.default_rng(0)
    sequences = _random_sequences(rng, 6, 40) + [
        "acgtNNacgtRYacgtacgt",  # lower case and IUPAC codes (read as N)
        "ACG",  # shorter than k = 4
        "NNNNNNNN",  # no k-mer at all
        "AAAAAAAAAA",
    ]
    features = kmer_frequencies(sequences, max_k=4)
    assert features.shape == (len(sequences), 4 + 16 + 64 + 256)
    expected = np.array([_naive_kmer_frequencies(s, 4) for s in sequences])
    np.testing.assert_allclose(features.toarray(), expected, rtol=1e-6, atol=0)


def test_kmer_columns_by_hand():
    row = kmer_frequencies(["AACG"], max_k=2).toarray()[0]
    assert row[:4].tolist() == [0.5, 0.25, 0.25, 0.0]  # A, C, G, T
    second = {4 + 0: "AA", 4 + 1: "AC", 4 + 6: "CG"}  # 4 + 4 * first + second base
    assert {int(i) for i in np.flatnonzero(row[4:]) + 4} == set(second)
    assert row[list(second)] == pytest.approx([1 / 3] * 3)


def test_kmer_counting_of_30000_sequences_is_fast():
    rng = np.random.default_rng(1)
    sequences = [
        row.tobytes().decode()
        for row in np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, (30_000, 101))]
    ]
    start = time.perf_counter()
    features = kmer_frequencies(sequences, max_k=6)
    assert time.perf_counter() - start < 20.0  # about 2 s on one core
    assert features.shape == (30_000, 5460)


def test_bad_sequences_are_refused():
    with pytest.raises(InputError, match=r"sequence 1 \(0-based\).*'X' at position 2"):
        kmer_frequencies(["ACGT", "ACXT"])
    with pytest.raises(InputError, match="no sequences"):
        kmer_frequencies([])
    with pytest.raises(ConfigError, match="max_k"):
        KmerLogisticRegression(max_k=0)
    with pytest.raises(ConfigError, match="C "):
        OneHotLogisticRegression(C=-1.0)


def test_one_hot_features_by_hand_and_lengths_checked():
    assert one_hot_features(["ACgN"]).tolist() == [[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]]
    with pytest.raises(ConfigError, match="expected 4 bp, sequence 2 .* has 5 bp"):
        one_hot_features(["ACGT", "ACGT", "ACGTA"])
    model = OneHotLogisticRegression(C=1.0).fit(["ACGT", "TGCA", "AAAA", "CCCC"], [0, 1, 0, 1])
    with pytest.raises(ConfigError, match="expected 4 bp, sequence 0 .* has 3 bp"):
        model.predict_proba(["ACG"])


def test_training_labels_checked():
    with pytest.raises(InputError, match="class 1 has no training examples"):
        KmerLogisticRegression(C=1.0).fit(["ACGT", "ACGA", "ACGC"], [0, 2, 2])
    with pytest.raises(InputError, match="one class only"):
        KmerLogisticRegression(C=1.0).fit(["ACGT", "ACGA"], [0, 0])
    with pytest.raises(InputError, match="one label per sequence"):
        KmerLogisticRegression(C=1.0).fit(["ACGT", "ACGA"], [0, 1, 1])
    with pytest.raises(RuntimeError, match="fit"):
        KmerLogisticRegression().predict_proba(["ACGT"])


def _split(sequences, labels, train=900):
    labels = np.asarray(labels)
    return (sequences[:train], labels[:train]), (sequences[train:], labels[train:])


def _test_auroc(model, train, test):
    return binary_metrics(test[1], model.fit(*train).predict_proba(test[0])[:, 1])["auroc"]


def _planted_kmer_data(seed, count=1200, length=100, motif="TATAAA"):
    rng = np.random.default_rng(seed)
    sequences = _random_sequences(rng, count, length)
    labels = rng.integers(0, 2, count)
    for i in np.flatnonzero(labels):
        at = rng.integers(0, length - len(motif))
        sequences[i] = sequences[i][:at] + motif + sequences[i][at + len(motif) :]
    return sequences, labels


def _fixed_position_data(seed, count=1200, length=60, position=30):
    rng = np.random.default_rng(seed)
    sequences = _random_sequences(rng, count, length)
    labels = np.array([int(s[position] in "AG") for s in sequences])  # purine at one position
    return sequences, labels


def test_kmer_model_finds_a_planted_kmer():
    train, test = _split(*_planted_kmer_data(0))
    assert _test_auroc(KmerLogisticRegression(), train, test) > 0.95


def test_one_hot_model_finds_a_base_at_a_fixed_position_and_kmer_model_does_not():
    train, test = _split(*_fixed_position_data(1))
    assert _test_auroc(OneHotLogisticRegression(), train, test) > 0.95
    assert _test_auroc(KmerLogisticRegression(), train, test) < 0.7


@pytest.mark.parametrize("data", [_planted_kmer_data, _fixed_position_data])
def test_shuffled_labels_give_chance(data):
    sequences, labels = data(2)
    labels = np.random.default_rng(3).permutation(labels)
    train, test = _split(sequences, labels)
    for model in (KmerLogisticRegression(), OneHotLogisticRegression()):
        assert abs(_test_auroc(model, train, test) - 0.5) < 0.1


def test_cross_validation_picks_c_from_the_grid_deterministically():
    train, test = _split(*_planted_kmer_data(4, count=300), train=200)
    first = KmerLogisticRegression(max_k=3, seed=5).fit(*train)
    second = KmerLogisticRegression(max_k=3, seed=5).fit(*train)
    assert first.chosen_C in C_GRID and second.chosen_C == first.chosen_C
    np.testing.assert_array_equal(first.predict_proba(test[0]), second.predict_proba(test[0]))
    assert KmerLogisticRegression(max_k=3, C=0.5).fit(*train).chosen_C == 0.5


def test_run_baselines_reports_both_models_on_the_test_split():
    train, test = _split(*_planted_kmer_data(6))
    reports = run_baselines(train, test, ["random", "motif"], resamples=50, seed=0)
    assert list(reports) == ["kmer_logreg", "onehot_logreg"]
    model = KmerLogisticRegression(seed=0).fit(*train)
    scores = model.predict_proba(test[0])[:, 1]
    expected = classification_report(test[1], scores, ["random", "motif"], resamples=50, seed=0)
    assert reports["kmer_logreg"] == {**expected, "baseline": model.settings()}
    assert reports["kmer_logreg"]["baseline"]["C"] in C_GRID
    assert reports["onehot_logreg"]["baseline"]["length"] == 100
    json.dumps(reports, allow_nan=False)
    assert reports["kmer_logreg"]["n"] == 300 and reports["kmer_logreg"]["metrics"]["auroc"] > 0.9


def test_run_baselines_choose_their_thresholds_on_a_validation_split():
    train, held_out = _split(*_planted_kmer_data(6))
    validation = (held_out[0][:150], held_out[1][:150])
    test = (held_out[0][150:], held_out[1][150:])
    fixed = run_baselines(train, test, ["random", "motif"], resamples=20, threshold=0.3)
    assert {r["threshold"] for r in fixed.values()} == {0.3}
    chosen = run_baselines(train, test, ["random", "motif"], resamples=20, validation=validation)
    model = KmerLogisticRegression(seed=0).fit(*train)
    expected = best_f1_threshold(validation[1], model.predict_proba(validation[0])[:, 1])
    assert chosen["kmer_logreg"]["threshold"] == expected
    scores = model.predict_proba(test[0])[:, 1]
    assert chosen["kmer_logreg"]["metrics"]["f1"] == binary_metrics(test[1], scores, expected)["f1"]


def test_run_baselines_average_strands_like_the_model():
    """``average_strands``: each baseline's test and validation probabilities are the mean
    of the forward strand's and of a by-hand reverse complement's."""
    train, held_out = _split(*_planted_kmer_data(6))
    validation = (held_out[0][:150], held_out[1][:150])
    test = (held_out[0][150:], held_out[1][150:])
    reports = run_baselines(
        train, test, ["random", "motif"], resamples=20, validation=validation, average_strands=True
    )
    reverse = str.maketrans("ACGT", "TGCA")
    for name, model in (
        ("kmer_logreg", KmerLogisticRegression(seed=0)),
        ("onehot_logreg", OneHotLogisticRegression(seed=0)),
    ):
        model.fit(*train)

        def averaged(sequences, model=model):
            flipped = [s[::-1].translate(reverse) for s in sequences]
            return (model.predict_proba(sequences) + model.predict_proba(flipped))[:, 1] / 2

        assert not np.allclose(averaged(test[0]), model.predict_proba(test[0])[:, 1])
        cut = best_f1_threshold(validation[1], averaged(validation[0]))
        assert reports[name]["threshold"] == cut
        expected = binary_metrics(test[1], averaged(test[0]), cut)
        assert reports[name]["metrics"]["auroc"] == pytest.approx(expected["auroc"])
        assert reports[name]["metrics"]["f1"] == pytest.approx(expected["f1"])


def test_run_baselines_one_hot_only_for_fixed_lengths():
    sequences, labels = _planted_kmer_data(7, count=200)
    sequences[-1] = sequences[-1][:-5]  # one test sequence is shorter
    train, test = _split(sequences, labels, train=150)
    assert list(run_baselines(train, test, ["a", "b"], resamples=10)) == ["kmer_logreg"]
    with pytest.raises(ConfigError, match="has 95 bp"):
        run_baselines(train, test, ["a", "b"], fixed_length=True, resamples=10)
    with pytest.raises(InputError, match="2 classes but 3 class names"):
        run_baselines(train, test, ["a", "b", "c"], resamples=10)


def test_run_baselines_multiclass():
    rng = np.random.default_rng(8)
    motifs = ["TATAAA", "GGGCGG", "CCAATC"]
    labels = rng.integers(0, 3, 450)
    sequences = _random_sequences(rng, 450, 80)
    sequences = [s[:30] + motifs[y] + s[36:] for s, y in zip(sequences, labels, strict=True)]
    train, test = _split(sequences, labels, train=300)
    reports = run_baselines(train, test, ["tata", "gc", "caat"], resamples=20)
    for report in reports.values():
        assert report["task"] == "multiclass" and report["metrics"]["accuracy"] > 0.9
