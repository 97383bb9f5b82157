"""What the training commands (``pretrain``, ``finetune``) share: their run options and the
config-then-run sequence. Private (``_``): :mod:`dnabird.cli` does not take it for a
subcommand module."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_run_options(parser: argparse.ArgumentParser, configs: str, example: str) -> None:
    """``--config`` (``configs``: the packaged names), ``KEY=VALUE`` overrides (``example``),
    ``--resume``, ``--overwrite``, ``--accept-changes`` and ``--print-config``."""
    parser.add_argument(
        "--config",
        help=f"packaged config name ({configs}) or YAML file; without it, the built-in defaults",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"e.g. {example}")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from checkpoints/last.ckpt (also a finished run, to a "
        "larger trainer.max_steps)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run OUT holds and start again"
    )
    parser.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --resume: continue although settings or inputs differ from the run's "
        "(learning rate, data...); the differences are recorded in the manifest",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="check and print the resolved config, and exit"
    )


def run_from_args(
    args: argparse.Namespace, command: str, config_class: type, run: Callable[..., Path]
) -> tuple[Any, Path] | None:
    """Load and check ``config_class`` from ``args`` and run it with ``run`` (``run_pretrain``
    or ``run_finetune``); return ``(config, exported model folder)`` on the first process,
    None after ``--print-config`` and on the other processes of a distributed run (the first
    one exports and reports)."""
    from dnabird.tasks.config import load_config
    from dnabird.tasks.trainer import is_global_zero

    config = load_config(config_class, args.config, args.overrides)
    if args.print_config:
        import yaml

        config.check(hardware=False)
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return None
    again = ["dnabird", command, *(["--config", args.config] if args.config else [])]
    export = run(
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        accept_changes=args.accept_changes,
        command=shlex.join([*again, *args.overrides, "--resume"]),
    )
    return (config, export) if is_global_zero() else None
