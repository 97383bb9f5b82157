"""``dnabird demo``: run the whole recipe end to end on built-in data, with a report."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> None:
    from dnabird.demo import DemoOptions, run_demo

    options = DemoOptions(steps=args.steps, seed=args.seed)
    summary = run_demo(args.out, genome=args.genome, options=options, overwrite=args.overwrite)
    print(final_summary(summary, args.out))


def final_summary(summary: dict, out: str) -> str:
    """The paragraph printed at the end of a demo, then every output, one per line."""
    total = sum(summary["seconds"].values())
    se = summary["held_out_bpc_se"]  # None with fewer than 2 held-out sequences
    se_text = "" if se is None else f" (SE {se:.3f})"
    best = summary["best_ngram_order"]
    f1 = {
        model: _with_interval(summary["promoter"][model]["f1"], ci)
        for model, ci in summary["promoter_f1_ci95"].items()
    }
    auroc = {
        model: _with_interval(m["median"], m["ci95"])
        for model, m in summary["chromatin_median_auroc"].items()
    }
    tracks = summary["chromatin_median_auroc"]["dnabird"]["tracks"]
    data = "SYNTHETIC data (no real data folder found)" if summary["synthetic"] else "real data"
    lines = [
        f"Demo finished in {total:.0f} s on {data}: {summary['genome']}. "
        f"A small BigBird pretrained for {summary['options']['steps']} steps scores "
        f"{summary['held_out_bpc']:.3f}{se_text} bits per bp on the held-out "
        f"{summary['held_out']}; best k-mer baseline, order {best}: "
        f"{summary['ngram_bpc'][str(best)]:.3f}. Fine-tuned from it, the promoter classifier "
        f"reaches test F1 {f1['dnabird']} (k-mer baseline {f1['kmer_logreg']}) and the "
        f"chromatin model a median test AUROC of {auroc['dnabird']} over {tracks} tracks "
        f"(k-mer baseline {auroc['kmer_logreg']}; 95% bootstrap intervals); "
        f"{summary['variants']['alleles']} variant "
        f"alleles scored ({summary['variants']['ref_mismatches']} with a REF that differs "
        f"from the genome, on purpose); mutagenesis of {summary['ism']['region']}.",
        f"Report: {out}/report.html (open it in a browser) and {out}/report.md. Outputs in {out}:",
    ]
    width = max(map(len, summary["outputs"]))
    lines += [f"  {path:<{width}}  {what}" for path, what in summary["outputs"].items()]
    return "\n".join(lines)


def _with_interval(value: float | None, ci) -> str:
    """``value [low, high]`` (``n/a`` for what is undefined, e.g. no track with both
    classes in the test split)."""
    shown = "n/a" if value is None else f"{value:.3f}"
    interval = "n/a" if ci is None or None in ci else f"{ci[0]:.3f}, {ci[1]:.3f}"
    return f"{shown} [{interval}]"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole recipe (preprocess, tokenizer, pretraining, fine-tuning, "
        "prediction, variant effects, mutagenesis) on built-in data in minutes, with a report",
    )
    parser.add_argument("--out", default="demo_run", help="output folder")
    parser.add_argument(
        "--genome",
        help="FASTA to pretrain on instead of the built-in genome (fine-tuning "
        "still uses the built-in data)",
    )
    parser.add_argument("--steps", type=int, default=700, help="pretraining steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=_run)
