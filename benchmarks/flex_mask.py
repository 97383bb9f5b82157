"""What one flex attention call costs: the ``BlockMask`` (uncached, cached), the kernel, the rest.

The shape of one ``base`` layer predicting 8 kbp windows: ``q, k, v: [8, 12, 1664, 64]``
(1,664 tokens, block 64, 26 blocks), the pattern of layer 0 built as the encoder builds it
(:func:`~dnabird.model.patterns.make_pattern` with ``BigBirdConfig.preset("base")``) and a
padded batch (row ``i`` holds ``round(1664 - i * 166.4 / 7)`` real tokens, 1,664 to 1,498). Each
call runs in ``torch.inference_mode`` (what prediction runs); the timed variants alternate call
by call after warm-up, and each time is the median in milliseconds of ``--repeats`` calls,
with ``torch.cuda.synchronize()`` before and after each call on CUDA:

- ``build_uncached``: :func:`~dnabird.model.attention.flex.build_block_mask` with
  ``cache=False`` (the pattern part built again: the path before the cache);
- ``build_cached``: the same with its cache warm (only the padding-dependent part);
- ``kernel``: the flex attention kernel alone on a prebuilt mask (compiled on CUDA);
- ``flex``: :func:`~dnabird.model.attention.flex.flex_sparse_attention` end to end;
- ``blocked``: ``sparse_attention(..., backend="blocked")`` on the same inputs
  (``blocked_explicit`` on CUDA, our C++ kernel on the CPU);
- ``dense_sdpa``: ``scaled_dot_product_attention`` over all pairs with the key padding mask
  (a full-attention peer).

Also reported: host-device synchronisations counted during one build of each kind (CUDA, with
``torch.cuda.set_sync_debug_mode``) and the largest difference between flex and blocked over
the real query rows. Prints one Markdown table. Usage::

    PYTHONPATH=. python benchmarks/flex_mask.py --device cuda --dtype bfloat16 --json out.json
    PYTHONPATH=. python benchmarks/flex_mask.py --device cpu --only-build      # the builds alone
    PYTHONPATH=. python benchmarks/flex_mask.py --device cpu --tokens 512 --batch 2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from dnabird.model.attention import flex as flex_module
from dnabird.model.attention import sparse_attention
from dnabird.model.config import BigBirdConfig
from dnabird.model.patterns import make_pattern

BUILDS = ("build_uncached", "build_cached")
ATTENTION = ("kernel", "flex", "blocked", "dense_sdpa")
LABELS = {
    "build_uncached": "BlockMask, uncached (pattern part rebuilt)",
    "build_cached": "BlockMask, cached pattern part",
    "kernel": "flex kernel alone, prebuilt mask",
    "flex": "flex_sparse_attention, end to end",
    "blocked": "blocked backend",
    "dense_sdpa": "dense SDPA with key padding (peer)",
}


def real_lengths(batch: int, tokens: int) -> list[int]:
    """Real tokens of each row: ``tokens`` down to about 0.9 * ``tokens``, all different."""
    step = tokens / 10 / max(batch - 1, 1)
    return [tokens - round(i * step) for i in range(batch)]


def synchronisations(fn, device: torch.device) -> int | None:
    """Host-device synchronisations during ``fn()`` (CUDA only; None on other devices)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def measure(args) -> dict:
    """Median milliseconds of every variant, and the checks (see the module docstring)."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = BigBirdConfig.preset("base")
    block = config.block_size
    if args.tokens % block:
        raise SystemExit(f"--tokens must be a multiple of the block size {block}")
    pattern = make_pattern(config, args.tokens // block, args.layer)
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    lengths = real_lengths(args.batch, args.tokens)
    keep = torch.arange(args.tokens)[None] < torch.tensor(lengths)[:, None]  # [B, L]
    keep = keep.to(device)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(args.batch, heads, args.tokens, dim, generator=gen).to(device, dtype)
        for _ in "qkv"
    )
    compiled = device.type == "cuda" if args.compile is None else args.compile
    tile = flex_module.tile_blocks(pattern, device)
    full_tiles = device.type != "cpu"

    def build(cache: bool):
        return flex_module.build_block_mask(
            pattern, keep, args.batch, device, tile, full_tiles, cache=cache
        )

    runs = {name: (lambda cache=name == "build_cached": build(cache)) for name in BUILDS}
    outputs = {}
    if not args.only_build:
        mask = build(True)
        extra = mask.seq_lengths[0] - args.tokens
        qp, kp, vp = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))
        kernel = flex_module._flex_function(compiled)
        bias = keep[:, None, None, :]  # [B, 1, 1, L] bool: True = attend
        runs.update(
            {
                "kernel": lambda: kernel(qp, kp, vp, block_mask=mask),
                "flex": lambda: flex_module.flex_sparse_attention(
                    q, k, v, pattern, keep, compiled=compiled
                ),
                "blocked": lambda: sparse_attention(q, k, v, pattern, keep, backend="blocked"),
                "dense_sdpa": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
            }
        )

    def call(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started, out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # flex "called without torch.compile"
        warm_s = {}
        for name, fn in runs.items():  # warm-up (compiles, fills the cache)
            started = time.perf_counter()
            for _ in range(args.warmup):
                _, outputs[name] = call(fn)
            warm_s[name] = time.perf_counter() - started
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                times[name].append(call(fn)[0])
    result = {
        "median_ms": {name: statistics.median(t) * 1e3 for name, t in times.items()},
        "warmup_s": warm_s,
        "syncs": {name: synchronisations(runs[name], device) for name in BUILDS},
        "compiled": compiled,
        "tile_tokens": tile * block,
        "full_tiles": full_tiles,
        "lengths": lengths,
        "pattern_density": pattern.density(),
    }
    if "flex" in outputs:
        real = keep[:, None, :, None]  # rows of padding tokens are unspecified
        diff = (outputs["flex"].float() - outputs["blocked"].float()).abs() * real
        result["max_abs_diff_flex_blocked"] = float(diff.max())
    return result


def report(result: dict, args) -> None:
    median = result["median_ms"]
    print(
        f"flex BlockMask at [{args.batch}, 12, {args.tokens}, 64] {args.dtype} on {args.device}"
        f" (tiles of {result['tile_tokens']} tokens, compiled {result['compiled']}), "
        f"medians of {args.repeats} calls"
    )
    print("| what | ms per call | share of flex end to end |")
    print("|---|---:|---:|")
    for name, ms in median.items():
        share = f"{ms / median['flex']:.1%}" if "flex" in median else ""
        print(f"| {LABELS[name]} | {ms:,.3f} | {share} |")
    syncs = result["syncs"]
    if syncs["build_cached"] is not None:
        print(f"host-device syncs per build: {syncs}")
    if "max_abs_diff_flex_blocked" in result:
        print(
            f"max abs diff flex vs blocked (real rows): {result['max_abs_diff_flex_blocked']:.1e}"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1664, help="a multiple of 64")
    parser.add_argument("--layer", type=int, default=0, help="whose pattern (random blocks)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per variant first")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the flex kernel (default: on CUDA only)",
    )
    parser.add_argument("--only-build", action="store_true", help="time the mask builds alone")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = measure(args)
    report(result, args)
    result["meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "command": " ".join(sys.argv),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
