"""Blocked backend, compiled CPU path: the ordinary query blocks by our C++ kernel, in float32.

One kernel call computes every ordinary query block, forward, and one its gradients, backward
(:mod:`dnabird.model.attention.cpu_kernel` builds and calls it; ``sparse_rows_cpu.cpp`` holds
the algorithm). Per query block it reads each run of consecutive key blocks straight from
``K`` and ``V`` (no gather copy), keeps the block's scores in cache and adds key and value
gradients in place. CPU only; no attention dropout; at most
:data:`~dnabird.model.attention.cpu_kernel.MAX_SLOTS` key slots per query block; needs a C++
compiler on first use (``DNABIRD_CPU_KERNEL=0`` turns it off). Shapes and the shared machinery:
:mod:`~dnabird.model.attention.slots`.

Precision: float32, or bfloat16 / float16 inputs computed in float32 (as under
``torch.autocast``: the output is cast back to the inputs' dtype). Except: bfloat16 inputs
with no backward to follow run the kernel's bfloat16 forward where the CPU has one
(:func:`runs_in_bfloat16`). Up to ``MAX_SLOTS`` blocks that call computes the global query
blocks too, as rows whose slots list every key block, instead of a separate SDPA pass
(``benchmarks/RESULTS.md``, "A bfloat16 attention kernel").
"""

from __future__ import annotations

import torch

from dnabird.errors import ConfigError
from dnabird.model.attention import cpu_kernel
from dnabird.model.attention.slots import SlotTable, attend_blocks, needs_gradients, slot_table
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
    dtype (computed in float32, or in bfloat16 where :func:`runs_in_bfloat16`)."""
    reason = unsupported(q, pattern, dropout_p)
    if reason is not None:
        raise ConfigError(f"attention backend blocked_kernel: {reason}; use blocked")
    dtype = q.dtype
    if not runs_in_bfloat16(q, pattern):
        q, k, v = (t.float() for t in (q, k, v))
    elif pattern.num_blocks <= cpu_kernel.MAX_SLOTS:
        return _every_block_in_bfloat16(q, k, v, pattern, key_padding_mask)
    out = attend_blocks(
        q, k, v, pattern, key_padding_mask, dropout_p, _KernelRows, "blocked_kernel"
    )
    return out.to(dtype)


def runs_in_bfloat16(q: torch.Tensor, pattern: BlockPattern) -> bool:
    """Whether these inputs run the kernel's bfloat16 forward instead of being computed in
    float32: bfloat16, no backward to follow, a CPU with the bfloat16 kernel, head width and
    block size multiples of :data:`~dnabird.model.attention.cpu_kernel.BFLOAT16_MULTIPLE`.
    Up to :data:`~dnabird.model.attention.cpu_kernel.MAX_SLOTS` blocks every query block runs
    in one kernel call (a global block's row lists them all); beyond, the global rows run in
    SDPA as in float32."""
    multiple = cpu_kernel.BFLOAT16_MULTIPLE
    return (
        q.dtype == torch.bfloat16
        and not needs_gradients(q)
        and q.shape[-1] % multiple == 0
        and pattern.block_size % multiple == 0
        and cpu_kernel.has_bfloat16()
    )


def _every_block_in_bfloat16(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    """``[B, H, L, D]`` bfloat16: every query block by one call of the kernel's bfloat16
    forward, over the slots of :func:`all_rows_table` (no autograd: nothing is saved)."""
    batch, heads, length, dim = q.shape
    rows = (batch, heads, pattern.num_blocks, pattern.block_size, dim)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    lse = torch.empty(batch * heads, pattern.num_blocks, pattern.block_size)  # float32
    block, valid = all_rows_table(pattern, q.device)
    cpu_kernel.sparse_rows_forward(
        q.view(rows), k, v, out.view(rows), lse, block, valid, key_padding_mask
    )
    return out


def all_rows_table(
    pattern: BlockPattern, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key slots of every query block, ``block, valid: [H, NB, S']`` with ``S' = max(S, NB)``
    (the :class:`~dnabird.model.attention.slots.SlotTable` legend): an ordinary block's slots
    (padded with invalid ones), and for a global block every key block, valid."""
    table = slot_table(pattern, device)
    heads, nb, slots = pattern.num_heads, pattern.num_blocks, table.block.shape[-1]
    width = max(slots, nb)
    column = torch.arange(width, device=device)
    block = column.clamp(max=nb - 1).expand(heads, nb, width).clone()
    valid = (column < nb).expand(heads, nb, width).clone()
    ordinary = slice(table.start, table.stop)
    valid[:, ordinary] = False
    block[:, ordinary, :slots], valid[:, ordinary, :slots] = table.block, table.valid
    return block, valid


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
