"""Real-data fine-tuning benchmark: human TATA promoters (EPDnew, DeePromoter negatives) and
human TF binding (GUE tasks 0-3), our fine-tuned BigBird next to the baselines.

For every task and start (``pretrained``: the model folder given by ``--pretrained``, by
default the demo's model, pretrained on the hg38 chr2 excerpt, made with ``dnabird demo``
into ``WORK/demo`` when absent; ``scratch``: the same architecture and tokenizer with fresh
weights) it runs ``dnabird finetune`` (the packaged ``promoter`` config plus the overrides
below) into ``WORK/<task>-<start>``; each run's ``report.json`` holds the test-split
reports (95% bootstrap CIs) of the model and of the k-mer and one-hot logistic regressions
trained on the SAME training split and scored on the SAME test split. Tasks:

- ``promoter-substitute`` / ``promoter-shuffle``: 2,929 positives, one negative each
  (DeePromoter's substitution, or the composition-keeping permutation), split 80/10/10 by
  identity with each negative in its positive's split;
- ``gue0`` .. ``gue3``: the given train / dev / test files.

Prints one Markdown table per task and writes everything to ``--json``. Usage::

    PYTHONPATH=. python benchmarks/finetune.py --work /tmp/ft --json ft.json
    PYTHONPATH=. python benchmarks/finetune.py --work /tmp/ft --tasks gue0 --starts pretrained
    PYTHONPATH=. python benchmarks/finetune.py --work /tmp/ft --pretrained runs/x/model \
        --tasks promoter-substitute --max-train-s 840 --set data.negative_draws=5 --tag _k5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dnabird.testing import shared_data_dir

TASKS = ("promoter-substitute", "promoter-shuffle", "gue0", "gue1", "gue2", "gue3")
STARTS = ("pretrained", "scratch")

#: Settings of every run (CPU-sized: each run well within 15 minutes on 2 cores).
COMMON = [
    "model.dropout=0.1",
    "optim.lr=3e-4",
    "optim.warmup_steps=100",
    "trainer.max_steps=6000",
    "early_stopping.metric=val/auroc",
    "early_stopping.patience=6",
]


def task_overrides(task: str, data: Path) -> list[str]:
    """The data section of ``task`` on the shared data folder ``data``."""
    if task.startswith("promoter-"):
        return [
            f"data.train={data / 'promoters' / 'human_TATA_EPDnew_300bp.txt'}",
            f"data.negatives={task.removeprefix('promoter-')}",
            "trainer.val_every_steps=150",
            "trainer.checkpoint_every_steps=150",
        ]
    folder = data / "gue_tf" / task.removeprefix("gue")
    return [
        f"data.train={folder / 'train.csv.gz'}",
        f"data.validation={folder / 'dev.csv.gz'}",
        f"data.test={folder / 'test.csv.gz'}",
        "data.label=null",
        "data.negatives=null",
        'data.classes=["0","1"]',
        "data.batch_size=64",
        "trainer.val_every_steps=500",
        "trainer.checkpoint_every_steps=500",
    ]


def start_overrides(start: str, pretrained: Path) -> list[str]:
    """``model.init`` for the pretrained start, or the same architecture from scratch."""
    if start == "pretrained":
        return [f"model.init={pretrained}"]
    config = json.loads((pretrained / "config.json").read_text())
    shape = {
        k: config[k]
        for k in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "block_size",
        )
    }
    return [
        "model.init=null",
        "model.preset=tiny",
        f"model.tokenizer={pretrained / 'tokenizer'}",
        f"model.overrides={json.dumps(shape)}",
    ]


def run(
    task: str,
    start: str,
    pretrained: Path,
    work: Path,
    data: Path,
    max_train_s: float | None = None,
    overrides: Sequence[str] = (),
    tag: str = "",
) -> dict:
    """One fine-tuning run into ``WORK/<task>-<start><tag>``; its report and time.
    ``overrides`` (config ``key=value``) come after the benchmark's own settings."""
    out = work / f"{task}-{start}{tag}"
    command = [
        sys.executable,
        "-m",
        "dnabird.cli",
        "--no-progress",
        "-q",
        "finetune",
        "--config",
        "promoter",
        f"out={out}",
        *COMMON,
        *task_overrides(task, data),
        *start_overrides(start, pretrained),
        f"trainer.max_time_s={'null' if max_train_s is None else max_train_s}",
        *overrides,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    return {
        "task": task,
        "start": start,
        "seconds": round(time.perf_counter() - started, 1),
        "steps": manifest.get("steps"),
        "command": " ".join(command[2:]),
        "report": report,
    }


def table(results: list[dict]) -> str:
    """Markdown: one row per model (ours per start, then the baselines of the first run)."""
    from dnabird.tasks.classification_metrics import metrics_table

    reports = {}
    for result in results:
        for name, report in result["report"]["reports"].items():
            key = f"dnabird ({result['start']})" if name == "dnabird" else name
            reports.setdefault(key, report)
    return metrics_table(reports, names=("f1", "mcc", "auroc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for every run")
    parser.add_argument("--pretrained", type=Path, help="pretrained model folder (default: demo)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument(
        "--max-train-s", type=float, help="wall-clock limit of each run's training (seconds)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every run, after the benchmark's own",
    )
    parser.add_argument("--tag", default="", help="suffix of the run folders' names")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("benchmarks/finetune.py needs ../shared/data (or $DNABIRD_SHARED_DATA)")
    pretrained = args.pretrained
    if pretrained is None:
        demo = args.work / "demo"
        subprocess.run(
            [sys.executable, "-m", "dnabird.cli", "--no-progress", "demo", "--out", str(demo)],
            check=True,
        )
        pretrained = demo / "pretrain" / "model"
    results = []
    for task in args.tasks:
        done = [
            run(task, start, pretrained, args.work, data, args.max_train_s, args.set, args.tag)
            for start in args.starts
        ]
        results += done
        seconds = ", ".join(f"{r['start']} {r['seconds']:.0f} s, {r['steps']} steps" for r in done)
        print(f"\n### {task} ({seconds})\n\n{table(done)}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
