"""A run's report as two files: ``report.md`` and one self-contained ``report.html``.

:func:`demo_report` builds the report of a ``dnabird demo`` folder from what the demo left
there (its summary, the fine-tuning runs' ``report.json``, the prediction tables).

The renderer is general: a title, an introduction and :class:`Section` s, each a paragraph
of text and a list of :class:`Figure` s (PNG files inside the run folder) and
:class:`Table` s; :func:`write_report` renders

- ``report.md``: Markdown, pictures linked by their path relative to the folder (they stay
  beside it), tables as pipe tables;
- ``report.html``: one page that opens in any browser with nothing beside it: the CSS
  inline, every picture embedded as a base64 ``data:image/png`` URI, tables as HTML tables.

Both are written atomically into the run folder. Text is plain (HTML-escaped in the page);
a blank line starts a new paragraph.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dnabird.errors import InputError
from dnabird.files import write_text_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption, .caption { color: #555; font-size: .92em; margin: .4em 0; }
.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .2em .45em; text-align: left; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


@dataclass(frozen=True)
class Figure:
    """A PNG picture: ``path`` (inside the report's folder) and its ``caption``."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Table:
    """A table: ``columns`` (header cells), ``rows`` (cells as text, one tuple per row, as
    many cells as columns) and its ``caption``."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str


@dataclass(frozen=True)
class Section:
    """A titled part of the report: ``text`` (plain paragraphs), then its ``items``."""

    title: str
    text: str
    items: tuple[Figure | Table, ...] = ()


def write_report(
    folder: str | os.PathLike, title: str, intro: str, sections: Sequence[Section]
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder`` (atomically); return their
    paths. Every figure must be a PNG inside ``folder`` (InputError naming it otherwise)."""
    folder = Path(folder)
    pictures = {item.path: _png_bytes(item.path, folder) for item in _items(sections, Figure)}
    for table in _items(sections, Table):
        _check_table(table)
    markdown = render_markdown(folder, title, intro, sections)
    page = render_html(title, intro, sections, pictures)
    write_text_atomic(folder / MARKDOWN_NAME, markdown)
    write_text_atomic(folder / HTML_NAME, page)
    return folder / MARKDOWN_NAME, folder / HTML_NAME


def render_markdown(folder: Path, title: str, intro: str, sections: Sequence[Section]) -> str:
    """The Markdown text of the report; pictures linked relative to ``folder``."""
    lines = [f"# {title}", "", intro.strip(), ""]
    for section in sections:
        lines += [f"## {section.title}", "", section.text.strip(), ""]
        for item in section.items:
            if isinstance(item, Figure):
                link = Path(os.path.relpath(item.path, folder)).as_posix()
                alt = _md_cell(item.caption).replace("[", "\\[").replace("]", "\\]")
                lines += [f"![{alt}]({link})", "", f"*{item.caption}*", ""]
            else:
                lines += [
                    f"*{item.caption}*",
                    "",
                    "| " + " | ".join(map(_md_cell, item.columns)) + " |",
                    "|" + "---|" * len(item.columns),
                    *("| " + " | ".join(map(_md_cell, row)) + " |" for row in item.rows),
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"


def render_html(
    title: str, intro: str, sections: Sequence[Section], pictures: dict[Path, bytes]
) -> str:
    """The self-contained HTML page of the report; ``pictures`` ``{figure path: PNG
    bytes}`` are embedded as base64 data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _paragraphs(intro),
    ]
    for section in sections:
        parts += [f"<h2>{html.escape(section.title)}</h2>", _paragraphs(section.text)]
        for item in section.items:
            if isinstance(item, Figure):
                data = base64.b64encode(pictures[item.path]).decode("ascii")
                caption = html.escape(item.caption)
                parts.append(
                    f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            else:
                parts.append(_html_table(item))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _items(sections: Sequence[Section], kind: type) -> list:
    return [item for section in sections for item in section.items if isinstance(item, kind)]


def _png_bytes(path: Path, folder: Path) -> bytes:
    """The bytes of a figure, checked to be a PNG file inside ``folder``."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{path}: a report figure must lie inside the report folder {folder}")
    if not path.is_file():
        raise InputError(f"{path}: report figure not found; write the picture before the report")
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise InputError(f"{path}: a report figure must be a PNG file")
    return data


def _check_table(table: Table) -> None:
    for number, row in enumerate(table.rows, 1):
        if len(row) != len(table.columns):
            raise InputError(
                f"table {table.caption!r}: row {number} has {len(row)} cells for "
                f"{len(table.columns)} columns"
            )


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _paragraphs(text: str) -> str:
    blocks = [" ".join(block.split()) for block in text.strip().split("\n\n") if block.strip()]
    return "\n".join(f"<p>{html.escape(block)}</p>" for block in blocks)


def _html_table(table: Table) -> str:
    def cell(tag: str, text: str) -> str:
        numeric = tag == "td" and _is_number(text)
        return f"<{tag}{' class=number' if numeric else ''}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", c) for c in table.columns)
    body = "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in table.rows)
    return (
        f'<p class="caption">{html.escape(table.caption)}</p><div class="table">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------- the demo's report
def demo_report(folder: str | os.PathLike, summary: dict) -> tuple[Path, Path]:
    """Write the report of a ``dnabird demo`` folder (:mod:`dnabird.demo`): its pictures,
    the promoter and chromatin test reports with their baselines, the predicted profiles,
    the variant effects and the mutagenesis; ``summary`` is the demo's summary."""
    folder = Path(folder)
    synthetic = summary["synthetic"]
    label = "SYNTHETIC data (no real data folder was found)" if synthetic else "real data"
    total = sum(summary["seconds"].values())
    intro = (
        f"Every stage of dnabird on {label}, run by dnabird demo in {total:,.0f} s: "
        "preprocess, train-tokenizer, tokenize, pretrain, evaluate-mlm, finetune (promoters), "
        "make-dataset and finetune (chromatin profiles), predict, variant-effect and ism. "
        "The models are tiny and briefly trained so that the whole run fits in minutes on "
        "a CPU: the numbers show the pipeline working, not what the method can reach."
    )
    if synthetic:
        intro += (
            "\n\nSYNTHETIC: the genome, promoters and peaks are generated (seeded) with "
            "planted elements; nothing here is biology."
        )
    sections = [
        Section(
            "Data",
            "Where each input came from. "
            + (
                "Pretraining used the genome given with --genome; the chromatin test region "
                "is the last part of the built-in genome."
                if "pretraining genome" in summary["sources"]
                else "The last part of the genome (the held-out region) is never trained on: "
                "pretraining leaves it out and it is the chromatin test region."
            ),
            (
                Table(
                    ("input", "source"),
                    tuple((k, v) for k, v in summary["sources"].items()),
                    "Inputs of the run",
                ),
            ),
        ),
        _corpus_section(folder, summary),
        _pretraining_section(folder, summary),
        _promoter_section(folder),
        _chromatin_section(folder, summary),
        _prediction_section(folder, summary),
        Section(
            "In-silico mutagenesis",
            f"Every single-base substitution of {summary['ism']['region']} around the focus "
            f"site ({summary['sources']['focus']}), scored by the chromatin model as "
            f"P(mutant) - P(reference) for {summary['ism']['track']}.",
            (Figure(folder / "ism.png", f"ISM heatmap of {summary['ism']['track']}"),),
        ),
        Section(
            "Outputs and timings",
            "Every file and folder the run wrote, and the seconds each stage took.",
            (
                Table(("output", "what"), tuple(summary["outputs"].items()), "Outputs"),
                Table(
                    ("stage", "seconds"),
                    tuple((k, f"{v:.1f}") for k, v in summary["seconds"].items()),
                    f"Timings (total {total:,.0f} s)",
                ),
            ),
        ),
    ]
    title = "dnabird demo report" + (" (SYNTHETIC data)" if synthetic else "")
    return write_report(folder, title, intro, sections)


def _corpus_section(folder: Path, summary: dict) -> Section:
    options = summary["options"]
    return Section(
        "Corpus, tokenizer and attention pattern",
        "The training part of the genome cut into documents of sentences "
        f"({_count(options['passes'], 'pass', 'passes')} at random offsets, both strands), "
        "a SentencePiece tokenizer of "
        f"{options['vocab_size']:,} pieces ({summary['bp_per_token']:.2f} bp per token on the "
        "corpus), and the block-sparse attention pattern of the model (2 layers, hidden "
        f"{options['hidden_size']}, {options['max_length']} tokens per sequence): global, "
        "sliding-window and random blocks, as in Figure 1 of the BigBird paper.",
        (
            Figure(folder / "lengths.png", "Document and token lengths of the corpus"),
            Figure(folder / "attention_pattern.png", "Attention pattern of layer 0, head 0"),
        ),
    )


def _pretraining_section(folder: Path, summary: dict) -> Section:
    se = summary["held_out_bpc_se"]
    rows = [
        (
            f"BigBird 2 x {summary['options']['hidden_size']}",
            f"{summary['held_out_bpc']:.3f}" + ("" if se is None else f" ± {se:.3f}"),
            f"{summary['held_out_accuracy']:.1%}",
        )
    ]
    rows += [(f"{k}-mer Markov", f"{v:.3f}", "") for k, v in summary["ngram_bpc"].items()]
    return Section(
        "Pretraining",
        f"Masked-language-model training curve (bits per masked bp) and the held-out score "
        f"on {summary['held_out']}, every token scored once; the interpolated k-mer Markov "
        "models are trained on the same training part (both strands). Lower is better; 2 "
        "bits per bp is a uniform guess.",
        (
            Figure(folder / "training_curve.png", "Pretraining curve and the best k-mer baseline"),
            Table(
                ("model", "held-out bits per bp (± SE)", "masked-token accuracy"),
                tuple(rows),
                "Held-out bits per bp",
            ),
        ),
    )


def _promoter_section(folder: Path) -> Section:
    report = json.loads((folder / "promoter" / "report.json").read_text(encoding="utf-8"))
    counts = ", ".join(f"{n:,} {name}" for name, n in report["test_counts"].items())
    names = ("accuracy", "f1", "mcc", "auroc", "auprc")
    rows = tuple(
        (model, *(_with_ci(r["metrics"][m], r["ci95"].get(m)) for m in names))
        for model, r in report["reports"].items()
    )
    return Section(
        "Promoters",
        "A promoter classifier fine-tuned from the pretrained model on 300 bp promoters "
        "against negatives made from them (DeePromoter's substitution: 12 of 20 parts "
        f"replaced by random bases), next to two baselines trained on the same training "
        f"split (logistic regression on k-mer counts, and on one-hot bases). Test split: "
        f"{counts}. F1 at threshold 0.5; 95% bootstrap intervals in brackets.",
        (
            Figure(folder / "promoter" / "roc_pr.png", "Promoter test split: ROC and PR curves"),
            Figure(folder / "promoter_metrics.png", "Promoter test F1, MCC, AUROC and AUPRC"),
            Table(
                ("model", "accuracy", "F1", "MCC", "AUROC", "AUPRC"),
                rows,
                "Promoter test metrics",
            ),
        ),
    )


def _chromatin_section(folder: Path, summary: dict) -> Section:
    report = json.loads((folder / "chromatin" / "report.json").read_text(encoding="utf-8"))
    manifest = json.loads((folder / "chromatin_data" / "manifest.json").read_text("utf-8"))
    splits = manifest["counts"]["splits"]
    models = list(report["reports"])
    first = report["reports"][models[0]]["features"]
    rows = tuple(
        (
            row["id"],
            f"{splits['train']['positives'][row['id']]:,}",
            f"{row['positives']:,}",
            *(
                _with_ci(r["features"][j]["auroc"], r["features"][j]["auroc_ci"])
                for r in report["reports"].values()
            ),
        )
        for j, row in enumerate(first)
    )
    data = summary["chromatin_data"]
    return Section(
        "Chromatin profiles",
        "A chromatin dataset made from the peak files (make-dataset: 200 bp bins labelled by "
        f"peak overlap, each with {summary['options']['flank_bp']:,} bp of flank on either "
        f"side; windows train {data['rows']['train']:,}, test {data['rows']['test']:,}; test "
        f"region {data['test_region']}), and a "
        f"multi-label model fine-tuned on it from the pretrained model for "
        f"{summary['options']['chromatin_steps']} steps, one output per track, next to a k-mer "
        "logistic regression per track on the central 200 bp. AUROC is undefined for a track "
        "without test positives; the baseline shows what the base composition of the labelled "
        "bin alone gives.",
        (
            Figure(folder / "chromatin_tracks.png", "Chromatin test AUROC per track"),
            Table(
                ("track", "train positives", "test positives", *(f"AUROC {m}" for m in models)),
                rows,
                "Chromatin test AUROC per track (95% bootstrap intervals)",
            ),
        ),
    )


def _prediction_section(folder: Path, summary: dict) -> Section:
    from dnabird.predict import read_table

    predictions = read_table(folder / "predictions.tsv").to_pylist()
    tracks = summary["chromatin_data"]["tracks"]
    truth = {w["name"]: w for w in summary["predict"]["windows"]}
    profile_rows = tuple(
        (
            f"{row['name']} {truth[row['name']]['region']}",
            ", ".join(truth[row["name"]]["positives"]) or "none",
            *(f"{row[t]:.3f}" for t in tracks),
        )
        for row in predictions
    )
    effects = read_table(folder / "variant_effects.tsv").to_pylist()
    effect_rows = tuple(
        (
            f"{row['name']} {row['chrom']}:{row['pos']} {row['ref']}>{row['alt']}",
            str(row["ref_match"]),
            str(row["info_AF"]),
            *(f"{row[t]:+.3g}" for t in tracks),
        )
        for row in effects
    )
    variants = summary["variants"]
    return Section(
        "Predictions and variant effects",
        "The chromatin model applied to files, as dnabird predict and dnabird "
        "variant-effect do: profiles of a FASTA of test windows (the first test window "
        "positive for each track, and the first without any positive label), and the effect "
        f"P(alt) - P(ref) of each allele of a small VCF near the focus site "
        f"({variants['focus']}): an SNV, an insertion, a deletion, a two-ALT record and a "
        f"record whose REF does not match the genome on purpose ({variants['ref_mismatches']} "
        "allele flagged ref_match False).",
        (
            Table(
                ("window (0-based, half-open)", "true positives", *tracks),
                profile_rows,
                "Predicted probability per track of each test window",
            ),
            Table(
                ("ID, position (1-based), REF>ALT", "ref_match", "AF", *tracks),
                effect_rows,
                f"Variant effects ({variants['alleles']} alleles), P(alt) - P(ref) per track",
            ),
        ),
    )


def _with_ci(value: float | None, ci: Sequence[float] | None) -> str:
    """``0.912 [0.880, 0.940]``; ``undefined`` for None."""
    if value is None:
        return "undefined"
    return f"{value:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"
