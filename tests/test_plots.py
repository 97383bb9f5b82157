"""Classification figures: ROC/PR curves and the confusion matrix are written as PNGs of the
expected size, with the numbers in their legends and cells."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from dnabird.errors import InputError
from dnabird.plots import confusion_figure, plot_confusion, plot_roc_pr, roc_pr_figure
from dnabird.tasks.classification_metrics import binary_metrics


def _curves():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    good = np.clip(0.5 + 0.4 * (labels - 0.5) + rng.normal(0, 0.2, 300), 0, 1)
    weak = np.clip(0.5 + 0.1 * (labels - 0.5) + rng.normal(0, 0.2, 300), 0, 1)
    return {"bigbird": (labels, good), "kmer_logreg": (labels, weak)}


def test_plot_roc_pr_writes_the_png(tmp_path):
    path = plot_roc_pr(_curves(), tmp_path / "figures" / "roc_pr.png", "Promoters: test split")
    assert path == tmp_path / "figures" / "roc_pr.png"
    assert [p.name for p in path.parent.iterdir()] == ["roc_pr.png"]  # no temporary left
    assert matplotlib.image.imread(path).shape[:2] == (600, 1320)  # 11 x 5 in at 120 dpi
    assert path.stat().st_size > 20_000


def test_roc_pr_legends_hold_the_metrics():
    curves = _curves()
    fig = roc_pr_figure(curves, "Promoters: test split")
    roc, pr = fig.axes
    assert fig._suptitle.get_text() == "Promoters: test split"
    assert roc.get_xlabel().startswith("false positive rate") and pr.get_ylabel()
    expected_roc, expected_pr = [], []
    for name, (labels, scores) in curves.items():
        values = binary_metrics(labels, scores)
        expected_roc.append(f"{name} (AUROC {values['auroc']:.3f})")
        expected_pr.append(f"{name} (AUPRC {values['auprc']:.3f})")
    prevalence = np.mean(curves["bigbird"][0])
    assert [t.get_text() for t in roc.get_legend().get_texts()] == [
        *expected_roc,
        "chance (AUROC 0.500)",
    ]
    assert [t.get_text() for t in pr.get_legend().get_texts()] == [
        *expected_pr,
        f"chance (AUPRC {prevalence:.3f})",
    ]
    assert float(expected_roc[0][-6:-1]) > float(expected_roc[1][-6:-1]) > 0.5


def test_roc_pr_needs_both_classes(tmp_path):
    with pytest.raises(InputError, match="both classes"):
        plot_roc_pr({"m": (np.zeros(4, int), np.full(4, 0.3))}, tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


def test_plot_confusion_prints_counts_and_row_percentages(tmp_path):
    confusion = np.array([[80, 20], [1, 9]])
    fig = confusion_figure(confusion, ["background", "promoter"], "Confusion, test split")
    (ax, colorbar) = fig.axes
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["80\n80.0%", "20\n20.0%", "1\n10.0%", "9\n90.0%"]
    )
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        "Confusion, test split",
        "predicted class",
        "true class",
    )
    assert colorbar.get_ylabel() == "share of the true class (%)"
    path = plot_confusion(confusion, ["background", "promoter"], tmp_path / "c.png", "Confusion")
    assert matplotlib.image.imread(path).shape[:2] == (576, 756)  # 6.3 x 4.8 in at 120 dpi
    assert path.stat().st_size > 10_000


def test_plot_confusion_checks_its_matrix(tmp_path):
    with pytest.raises(InputError, match=r"\[3, 3\]"):
        plot_confusion(np.ones((2, 2)), ["a", "b", "c"], tmp_path / "c.png", "t")
    with pytest.raises(InputError, match="non-negative counts"):
        plot_confusion(np.array([[1, -1], [0, 2]]), ["a", "b"], tmp_path / "c.png", "t")
    empty_row = confusion_figure(np.array([[0, 0], [3, 4]]), ["a", "b"], "t")
    assert "0\n–" in [t.get_text() for t in empty_row.axes[0].texts]
