"""Pretraining in real processes: a run killed and resumed equals the straight run (weights,
data order, learning curve), and DDP ranks see disjoint data covering each epoch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("pretrain_script.py")


def _config(token_folder: Path, out: Path, **extra) -> dict:
    config = {
        "out": str(out),
        "seed": 3,
        "data.tokens": str(token_folder),
        "data.max_length": 64,
        "data.batch_size": 2,
        "data.val_fraction": 0.1,
        "data.val_batches": 2,
        "model.overrides": {
            "max_position_embeddings": 64,
            "block_size": 8,
        },
        "optim.warmup_steps": 2,
        "optim.lr": 1e-3,
        "trainer.max_steps": 8,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.val_every_steps": 2,
        "trainer.checkpoint_every_steps": 4,
        "trainer.log_every_steps": 1,
        "trainer.accumulate_grad_batches": 2,
    }
    config.update(extra)
    path = out.with_suffix(".json")
    path.write_text(json.dumps(config))
    return path


def _run(config: Path, record: Path, *args: str, expect: int = 0) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(config), str(record), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == expect, result.stderr[-3000:]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_and_resumed_run_equals_straight_run(token_folder: Path, tmp_path: Path) -> None:
    straight = _config(token_folder, tmp_path / "straight")
    _run(straight, tmp_path / "straight.jsonl")
    halves = _config(token_folder, tmp_path / "halves")
    # killed at step 6: after the checkpoint of step 4, so steps 4-5 are done twice
    _run(halves, tmp_path / "halves.jsonl", "--die-at", "6", expect=3)
    assert not (tmp_path / "halves" / "model").exists()
    _run(halves, tmp_path / "halves.jsonl", "--resume")

    batches = _records(tmp_path / "straight.jsonl.rank0")
    assert len(batches) == 16  # 8 steps x 2 accumulated batches
    resumed = _records(tmp_path / "halves.jsonl.rank0")
    assert resumed[:12] + resumed[16:] == batches  # steps 0-5, then 4-7 again from step 4

    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "halves" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    # the weights moved after the resume point (so equality is not trivially the init)
    middle = torch.load(
        tmp_path / "straight" / "checkpoints" / "step-00000004.ckpt", weights_only=True
    )["state_dict"]
    assert any(not torch.equal(middle[f"model.{n}"], a[n]) for n in a)
    manifest = json.loads((tmp_path / "halves" / "model" / "manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["steps"] == 8

    # one learning curve across the kill: the rows of both parts, none twice
    curve = _curve(tmp_path / "halves")
    assert curve == [pytest.approx(row, rel=1e-5) for row in _curve(tmp_path / "straight")]
    steps = [row["step"] for row in curve]
    assert steps == sorted(steps) and {0.0, 3.0, 7.0} <= set(steps)
    train_steps = [row["step"] for row in curve if "train/loss" in row]
    assert train_steps == sorted(set(train_steps)) and len(train_steps) == 8


def _curve(run: Path) -> list[dict[str, float]]:
    """The rows of ``logs/metrics.csv`` (empty cells and throughput left out)."""
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: float(v) for k, v in row.items() if v and not k.startswith("throughput/")}
        for row in rows
    ]


def test_ddp_ranks_see_disjoint_data_covering_the_epoch(token_folder: Path, tmp_path: Path) -> None:
    from dnabird.data.mlm import DocumentSplit, pack_sentences
    from dnabird.data.tokens import TokenShards

    config = _config(
        token_folder,
        tmp_path / "ddp",
        **{
            "trainer.strategy": "ddp",
            "trainer.devices": 2,
            "trainer.accumulate_grad_batches": 1,
            "trainer.max_steps": 14,
            "trainer.checkpoint_every_steps": 14,
            "data.val_batches": 5,  # ranks may hold unequal validation batches
            "trainer.val_every_steps": 7,
            "data.max_length": 512,
            "data.batch_size": 8,
            "model.overrides": {
                "max_position_embeddings": 512,
                "block_size": 16,
            },
        },
    )
    _run(config, tmp_path / "ddp.jsonl")
    manifest = json.loads((tmp_path / "ddp" / "model" / "manifest.json").read_text())
    assert "val/bpc" in manifest["final_metrics"]  # validation ran and synced across ranks
    seen = {}
    for rank in (0, 1):
        records = _records(tmp_path / f"ddp.jsonl.rank{rank}")
        assert len(records) == 14
        keys = [tuple(k[1:]) for r in records for k in r["source"] if k[0] == 0]
        assert len(keys) == len(set(keys)), f"rank {rank} saw a sequence twice in epoch 0"
        # rank went past epoch 0, so its share of the epoch is complete
        assert any(k[0] == 1 for r in records for k in r["source"])
        seen[rank] = set(keys)
    assert seen[0] and seen[1] and not seen[0] & seen[1]

    shards = TokenShards(token_folder)
    split = DocumentSplit(val_fraction=0.1, seed=3)
    expected = {
        (s, row, chunk)
        for s, path in enumerate(shards.shards)
        for row, doc in enumerate(shards.iter_shard(path))
        if not split.is_validation(doc)
        for chunk, _ in enumerate(pack_sentences(doc.sentence_ids, 510))
    }
    assert seen[0] | seen[1] == expected
