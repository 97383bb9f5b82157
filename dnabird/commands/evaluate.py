"""``dnabird evaluate-mlm``: held-out bits per character of an exported masked-LM model
folder, next to the n-gram baseline (:mod:`dnabird.tasks.evaluate_mlm`)."""

from __future__ import annotations

import argparse
import json

from dnabird.commands._types import at_least, between, device


def _ngram_order(text: str) -> int:
    """argparse type: an order the k-mer Markov baseline supports (0..MAX_ORDER)."""
    from dnabird.ngram import MAX_ORDER

    value = at_least(0)(text)
    if value > MAX_ORDER:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ORDER}, got {value}")
    return value


def _run_evaluate(args: argparse.Namespace) -> None:
    from dnabird.files import write_text_atomic
    from dnabird.genome.fasta import read_fasta
    from dnabird.outputs import check_writable_file
    from dnabird.tasks.evaluate_mlm import evaluate_mlm, ngram_baseline, read_bed_regions

    if args.output:
        check_writable_file(args.output)  # before the work, not after it
    if args.bed:
        sequences = read_bed_regions(args.bed, args.fasta)
    else:
        sequences = list(read_fasta(args.fasta).items())
    baseline_train = list(read_fasta(args.baseline_fasta).values()) if args.baseline_fasta else []
    result = evaluate_mlm(
        args.model,
        sequences,
        max_length=args.max_length,
        batch_size=args.batch_size,
        seed=args.seed,
        mask_rate=args.mask_rate,
        passes=args.passes,
        sentence_bp=args.sentence_bp,
        device=args.device,
    )
    se = f" (SE {result['bpc_se']:.4f})" if result["bpc_se"] is not None else ""
    rows = [("model", result["bpc"], f"{se}  accuracy {result['accuracy']:.4f}")]
    if baseline_train:
        baseline = ngram_baseline(baseline_train, [s for _, s in sequences], args.baseline_order)
        result["ngram"] = baseline
        rows.append((f"{args.baseline_order}-order k-mer Markov", baseline["bpc"], ""))
    share = result["predicted_tokens"] / result["maskable_tokens"]
    print(
        f"Evaluated {result['sequences']} sequence(s) ({result['packed_sequences']} packed, "
        f"max_length {result['max_length']}): {result['predicted_tokens']:,} of "
        f"{result['maskable_tokens']:,} maskable tokens predicted ({share:.1%}), covering "
        f"{result['bp']:,} bp, in {result['passes']} of {result['mask_groups']} passes that "
        f"each mask a disjoint {1 / result['mask_groups']:.1%} of them (mask rate "
        f"{result['mask_rate']}, seed {result['seed']})."
    )
    for name, bpc, extra in rows:
        print(f"  {name:<28} bits per character {bpc:.4f}{extra}".rstrip())
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2, sort_keys=True) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate-mlm`` subcommand."""
    ev = subparsers.add_parser(
        "evaluate-mlm",
        help="bits per character and accuracy of a pretrained model on held-out sequence",
        description="Cut the sequences into sentences, tokenize and pack them as in "
        "pretraining, then score masking passes: the maskable (A/C/G/T) tokens of each packed "
        "sequence are dealt at random into ceil(1 / mask-rate) disjoint groups of equal size "
        "and each pass masks one group (80/10/10, seeded). By default every group is scored, "
        "so every maskable token is predicted exactly once. Prints bits per character with "
        "its standard error and, with --baseline-fasta, an n-gram baseline on the same bases.",
    )
    ev.add_argument("--model", required=True, help="exported model folder (run/model)")
    ev.add_argument(
        "--fasta",
        required=True,
        help="FASTA (plain, gzip or bgzip): its records are scored, or with --bed the regions",
    )
    ev.add_argument(
        "--bed",
        help="score only these regions of the FASTA (BED3+, 0-based half-open; strand '-' "
        "is scored as the reverse complement)",
    )
    ev.add_argument(
        "--max-length",
        type=at_least(3),
        help="tokens per packed sequence (default: the model's maximum, at most 4096)",
    )
    ev.add_argument("--batch-size", type=at_least(1), default=8, help="passes per batch")
    ev.add_argument("--seed", type=at_least(0), default=0, help="masking seed")
    ev.add_argument(
        "--mask-rate",
        type=between(0.0, 1.0),
        default=0.1,
        help="share of the maskable tokens masked per pass, in (0, 1): they are dealt into "
        "ceil(1 / rate) disjoint groups of equal size, one per pass (exactly this share when "
        "1 / rate is a whole number, slightly less otherwise)",
    )
    ev.add_argument(
        "--passes",
        type=at_least(1),
        help="how many of those groups to score, one pass each, from 1 to ceil(1 / mask-rate) "
        "(default: all of them, so every maskable token is predicted exactly once; 2 at mask "
        "rate 0.1 predicts about 20%% of the tokens)",
    )
    ev.add_argument(
        "--sentence-bp", type=at_least(1), default=1000, help="bp per tokenized sentence"
    )
    ev.add_argument(
        "--device", type=device, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    ev.add_argument(
        "--baseline-fasta", help="train the n-gram baseline on this FASTA and report it too"
    )
    ev.add_argument("--baseline-order", type=_ngram_order, default=8, help="n-gram order")
    ev.add_argument("-o", "--output", help="also write the results as JSON")
    ev.set_defaults(func=_run_evaluate)
