"""Tokens/s of a full MLM training step: dnabird vs Hugging Face ``BigBirdForMaskedLM``.

Both models get the same architecture (preset shape, ``block_sparse`` attention, block 64,
g=2, w=3, r=3, gelu, dropout 0.1), the same batch of ``--length`` tokens with 10% of them
labelled, and AdamW. A step is forward + backward + optimizer step (+ zero_grad), under
bf16 autocast on CUDA and fp32 on CPU. After warm-up the two alternate step by step in
this one process; the table reports median seconds per step, tokens/s and the ratio
ours/peer (>1 means we are faster), plus peak memory: ``torch.cuda.max_memory_allocated``
on GPU, or the rise of the process's peak RSS measured in a fresh subprocess per model on
CPU.

Usage::

    python benchmarks/train_step.py --preset small --length 4096 --steps 5          # CPU
    python benchmarks/train_step.py --preset base --length 4096 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def make_models(preset: str, length: int, device: str):
    """(ours, peer) with the same shape, both in training mode on ``device``."""
    from transformers import BigBirdConfig as HFConfig
    from transformers import BigBirdForMaskedLM as HFMaskedLM

    from dnabird.model import BigBirdConfig, BigBirdForMaskedLM

    config = BigBirdConfig.preset(
        preset, max_position_embeddings=length, block_size=64, hidden_act="gelu"
    )
    peer_config = HFConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=length,
        attention_type="block_sparse",
        block_size=config.block_size,
        num_random_blocks=config.num_random_blocks,
    )
    ours = BigBirdForMaskedLM(config).to(device).train()
    peer = HFMaskedLM(peer_config).to(device).train()
    return ours, peer, config.vocab_size


def make_step(model, ids, labels, device):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    mask = torch.ones_like(ids)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def batch(vocab_size: int, length: int, batch_size: int, device: str):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(12, vocab_size, (batch_size, length), generator=generator)
    chosen = torch.rand(ids.shape, generator=generator) < 0.1
    return ids.to(device), torch.where(chosen, ids, -100).to(device)


def cpu_peak_rss_mib(args: argparse.Namespace, which: str) -> float:
    """Rise of peak RSS (MiB) over two training steps of one model, in a fresh process."""
    code = (
        "import sys; sys.argv=['x'] + sys.argv[1:];"
        "import benchmarks.train_step as t; t.memory_child()"
    )
    cmd = [sys.executable, "-c", code, args.preset, str(args.length), str(args.batch), which]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_child() -> None:
    preset, length, batch_size, which = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ours, peer, vocab = make_models(preset, length, "cpu")
    model = ours if which == "ours" else peer
    del ours, peer
    ids, labels = batch(vocab, length, batch_size, "cpu")
    step = make_step(model, ids, labels, "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    torch.manual_seed(0)
    ours, peer, vocab = make_models(args.preset, args.length, args.device)
    ids, labels = batch(vocab, args.length, args.batch, args.device)
    steps = {"ours": make_step(ours, ids, labels, args.device)}
    steps["peer"] = make_step(peer, ids, labels, args.device)
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(timed(step, args.device))
    memory = {}
    if args.device == "cuda":
        for name, step in steps.items():
            torch.cuda.reset_peak_memory_stats()
            step()
            memory[name] = torch.cuda.max_memory_allocated() / 2**20
    else:
        del ours, peer, steps
        memory = {name: cpu_peak_rss_mib(args, name) for name in ("ours", "peer")}

    tokens = args.batch * args.length
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "preset": args.preset,
        "length": args.length,
        "batch": args.batch,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "median_s": median,
        "tokens_per_s": {name: tokens / s for name, s in median.items()},
        "speedup_ours_over_peer": median["peer"] / median["ours"],
        "peak_memory_mib": memory,
    }
    print(
        f"{args.preset} preset, {args.length} tokens x {args.batch}, {result['device']}, "
        f"{args.steps} timed steps each (medians)"
    )
    print("| model | s/step | tokens/s | peak memory MiB |")
    print("|---|---|---|---|")
    names = {"ours": "dnabird BigBirdForMaskedLM", "peer": "HF BigBirdForMaskedLM block_sparse"}
    for name in ("ours", "peer"):
        print(
            f"| {names[name]} | {median[name]:.3f} | {tokens / median[name]:,.0f} | "
            f"{memory[name]:,.0f} |"
        )
    print(f"| ratio ours/peer (speed) | | {result['speedup_ours_over_peer']:.2f}x | |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
