"""Multi-label (chromatin-profile) metrics: per-feature AUROC and AUPRC, medians per category.

Inputs: ``labels`` 0/1 ``[N, F]`` and ``scores`` P(positive) ``[N, F]`` (one column per
feature, e.g. DeepSEA's 919 profiles). Every feature is scored on its own, as DeepSEA, the
BigBird paper and Selene do:

- ``auroc``, ``auprc`` (average precision) of each feature, NaN when the feature has no
  positive or no negative among the N examples: such a feature is undefined, left out of
  every median and mean, never scored 0 or 0.5.
- Summaries per category (DeepSEA: DHS, TF, HM; ``all`` always): the median and the mean
  of the defined per-feature values and how many features were defined.
- 95% percentile-bootstrap intervals: the examples (rows) are resampled with replacement,
  every feature is re-scored on each resample, and the interval of each per-feature value
  and of each category median is read from the resampled values (resamples where a value
  is undefined are left out).

:func:`multilabel_report` returns all of it as JSON-able data; :func:`write_performance_tsv`
writes Selene's ``test_performance.tsv`` layout (one row per feature).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import InputError
from dnabird.tasks.classification_metrics import (
    Ranking,
    check_bootstrap,
    percentile_interval,
    resampled_rows,
    row_counts,
)

METRICS = ("auroc", "auprc")
ALL = "all"
"""The summary over every feature, next to the categories'."""


def check_multilabel(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as int8 ``[N, F]`` (0/1) and ``scores`` as float64 ``[N, F]`` (finite,
    in [0, 1]); InputError otherwise."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != scores.shape or labels.shape[0] == 0:
        raise InputError(
            f"multi-label labels and scores must both be [N > 0, F]; got {list(labels.shape)} "
            f"and {list(scores.shape)}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise InputError("multi-label labels must be 0 or 1")
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise InputError("multi-label scores must be finite probabilities in [0, 1]")
    return labels.astype(np.int8), scores


def _rankings(labels: np.ndarray, scores: np.ndarray) -> list[Ranking]:
    return [Ranking(scores[:, j], labels[:, j] == 1) for j in range(labels.shape[1])]


def _areas(rankings: list[Ranking], weights: np.ndarray) -> dict[str, np.ndarray]:
    """``{"auroc", "auprc"}``, each ``[R, F]``: every feature under each weighting ``[R, N]``."""
    areas = [ranking.areas(weights) for ranking in rankings]
    return {
        "auroc": np.stack([auroc for auroc, _ in areas], axis=1),
        "auprc": np.stack([auprc for _, auprc in areas], axis=1),
    }


def per_feature_metrics(labels: Any, scores: Any) -> dict[str, np.ndarray]:
    """``{"auroc", "auprc"}`` float64 ``[F]`` each (NaN for a feature without both classes)."""
    labels, scores = check_multilabel(labels, scores)
    point = _areas(_rankings(labels, scores), np.ones((1, len(labels))))
    return {name: values[0] for name, values in point.items()}


def _nanmedian(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median of the non-NaN entries along ``axis``; NaN where none is defined."""
    defined = ~np.isnan(values)
    out = np.full(np.delete(values.shape, axis), np.nan)
    any_defined = defined.any(axis=axis)
    if any_defined.any():
        with np.errstate(all="ignore"):
            filled = np.where(defined, values, np.nan)
            out[any_defined] = np.nanmedian(filled, axis=axis)[any_defined]
    return out


def category_groups(categories: Sequence[str | None]) -> dict[str, np.ndarray]:
    """``{"all": every column, category: its columns}`` in first-seen order (columns
    without a category are in ``all`` only)."""
    groups = {ALL: np.arange(len(categories))}
    for name in dict.fromkeys(c for c in categories if c is not None):
        groups[name] = np.flatnonzero([c == name for c in categories])
    return groups


def multilabel_report(
    labels: Any,
    scores: Any,
    feature_ids: Sequence[str],
    categories: Sequence[str | None] | None = None,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of multi-label predictions (module docstring), JSON-able::

        {"n": N, "level": 0.95, "resamples": R,
         "features": [{"id", "category", "positives", "negatives",
                       "auroc", "auroc_ci", "auprc", "auprc_ci"}, ...],   # F rows
         "summary": {"all" | category: {"features", "defined",
                     "auroc_median", "auroc_median_ci", "auroc_mean",
                     "auprc_median", "auprc_median_ci", "auprc_mean"}}}

    Undefined values are None (JSON null), never NaN, 0 or 0.5.
    """
    labels, scores = check_multilabel(labels, scores)
    check_bootstrap(resamples, level)
    num_features = labels.shape[1]
    if len(feature_ids) != num_features:
        raise InputError(f"{len(feature_ids)} feature ids for {num_features} label columns")
    categories = list(categories) if categories is not None else [None] * num_features
    rankings = _rankings(labels, scores)
    point = {k: v[0] for k, v in _areas(rankings, np.ones((1, len(labels)))).items()}
    groups = category_groups(categories)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for rows in resampled_rows(len(labels), resamples, seed):
        for name, values in _areas(rankings, row_counts(rows)).items():
            draws[name].append(values)
    resampled = {name: np.concatenate(parts) for name, parts in draws.items()}  # [R, F]
    positives = labels.sum(axis=0)
    features = []
    for j in range(num_features):
        row: dict[str, Any] = {
            "id": feature_ids[j],
            "category": categories[j],
            "positives": int(positives[j]),
            "negatives": int(len(labels) - positives[j]),
        }
        for name in METRICS:
            row[name] = _number(point[name][j])
            row[f"{name}_ci"] = _interval(resampled[name][:, j], level, point[name][j])
        features.append(row)
    summary = {}
    for group, columns in groups.items():
        entry: dict[str, Any] = {
            "features": int(len(columns)),
            "defined": int((~np.isnan(point["auroc"][columns])).sum()),
        }
        for name in METRICS:
            values = point[name][columns]
            median = _nanmedian(values[None, :])[0]
            entry[f"{name}_median"] = _number(median)
            entry[f"{name}_median_ci"] = _interval(
                _nanmedian(resampled[name][:, columns]), level, median
            )
            defined = values[~np.isnan(values)]
            entry[f"{name}_mean"] = _number(float(defined.mean())) if defined.size else None
        summary[group] = entry
    return {
        "n": int(len(labels)),
        "level": level,
        "resamples": resamples,
        "features": features,
        "summary": summary,
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _interval(values: np.ndarray, level: float, point: float) -> list[float | None] | None:
    """The percentile interval, or None when the point value itself is undefined."""
    if math.isnan(point):
        return None
    low, high = percentile_interval(values, level)
    return [_number(low), _number(high)]


def write_performance_tsv(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Selene's ``test_performance.tsv``: a header, then one row per feature in column
    order: ``index id category positives negatives auroc auroc_low auroc_high auprc
    auprc_low auprc_high`` (``NA`` where undefined). Written atomically."""
    from dnabird.files import write_text_atomic

    columns = ["index", "id", "category", "positives", "negatives"]
    for name in METRICS:
        columns += [name, f"{name}_low", f"{name}_high"]
    lines = ["\t".join(columns)]
    for index, row in enumerate(report["features"]):
        cells = [index, row["id"], row["category"] or "NA", row["positives"], row["negatives"]]
        for name in METRICS:
            interval = row[f"{name}_ci"] or [None, None]
            cells += [row[name], *interval]
        lines.append("\t".join(_cell(c) for c in cells))
    path = Path(path)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def summary_table(
    reports: dict[str, dict[str, Any]], reference: dict[str, dict[str, float]] | None = None
) -> str:
    """Markdown: one row per model and category, median AUROC and AUPRC with intervals
    and the number of defined features; ``reference`` adds rows of published medians
    (``{name: {category: auroc}}``, e.g. DeepSEA's and the BigBird paper's)."""

    def fmt(value: float | None, interval: list | None) -> str:
        if value is None:
            return "n/a"
        if not interval or interval[0] is None:
            return f"{value:.3f}"
        return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"

    lines = [
        "| model | category | features (defined) | median AUROC (95% CI) | median AUPRC (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for model, report in reports.items():
        for group, entry in report["summary"].items():
            lines.append(
                f"| {model} | {group} | {entry['features']} ({entry['defined']}) | "
                f"{fmt(entry['auroc_median'], entry['auroc_median_ci'])} | "
                f"{fmt(entry['auprc_median'], entry['auprc_median_ci'])} |"
            )
    for name, medians in (reference or {}).items():
        for group, auroc in medians.items():
            lines.append(f"| {name} (published) | {group} | | {auroc:.3f} | |")
    return "\n".join(lines)
