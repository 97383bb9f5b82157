"""``dnabird pretrain``: MLM pretraining from a YAML config (``evaluate-mlm`` lives in
:mod:`dnabird.commands.evaluate`)."""

from __future__ import annotations

import argparse
import json

from dnabird.commands._training import add_run_options, run_from_args


def _run_pretrain(args: argparse.Namespace) -> None:
    from dnabird.tasks.pretrain_config import PretrainConfig
    from dnabird.tasks.pretrain_run import run_pretrain

    done = run_from_args(args, "pretrain", PretrainConfig, run_pretrain)
    if done is None:
        return
    config, export = done
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    metrics = manifest["final_metrics"]
    shown = ", ".join(
        f"{name} {metrics[name]:.4f}"
        for name in ("train/loss", "train/bpc", "val/loss", "val/bpc", "val/accuracy")
        if name in metrics
    )
    if not any(name.startswith("val/") for name in metrics):
        shown += "; no validation metrics"
    print(
        f"Pretrained for {manifest['steps']} steps in {manifest['seconds']:.0f} s ({shown}). "
        f"Model exported to {export}; checkpoints and logs in {config.out}."
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` subcommand."""
    pre = subparsers.add_parser(
        "pretrain",
        help="MLM-pretrain a BigBird model on token shards (Lightning; CPU, GPU, multi-node)",
        description="Pretrain per a YAML config: a packaged one by name (tiny, grch37) or a "
        "file; trailing key.sub=value arguments override its entries (values read as YAML). "
        "Ctrl-C stops after the current step with a checkpoint; --resume continues.",
    )
    add_run_options(pre, "tiny, grch37", "trainer.max_steps=50")
    pre.set_defaults(func=_run_pretrain)
