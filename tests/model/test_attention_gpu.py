"""CUDA equivalence of the attention backends with the dense oracle: fp32 and bf16, outputs and
input gradients, block sizes 64 and 128.

Run by pytest (``-m gpu``; skipped without CUDA) or directly as a script by
``benchmarks/gpu_check.sh`` on machines without pytest: ``python tests/model/test_attention_gpu.py
OUT.json`` runs every case, prints the errors and exits 1 if one fails.
"""

from __future__ import annotations

import itertools
import json
import sys

import torch

from dnabird.model.attention import choose_backend, sparse_attention
from dnabird.model.attention.dense import dense_attention
from dnabird.model.patterns import build_pattern, global_block_indices

try:
    import pytest
except ImportError:  # gpu_check.sh may run this file on a machine without pytest
    pytest = None

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: Allowed max error relative to the largest reference value. fp32 leaves room for TF32 dots.
TOLERANCE = {"float32": 5e-3, "bfloat16": 5e-2}
CASES = list(itertools.product(["flex", "blocked"], DTYPES, [64, 128], ["itc", "etc"]))
"""``blocked`` runs ``blocked_explicit`` on CUDA (the other blocked backends are CPU-only)."""
AUTO_ON_CUDA = {
    "auto": "flex",
    "auto_with_dropout": "blocked_explicit",
    "auto_inference": "blocked_explicit",
}


def check_case(
    backend: str, dtype_name: str, block_size: int, mode: str, device: str = "cuda"
) -> dict:
    """Errors of ``backend`` against the fp32 dense oracle on the same (rounded) inputs."""
    device, dtype = torch.device(device), DTYPES[dtype_name]
    num_blocks, heads, dim = 12, 4, 64
    pattern = build_pattern(
        num_blocks, block_size, heads, global_block_indices(num_blocks, 2, mode), 3, 3, [5]
    )
    lengths = [pattern.seq_len - 7, pattern.seq_len // 2 + 3]  # padded batch, not multiples
    length = max(lengths)
    keep = torch.arange(length, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(2, heads, length, dim, generator=gen).to(device, dtype) for _ in "qkv")
    weights = torch.randn(2, heads, length, dim, generator=gen).to(device)
    weights *= keep[:, None, :, None]  # the loss reads real query rows only

    def run(fn, inputs):
        inputs = [t.detach().requires_grad_() for t in inputs]
        out = fn(*inputs)
        grads = torch.autograd.grad((out.float() * weights).sum(), inputs)
        return out.float() * keep[:, None, :, None], [g.float() for g in grads]

    out, grads = run(
        lambda q, k, v: sparse_attention(q, k, v, pattern, keep, backend=backend), (q, k, v)
    )
    ref_out, ref_grads = run(
        lambda q, k, v: dense_attention(q, k, v, pattern, keep), [t.float() for t in (q, k, v)]
    )
    errors = {"out": (out - ref_out).abs().max().item() / ref_out.abs().max().item()}
    for name, got, want in zip("qkv", grads, ref_grads, strict=True):
        errors[f"grad_{name}"] = (got - want).abs().max().item() / want.abs().max().item()
    return {
        "backend": backend,
        "dtype": dtype_name,
        "block_size": block_size,
        "mode": mode,
        "relative_errors": errors,
        "ok": max(errors.values()) <= TOLERANCE[dtype_name],
    }


def check_auto_choice() -> dict:
    """``auto`` picks flex on CUDA for training, the plain blocked path with attention dropout
    and for inference (no gradients)."""
    pattern = build_pattern(16, 64, 2, [0, 15], 3, 3, [0])
    q = torch.zeros(1, 2, pattern.seq_len, 64, device="cuda", requires_grad=True)
    with torch.no_grad():
        inference = choose_backend(q, pattern)
    return {
        "auto": choose_backend(q, pattern),
        "auto_with_dropout": choose_backend(q, pattern, dropout_p=0.1),
        "auto_inference": inference,
    }


if pytest is not None:
    pytestmark = pytest.mark.gpu

    @pytest.mark.parametrize(("backend", "dtype_name", "block_size", "mode"), CASES)
    def test_cuda_backend_matches_dense(backend, dtype_name, block_size, mode):
        result = check_case(backend, dtype_name, block_size, mode)
        assert result["ok"], result

    def test_auto_picks_flex_on_cuda():
        assert check_auto_choice() == AUTO_ON_CUDA


def main(out_path: str | None = None) -> int:
    results, failed = [], 0
    for case in CASES:
        try:
            result = check_case(*case)
        except Exception as err:  # report and go on: one broken kernel must not hide the rest
            result = {"case": case, "ok": False, "error": f"{type(err).__name__}: {err}"}
        failed += not result["ok"]
        results.append(result)
        print(json.dumps(result), flush=True)
    choice = check_auto_choice()
    failed += choice != AUTO_ON_CUDA
    print(json.dumps(choice))
    if out_path:
        with open(out_path, "w") as handle:
            json.dump({"cases": results, "auto": choice, "failed": failed}, handle, indent=1)
    print(f"{len(results) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else None))
