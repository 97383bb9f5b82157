"""Figures: the block-sparse attention pattern drawn like Figure 1 of the BigBird paper,
training curves, the classification figures of a test report (ROC and precision-recall
curves, confusion matrix) and the per-feature AUROCs of a multi-label report.

matplotlib (Agg backend) is imported inside each function, so importing this module is free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: RGB colours of the cell kinds: not attended, global, window, random.
PATTERN_COLOURS = {
    "none": (1.0, 1.0, 1.0),
    "global": (0.80, 0.33, 0.10),
    "window": (0.12, 0.47, 0.71),
    "random": (0.40, 0.65, 0.12),
}


def pyplot():
    """matplotlib's pyplot, with the file-only Agg backend when pyplot is not loaded yet (a
    script or a server); a notebook's own backend is left alone, so its inline plots keep
    working after a dnabird function drew a figure."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pattern_cells(pattern, head: int = 0) -> np.ndarray:
    """``int [NB, NB]`` cell kinds of one head: 0 none, 1 global, 2 window, 3 random.

    Rows are query blocks, columns key blocks. Global rows and global columns are "global";
    other cells are "random" when drawn as random blocks, else "window" when attended.
    """
    nb = pattern.num_blocks
    cells = np.zeros((nb, nb), dtype=np.int64)
    kv = pattern.kv_blocks[head].numpy()
    counts = pattern.kv_counts[head].numpy()
    for i in range(nb):
        cells[i, kv[i, : counts[i]]] = 2
    random = pattern.random_blocks[head].numpy()
    rows, slots = np.nonzero(random >= 0)
    cells[rows, random[rows, slots]] = 3
    glob = list(pattern.global_blocks)
    cells[glob, :] = 1
    cells[:, glob] = 1
    return cells


def plot_block_pattern(pattern, path: str | os.PathLike, head: int = 0) -> None:
    """Write a PNG of ``pattern`` for ``head``: query blocks down, key blocks across.

    Colours: global (orange), window (blue), random (green), not attended (white).
    """
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from dnabird.files import atomic_path

    names = list(PATTERN_COLOURS)
    cells = pattern_cells(pattern, head)
    nb = pattern.num_blocks
    size = min(10.0, 2.0 + nb * 0.25)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=100)
    ax.imshow(
        cells,
        cmap=ListedColormap([PATTERN_COLOURS[n] for n in names]),
        vmin=0,
        vmax=len(names) - 1,
        interpolation="nearest",
    )
    if nb <= 64:  # grid lines between blocks, as in the paper
        ax.set_xticks(np.arange(-0.5, nb), minor=True)
        ax.set_yticks(np.arange(-0.5, nb), minor=True)
        ax.grid(which="minor", color="0.85", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
    ax.set_xlabel(f"key block ({pattern.block_size} tokens each)")
    ax.set_ylabel("query block")
    ax.set_title(f"BigBird attention pattern, head {head}")
    ax.legend(
        handles=[Patch(color=PATTERN_COLOURS[n], label=n) for n in names[1:]],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_training_curve(
    runs: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    metric: str = "bpc",
    baselines: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Path:
    """Plot ``train/<metric>`` (thin) and ``val/<metric>`` (markers) against optimizer step
    for each run ({label: Lightning ``metrics.csv``}), with horizontal lines for
    ``baselines`` ({label: value}, e.g. the n-gram model's bits per character); write a PNG
    to ``out`` (atomically) and return its path."""
    import csv

    plt = pyplot()

    from dnabird.files import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (label, path), color in zip(
        runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False
    ):
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for split, style in (("train", dict(lw=0.8, alpha=0.6)), ("val", dict(marker="o", lw=1.5))):
            points = [
                (int(row["step"]), float(row[f"{split}/{metric}"]))
                for row in rows
                if row.get(f"{split}/{metric}")
            ]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, color=color, label=f"{label} {split}", **style)
    for (label, value), ls in zip((baselines or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, color="black", ls=ls, lw=1, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(metric)
    ax.set_title(title or f"Training curve ({metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def _save_png(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` as a PNG (atomically, at the figure's own size), close it
    and return the path."""
    import matplotlib.pyplot as plt

    from dnabird.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def roc_pr_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str):
    """The figure of :func:`plot_roc_pr` (a matplotlib Figure, 11 x 5 in at 120 dpi)."""
    plt = pyplot()

    from dnabird.tasks.classification_metrics import binary_curves, binary_metrics

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 5), dpi=120)
    prevalences = set()
    for name, (labels, scores) in curves.items():
        points = binary_curves(labels, scores)
        values = binary_metrics(labels, scores)
        roc.plot(
            points["fpr"], points["tpr"], lw=1.5, label=f"{name} (AUROC {values['auroc']:.3f})"
        )
        pr.plot(
            points["recall"],
            points["precision"],
            lw=1.5,
            drawstyle="steps-pre",  # precision held back to the previous recall: area = AUPRC
            label=f"{name} (AUPRC {values['auprc']:.3f})",
        )
        prevalences.add(float(np.mean(np.asarray(labels) == 1)))
    roc.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance (AUROC 0.500)")
    for prevalence in sorted(prevalences):
        pr.axhline(prevalence, color="0.5", ls="--", lw=1, label=f"chance (AUPRC {prevalence:.3f})")
    roc.set(
        title="ROC curve",
        xlabel="false positive rate (fraction of negatives)",
        ylabel="true positive rate (fraction of positives)",
    )
    pr.set(
        title="Precision-recall curve",
        xlabel="recall (fraction of positives found)",
        ylabel="precision (fraction of predicted positives)",
    )
    for ax, where in ((roc, "lower right"), (pr, "lower left")):
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc=where, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_roc_pr(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str
) -> Path:
    """Write one PNG with the ROC curve (left) and the precision-recall curve (right) of each
    model, ``{model name: (labels int {0, 1} [N], scores P(positive) [N])}``, and return its
    path. Legends give each model's AUROC and AUPRC (as
    :func:`~dnabird.tasks.classification_metrics.binary_metrics` computes them) and the
    chance level (the diagonal; the fraction of positives)."""
    return _save_png(roc_pr_figure(curves, title), path)


def confusion_figure(confusion: np.ndarray, classes: Sequence[str], title: str):
    """The figure of :func:`plot_confusion` (a matplotlib Figure)."""
    plt = pyplot()

    from dnabird.errors import InputError

    counts = np.asarray(confusion)
    k = len(classes)
    if counts.shape != (k, k) or (counts < 0).any() or (counts != np.round(counts)).any():
        raise InputError(
            f"a confusion matrix of {k} classes must be [{k}, {k}] non-negative counts; "
            f"got shape {list(counts.shape)}"
        )
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(100.0 * counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    side = min(12.0, 3.0 + 0.9 * k)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=120)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=100)
    fontsize = max(6, 11 - k // 3)
    for (row, column), count in np.ndenumerate(counts):
        share = f"{shares[row, column]:.1f}%" if totals[row, 0] else "–"
        ax.text(
            column,
            row,
            f"{int(count):,}\n{share}",
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if shares[row, column] > 50 else "black",
        )
    ax.set_xticks(range(k), classes, rotation=30 if max(map(len, classes)) > 6 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class (%)")
    fig.tight_layout()
    return fig


def plot_confusion(
    confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str
) -> Path:
    """Write a PNG of ``confusion`` (``[K, K]`` counts, rows true class, columns predicted,
    as in :func:`~dnabird.tasks.classification_metrics.classification_report`) and return its
    path: each cell prints its count and its percentage of the row (the true class), and is
    shaded by that percentage."""
    return _save_png(confusion_figure(confusion, classes, title), path)


def feature_auroc_figure(reports: Mapping[str, dict], title: str):
    """The figure of :func:`plot_feature_aurocs` (a matplotlib Figure)."""
    plt = pyplot()

    from dnabird.tasks.multilabel_metrics import category_groups

    models = list(reports)
    first = reports[models[0]]["features"]
    groups = category_groups([row["category"] for row in first])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) * len(models)), 5), dpi=120)
    width = 0.8 / len(models)
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    for m, model in enumerate(models):
        rows = reports[model]["features"]
        for g, columns in enumerate(groups.values()):
            values = np.array([rows[j]["auroc"] for j in columns if rows[j]["auroc"] is not None])
            x = g + (m - (len(models) - 1) / 2) * width
            colour = f"C{m}"
            if values.size:
                ax.scatter(
                    x + rng.uniform(-0.3, 0.3, values.size) * width,
                    values,
                    s=12,
                    color=colour,
                    alpha=0.6,
                    label=model if g == 0 else None,
                )
                median = float(np.median(values))
                ax.hlines(median, x - width / 2, x + width / 2, color=colour, lw=2.5)
                ax.annotate(
                    f"{median:.3f}",
                    (x, median),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=8,
                    color=colour,
                )
    ax.axhline(0.5, color="0.5", ls="--", lw=1, label="chance (0.5)")
    ax.set_xticks(
        range(len(groups)),
        [f"{group}\n({len(columns)} features)" for group, columns in groups.items()],
    )
    ax.set(ylabel="test AUROC per feature (bar: median)", ylim=(0.0, 1.02), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_feature_aurocs(reports: Mapping[str, dict], path: str | os.PathLike, title: str) -> Path:
    """Write one PNG: the test AUROC of every feature (points) and their median (bar, value
    printed) per category, one colour per model; ``reports`` ``{model name:
    multilabel_report}`` (:func:`dnabird.tasks.multilabel_metrics.multilabel_report`).
    Features whose AUROC is undefined are not drawn."""
    return _save_png(feature_auroc_figure(reports, title), path)


def ism_figure(result, features: Sequence[str]):
    """The figure of :func:`plot_ism` (a matplotlib Figure, one panel per feature)."""
    plt = pyplot()

    from dnabird.predict.mutagenesis import BASES

    positions = len(result.sequence)
    fig, axes = plt.subplots(
        len(features),
        1,
        figsize=(min(24.0, max(6.0, 0.16 * positions + 2)), 2.2 * len(features) + 0.8),
        dpi=120,
        squeeze=False,
    )
    for ax, feature in zip(axes[:, 0], features, strict=True):
        values = result.effects[:, :, result.columns.index(feature)].T  # [4, P]
        limit = float(np.nanmax(np.abs(values))) or 1e-6
        image = ax.imshow(
            values,
            aspect="auto",
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            interpolation="nearest",
        )
        reference = [(p, BASES.index(b)) for p, b in enumerate(result.sequence) if b in BASES]
        if reference and positions <= 200:
            x, y = zip(*reference, strict=True)
            ax.scatter(x, y, marker=".", s=8, color="black")
        ax.set_yticks(range(len(BASES)), list(BASES))
        if positions <= 60:
            ax.set_xticks(range(positions), list(result.sequence), fontsize=7)
        else:
            ticks = range(0, positions, -(-positions // 12))
            ax.set_xticks(ticks, [f"{result.start + t:,}" for t in ticks], fontsize=8)
        ax.set_ylabel("substituted base")
        dots = " (dots: reference base)" if reference and positions <= 200 else ""
        ax.set_title(f"in-silico mutagenesis of {result.name}: {feature}{dots}", fontsize=10)
        colorbar = fig.colorbar(image, ax=ax, pad=0.01)
        colorbar.set_label("P(mutant) − P(reference)", fontsize=8)
    axes[-1, 0].set_xlabel(
        "reference base at each position"
        if positions <= 60
        else f"position (bp, 0-based; region starts at {result.start:,})"
    )
    fig.tight_layout()
    return fig


def plot_ism(result, path: str | os.PathLike, features: Sequence[str]) -> Path:
    """Write one PNG heatmap per ISM result (:class:`dnabird.predict.mutagenesis.IsmResult`): for
    each of ``features``, the effect of substituting each base (rows A, C, G, T) at each
    position (columns, labelled with the reference base when there are at most 60; a dot
    marks the reference base up to 200), diverging colours centred on 0."""
    return _save_png(ism_figure(result, features), path)


def length_histogram_figure(document_bp: np.ndarray, token_bp: np.ndarray, title: str):
    """The figure of :func:`plot_length_histograms` (a matplotlib Figure, 11 x 4.5 in)."""
    plt = pyplot()

    document_kbp = np.asarray(document_bp, dtype=np.float64) / 1000
    counts = np.asarray(token_bp, dtype=np.int64)  # counts[n]: tokens spelling n bp
    lengths = np.arange(len(counts))
    mean_bp = float((lengths * counts).sum() / counts.sum())
    fig, (docs, tokens) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    docs.hist(document_kbp, bins=min(40, max(5, len(document_kbp) // 5)), color="C0")
    docs.axvline(
        np.median(document_kbp),
        color="black",
        ls="--",
        lw=1,
        label=f"median {np.median(document_kbp):,.1f} kbp",
    )
    docs.set(
        title=f"Documents ({len(document_kbp):,})",
        xlabel="document length (kbp)",
        ylabel="documents",
    )
    longest = int(np.flatnonzero(counts)[-1])
    tokens.bar(lengths[1 : longest + 1], counts[1 : longest + 1] / 1e3, width=0.8, color="C1")
    tokens.axvline(mean_bp, color="black", ls="--", lw=1, label=f"mean {mean_bp:.2f} bp per token")
    tokens.set(
        title=f"Tokens ({int(counts.sum()):,}; the longest {longest} bp)",
        xlabel="token length (bp)",
        ylabel="tokens (thousands)",
    )
    for ax in (docs, tokens):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_length_histograms(
    document_bp: np.ndarray, token_bp: np.ndarray, path: str | os.PathLike, title: str
) -> Path:
    """Write one PNG of a tokenized corpus and return its path: the lengths of its documents
    (``document_bp`` int ``[D]``, bp; left, in kbp, median marked) and of its tokens
    (``token_bp`` int ``[L + 1]``: ``token_bp[n]`` tokens spell ``n`` bp; right, the mean bp
    per token marked)."""
    return _save_png(length_histogram_figure(document_bp, token_bp, title), path)


def track_auroc_figure(reports: Mapping[str, dict], title: str):
    """The figure of :func:`plot_track_aurocs` (a matplotlib Figure, one row per track)."""
    plt = pyplot()

    models = list(reports)
    rows = reports[models[0]]["features"]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * len(rows) * len(models)), dpi=120)
    height = 0.8 / len(models)
    for m, model in enumerate(models):
        for t, row in enumerate(reports[model]["features"]):
            y = t + (m - (len(models) - 1) / 2) * height
            if row["auroc"] is None:
                ax.text(0.52, y, "undefined", va="center", fontsize=8, color=f"C{m}")
                continue
            low, high = row["auroc_ci"]
            ax.barh(y, row["auroc"], height=height * 0.9, color=f"C{m}", alpha=0.8)
            ax.errorbar(
                row["auroc"],
                y,
                xerr=[[row["auroc"] - low], [high - row["auroc"]]],
                color="black",
                lw=1,
                capsize=2,
            )
    chance = ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set_yticks(
        range(len(rows)),
        [f"{row['id']}\n({row['positives']:,} test positives)" for row in rows],
    )
    ax.invert_yaxis()  # first track on top
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{m}", alpha=0.8) for m in range(len(models))]
    ax.legend(
        [*handles, chance],
        [*models, "chance (0.5)"],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(models) + 1,
        fontsize=8,
        frameon=False,
    )
    ax.set_title(title, pad=24)
    ax.set(xlim=(0.0, 1.02), xlabel="test AUROC (whiskers: 95% bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_track_aurocs(reports: Mapping[str, dict], path: str | os.PathLike, title: str) -> Path:
    """Write one PNG with the test AUROC of every track (rows, in report order, each with
    its count of test positives) as a bar per model (``reports`` ``{model name:
    multilabel_report}``, :func:`dnabird.tasks.multilabel_metrics.multilabel_report`) with
    its 95% bootstrap interval; a track without positives or negatives reads "undefined"."""
    return _save_png(track_auroc_figure(reports, title), path)


def metric_bars_figure(reports: Mapping[str, dict], metrics: Sequence[str], title: str):
    """The figure of :func:`plot_metric_bars` (a matplotlib Figure)."""
    plt = pyplot()

    models = list(reports)
    size = min(12.0, max(6.0, 0.9 * len(metrics) * len(models)))
    fig, ax = plt.subplots(figsize=(size, 4.5), dpi=120)
    width = 0.8 / len(models)
    for m, model in enumerate(models):
        report = reports[model]
        x = np.arange(len(metrics)) + (m - (len(models) - 1) / 2) * width
        values = np.array([report["metrics"][k] for k in metrics])
        low, high = np.array([report["ci95"][k] for k in metrics]).T
        ax.bar(x, values, width * 0.9, color=f"C{m}", label=model)
        ax.errorbar(x, values, yerr=[values - low, high - values], fmt="none", color="black", lw=1)
        for xi, value, top in zip(x, values, high, strict=True):
            ax.text(xi, top + 0.015, f"{value:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(metrics)), [k if k == "accuracy" else k.upper() for k in metrics])
    ax.set(
        ylim=(0.0, 1.1),
        ylabel="test value (whiskers: 95% bootstrap CI)",
        xlabel="test metric (F1, MCC, accuracy: the class of P >= 0.5)",
    )
    ax.set_title(title, pad=24)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(models),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return fig


def plot_metric_bars(
    reports: Mapping[str, dict], metrics: Sequence[str], path: str | os.PathLike, title: str
) -> Path:
    """Write one PNG comparing models on test ``metrics`` (e.g. ``f1``, ``auroc``): a bar per
    model and metric, its value printed and its 95% bootstrap interval drawn; ``reports``
    ``{model name: classification_report}``
    (:func:`dnabird.tasks.classification_metrics.classification_report`: ``metrics`` and
    ``ci95`` of each name)."""
    return _save_png(metric_bars_figure(reports, metrics, title), path)
