"""Tokens/s of a full MLM training step: dnabird vs Hugging Face ``BigBirdForMaskedLM``.

The models get the same architecture (preset shape, ``block_sparse`` attention, block 64,
g=2, w=3, r=3, gelu, hidden dropout 0.1; no attention dropout, which HF's block-sparse
attention does not apply either), the same batch of ``--length`` tokens with 10% of them
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
import statistics
import subprocess
import sys
import time

import torch


def make_model(which: str, preset: str, length: int, device: str):
    """(model, vocab_size): ``ours`` (dnabird, plain forward), ``ours-gathered`` (dnabird as
    ``dnabird pretrain`` runs it: MLM head only at labelled positions) or ``peer`` (HF)."""
    from transformers import BigBirdConfig as HFConfig
    from transformers import BigBirdForMaskedLM as HFMaskedLM

    from dnabird.model import BigBirdConfig, BigBirdForMaskedLM
    from dnabird.tasks.pretrain import PretrainModule

    # HF's block-sparse attention applies no attention dropout (only its original_full path
    # does), so ours runs without it too: the same work on both sides.
    config = BigBirdConfig.preset(
        preset,
        max_position_embeddings=length,
        block_size=64,
        hidden_act="gelu",
        attention_probs_dropout_prob=0.0,
    )
    if which == "ours":
        model = BigBirdForMaskedLM(config)
    elif which == "ours-gathered":
        model = GatheredLoss(PretrainModule(config.to_dict(), {}, 10, [1] * config.vocab_size))
    else:
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
        model = HFMaskedLM(peer_config)
    return model.to(device).train(), config.vocab_size


class GatheredLoss(torch.nn.Module):
    """Adapts :class:`PretrainModule` to the ``model(input_ids=..., ...).loss`` call."""

    def __init__(self, module) -> None:
        super().__init__()
        self.module = module

    def forward(self, input_ids, attention_mask, labels):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        return self.module(batch)  # ModelOutput: logits [N, V] at the labelled tokens, loss


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
    """Rise of peak RSS (MiB) from before building one model to after two of its training
    steps, in a fresh process (weights, optimizer state and activations included)."""
    code = (
        "import sys; sys.argv=['x'] + sys.argv[1:];"
        "import benchmarks.train_step as t; t.memory_child()"
    )
    cmd = [sys.executable, "-c", code, args.preset, str(args.length), str(args.batch), which]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def _peak_rss_mib() -> float:
    """VmHWM (peak resident set) of this process, MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def memory_child() -> None:
    preset, length, batch_size, which = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # the peak is inherited from the parent through fork: reset it (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    before = _peak_rss_mib()
    model, vocab = make_model(which, preset, length, "cpu")
    ids, labels = batch(vocab, length, batch_size, "cpu")
    step = make_step(model, ids, labels, "cpu")
    step()
    step()
    print(_peak_rss_mib() - before)


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
    names = ("ours", "ours-gathered", "peer")
    models = {name: make_model(name, args.preset, args.length, args.device) for name in names}
    vocab = models["ours"][1]
    ids, labels = batch(vocab, args.length, args.batch, args.device)
    steps = {name: make_step(m, ids, labels, args.device) for name, (m, _) in models.items()}
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
        del models, steps
        memory = {name: cpu_peak_rss_mib(args, name) for name in names}

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
        "speedup_over_peer": {name: median["peer"] / median[name] for name in median},
        "peak_memory_mib": memory,
    }
    print(
        f"{args.preset} preset, {args.length} tokens x {args.batch}, {result['device']}, "
        f"{args.steps} timed steps each (medians)"
    )
    labels_ = {
        "ours": "dnabird BigBirdForMaskedLM (all-position logits)",
        "ours-gathered": "dnabird PretrainModule step (head at masked positions)",
        "peer": "HF BigBirdForMaskedLM block_sparse",
    }
    print("| model | s/step | tokens/s | speed vs peer | peak memory MiB |")
    print("|---|---|---|---|---|")
    for name in names:
        print(
            f"| {labels_[name]} | {median[name]:.3f} | {tokens / median[name]:,.0f} | "
            f"{median['peer'] / median[name]:.2f}x | {memory[name]:,.0f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
