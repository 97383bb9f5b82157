"""Run a tiny pretraining from a JSON config in a subprocess, recording every batch.

Usage: python pretrain_script.py CONFIG.json RECORD.jsonl [--resume] [--die-at STEP]
Each training batch appends {"step", "rank", "source", "input_ids"} to RECORD (one file
per rank: RECORD.rank<N>). ``--die-at`` ends the process abruptly (os._exit, no cleanup)
when training is about to start that optimizer step, as a killed job would.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import lightning as L

from dnabird.tasks.config import load_config
from dnabird.tasks.pretrain_config import PretrainConfig
from dnabird.tasks.pretrain_run import run_pretrain


class RecordBatches(L.Callback):
    def __init__(self, path: str, die_at: int | None) -> None:
        self.path = path
        self.die_at = die_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.die_at:
            os._exit(3)
        record = {
            "step": trainer.global_step,
            "rank": trainer.global_rank,
            "source": batch["source"].tolist(),
            "input_ids": batch["input_ids"].tolist(),
        }
        with open(f"{self.path}.rank{trainer.global_rank}", "a") as handle:
            handle.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("record")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die-at", type=int)
    args = parser.parse_args()
    overrides = [
        f"{k}={json.dumps(v)}" for k, v in json.loads(Path(args.config).read_text()).items()
    ]
    config = load_config(PretrainConfig, None, overrides)
    run_pretrain(config, resume=args.resume, callbacks=[RecordBatches(args.record, args.die_at)])


if __name__ == "__main__":
    main()
