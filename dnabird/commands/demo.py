"""``dnabird demo``: run the pretraining recipe end to end on built-in data."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> None:
    from dnabird.demo import DemoOptions, run_demo

    options = DemoOptions(steps=args.steps, seed=args.seed)
    summary = run_demo(args.out, genome=args.genome, options=options, overwrite=args.overwrite)
    total = sum(summary["seconds"].values())
    se = summary["held_out_bpc_se"]  # None with fewer than 2 held-out sequences
    se_text = "" if se is None else f" (SE {se:.3f})"
    print(
        f"Demo finished in {total:.0f} s on {summary['genome']}. A small BigBird pretrained for "
        f"{options.steps} steps scores {summary['held_out_bpc']:.3f}{se_text} bits per bp on the "
        f"held-out {summary['held_out']}, "
        "every token scored once (masked-token accuracy "
        f"{summary['held_out_accuracy']:.1%}); the best k-mer Markov baseline (order "
        f"{summary['best_ngram_order']}) scores "
        f"{summary['ngram_bpc'][str(summary['best_ngram_order'])]:.3f}. Outputs in {args.out}: "
        "corpus/, tokenizer/, tokens/, pretrain/ (model/ is the exported model), "
        "attention_pattern.png, training_curve.png, summary.json."
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole recipe (preprocess, tokenizer, pretraining, evaluation) on "
        "built-in data in a few minutes",
    )
    parser.add_argument("--out", default="demo_run", help="output folder")
    parser.add_argument("--genome", help="FASTA to use instead of the built-in genome")
    parser.add_argument("--steps", type=int, default=700, help="pretraining steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=_run)
