"""``dnabird pretrain`` (MLM pretraining from a YAML config) and ``dnabird evaluate-mlm``
(held-out bits per character of an exported model, next to the n-gram baseline)."""

from __future__ import annotations

import argparse
import json


def _run_pretrain(args: argparse.Namespace) -> None:
    from dnabird.tasks.pretrain_config import load_config
    from dnabird.tasks.pretrain_run import run_pretrain

    config = load_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return
    export = run_pretrain(config, resume=args.resume)
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    metrics = manifest["final_metrics"]
    shown = ", ".join(
        f"{name} {metrics[name]:.4f}"
        for name in ("train/loss", "train/bpc", "val/loss", "val/bpc", "val/accuracy")
        if name in metrics
    )
    print(
        f"Pretrained for {manifest['steps']} steps in {manifest['seconds']:.0f} s ({shown}). "
        f"Model exported to {export}; checkpoints and logs in {config.out}."
    )


def _run_evaluate(args: argparse.Namespace) -> None:
    from dnabird.files import write_text_atomic
    from dnabird.genome.fasta import read_fasta
    from dnabird.tasks.evaluate_mlm import evaluate_mlm, ngram_baseline, read_bed_regions

    records = read_fasta(args.fasta)
    sequences = read_bed_regions(args.bed, records) if args.bed else list(records.items())
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
    if args.baseline_fasta:
        train = list(read_fasta(args.baseline_fasta).values())
        baseline = ngram_baseline(train, [s for _, s in sequences], args.baseline_order)
        result["ngram"] = baseline
        rows.append((f"{args.baseline_order}-order k-mer Markov", baseline["bpc"], ""))
    print(
        f"Evaluated {result['sequences']} sequence(s) ({result['packed_sequences']} packed): "
        f"{result['predicted_tokens']:,} masked tokens covering {result['bp']:,} bp "
        f"(max_length {result['max_length']}, mask rate {result['mask_rate']}, "
        f"{result['passes']} pass(es), seed {result['seed']})."
    )
    for name, bpc, extra in rows:
        print(f"  {name:<28} bits per character {bpc:.4f}{extra}".rstrip())
    if args.output:
        write_text_atomic(args.output, json.dumps(result, indent=2, sort_keys=True) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` and ``evaluate-mlm`` subcommands."""
    pre = subparsers.add_parser(
        "pretrain",
        help="MLM-pretrain a BigBird model on token shards (Lightning; CPU, GPU, multi-node)",
        description="Pretrain per a YAML config (see pipelines/pretrain_tiny.yaml); "
        "trailing key.sub=value arguments override config entries.",
    )
    pre.add_argument("--config", help="YAML config (default: built-in defaults)")
    pre.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.max_steps=50")
    pre.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt"
    )
    pre.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    pre.set_defaults(func=_run_pretrain)

    ev = subparsers.add_parser(
        "evaluate-mlm",
        help="bits per character and accuracy of a pretrained model on held-out sequence",
    )
    ev.add_argument("--model", required=True, help="exported model folder (run/model)")
    ev.add_argument("--fasta", required=True, help="FASTA (plain, gzip or bgzip)")
    ev.add_argument("--bed", help="score only these regions (0-based half-open BED)")
    ev.add_argument("--max-length", type=int, help="tokens per sequence (default: model's)")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--seed", type=int, default=0, help="masking seed (default 0)")
    ev.add_argument("--mask-rate", type=float, default=0.1, help="default 0.1")
    ev.add_argument(
        "--passes",
        type=int,
        help="masking passes per packed sequence, each masking a disjoint ~mask-rate share "
        "(default: round(1 / mask-rate), so every token is scored exactly once; 1: one "
        "random mask-rate share, as in pretraining's validation)",
    )
    ev.add_argument("--sentence-bp", type=int, default=1000, help="bp per tokenized sentence")
    ev.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    ev.add_argument(
        "--baseline-fasta", help="train the n-gram baseline on this FASTA and report it too"
    )
    ev.add_argument("--baseline-order", type=int, default=8, help="n-gram order (default 8)")
    ev.add_argument("-o", "--output", help="also write the results as JSON")
    ev.set_defaults(func=_run_evaluate)
