"""``dnabird pretrain``: MLM pretraining from a YAML config (``evaluate-mlm`` lives in
:mod:`dnabird.commands.evaluate`)."""

from __future__ import annotations

import argparse
import json
import shlex


def _run_pretrain(args: argparse.Namespace) -> None:
    from dnabird.tasks.config import load_config
    from dnabird.tasks.pretrain_config import PretrainConfig
    from dnabird.tasks.pretrain_run import run_pretrain
    from dnabird.tasks.trainer import is_global_zero

    config = load_config(PretrainConfig, args.config, args.overrides)
    if args.print_config:
        import yaml

        config.check(hardware=False)
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return
    again = ["dnabird", "pretrain", *(["--config", args.config] if args.config else [])]
    export = run_pretrain(
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        accept_changes=args.accept_changes,
        command=shlex.join([*again, *args.overrides, "--resume"]),
    )
    if not is_global_zero():  # the first process exports and reports (others may be ahead)
        return
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
    pre.add_argument(
        "--config",
        help="packaged config name (tiny, grch37) or YAML file; without it, the built-in defaults",
    )
    pre.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.max_steps=50")
    pre.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from checkpoints/last.ckpt (also a finished run, to a "
        "larger trainer.max_steps)",
    )
    pre.add_argument(
        "--overwrite", action="store_true", help="replace the run OUT holds and start again"
    )
    pre.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --resume: continue although settings or inputs differ from the run's "
        "(learning rate, data...); the differences are recorded in the manifest",
    )
    pre.add_argument(
        "--print-config", action="store_true", help="check and print the resolved config, and exit"
    )
    pre.set_defaults(func=_run_pretrain)
