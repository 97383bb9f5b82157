"""The test report of a multi-label (chromatin-profile) fine-tuning run.

:func:`evaluate_profiles` scores the selected weights on the test split, feature by
feature (:func:`dnabird.tasks.multilabel_metrics.multilabel_report`), next to a k-mer
logistic-regression baseline trained on the same training split (one per feature, on the
central ``multilabel.baseline_bp`` bases: the labelled bin), and writes into the run
folder::

    report.json              {"features", "test_counts", "reports": {model: report}}
    test_performance.tsv     one row per feature (Selene's layout), the fine-tuned model
    auroc_by_category.png    every feature's test AUROC and the medians, per category
    roc_pr.png               ROC and PR curves of the features with the most test positives
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dnabird.data.chromatin import MultiLabelSplits
    from dnabird.tasks.classify import Classifier
    from dnabird.tasks.finetune_config import FinetuneConfig

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
PERFORMANCE_NAME = "test_performance.tsv"
MODEL_NAME = "dnabird"
BASELINE_NAME = "kmer_logreg"
CURVE_FEATURES = 3
"""Features drawn in ``roc_pr.png`` (those with the most positives in the test split)."""


def evaluate_profiles(
    config: FinetuneConfig, splits: MultiLabelSplits, classifier: Classifier, out: Path
) -> dict[str, Any] | None:
    """Score ``classifier`` and the baseline on the test split and write the report files
    (module docstring); return the report, or None when the test split is empty."""
    from dnabird.baselines import KmerLogisticRegression
    from dnabird.data.chromatin import central
    from dnabird.files import write_text_atomic
    from dnabird.plots import plot_feature_aurocs, plot_roc_pr
    from dnabird.tasks.multilabel_metrics import multilabel_report, write_performance_tsv

    train, test = splits.part("train"), splits.part("test")
    if not len(test):
        return None
    features = splits.features
    section = config.multilabel
    log.info("test split: scoring %d sequences on %d features", len(test), len(features))
    names = [f"row {i + 1}" for i in range(len(test))]
    predicted = {
        MODEL_NAME: classifier.probabilities(
            test.sequences, names, test.source, config.data.batch_size
        )
    }
    baseline = None
    if section.baseline_bp != 0:
        log.info(
            "baseline: k-mer logistic regression per feature on the central %s bp of %d "
            "training sequences",
            section.baseline_bp or "all",
            len(train),
        )
        model = KmerLogisticRegression(seed=config.seed)
        predicted[BASELINE_NAME], chosen = model.fit_predict_labels(
            central(train.sequences, section.baseline_bp),
            train.labels,
            central(test.sequences, section.baseline_bp),
        )
        baseline = {**model.settings(), "C": chosen, "central_bp": section.baseline_bp}
    reports = {
        name: multilabel_report(
            test.labels, scores, features.ids, features.categories, seed=config.seed
        )
        for name, scores in predicted.items()
    }
    if baseline is not None:
        reports[BASELINE_NAME]["baseline"] = baseline
    result = {
        "features": features.to_json(),
        "test_counts": {"examples": len(test)},
        "reports": reports,
    }
    write_text_atomic(out / REPORT_NAME, json.dumps(result, indent=2) + "\n")
    write_performance_tsv(reports[MODEL_NAME], out / PERFORMANCE_NAME)
    title = f"{Path(config.data.train).name}: test split ({len(test):,} sequences)"
    plot_feature_aurocs(reports, out / "auroc_by_category.png", title)
    positives = test.labels.sum(axis=0)
    drawable = np.flatnonzero((positives > 0) & (positives < len(test)))
    chosen_features = drawable[np.argsort(-positives[drawable], kind="stable")][:CURVE_FEATURES]
    if len(chosen_features):
        curves = {
            f"{features.ids[j]}: {name}": (test.labels[:, j].astype(np.int64), scores[:, j])
            for j in chosen_features
            for name, scores in predicted.items()
        }
        plot_roc_pr(curves, out / "roc_pr.png", title)
    return result
