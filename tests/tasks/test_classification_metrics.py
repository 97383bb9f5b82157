"""Classification metrics against hand-computed values and scikit-learn; bootstrap intervals
against a plain resampling loop; the JSON report and the Markdown table."""

from __future__ import annotations

import functools
import json
import math
import time
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from dnabird.errors import ConfigError, InputError
from dnabird.tasks.classification_metrics import (
    BINARY_METRICS,
    best_f1_threshold,
    binary_curves,
    binary_metrics,
    bootstrap_intervals,
    classification_report,
    metrics_table,
    multiclass_metrics,
)


def _sklearn_binary(labels, scores, threshold=0.5):
    predicted = (scores > threshold).astype(int)
    return {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted, zero_division=0),
        "recall": skm.recall_score(labels, predicted, zero_division=0),
        "f1": skm.f1_score(labels, predicted, zero_division=0),
        "mcc": skm.matthews_corrcoef(labels, predicted),
        "auroc": skm.roc_auc_score(labels, scores),
        "auprc": skm.average_precision_score(labels, scores),
    }


def _random_binary(seed, n=500, decimals=2):
    """Labels and informative scores, rounded so that many scores tie."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.clip(0.5 + 0.25 * (labels - 0.5) + rng.normal(0, 0.25, n), 0, 1)
    return labels, np.round(scores, decimals)


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.4, 0.6, 0.2, 0.7, 0.4])
    # predicted 1 0 1 0 1 0: tp 2, fn 1, fp 1, tn 2
    # AUROC: positive 0.9 beats 3 negatives, 0.4 beats 0.2 and ties 0.4 (1.5), 0.7 beats 3
    # AP: ranked 0.9 P, 0.7 P, 0.6 N, {0.4 P, 0.4 N}, 0.2 N -> 1/3 * (1 + 1 + 3/5)
    values = binary_metrics(labels, scores)
    assert list(values) == list(BINARY_METRICS)
    expected = {
        "accuracy": 4 / 6,
        "precision": 2 / 3,
        "recall": 2 / 3,
        "f1": 2 / 3,
        "mcc": (2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3),
        "auroc": 7.5 / 9,
        "auprc": 13 / 15,
    }
    assert values == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_metrics_equal_sklearn(seed, threshold):
    labels, scores = _random_binary(seed)
    assert binary_metrics(labels, scores, threshold) == pytest.approx(
        _sklearn_binary(labels, scores, threshold), abs=1e-12
    )


def test_binary_metrics_accept_float_and_bool_labels():
    labels, scores = _random_binary(3, n=50)
    reference = binary_metrics(labels, scores)
    assert binary_metrics(labels.astype(float), scores) == reference
    assert binary_metrics(labels.astype(bool), scores.astype(np.float32)) == pytest.approx(
        reference, abs=1e-6
    )


def test_mcc_is_zero_without_warning_when_predictions_hold_one_class():
    labels = np.array([0, 1, 1, 0, 1])
    for scores in (np.full(5, 0.9), np.full(5, 0.1)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = binary_metrics(labels, scores)
        assert values["mcc"] == 0.0
        assert values["mcc"] == skm.matthews_corrcoef(labels, (scores > 0.5).astype(int))
        assert all(math.isfinite(v) for v in values.values())
    assert binary_metrics(labels, np.full(5, 0.1))["precision"] == 0.0  # nothing predicted


def test_ranking_metrics_are_nan_for_a_single_class():
    for label in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = binary_metrics(np.full(4, label), np.array([0.2, 0.6, 0.7, 0.9]))
        assert math.isnan(values["auroc"]) and math.isnan(values["auprc"])
        assert values["mcc"] == 0.0 and math.isfinite(values["accuracy"])


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1, 1], [0.2, np.nan, 0.4], "non-finite value .* at example 1"),
        ([0, 1, 1], [0.2, np.inf, 0.4], "non-finite"),
        ([0, 1, 1], [0.2, 1.5, 0.4], r"outside \[0, 1\].* example 1"),
        ([0, 1, 1], [-2.0, 0.5, 0.4], "outside"),
        ([0, 2, 1], [0.2, 0.5, 0.4], "found 2 at example 1"),
        ([0, -1, 1], [0.2, 0.5, 0.4], "found -1"),
        ([0, 0.5, 1], [0.2, 0.5, 0.4], "integers"),
        ([0, 1], [0.2, 0.5, 0.4], r"shape \[2\]"),
        ([], [], "no examples"),
        ([[0, 1]], [[0.2, 0.3]], "shape"),
        ([0, 1], ["a", "b"], "numbers"),
    ],
)
def test_bad_binary_inputs_are_refused(labels, scores, message):
    with pytest.raises(InputError, match=message):
        binary_metrics(np.asarray(labels), np.asarray(scores))


def test_bad_threshold_is_refused():
    with pytest.raises(ConfigError, match="threshold"):
        binary_metrics(np.array([0, 1]), np.array([0.1, 0.9]), threshold=1.5)


def _random_multiclass(seed, n=400, k=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.2 * np.eye(k)[labels]
    logits = np.round(logits, 1)  # ties in each column
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def _sklearn_multiclass(labels, probabilities):
    k = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    onehot = label_binarize(labels, classes=list(range(k)))
    return {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted, average="macro", zero_division=0),
        "recall": skm.recall_score(labels, predicted, average="macro", zero_division=0),
        "f1": skm.f1_score(labels, predicted, average="macro", zero_division=0),
        "mcc": skm.matthews_corrcoef(labels, predicted),
        "auroc": skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"),
        "auprc": skm.average_precision_score(onehot, probabilities, average="macro"),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_metrics_equal_sklearn(seed):
    labels, probabilities = _random_multiclass(seed)
    assert multiclass_metrics(labels, probabilities) == pytest.approx(
        _sklearn_multiclass(labels, probabilities), abs=1e-12
    )


def test_multiclass_class_never_predicted_counts_in_macro_precision():
    labels, probabilities = _random_multiclass(5, n=200, k=3)
    probabilities[:, 2] = 0.0  # class 2 is never the arg-max
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    values = multiclass_metrics(labels, probabilities)
    assert values == pytest.approx(_sklearn_multiclass(labels, probabilities), abs=1e-12)


def test_multiclass_rows_must_be_probabilities():
    labels = np.array([0, 1, 2])
    with pytest.raises(InputError, match="example 1 .* sum to"):
        multiclass_metrics(labels, np.array([[0.2, 0.3, 0.5], [0.9, 0.9, 0.1], [0, 0, 1.0]]))
    with pytest.raises(InputError, match="found 3"):
        multiclass_metrics(np.array([0, 3, 1]), np.full((3, 3), 1 / 3))
    with pytest.raises(InputError, match="non-finite"):
        multiclass_metrics(labels, np.array([[np.nan, 0.5, 0.5], [0, 1, 0], [0, 0, 1.0]]))


def test_bootstrap_equals_a_plain_resampling_loop_scored_by_sklearn():
    labels, scores = _random_binary(7, n=300)
    resamples, seed = 200, 11
    intervals = bootstrap_intervals(labels, scores, binary_metrics, resamples=resamples, seed=seed)
    rows = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    for name, fn in (
        ("auroc", skm.roc_auc_score),
        ("auprc", skm.average_precision_score),
        ("f1", lambda y, s: skm.f1_score(y, (s > 0.5).astype(int), zero_division=0)),
        ("mcc", lambda y, s: skm.matthews_corrcoef(y, (s > 0.5).astype(int))),
    ):
        values = [fn(labels[row], scores[row]) for row in rows]
        assert intervals[name] == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    low, high = intervals["auroc"]
    assert low < binary_metrics(labels, scores)["auroc"] < high


def _assert_same_intervals(first, second):
    assert first.keys() == second.keys()
    for name, interval in first.items():
        assert interval == pytest.approx(second[name], abs=1e-12), name


def test_vectorised_bootstrap_equals_calling_the_function_per_resample():
    labels, probabilities = _random_multiclass(2, n=120, k=3)
    fast = bootstrap_intervals(labels, probabilities, multiclass_metrics, resamples=50, seed=4)
    slow = bootstrap_intervals(
        labels, probabilities, lambda y, p: multiclass_metrics(y, p), resamples=50, seed=4
    )
    _assert_same_intervals(fast, slow)
    labels, scores = _random_binary(3, n=90)
    partial = functools.partial(binary_metrics, threshold=0.3)
    fast = bootstrap_intervals(labels, scores, partial, resamples=40, level=0.8, seed=1)
    slow = bootstrap_intervals(
        labels, scores, lambda y, s: binary_metrics(y, s, 0.3), resamples=40, level=0.8, seed=1
    )
    _assert_same_intervals(fast, slow)


def test_bootstrap_is_seeded_and_narrows_with_more_examples():
    labels, scores = _random_binary(1, n=2000)
    first = bootstrap_intervals(labels, scores, binary_metrics, resamples=300, seed=3)
    assert bootstrap_intervals(labels, scores, binary_metrics, resamples=300, seed=3) == first
    assert bootstrap_intervals(labels, scores, binary_metrics, resamples=300, seed=4) != first
    small = bootstrap_intervals(labels[:200], scores[:200], binary_metrics, resamples=300)
    width = {name: high - low for name, (low, high) in first.items()}
    for name, (low, high) in small.items():
        assert high - low > width[name]


def test_bootstrap_leaves_out_undefined_resamples_and_checks_its_options():
    labels = np.array([0] * 49 + [1])  # many resamples hold no positive
    scores = np.linspace(0, 1, 50)
    intervals = bootstrap_intervals(labels, scores, binary_metrics, resamples=100)
    assert all(math.isfinite(x) for x in intervals["auroc"])
    one_class = bootstrap_intervals(np.zeros(5, int), scores[:5], binary_metrics, resamples=10)
    assert all(math.isnan(x) for x in one_class["auroc"])
    with pytest.raises(ConfigError, match="resamples"):
        bootstrap_intervals(labels, scores, binary_metrics, resamples=0)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_intervals(labels, scores, binary_metrics, level=95)


def test_bootstrap_of_1000_resamples_over_1000_examples_is_fast():
    labels, scores = _random_binary(0, n=1000, decimals=6)
    start = time.perf_counter()
    bootstrap_intervals(labels, scores, binary_metrics, resamples=1000)
    assert time.perf_counter() - start < 5.0  # about 0.3 s on one core


def test_binary_report_is_json_and_matches_sklearn():
    labels, scores = _random_binary(4, n=300)
    report = classification_report(labels, scores, ["background", "promoter"], resamples=100)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["task"] == "binary" and report["n"] == 300
    assert report["class_counts"] == {
        "background": int((labels == 0).sum()),
        "promoter": int((labels == 1).sum()),
    }
    predicted = (scores > 0.5).astype(int)
    assert report["confusion"] == skm.confusion_matrix(labels, predicted).tolist()
    assert report["metrics"] == pytest.approx(_sklearn_binary(labels, scores), abs=1e-12)
    assert set(report["ci95"]) == set(BINARY_METRICS)
    expected = bootstrap_intervals(labels, scores, binary_metrics, resamples=100, seed=0)
    assert report["ci95"] == {name: list(pair) for name, pair in expected.items()}
    assert (report["threshold"], report["resamples"], report["seed"]) == (0.5, 100, 0)


def test_multiclass_report_and_single_class_report():
    labels, probabilities = _random_multiclass(0, n=150, k=3)
    report = classification_report(labels, probabilities, ["a", "b", "c"], resamples=50, seed=2)
    assert report["task"] == "multiclass" and report["threshold"] is None
    assert report["confusion"] == skm.confusion_matrix(labels, probabilities.argmax(1)).tolist()
    assert report["metrics"] == pytest.approx(multiclass_metrics(labels, probabilities))
    one_class = classification_report(np.ones(6, int), np.linspace(0.1, 0.9, 6), ["n", "p"])
    assert one_class["metrics"]["auroc"] is None and one_class["ci95"]["auroc"] is None
    json.dumps(one_class, allow_nan=False)
    with pytest.raises(ConfigError, match="distinct"):
        classification_report(labels, probabilities, ["a", "a", "c"])
    with pytest.raises(InputError, match="shape"):
        classification_report(labels, probabilities[:, 0], ["a", "b", "c"])


def test_metrics_table():
    reports = {
        "bigbird": {
            "metrics": {"f1": 0.97312, "mcc": 0.9, "auroc": 0.99},
            "ci95": {"f1": [0.961, 0.98349], "mcc": [0.88, 0.92], "auroc": [0.985, 0.995]},
        },
        "kmer_logreg": {
            "metrics": {"f1": 0.5, "mcc": -0.01, "auroc": None},
            "ci95": {"f1": [0.4, 0.6], "mcc": None, "auroc": None},
        },
    }
    assert metrics_table(reports) == (
        "| model | F1 (95% CI) | MCC (95% CI) | AUROC (95% CI) |\n"
        "|---|---|---|---|\n"
        "| bigbird | 0.973 [0.961, 0.983] | 0.900 [0.880, 0.920] | 0.990 [0.985, 0.995] |\n"
        "| kmer_logreg | 0.500 [0.400, 0.600] | -0.010 | n/a |\n"
    )
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        metrics_table(reports, names=("auc",))


def test_binary_curves_equal_sklearn():
    labels, scores = _random_binary(9, n=200)
    curves = binary_curves(labels, scores)
    fpr, tpr, thresholds = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curves["fpr"], fpr)
    np.testing.assert_allclose(curves["tpr"], tpr)
    np.testing.assert_allclose(curves["thresholds"][1:], thresholds[1:])
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    # scikit-learn lists thresholds upwards and ends with (recall 0, precision 1)
    np.testing.assert_allclose(curves["recall"], recall[::-1])
    np.testing.assert_allclose(curves["precision"], precision[::-1])
    values = binary_metrics(labels, scores)
    assert np.trapezoid(curves["tpr"], curves["fpr"]) == pytest.approx(values["auroc"])
    steps = np.diff(curves["recall"]) * curves["precision"][1:]
    assert steps.sum() == pytest.approx(values["auprc"])
    with pytest.raises(InputError, match="both classes"):
        binary_curves(np.ones(3, int), np.array([0.1, 0.2, 0.3]))


def test_best_f1_threshold_by_hand_and_against_every_cut():
    # scores 0.9 (1), 0.8 (0), 0.7 (1), 0.6 (1), 0.2 (0): calling the top four positive
    # gives F1 2*3 / (2*3 + 1 + 0) = 0.857, the best; the cut lies between 0.6 and 0.2
    labels = np.array([1, 0, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    assert best_f1_threshold(labels, scores) == pytest.approx(0.4)
    assert binary_metrics(labels, scores, 0.4)["f1"] == pytest.approx(6 / 7)
    for seed in range(5):  # no other cut (midway between distinct scores) does better
        labels, scores = _random_binary(seed, n=150)
        chosen = best_f1_threshold(labels, scores)
        distinct = np.unique(scores)
        cuts = [0.0, *((distinct[1:] + distinct[:-1]) / 2)]
        best = max(skm.f1_score(labels, scores > cut) for cut in cuts)
        assert skm.f1_score(labels, scores > chosen) == pytest.approx(best)
    with pytest.raises(InputError, match="both classes"):
        best_f1_threshold(np.zeros(3, int), np.array([0.1, 0.2, 0.3]))
