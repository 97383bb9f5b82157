"""Blocked backend, compiled CPU path: the ordinary query blocks by our C++ kernel, in float32.

One kernel call computes every ordinary query block, forward, and one its gradients, backward
(:mod:`dnabird.model.attention.cpu_kernel` builds and calls it; ``sparse_rows_cpu.cpp`` holds
the algorithm). Per query block it reads each run of consecutive key blocks straight from
``K`` and ``V`` (no gather copy), keeps the block's scores in cache and adds key and value
gradients in place. CPU only; float32, or bfloat16 / float16 inputs computed in float32 (as
under ``torch.autocast``: the output is cast back to the inputs' dtype); no attention dropout, at
most
:data:`~dnabird.model.attention.cpu_kernel.MAX_SLOTS` key slots per query block; needs a C++
compiler on first use (``DNABIRD_CPU_KERNEL=0`` turns it off). Shapes and the shared machinery:
:mod:`~dnabird.model.attention.slots`.
"""

from __future__ import annotations

import torch

from dnabird.errors import ConfigError
from dnabird.model.attention import cpu_kernel
from dnabird.model.attention.slots import SlotTable, attend_blocks
from dnabird.model.patterns import BlockPattern

COMPUTED_IN_FLOAT32 = (torch.float32, torch.bfloat16, torch.float16)
"""Input dtypes this backend takes; all are computed in float32 (float64 is not: it would lose
precision)."""


def blocked_kernel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` with ``L == pattern.seq_len``, in the inputs'
    dtype (computed in float32)."""
    reason = unsupported(q, pattern, dropout_p)
    if reason is not None:
        raise ConfigError(f"attention backend blocked_kernel: {reason}; use blocked")
    dtype = q.dtype
    q, k, v = (t.float() for t in (q, k, v))
    out = attend_blocks(
        q, k, v, pattern, key_padding_mask, dropout_p, _KernelRows, "blocked_kernel"
    )
    return out.to(dtype)


def unsupported(q: torch.Tensor, pattern: BlockPattern, dropout_p: float) -> str | None:
    """Why this backend cannot run these inputs, or None when it can (builds the kernel on
    first use)."""
    if q.device.type != "cpu" or q.dtype not in COMPUTED_IN_FLOAT32:
        return f"needs float32, bfloat16 or float16 CPU tensors, not {q.dtype} on {q.device.type}"
    if dropout_p > 0.0:
        return "has no attention dropout"
    slots = len(pattern.global_blocks) + pattern.num_window_blocks + pattern.random_blocks.shape[-1]
    if slots > cpu_kernel.MAX_SLOTS:
        return f"takes at most {cpu_kernel.MAX_SLOTS} key blocks per query block, not {slots}"
    if not cpu_kernel.available():
        return f"CPU kernel {cpu_kernel.status()}"
    return None


class _KernelRows:
    """All ordinary rows in one kernel call (a :class:`~dnabird.model.attention.slots.Rows`)."""

    def __init__(
        self,
        table: SlotTable,
        q: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        dropout_p: float,
    ) -> None:
        self.slots = (table.block, table.valid, key_padding_mask)  # [H, n, S] x 2, [B, L]

    def forward(self, query, k, v, out_rows, lse) -> None:
        cpu_kernel.sparse_rows_forward(query, k, v, out_rows, lse, *self.slots)

    def backward(self, query, k, v, out_rows, grad_rows, lse, grad_query, grad_k, grad_v):
        cpu_kernel.sparse_rows_backward(
            query, k, v, out_rows, grad_rows, lse, grad_query, grad_k, grad_v, *self.slots
        )
