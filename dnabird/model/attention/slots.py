"""What the three ``blocked_*`` backends share: key slots, global rows, chunks, autograd.

Shape legend (all blocked code): ``B`` batch, ``H`` heads, ``L = NB * b`` tokens (a block
multiple: the API pads), ``D`` head width, ``NB`` blocks of ``b`` tokens, ``n`` ordinary
(non-global) query blocks ``start .. stop-1``, ``G`` global blocks, ``w`` window blocks, ``R``
random slots, ``S = G + w + R`` key slots per ordinary query block, ``T = S * b`` keys per
ordinary query block, ``c`` query blocks in one chunk.

- ``q, k, v: [B, H, L, D]``, ``key_padding_mask: [B, L]`` bool (True = real token), output
  ``[B, H, L, D]``.
- Global query rows (a run of blocks at the start and one at the end) see every key: one dense
  SDPA pass, copied into the one output tensor the ordinary rows are written into (no final
  concatenation of a ``[B, H, L, D]`` output).
- Ordinary query block ``i`` sees its key slots ``[global | window | random]``
  (:class:`SlotTable`). Slots that are not real keys (window blocks off the sequence or global
  — those are already in the global slots —, unused random slots) are invalid; they and padded
  keys get the dtype's minimum as score (or are skipped), so a row with no visible key stays
  finite.
- A backend supplies only the ordinary rows' forward and backward (a :class:`Rows`);
  :func:`attend_blocks` does the rest. Forward saves only the inputs, the output and the rows'
  log-sum-exp; backward recomputes the scores, so memory stays ``O(L * D)`` plus what the rows
  need at a time.
- Backends that gather their key slots use a :class:`ChunkPlan`: a few query blocks at a time,
  gathered by one ``index_select`` over the blocks of all heads into reused buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from dnabird.model.patterns import BlockPattern

_CHUNK_ELEMENTS = 1 << 20
"""Target size (elements) of one chunk's score tensor on the CPU: keeps the gathered slots in
cache. Tried 2^18..2^22 at 4096 tokens (fused kernel, one thread): 2^18 and 2^20 were fastest,
2^21 and 2^22 7-20% slower."""
_CHUNK_ELEMENTS_GPU = 1 << 26
"""The same on a GPU, where fewer, larger kernels are better."""


@dataclass(frozen=True)
class SlotTable:
    """The key slots of the ordinary query blocks of one pattern."""

    block_size: int
    """Tokens per block (b)."""
    start: int
    """First ordinary query block (the blocks before it are global)."""
    stop: int
    """One past the last ordinary query block (the blocks from it on are global)."""
    block: torch.Tensor
    """``[H, n, S]`` int64 key block of every slot, in ``0 .. NB-1`` (an invalid slot points
    at some block)."""
    valid: torch.Tensor
    """``[H, n, S]`` bool: the slot is a real key block."""


def slot_table(pattern: BlockPattern, device: torch.device) -> SlotTable:
    """Every ordinary query block's key slots ``[global | window | random]`` on ``device``."""
    heads, nb, w = pattern.num_heads, pattern.num_blocks, pattern.num_window_blocks
    start, stop = pattern.num_front_global, nb - pattern.num_back_global
    n, half = stop - start, w // 2
    rows = torch.arange(start, stop, device=device)  # [n]
    global_idx = torch.tensor(pattern.global_blocks, dtype=torch.long, device=device)  # [G]
    window_idx = rows[:, None] + torch.arange(-half, half + 1, device=device)  # [n, w]
    random_idx = pattern.random_blocks[:, start:stop].to(device)  # [H, n, R]
    window_ok = (window_idx >= 0) & (window_idx < nb)
    if len(global_idx):
        window_ok &= ~torch.isin(window_idx, global_idx)
    block = torch.cat(
        [
            global_idx.expand(heads, n, -1),
            window_idx.clamp(0, nb - 1).expand(heads, n, w),
            random_idx.clamp(min=0),
        ],
        dim=-1,
    )  # [H, n, S]
    valid = torch.cat(
        [
            torch.ones(heads, n, len(global_idx), dtype=torch.bool, device=device),
            window_ok.expand(heads, n, w),
            random_idx >= 0,
        ],
        dim=-1,
    )  # [H, n, S]
    return SlotTable(pattern.block_size, start, stop, block, valid)


def needs_gradients(q: torch.Tensor) -> bool:
    """Whether a backward pass may follow: gradients are recorded and ``q`` takes part."""
    return torch.is_grad_enabled() and q.requires_grad


def keep_to_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a bool "may attend" tensor into an additive bias: 0 or the dtype's minimum."""
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


class Rows(Protocol):
    """How one backend computes the ordinary query blocks (built per call by
    ``make_rows(table, q, key_padding_mask, dropout_p)``, see :func:`attend_blocks`).

    Arguments: ``query``, ``out_rows``, ``grad_rows``, ``grad_query``: ``[B, H, n, b, D]`` row
    views of contiguous ``[B, H, L, D]`` tensors (starting at the first ordinary row);
    ``k, v``: ``[B, H, L, D]`` contiguous; ``lse: [B*H, n, b]`` (float32, or float64 for
    float64 inputs) each row's log-sum-exp of its scaled scores; ``grad_k, grad_v``:
    ``[B, H, L, D]`` contiguous, zeroed.
    """

    def forward(self, query, k, v, out_rows, lse) -> None:
        """Write the rows' output into ``out_rows`` and their log-sum-exp into ``lse``."""

    def backward(self, query, k, v, out_rows, grad_rows, lse, grad_query, grad_k, grad_v):
        """Write ``grad_query``; add the key and value gradients into ``grad_k, grad_v``."""


def attend_blocks(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None,
    dropout_p: float,
    make_rows: Callable[..., Rows],
    name: str,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` (``L == pattern.seq_len``): the global rows by
    dense SDPA, the ordinary rows by ``make_rows(table, q, key_padding_mask, dropout_p)``
    (``name``: the backend, for error messages)."""
    batch, heads, length, dim = q.shape
    b, nb = pattern.block_size, pattern.num_blocks
    if length != pattern.seq_len or heads != pattern.num_heads:
        raise ValueError(
            f"{name}: q is [B, {heads}, {length}, D] but the pattern is for "
            f"{pattern.num_heads} heads and {pattern.seq_len} tokens"
        )
    start, stop = pattern.num_front_global, nb - pattern.num_back_global
    global_out = None
    if pattern.global_blocks:
        global_q = torch.cat([q[:, :, : start * b], q[:, :, stop * b :]], dim=2)  # [B,H,G*b,D]
        bias = None
        if key_padding_mask is not None:
            bias = keep_to_bias(key_padding_mask[:, None, None, :], q.dtype)  # [B, 1, 1, L]
        global_out = F.scaled_dot_product_attention(
            global_q, k, v, attn_mask=bias, dropout_p=dropout_p
        )  # [B, H, G*b, D]
    if stop == start:
        return global_out
    table = slot_table(pattern, q.device)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    query = q[:, :, start * b : stop * b].view(batch, heads, stop - start, b, dim)  # a view
    rows = make_rows(table, q, key_padding_mask, dropout_p)
    return _SparseRows.apply(query, k, v, global_out, rows, (start, stop))  # [B, H, L, D]


class _SparseRows(torch.autograd.Function):
    """The ordinary rows by a :class:`Rows`, the global rows' output (computed outside, by
    dense SDPA) copied into the same output tensor; backward splits the output gradient the
    same way."""

    @staticmethod
    def forward(ctx, query, k, v, global_out, rows: Rows, span: tuple[int, int]):
        # query: [B, H, n, b, D] view; k, v: [B, H, L, D]; global_out: [B, H, G*b, D] or None
        batch, heads, n, b, dim = query.shape
        start, stop = span
        out = torch.empty_like(k)  # [B, H, L, D]
        if global_out is not None:
            out[:, :, : start * b] = global_out[:, :, : start * b]
            out[:, :, stop * b :] = global_out[:, :, start * b :]
        lse_dtype = torch.promote_types(query.dtype, torch.float32)
        lse = torch.empty(batch * heads, n, b, dtype=lse_dtype, device=query.device)
        rows.forward(query, k, v, out[:, :, start * b : stop * b].view(query.shape), lse)
        ctx.save_for_backward(query, k, v, out, lse)
        ctx.rows, ctx.span, ctx.has_global = rows, span, global_out is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, k, v, out, lse = ctx.saved_tensors
        (start, stop), b = ctx.span, query.shape[3]
        span = slice(start * b, stop * b)
        grad_out = grad_out.contiguous()
        grad_global = None
        if ctx.has_global:  # [B, H, G*b, D]
            grad_global = torch.cat([grad_out[:, :, : span.start], grad_out[:, :, span.stop :]], 2)
        grad_query = torch.empty_like(out)[:, :, span].view(query.shape)
        grad_k, grad_v = torch.zeros_like(k), torch.zeros_like(v)
        ctx.rows.backward(
            query,
            k,
            v,
            out[:, :, span].view(query.shape),
            grad_out[:, :, span].view(query.shape),
            lse,
            grad_query,
            grad_k,
            grad_v,
        )
        return grad_query, grad_k, grad_v, grad_global, None, None


def flat(rows: torch.Tensor) -> torch.Tensor:
    """``[B, H, n, b, D]`` row view -> ``[B*H, n, b, D]``, a view (writes go through)."""
    return rows.view(-1, *rows.shape[2:])


@dataclass(frozen=True)
class Chunk:
    """A run of ordinary query blocks ``lo .. hi-1`` (counted from the first ordinary block)
    processed together, with its gather index and score bias."""

    lo: int
    hi: int
    slot_index: torch.Tensor
    """``[H*c*S]`` key block of every slot of the chunk's rows, as an index into the ``H * NB``
    blocks of all heads (slots that are not real keys point at some block and are masked)."""
    bias: torch.Tensor
    """``[B*H, c, 1, T]`` additive score bias (0 or the dtype's minimum)."""


class ChunkPlan:
    """The ordinary rows in chunks whose scores hold about ``_CHUNK_ELEMENTS`` (or
    ``_CHUNK_ELEMENTS_GPU``), with the keys and values of each chunk's slots gathered into two
    buffers reused by every chunk (fresh multi-MiB tensors cost page faults)."""

    def __init__(
        self, table: SlotTable, q: torch.Tensor, key_padding_mask: torch.Tensor | None
    ) -> None:
        batch, heads, length, _ = q.shape
        b, n = table.block_size, table.stop - table.start
        nb = length // b
        keep = table.valid[None, :, :, :, None]  # [1, H, n, S, 1]
        if key_padding_mask is not None:
            keep = keep & key_padding_mask.view(batch, nb, b)[:, table.block]  # [B, H, n, S, b]
        keep = keep.expand(-1, -1, -1, -1, b).reshape(keep.shape[0], heads, n, 1, -1)
        bias = keep_to_bias(keep.expand(batch, -1, -1, -1, -1), q.dtype)  # [B, H, n, 1, T]
        bias = bias.view(batch * heads, n, 1, -1)  # [B*H, n, 1, T]
        head_offset = torch.arange(heads, device=q.device)[:, None, None] * nb  # [H, 1, 1]
        slot_flat = table.block + head_offset  # [H, n, S]: index into the H * NB blocks
        target = _CHUNK_ELEMENTS if q.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
        size = max(1, target // (batch * heads * b * bias.shape[-1]))
        self.block_size = b
        self.chunks = tuple(
            Chunk(lo, hi, slot_flat[:, lo:hi].reshape(-1), bias[:, lo:hi])
            for lo, hi in ((lo, min(n, lo + size)) for lo in range(0, n, size))
        )

    def gather(
        self, k: torch.Tensor, v: torch.Tensor
    ) -> Iterator[tuple[Chunk, torch.Tensor, torch.Tensor]]:
        """Each chunk with the keys and values of its slots, ``[B*H, c, T, D]`` each (views of
        the reused buffers: valid until the next chunk)."""
        batch, heads, length, dim = k.shape
        b = self.block_size
        k_blocks = k.view(batch, heads * (length // b), b, dim)  # [B, H*NB, b, D]
        v_blocks = v.view(batch, heads * (length // b), b, dim)
        largest = max(len(chunk.slot_index) for chunk in self.chunks)
        k_buffer, v_buffer = (k.new_empty(batch * largest * b * dim) for _ in range(2))
        for chunk in self.chunks:
            count, rows = len(chunk.slot_index), chunk.hi - chunk.lo
            picked = []
            for blocks, buffer in ((k_blocks, k_buffer), (v_blocks, v_buffer)):
                out = buffer[: batch * count * b * dim].view(batch, count, b, dim)
                torch.index_select(blocks, 1, chunk.slot_index, out=out)
                picked.append(out.view(batch * heads, rows, -1, dim))
            yield chunk, picked[0], picked[1]

    def scatter(self, grad: torch.Tensor, grad_slots: torch.Tensor, chunk: Chunk) -> None:
        """Add slot gradients ``[B*H, c, T, D]`` back onto their blocks of ``grad``
        (``[B, H, L, D]``, contiguous): the inverse of :meth:`gather`."""
        batch, heads, length, dim = grad.shape
        b = self.block_size
        grad.view(batch, heads * (length // b), b, dim).index_add_(
            1, chunk.slot_index, grad_slots.reshape(batch, -1, b, dim)
        )
