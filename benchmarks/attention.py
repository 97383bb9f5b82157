"""Block-sparse attention benchmark: dnabird (blocked, flex) vs HF BigBird vs dense SDPA.

One process; for each length the contenders run alternately after warm-up and the median is
reported. Two workloads, batch 1, 12 heads of width 64 (hidden 768):

- ``attention``: the kernel alone on ``q, k, v: [1, 12, L, 64]`` (projections excluded).
  Peers: HF ``BigBirdBlockSparseAttention.bigbird_block_sparse_attention`` (block_sparse,
  3 random blocks) and plain full attention, ``scaled_dot_product_attention`` without a mask.
- ``layer``: one encoder layer (768 hidden, 12 heads, 3072 intermediate): dnabird's
  ``EncoderLayer`` with the blocked/flex backend or full SDPA attention, and HF's
  ``BigBirdLayer`` (block_sparse).

Modes: ``fwd`` (inference, ``torch.inference_mode``) and ``fwd+bwd`` (training step without the
optimizer). Peak memory: growth of the process RSS during one call on the CPU (sampled every
millisecond, after ``malloc_trim``), ``torch.cuda.max_memory_allocated`` on CUDA. Also reported:
the growth exponent ``t ~ L^k`` fitted over 2k..16k tokens, and the fraction of the ceiling —
ours' useful FLOP/s (pairs the pattern attends) over dense SDPA's FLOP/s (all L^2 pairs).

Usage::

    PYTHONPATH=. python benchmarks/attention.py --quick               # CI-sized, CPU
    PYTHONPATH=. python benchmarks/attention.py --json out.json       # 1k..16k
    PYTHONPATH=. python benchmarks/attention.py --device cuda --dtype bfloat16 --block-sizes 64 128
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dnabird.model.attention import sparse_attention
from dnabird.model.bigbird import EncoderLayer
from dnabird.model.config import BigBirdConfig
from dnabird.model.patterns import make_pattern

HEADS, HEAD_DIM, HIDDEN, INTERMEDIATE = 12, 64, 768, 3072
OURS = ("ours-blocked", "ours-flex")
PEERS = ("hf-block-sparse", "dense-sdpa")
SHORT = ("ours-dense",)
"""Not run by default: masked dense SDPA with the pattern's mask, what ``auto`` runs for short
sequences (``--what attention --contenders ours-blocked ours-dense`` measures the crossover)."""
ALL = (*OURS, *PEERS, *SHORT)


def model_config(block_size: int, length: int, backend: str) -> BigBirdConfig:
    """The paper's base layer shape, no dropout (deterministic and equal for all)."""
    return BigBirdConfig(
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=1,
        max_position_embeddings=length,
        block_size=block_size,
        num_random_blocks=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attention_backend=backend,
    )


def hf_config(block_size: int, length: int):
    from transformers import BigBirdConfig as HFConfig

    return HFConfig(
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=length,
        attention_type="block_sparse",
        block_size=block_size,
        num_random_blocks=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def hf_masks(length: int, block_size: int, device):
    """HF's block-sparse masks for an unpadded batch of one sequence."""
    from transformers.models.big_bird.modeling_big_bird import BigBirdModel

    ones = torch.ones(1, length, device=device)
    blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(
        ones, block_size
    )
    return blocked, band, from_mask, to_mask


def attention_contenders(length, block_size, device, dtype, train):
    """name -> (callable returning the output, tensors needing gradients)."""
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (
        torch.randn(1, HEADS, length, HEAD_DIM, generator=gen)
        .to(device, dtype)
        .requires_grad_(train)
        for _ in range(3)
    )
    pattern = make_pattern(model_config(block_size, length, "auto"), length // block_size, 0)
    hf = BigBirdBlockSparseAttention(hf_config(block_size, length)).to(device, dtype)
    hf.train(train)
    blocked, band, from_mask, to_mask = hf_masks(length, block_size, device)

    def hf_run():
        out = hf.bigbird_block_sparse_attention(
            q,
            k,
            v,
            band,
            from_mask,
            to_mask,
            blocked,
            blocked,
            HEADS,
            3,
            HEAD_DIM,
            block_size,
            block_size,
            1,
            length,
            length,
            hf.seed,
            None,
            None,
        )
        return out[0] if isinstance(out, tuple) else out

    return (
        {
            "ours-blocked": lambda: sparse_attention(q, k, v, pattern, backend="blocked"),
            "ours-flex": lambda: sparse_attention(q, k, v, pattern, backend="flex"),
            "ours-dense": lambda: sparse_attention(q, k, v, pattern, backend="dense"),
            "hf-block-sparse": hf_run,
            "dense-sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
        },
        [q, k, v],
        pattern,
    )


def layer_contenders(length, block_size, device, dtype, train):
    from transformers.models.big_bird.modeling_big_bird import BigBirdLayer

    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(1, length, HIDDEN, generator=gen).to(device, dtype).requires_grad_(train)
    runs, modules = {}, []
    pattern = make_pattern(model_config(block_size, length, "auto"), length // block_size, 0)
    for name, backend, pat in (
        ("ours-blocked", "blocked", pattern),
        ("ours-flex", "flex", pattern),
        ("dense-sdpa", "auto", None),
    ):
        layer = EncoderLayer(model_config(block_size, length, backend)).to(device, dtype)
        layer.train(train)
        modules.append(layer)
        runs[name] = lambda layer=layer, pat=pat: layer(x, None, pat)
    hf = BigBirdLayer(hf_config(block_size, length)).to(device, dtype)
    hf.train(train)
    modules.append(hf)
    blocked, band, from_mask, to_mask = hf_masks(length, block_size, device)

    def hf_run():
        out = hf(
            x, band_mask=band, from_mask=from_mask, to_mask=to_mask, blocked_encoder_mask=blocked
        )
        return out[0] if isinstance(out, tuple) else out

    runs["hf-block-sparse"] = hf_run
    params = [p for m in modules for p in m.parameters()]
    return runs, [x, *params], pattern


class Clock:
    """Wall time of one call: ``perf_counter`` on the CPU, CUDA events on the GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:
        if self.cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            return start.elapsed_time(stop) / 1e3
        begin = time.perf_counter()
        fn()
        return time.perf_counter() - begin


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn, device: torch.device) -> int:
    """Peak memory growth (bytes) during ``fn()``."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with contextlib.suppress(OSError):  # return freed heap pages, so RSS growth is honest
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    base, peak, done = rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    fn()
    done.set()
    thread.join()
    return max(peak[0], rss_bytes()) - base


def step(run, tensors, train: bool):
    """One call: forward only (inference mode) or forward + backward."""
    if not train:
        with torch.inference_mode():
            run()
        return
    out = run()
    out.float().sum().backward()
    for t in tensors:
        t.grad = None


def pattern_pairs(pattern, length: int) -> float:
    """Query-key token pairs the pattern attends (average over heads), for L = length."""
    return float(pattern.kv_counts.sum()) / pattern.num_heads * pattern.block_size**2


def measure(args, what, length, block_size, train, device, dtype):
    make = attention_contenders if what == "attention" else layer_contenders
    runs, tensors, pattern = make(length, block_size, device, dtype, train)
    names = [n for n in ALL if n in args.contenders and n in runs]
    if train and device.type == "cpu":
        names = [n for n in names if n != "ours-flex"]  # no CPU FlexAttention backward
    clock = Clock(device)
    repeats, failed = {}, {}
    for name in names:  # warm-up (and compilation); a contender that raises is left out
        try:
            for _ in range(args.warmup):
                last = clock(lambda name=name: step(runs[name], tensors, train))
        except (RuntimeError, ValueError, TypeError) as err:  # e.g. a peer's dtype bug
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
            print(f"  {name} left out at {length} tokens: {failed[name]}", flush=True)
            continue
        repeats[name] = 1 if last > args.slow_call_s else args.repeats
    names = [n for n in names if n not in failed]
    times = {n: [] for n in names}
    for _ in range(args.repeats):  # alternate the contenders
        for name in names:
            if len(times[name]) < repeats[name]:
                times[name].append(clock(lambda name=name: step(runs[name], tensors, train)))
    result = {
        "what": what,
        "mode": "fwd+bwd" if train else "fwd",
        "length": length,
        "block_size": block_size,
        "pairs_ours": pattern_pairs(pattern, length),
        "pairs_dense": float(length) ** 2,
        "median_s": {n: statistics.median(t) for n, t in times.items()},
        "runs": {n: len(t) for n, t in times.items()},
        "failed": failed,
    }
    if args.memory:
        result["peak_bytes"] = {
            n: peak_memory(lambda n=n: step(runs[n], tensors, train), device) for n in names
        }
    return result


def growth_exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(time) against log(length)."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def report(results: list[dict], out=sys.stdout) -> dict:
    """Print the tables; return the summary (exponents, ratios) for the JSON."""
    summary = {"exponents": {}}
    keys = sorted({(r["what"], r["mode"], r["block_size"]) for r in results})
    for what, mode, block in keys:
        rows = [
            r for r in results if (r["what"], r["mode"], r["block_size"]) == (what, mode, block)
        ]
        names = [n for n in ALL if any(n in r["median_s"] for r in rows)]
        print(f"\n### {what}, {mode}, block {block}: median ms (ratios = peer / ours)", file=out)
        head = ["L", *names]
        for ours in [n for n in OURS if n in names]:
            head += [f"{p}/{ours}" for p in PEERS if p in names]
        head.append("ceiling frac")
        print("| " + " | ".join(head) + " |", file=out)
        print("|" + "---|" * len(head), file=out)
        for r in sorted(rows, key=lambda r: r["length"]):
            med = r["median_s"]
            cells = [str(r["length"])] + [f"{med[n] * 1e3:.1f}" if n in med else "-" for n in names]
            for ours in [n for n in OURS if n in names]:
                cells += [
                    f"{med[p] / med[ours]:.2f}" if p in med and ours in med else "-"
                    for p in PEERS
                    if p in names
                ]
            best = min((med[n] for n in OURS if n in med), default=None)
            ceiling = r["pairs_dense"] / r["pairs_ours"]
            cells.append(
                f"{med['dense-sdpa'] / best / ceiling:.2f}"
                if "dense-sdpa" in med and best is not None
                else "-"
            )
            print("| " + " | ".join(cells) + " |", file=out)
        for r in sorted(rows, key=lambda r: r["length"]):
            for name, error in r.get("failed", {}).items():
                print(f"left out at {r['length']} tokens: {name} ({error})", file=out)
        if "peak_bytes" in rows[0]:
            print(f"\npeak memory MiB ({what}, {mode}, block {block})", file=out)
            print("| L | " + " | ".join(names) + " |", file=out)
            print("|" + "---|" * (len(names) + 1), file=out)
            for r in sorted(rows, key=lambda r: r["length"]):
                mem = r["peak_bytes"]
                print(
                    f"| {r['length']} | "
                    + " | ".join(f"{mem[n] / 2**20:.0f}" if n in mem else "-" for n in names)
                    + " |",
                    file=out,
                )
        exps = {}
        for n in names:
            pts = [
                (r["length"], r["median_s"][n])
                for r in rows
                if 2048 <= r["length"] <= 16384 and n in r["median_s"]
            ]
            k = growth_exponent(pts)
            if k is not None:
                exps[n] = round(k, 3)
        if exps:
            summary["exponents"][f"{what}/{mode}/b{block}"] = exps
            print(
                "growth exponent 2k..16k: " + ", ".join(f"{n} {k:.2f}" for n, k in exps.items()),
                file=out,
            )
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 2k tokens, 3 repeats")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--what", nargs="+", default=["attention", "layer"])
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"])
    parser.add_argument("--contenders", nargs="+", default=[*OURS, *PEERS], choices=ALL)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--slow-call-s",
        type=float,
        default=20.0,
        help="measure once (after warm-up) a contender whose warm-up call took longer",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--json", type=Path, help="write all results here (after each length)")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.repeats = [1024, 2048], 3
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch._dynamo.config.recompile_limit = 256  # one flex graph per length and block size
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "nproc": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "command": " ".join(sys.argv),
    }
    print(json.dumps(meta))
    results = []
    for block in args.block_sizes:
        for what in args.what:
            for mode in args.modes:
                for length in args.lengths:
                    r = measure(args, what, length, block, mode == "fwd+bwd", device, dtype)
                    results.append(r)
                    med = ", ".join(f"{n} {t * 1e3:.1f}" for n, t in r["median_s"].items())
                    print(f"{what} {mode} b={block} L={length}: {med} ms", flush=True)
                    if args.json:
                        args.json.write_text(json.dumps({"meta": meta, "results": results}))
    summary = report(results)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
