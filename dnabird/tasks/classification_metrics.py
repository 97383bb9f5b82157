"""Classification metrics with percentile-bootstrap confidence intervals, and their report.

Inputs are numpy arrays of one labelled test set:

- **binary**: ``labels`` int {0, 1} ``[N]`` and ``scores`` = P(class 1) ``[N]`` in [0, 1];
  an example is predicted positive when ``score > threshold`` (as torchmetrics and
  scikit-learn's ``predict`` do).
- **multiclass**: ``labels`` int 0..K-1 ``[N]`` and ``probabilities`` ``[N, K]`` (rows sum to
  1); the prediction is the arg-max.

Metrics (:data:`BINARY_METRICS`; multiclass uses the same names, macro-averaged):

- ``accuracy``; ``precision``, ``recall``, ``f1`` of the positive class (binary) or their
  unweighted mean over the classes that occur in the labels or the predictions (multiclass,
  as scikit-learn's ``average="macro"``); a ratio with a zero denominator counts 0
  (scikit-learn's ``zero_division=0``), e.g. precision when nothing is predicted positive.
- ``mcc``: Matthews correlation (Gorodkin's R_K for K classes); 0 when the predictions or
  the labels hold a single class (its denominator is 0), never NaN.
- ``auroc``: area under the ROC curve, ties counted one half (the Mann-Whitney statistic);
  ``auprc``: average precision, the step-wise area under the precision-recall curve without
  interpolation (scikit-learn's ``average_precision_score``, torchmetrics'
  ``AveragePrecision``). Both are NaN when the labels hold one class only (never 0.5 or 0).
  Multiclass: one-vs-rest per class, averaged over the classes that have both positive and
  negative examples.

Every metric is computed from example *weights* (:class:`_Scorer`): the data as they are is
weight 1 per example, and a bootstrap resample (rows drawn with replacement) is the number of
times each row was drawn. So 1,000 resamples are a few array operations over a
``[resamples, N]`` count matrix instead of 1,000 calls; :func:`bootstrap_intervals` gives the
same numbers as calling the metric function on each resampled set (tested).

:func:`classification_report` bundles the metrics, their 95% intervals and the confusion
matrix into a JSON-able dict (NaN written as ``null``); :func:`metrics_table` sets several
reports (a model and its baselines) side by side in Markdown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse

from dnabird.errors import ConfigError, InputError

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc")
"""Names of the metrics :func:`binary_metrics` and :func:`multiclass_metrics` return."""

DISPLAY_NAMES = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "mcc": "MCC",
    "auroc": "AUROC",
    "auprc": "AUPRC",
}
"""How each metric is named in tables and figures."""

_ROW_SUM_TOLERANCE = 1e-3
_CHUNK_ELEMENTS = 1 << 22  # bootstrap counts handled per step: [rows, N] float64, 32 MiB

MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


# ---------------------------------------------------------------------------------------
# Input checks


def check_labels(labels: Any, num_classes: int) -> np.ndarray:
    """``labels`` as int64 ``[N]`` with values in 0..num_classes-1, or InputError."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be one label per example, shape [N]; got {labels.shape}")
    if labels.size == 0:
        raise InputError("no examples to score: the labels are empty")
    whole = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
    if not whole and not (
        np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels))
    ):
        raise InputError(f"labels must be integers 0..{num_classes - 1}; got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise InputError(
            f"labels must be integers 0..{num_classes - 1}; found {labels[bad[0]].item()!r} "
            f"at example {bad[0]} (0-based)"
        )
    return labels.astype(np.int64)


def _check_probabilities(scores: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``scores`` as float64 of ``shape``, finite and in [0, 1], or InputError."""
    scores = np.asarray(scores)
    if scores.shape != shape:
        raise InputError(f"{what} must have shape {list(shape)}; got {list(scores.shape)}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(
        scores.dtype, np.complexfloating
    ):
        raise InputError(f"{what} must be numbers; got {scores.dtype}")
    scores = scores.astype(np.float64)
    for problem, bad in (
        ("a non-finite value", ~np.isfinite(scores)),
        ("a value outside [0, 1]", (scores < 0) | (scores > 1)),
    ):
        where = np.argwhere(bad)
        if where.size:
            example = int(where[0][0])
            raise InputError(
                f"{what} must be probabilities in [0, 1]; found {problem} "
                f"({scores[tuple(where[0])].item()!r}) at example {example} (0-based); "
                "a model that outputs NaN or logits is not scored"
            )
    return scores


def _check_binary(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = check_labels(labels, 2)
    return labels, _check_probabilities(scores, labels.shape, "scores (P(class 1))")


def _check_multiclass(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise InputError(
            f"probabilities must have shape [N, K] with K >= 2 classes; got {probabilities.shape}"
        )
    labels = check_labels(labels, probabilities.shape[1])
    probabilities = _check_probabilities(
        probabilities, (labels.size, probabilities.shape[1]), "probabilities"
    )
    off = np.flatnonzero(np.abs(probabilities.sum(axis=1) - 1.0) > _ROW_SUM_TOLERANCE)
    if off.size:
        raise InputError(
            f"probabilities of example {off[0]} (0-based) sum to "
            f"{probabilities[off[0]].sum():.6g}, not 1; pass softmax outputs (one class per "
            "example), not independent per-class scores"
        )
    return labels, probabilities


# ---------------------------------------------------------------------------------------
# Weighted metrics


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


class Ranking:
    """One score column against one positive class, sorted once for every weighting.

    ``scores`` ``[N]``, ``positive`` bool ``[N]``. Examples are sorted by descending score
    and grouped by equal score (ties share one threshold).
    """

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        self.order = np.argsort(-scores, kind="stable")
        ranked = scores[self.order]
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        self.positive = positive[self.order].astype(np.float64)
        self.scores = ranked[self.starts]  # [G] distinct scores, descending

    def grouped(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted positives and negatives per distinct score: ``[R, G]`` each."""
        ranked = weights[:, self.order]
        positives = np.add.reduceat(ranked * self.positive, self.starts, axis=1)
        negatives = np.add.reduceat(ranked * (1.0 - self.positive), self.starts, axis=1)
        return positives, negatives

    def areas(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and average precision ``[R]`` each; NaN where a class has no weight."""
        positives, negatives = self.grouped(weights)
        num_pos, num_neg = positives.sum(axis=1), negatives.sum(axis=1)
        seen_neg = np.cumsum(negatives, axis=1)  # negatives scored >= each group
        seen_pos = np.cumsum(positives, axis=1)
        # Each positive beats the negatives scored below it and ties half of its own group.
        wins = (positives * (num_neg[:, None] - seen_neg + 0.5 * negatives)).sum(axis=1)
        precision = _ratio(seen_pos, seen_pos + seen_neg)
        defined = (num_pos > 0) & (num_neg > 0)
        auroc = np.where(defined, _ratio(wins, num_pos * num_neg), np.nan)
        auprc = np.where(defined, _ratio((positives * precision).sum(axis=1), num_pos), np.nan)
        return auroc, auprc


class _Scorer:
    """Every metric of one labelled set, for many example weightings at once.

    ``labels`` and ``predicted`` int ``[N]`` in 0..K-1; ``rankings`` the score columns of the
    ranking metrics (one for binary, K one-vs-rest for multiclass); ``positive`` the class
    whose precision/recall/F1 are reported (binary), or None for the macro average.
    :meth:`evaluate` takes weights ``[R, N]`` (how often each example counts) and returns
    ``{metric: [R]}``.
    """

    def __init__(
        self,
        labels: np.ndarray,
        predicted: np.ndarray,
        rankings: list[Ranking],
        num_classes: int,
        positive: int | None,
    ) -> None:
        self.num_examples = labels.size
        self.num_classes = num_classes
        self.positive = positive
        self.rankings = rankings
        pairs = labels * num_classes + predicted
        self._pairs = scipy.sparse.csr_matrix(
            (np.ones(labels.size), (np.arange(labels.size), pairs)),
            shape=(labels.size, num_classes * num_classes),
        )

    def confusion(self, weights: np.ndarray) -> np.ndarray:
        """``[R, K, K]`` weighted counts: rows true class, columns predicted class."""
        k = self.num_classes
        return np.asarray(weights @ self._pairs).reshape(-1, k, k)

    def evaluate(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        confusion = self.confusion(weights)
        hits = np.diagonal(confusion, axis1=1, axis2=2)  # [R, K]
        true_totals, predicted_totals = confusion.sum(axis=2), confusion.sum(axis=1)
        total = true_totals.sum(axis=1)
        per_class = {
            "precision": _ratio(hits, predicted_totals),
            "recall": _ratio(hits, true_totals),
            "f1": _ratio(2 * hits, predicted_totals + true_totals),
        }
        if self.positive is not None:
            averaged = {name: value[:, self.positive] for name, value in per_class.items()}
        else:
            present = (true_totals + predicted_totals) > 0
            averaged = {
                name: (value * present).sum(axis=1) / present.sum(axis=1)
                for name, value in per_class.items()
            }
        correct = hits.sum(axis=1)
        covariance = correct * total - (true_totals * predicted_totals).sum(axis=1)
        spread = (total**2 - (true_totals**2).sum(axis=1)) * (
            total**2 - (predicted_totals**2).sum(axis=1)
        )
        areas = [ranking.areas(weights) for ranking in self.rankings]
        return {
            "accuracy": correct / total,
            **averaged,
            "mcc": _ratio(covariance, np.sqrt(spread)),
            "auroc": _mean_defined([auroc for auroc, _ in areas]),
            "auprc": _mean_defined([auprc for _, auprc in areas]),
        }

    def values(self) -> dict[str, float]:
        """The metrics of the data as they are (weight 1 per example)."""
        point = self.evaluate(np.ones((1, self.num_examples)))
        return {name: float(value[0]) for name, value in point.items()}


def _mean_defined(columns: list[np.ndarray]) -> np.ndarray:
    """Mean over columns of the non-NaN entries, per row; NaN where none is defined."""
    stacked = np.stack(columns)
    defined = ~np.isnan(stacked)
    count = defined.sum(axis=0)
    total = np.where(defined, stacked, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _binary_scorer(labels: Any, scores: Any, threshold: float = 0.5) -> _Scorer:
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold must be a probability in [0, 1]; got {threshold!r}")
    labels, scores = _check_binary(labels, scores)
    predicted = (scores > threshold).astype(np.int64)
    return _Scorer(labels, predicted, [Ranking(scores, labels == 1)], 2, positive=1)


def _multiclass_scorer(labels: Any, probabilities: Any) -> _Scorer:
    labels, probabilities = _check_multiclass(labels, probabilities)
    k = probabilities.shape[1]
    rankings = [Ranking(probabilities[:, c], labels == c) for c in range(k)]
    return _Scorer(labels, probabilities.argmax(axis=1), rankings, k, positive=None)


def binary_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics of binary predictions (see the module docstring for each definition).

    ``labels`` int {0, 1} ``[N]``; ``scores`` P(positive) ``[N]`` in [0, 1]; an example is
    predicted positive when its score is above ``threshold``. Returns
    ``{name: value for name in BINARY_METRICS}``: the metrics of the thresholded predictions
    and the ranking metrics. AUROC and AUPRC are NaN when the labels hold one class only.
    Raises InputError for non-finite or out-of-range scores and labels other than 0/1.
    """
    return _binary_scorer(labels, scores, threshold).values()


def binary_curves(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """ROC and precision-recall curve points, one per distinct score (highest first), after
    a first point for the threshold above every score.

    Returns float64 arrays of length G + 1 (G distinct scores): ``thresholds`` (``inf``,
    then each score: predicted positive when ``score >= threshold``), ``fpr`` and ``tpr``
    (fractions of negatives and positives at or above the threshold), ``recall`` (= tpr) and
    ``precision`` (1 at the first point, by convention). The step function through
    (recall, precision) with each precision held back to the previous recall has area
    AUPRC. InputError when the labels hold one class only (no curve is defined).
    """
    labels, scores = _check_binary(labels, scores)
    if labels.min() == labels.max():
        raise InputError(f"ROC and PR curves need both classes; every label is {labels[0]}")
    ranking = Ranking(scores, labels == 1)
    positives, negatives = (x[0] for x in ranking.grouped(np.ones((1, labels.size))))
    true_pos = np.concatenate([[0.0], np.cumsum(positives)])
    false_pos = np.concatenate([[0.0], np.cumsum(negatives)])
    precision = np.ones_like(true_pos)
    precision[1:] = true_pos[1:] / (true_pos[1:] + false_pos[1:])
    return {
        "thresholds": np.concatenate([[np.inf], ranking.scores]),
        "fpr": false_pos / false_pos[-1],
        "tpr": true_pos / true_pos[-1],
        "recall": true_pos / true_pos[-1],
        "precision": precision,
    }


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The decision threshold that maximizes F1 on ``labels`` (int {0, 1} ``[N]``) and
    ``scores`` (P(positive) ``[N]``), for predictions ``score > threshold``: midway between
    the lowest score the best cut calls positive and the next lower distinct score (0 below
    the lowest), so new scores near the cut fall on the side the data put them. Of equal F1s
    the highest threshold wins. InputError when the labels hold one class only."""
    curves = binary_curves(labels, scores)
    positives = int(np.sum(labels))
    true_pos = curves["tpr"] * positives
    false_pos = curves["fpr"] * (len(labels) - positives)
    f1 = 2 * true_pos / (true_pos + false_pos + positives)  # [G + 1]; 0 at the first point
    best = int(np.argmax(f1[1:])) + 1
    cut = curves["thresholds"]
    lower = cut[best + 1] if best + 1 < len(cut) else 0.0
    return float((cut[best] + lower) / 2)


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Metrics of K-class predictions: labels int 0..K-1 ``[N]``, ``probabilities`` ``[N, K]``.

    Accuracy, macro precision/recall/F1, MCC (R_K) of the arg-max predictions; macro
    one-vs-rest AUROC/AUPRC (see the module docstring). Keys are :data:`BINARY_METRICS`.
    """
    return _multiclass_scorer(labels, probabilities).values()


# ---------------------------------------------------------------------------------------
# Bootstrap


def _batched_scorer(metric_fn: MetricFn, labels: Any, scores: Any) -> _Scorer | None:
    """The weighted scorer behind ``metric_fn`` when it is one of ours (or a keyword partial
    of one), so its bootstrap is vectorised; None for any other function."""
    keywords: dict[str, Any] = {}
    if isinstance(metric_fn, functools.partial) and not metric_fn.args:
        keywords, metric_fn = dict(metric_fn.keywords), metric_fn.func
    if metric_fn is binary_metrics:
        return _binary_scorer(labels, scores, **keywords)
    if metric_fn is multiclass_metrics:
        return _multiclass_scorer(labels, scores, **keywords)
    return None


def check_bootstrap(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"resamples must be a whole number >= 1; got {resamples!r}")
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ConfigError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")


def resampled_rows(num_examples: int, resamples: int, seed: int):
    """Yield ``[rows, N]`` row indices of bootstrap resamples (drawn with replacement), in
    chunks of a size fixed by N, from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // num_examples)
    for start in range(0, resamples, chunk):
        yield rng.integers(0, num_examples, size=(min(chunk, resamples - start), num_examples))


def row_counts(rows: np.ndarray) -> np.ndarray:
    """``[R, N]`` how often each example occurs in each resample of ``rows`` ``[R, N]``."""
    r, n = rows.shape
    flat = rows + (np.arange(r) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``values``; (NaN, NaN) when none is finite (e.g.
    AUROC of a set with one class). Resamples where a metric is undefined are left out."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


def _bootstrap(scorer: _Scorer, resamples: int, level: float, seed: int) -> dict[str, tuple]:
    draws: dict[str, list[np.ndarray]] = {}
    for rows in resampled_rows(scorer.num_examples, resamples, seed):
        for name, value in scorer.evaluate(row_counts(rows)).items():
            draws.setdefault(name, []).append(value)
    return {
        name: percentile_interval(np.concatenate(parts), level) for name, parts in draws.items()
    }


def bootstrap_intervals(
    labels: np.ndarray,
    scores: np.ndarray,
    metric_fn: MetricFn,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals ``{metric: (low, high)}`` for every metric ``metric_fn``
    returns.

    Each resample draws N rows of (``labels``, ``scores``) with replacement (numpy
    ``default_rng(seed)``; the same seed gives the same intervals) and scores them with
    ``metric_fn(labels, scores)``; the interval holds the central ``level`` of the resampled
    values (resamples where a metric is undefined, NaN, are left out; (NaN, NaN) when it is
    undefined in all). For :func:`binary_metrics` and :func:`multiclass_metrics` (also
    through ``functools.partial(binary_metrics, threshold=...)``) the resamples are scored
    all at once from their row counts, with the same result as calling the function on each.
    """
    check_bootstrap(resamples, level)
    scorer = _batched_scorer(metric_fn, labels, scores)
    if scorer is not None:
        return _bootstrap(scorer, resamples, level, seed)
    labels, scores = np.asarray(labels), np.asarray(scores)
    if len(labels) == 0 or len(labels) != len(scores):
        raise InputError(
            f"labels and scores must hold the same number (> 0) of examples; "
            f"got {len(labels)} and {len(scores)}"
        )
    draws: dict[str, list[float]] = {}
    for rows in resampled_rows(len(labels), resamples, seed):
        for row in rows:
            for name, value in metric_fn(labels[row], scores[row]).items():
                draws.setdefault(name, []).append(value)
    return {
        name: percentile_interval(np.asarray(values, dtype=np.float64), level)
        for name, values in draws.items()
    }


# ---------------------------------------------------------------------------------------
# Report and table


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def classification_report(
    labels: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Metrics, 95% bootstrap intervals and the confusion matrix of one test set, JSON-able.

    Binary when ``len(classes) == 2`` (``scores`` = P(``classes[1]``) ``[N]``, positive when
    above ``threshold``), else multiclass (``scores`` ``[N, K]`` probabilities, arg-max).
    ``labels`` are class indices into ``classes``. Returns::

        {"task": "binary" | "multiclass", "n": N, "classes": [...],
         "class_counts": {class: examples}, "metrics": {name: value},
         "ci95": {name: [low, high]}, "confusion": [[count]] (rows true, columns predicted),
         "threshold": threshold (None for multiclass), "resamples": ..., "seed": ...,
         "ci_method": "..."}

    Undefined values (AUROC of a single-class set) are None, never NaN, 0 or 0.5.
    """
    classes = [str(name) for name in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be two or more distinct names; got {classes}")
    check_bootstrap(resamples, 0.95)
    binary = len(classes) == 2
    if binary:
        scorer = _binary_scorer(labels, scores, threshold)
    else:
        scorer = _multiclass_scorer(labels, scores)
    counts = scorer.confusion(np.ones((1, scorer.num_examples)))[0].round().astype(np.int64)
    intervals = _bootstrap(scorer, resamples, 0.95, seed)
    return {
        "task": "binary" if binary else "multiclass",
        "n": int(scorer.num_examples),
        "classes": classes,
        "class_counts": dict(zip(classes, counts.sum(axis=1).tolist(), strict=True)),
        "metrics": {name: _json_number(value) for name, value in scorer.values().items()},
        "ci95": {
            name: None if math.isnan(low) else [low, high]
            for name, (low, high) in intervals.items()
        },
        "confusion": counts.tolist(),
        "threshold": threshold if binary else None,
        "resamples": resamples,
        "seed": seed,
        "ci_method": "percentile bootstrap over test examples (rows resampled with replacement)",
    }


def metrics_table(
    reports: Mapping[str, Mapping[str, Any]], names: Sequence[str] = ("f1", "mcc", "auroc")
) -> str:
    """A Markdown table of several :func:`classification_report` results side by side::

        | model | F1 (95% CI) | MCC (95% CI) | AUROC (95% CI) |
        |---|---|---|---|
        | bigbird | 0.973 [0.962, 0.983] | ... |

    One row per report (in the order given): the value and its interval, to 3 decimals;
    "n/a" where a metric is undefined (None).
    """
    unknown = [name for name in names if name not in DISPLAY_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; choose from {', '.join(DISPLAY_NAMES)}")
    header = ["model", *(f"{DISPLAY_NAMES[name]} (95% CI)" for name in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, report in reports.items():
        cells = [model]
        for name in names:
            value, interval = report["metrics"].get(name), report["ci95"].get(name)
            if value is None:
                cells.append("n/a")
            elif interval is None:
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
