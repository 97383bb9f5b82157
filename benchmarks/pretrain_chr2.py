"""Real-data pretraining run: tiny BigBird on the hg38 chr2 excerpt vs the n-gram baseline.

What it does (all on CPU, about 10 minutes on 2 cores with the defaults):

1. Reads ``genome/hg38_chr2_1-2333275.fa.gz`` from the shared data folder and holds out
   its last 300 kbp ([2,033,275, 2,333,275), 0-based half-open); the rest is training.
2. preprocess (4 passes, both strands) -> train-tokenizer (4,096 ids, 2 Mbp sample) ->
   tokenize, all on the training part only.
3. Pretrains the ``tiny`` preset widened to 128 (block 64, no dropout) twice with the same
   wall-clock budget and the same tokens per batch: 512-token and 4096-token context. Steps
   are set from a timed calibration so each run's learning-rate schedule ends at its budget.
4. Scores the held-out 300 kbp with ``evaluate_mlm`` (10 passes of 10% masking that
   together predict every token once, seed 0; bpc with its standard error) and the
   interpolated k-mer Markov baseline (orders 2..11, trained on the training part and its
   reverse complement); prints a Markdown table, writes JSON and a PNG training curve.

Usage::

    python benchmarks/pretrain_chr2.py --work /tmp/chr2 --budget-s 240 \
        --out benchmarks/results/pretrain_chr2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

HELD_OUT_BP = 300_000
CONTEXTS = ((512, 16), (4096, 2))  # (max_length, batch_size): 8,192 tokens per batch
# tiny preset (2 layers, 4 heads) widened to 128 (the 64-wide preset levels off at ~1.84
# validation bpc), the paper's block size, no dropout (a few minutes see few epochs)
MODEL_OVERRIDES = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "max_position_embeddings": 4096,
    "block_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def seconds_per_step(model_config, max_length: int, batch_size: int) -> float:
    """Median time of a full training step (forward, backward, AdamW) of the module."""
    import statistics

    import torch

    from dnabird.tasks.pretrain import PretrainModule

    vocab_size = model_config.vocab_size
    module = PretrainModule(model_config.to_dict(), {}, 10, [1] * vocab_size).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    ids = torch.randint(12, vocab_size, (batch_size, max_length))
    labels = torch.where(torch.rand(ids.shape) < 0.1, ids, -100)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    times = []
    for _ in range(4):
        start = time.perf_counter()
        module(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/dnabird_chr2", help="scratch folder")
    parser.add_argument("--out", default="benchmarks/results/pretrain_chr2", help="results prefix")
    parser.add_argument("--budget-s", type=float, default=240, help="training seconds per run")
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument(
        "--model-overrides",
        type=json.loads,
        default={},
        help="JSON of BigBirdConfig fields over the tiny preset, e.g. '{\"hidden_size\": 128}'",
    )
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument(
        "--contexts",
        type=int,
        nargs="+",
        default=[n for n, _ in CONTEXTS],
        help="context lengths to train (512 and/or 4096)",
    )
    args = parser.parse_args()

    from dnabird.data.tokens import tokenize_corpus
    from dnabird.genome.fasta import read_fasta
    from dnabird.genome.preprocess import preprocess
    from dnabird.model import BigBirdConfig
    from dnabird.plots import plot_training_curve
    from dnabird.tasks.config import load_config
    from dnabird.tasks.evaluate_mlm import evaluate_mlm, ngram_baseline
    from dnabird.tasks.pretrain_config import PretrainConfig
    from dnabird.tasks.pretrain_run import run_pretrain
    from dnabird.testing import shared_data_dir
    from dnabird.tokenizer import train_tokenizer

    data = shared_data_dir()
    if data is None:
        raise SystemExit("shared data folder not found (set DNABIRD_SHARED_DATA)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    ((name, sequence),) = read_fasta(data / "genome" / "hg38_chr2_1-2333275.fa.gz").items()
    cut = len(sequence) - HELD_OUT_BP
    train_seq, held_seq = sequence[:cut], sequence[cut:]
    (work / "train.fa").write_text(f">{name}\n{train_seq}\n")
    (work / "held.fa").write_text(f">{name}_held\n{held_seq}\n")

    start = time.perf_counter()
    if not (work / "tokens" / "manifest.json").is_file():
        preprocess(work / "train.fa", work / "corpus", passes=args.passes, both_strands=True)
        train_tokenizer(
            work / "corpus", work / "tokenizer", vocab_size=args.vocab_size, sample_bp=2_000_000
        )
        tokenize_corpus(work / "corpus", work / "tokenizer", work / "tokens")
    timings["data_s"] = time.perf_counter() - start
    tokens_manifest = json.loads((work / "tokens" / "manifest.json").read_text())

    runs = {}
    for max_length, batch_size in CONTEXTS:
        if max_length not in args.contexts:
            continue
        model_overrides = {**MODEL_OVERRIDES, **args.model_overrides}
        model_config = BigBirdConfig.preset("tiny", **model_overrides, vocab_size=args.vocab_size)
        step_s = seconds_per_step(model_config, max_length, batch_size)
        steps = max(20, int(args.budget_s / step_s))
        out = work / f"run_{max_length}_{model_config.hidden_size}x{model_config.num_hidden_layers}"
        overrides = [
            f"out={out}",
            "seed=0",
            f"data.tokens={work / 'tokens'}",
            f"data.max_length={max_length}",
            f"data.batch_size={batch_size}",
            "data.val_fraction=0.02",
            "data.val_batches=8",
            "model.preset=tiny",
            f"model.overrides={json.dumps(model_overrides)}",
            f"optim.lr={args.lr}",
            f"optim.warmup_steps={max(1, steps // 20)}",
            f"trainer.max_steps={steps}",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            f"trainer.log_every_steps={max(1, steps // 100)}",
            f"trainer.val_every_steps={max(1, steps // 10)}",
            f"trainer.checkpoint_every_steps={steps}",
        ]
        resume = (out / "checkpoints" / "last.ckpt").is_file()
        start = time.perf_counter()
        export = run_pretrain(load_config(PretrainConfig, None, overrides), resume=resume)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        held = evaluate_mlm(export, [(f"{name}_held", held_seq)], max_length=max_length, seed=0)
        runs[max_length] = {
            "model": f"{model_config.num_hidden_layers} x {model_config.hidden_size}",
            "model_overrides": model_overrides,
            "lr": args.lr,
            "batch_size": batch_size,
            "steps": steps,
            "calibrated_step_s": step_s,
            "train_s": train_s,
            "eval_s": time.perf_counter() - start,
            "held_out": held,
            "metrics_csv": str(out / "logs" / "metrics.csv"),
        }
        print(
            f"context {max_length}: {steps} steps in {train_s:.0f} s, held-out bpc "
            f"{held['bpc']:.4f} (SE {held['bpc_se']:.4f})",
            flush=True,
        )

    start = time.perf_counter()
    baselines = {
        order: ngram_baseline([train_seq], [held_seq], order) for order in (2, 4, 6, 8, 10, 11)
    }
    timings["ngram_s"] = time.perf_counter() - start
    best = min(baselines.values(), key=lambda b: b["bpc"])

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_training_curve(
        {f"{n} tokens": r["metrics_csv"] for n, r in runs.items()},
        out.with_suffix(".png"),
        baselines={f"{best['order']}-order k-mer Markov (held-out)": best["bpc"]},
        title="BigBird MLM on hg38 chr2 excerpt: bits per character",
    )
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "nproc": os.cpu_count(),
        "held_out": f"{name}:{cut}-{len(sequence)}",
        "tokens_manifest_counts": tokens_manifest["counts"],
        "bp_per_token": tokens_manifest["bp_per_token"],
        "runs": runs,
        "ngram": baselines,
        "timings": timings,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")

    print("\n| model | context (tokens) | steps | train s | held-out bpc (SE) | masked acc |")
    print("|---|---|---|---|---|---|")
    for n, r in runs.items():
        h = r["held_out"]
        print(
            f"| BigBird {r['model']} | {n} | {r['steps']} | {r['train_s']:.0f} | {h['bpc']:.4f} "
            f"({h['bpc_se']:.4f}) | {h['accuracy']:.4f} |"
        )
    for order, b in baselines.items():
        print(f"| {order}-order k-mer Markov | {order} bp | - | - | {b['bpc']:.4f} | - |")


if __name__ == "__main__":
    main()
