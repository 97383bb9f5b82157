"""Blocked backend: block-sparse attention in pure PyTorch on block views. O(L) memory.

Shape legend: ``B`` batch, ``H`` heads, ``L = NB * b`` tokens (a block multiple: the API pads),
``D`` head width, ``NB`` blocks of ``b`` tokens, ``n`` ordinary (non-global) query blocks,
``G`` global blocks, ``w`` window blocks, ``R`` random slots, ``S = G + w + R`` key blocks per
ordinary query block, ``T = S * b`` keys per ordinary query block.

- ``q, k, v: [B, H, L, D]``, ``key_padding_mask: [B, L]`` bool (True = real token), output
  ``[B, H, L, D]``.
- Global query rows (a run of blocks at the start and one at the end) see every key: one dense
  SDPA pass, copied into the one output tensor the ordinary rows are written into (no final
  concatenation of a ``[B, H, L, D]`` output).
- The ordinary query blocks on the CPU in float32 without dropout, forward and backward: our
  compiled kernel (:mod:`dnabird.model.attention.cpu_kernel`), which reads each run of
  consecutive key blocks straight from ``K`` and ``V`` (no gather), when it could be built.
- Otherwise each ordinary query block ``i`` gathers its keys as ``[global | window | random]``
  by one ``index_select`` over the blocks of all heads (window blocks off the sequence are
  clamped and masked), a few query blocks at a time into reused buffers; on the CPU without
  dropout (float64, or no kernel) each chunk is then one fused FlashAttention kernel call (and
  its fused backward), the rows of the chunk acting as heads; otherwise one batched matmul, a
  softmax over the ``T`` keys and one batched matmul with the values.
- Slots that are not real keys (window blocks off the sequence or global — those are already in
  the global slots —, unused random slots, padded tokens) get the dtype's minimum as score, so a
  row with no visible key stays finite.

Differentiable by a hand-written backward that recomputes chunk by chunk: memory ``O(L * D)``
plus one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dnabird.model.attention import cpu_kernel
from dnabird.model.patterns import BlockPattern

_CHUNK_ELEMENTS = 1 << 20
"""Target size (elements) of one chunk's score tensor on the CPU: keeps the gathered slots in
cache. Tried 2^18..2^22 at 4096 tokens (fused kernel, one thread): 2^18 and 2^20 were fastest,
2^21 and 2^22 7-20% slower."""
_CHUNK_ELEMENTS_GPU = 1 << 26
"""The same on a GPU, where fewer, larger kernels are better."""


def blocked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` with ``L == pattern.seq_len``."""
    batch, heads, length, dim = q.shape
    b, nb = pattern.block_size, pattern.num_blocks
    if length != pattern.seq_len or heads != pattern.num_heads:
        raise ValueError(
            f"blocked_attention: q is [B, {heads}, {length}, D] but the pattern is for "
            f"{pattern.num_heads} heads and {pattern.seq_len} tokens"
        )
    start, stop = pattern.num_front_global, nb - pattern.num_back_global
    global_out = None
    if pattern.global_blocks:
        rows = torch.cat([q[:, :, : start * b], q[:, :, stop * b :]], dim=2)  # [B, H, G*b, D]
        bias = None
        if key_padding_mask is not None:
            bias = _keep_to_bias(key_padding_mask[:, None, None, :], q.dtype)  # [B, 1, 1, L]
        global_out = F.scaled_dot_product_attention(
            rows, k, v, attn_mask=bias, dropout_p=dropout_p
        )  # [B, H, G*b, D]
    if stop == start:
        return global_out
    return _ordinary_rows(q, k, v, global_out, pattern, key_padding_mask, dropout_p, start, stop)


def _keep_to_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a bool "may attend" tensor into an additive bias: 0 or the dtype's minimum."""
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


def _ordinary_rows(
    q, k, v, global_out, pattern, key_padding_mask, dropout_p, start, stop
) -> torch.Tensor:
    """Whole attention output ``[B, H, L, D]``: the ordinary query blocks ``start .. stop-1``
    computed here, the global query rows copied in from ``global_out`` (``[B, H, G*b, D]`` or
    None), so the output is assembled once."""
    batch, heads, _, dim = q.shape
    b, nb, w = pattern.block_size, pattern.num_blocks, pattern.num_window_blocks
    n, half, device = stop - start, w // 2, q.device

    # Block index of every key slot of every row: slots [H, n, S].
    rows = torch.arange(start, stop, device=device)  # [n]
    global_idx = torch.tensor(pattern.global_blocks, dtype=torch.long, device=device)  # [G]
    window_idx = rows[:, None] + torch.arange(-half, half + 1, device=device)  # [n, w]
    random_idx = pattern.random_blocks[:, start:stop].to(device)  # [H, n, R]
    window_ok = (window_idx >= 0) & (window_idx < nb)
    if len(global_idx):
        window_ok &= ~torch.isin(window_idx, global_idx)
    slot_idx = torch.cat(
        [
            global_idx.expand(heads, n, -1),
            window_idx.clamp(0, nb - 1).expand(heads, n, w),
            random_idx.clamp(min=0),
        ],
        dim=-1,
    )  # [H, n, S]
    slot_ok = torch.cat(
        [
            torch.ones(heads, n, len(global_idx), dtype=torch.bool, device=device),
            window_ok.expand(heads, n, w),
            random_idx >= 0,
        ],
        dim=-1,
    )  # [H, n, S]
    use_kernel = (
        device.type == "cpu"
        and q.dtype == torch.float32
        and dropout_p == 0.0
        and slot_idx.shape[-1] <= cpu_kernel.MAX_SLOTS
        and cpu_kernel.available()
    )
    chunks = ()  # the kernel reads the slots itself
    if not use_kernel:
        keep = slot_ok[None, :, :, :, None]  # [1, H, n, S, 1]
        if key_padding_mask is not None:
            keep = keep & key_padding_mask.view(batch, nb, b)[:, slot_idx]  # [B, H, n, S, b]
        keep = keep.expand(-1, -1, -1, -1, b).reshape(keep.shape[0], heads, n, 1, -1)
        head_offset = torch.arange(heads, device=device)[:, None, None] * nb  # [H, 1, 1]
        bias = _keep_to_bias(keep.expand(batch, -1, -1, -1, -1), q.dtype)  # [B, H, n, 1, T]
        chunks = _plan_chunks(slot_idx + head_offset, bias, b)
    layout = _SlotLayout(
        rows=(start, stop),
        chunks=chunks,
        dropout_p=dropout_p,
        seed=int(torch.randint(0, 2**62, (1,))) if dropout_p > 0.0 else 0,
        kernel_slots=(slot_idx, slot_ok, key_padding_mask) if use_kernel else None,
    )
    q = q.contiguous() if use_kernel else q
    query = q[:, :, start * b : stop * b].reshape(batch, heads, n, b, dim)  # a view
    k_blocks = k.contiguous().view(batch, heads, nb, b, dim)  # [B, H, NB, b, D]
    v_blocks = v.contiguous().view(batch, heads, nb, b, dim)  # (slots gather from flat views)
    return _SparseRows.apply(query, k_blocks, v_blocks, global_out, layout)  # [B, H, L, D]


@dataclass(frozen=True)
class _Chunk:
    """A run of ordinary query blocks ``lo .. hi-1`` (counted from the first ordinary block)
    processed together, with its precomputed gather index and score bias."""

    lo: int
    hi: int
    slot_index: torch.Tensor
    """``[H*c*S]`` key block of every slot of the chunk's rows, as an index into the ``H * NB``
    blocks of all heads (slots that are not real keys point at some block and are masked)."""
    bias: torch.Tensor
    """``[B*H, c, 1, T]`` additive score bias (0 or the dtype's minimum)."""


def _plan_chunks(slot_flat: torch.Tensor, bias: torch.Tensor, b: int) -> tuple[_Chunk, ...]:
    """Split the ``n`` ordinary rows into chunks whose scores hold ~``_CHUNK_ELEMENTS``
    (``slot_flat: [H, n, S]``, ``bias: [B, H, n, 1, T]``)."""
    batch, heads, n, _, keys = bias.shape
    target = _CHUNK_ELEMENTS if bias.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
    size = max(1, target // (batch * heads * b * keys))
    return tuple(
        _Chunk(lo, hi, slot_flat[:, lo:hi].reshape(-1), _as_4d(bias[:, :, lo:hi]))
        for lo, hi in ((lo, min(n, lo + size)) for lo in range(0, n, size))
    )


@dataclass(frozen=True)
class _SlotLayout:
    """Where the key slots of the ordinary rows come from (see :func:`_ordinary_rows`)."""

    rows: tuple[int, int]
    """``(start, stop)``: the ordinary query blocks; the others are global rows."""
    chunks: tuple[_Chunk, ...]
    """The ordinary rows in processing order (empty when :mod:`cpu_kernel` runs them)."""
    dropout_p: float
    """Dropout probability on attention probabilities."""
    seed: int
    """Seed of the dropout masks (regenerated, not stored, for the backward pass)."""
    kernel_slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
    """For :mod:`cpu_kernel` (on the CPU in float32 without dropout, when it is built): key
    block ``[H, n, S]`` and validity ``[H, n, S]`` of every slot, and the key padding mask
    ``[B, L]`` or None. None: forward and backward run chunk by chunk."""

    def slots(self, blocks: torch.Tensor, chunk: _Chunk, buffer: torch.Tensor) -> torch.Tensor:
        """Keys (or values) of the slots of the chunk's rows: ``[B*H, c, T, D]``, gathered
        from the blocks ``[B, H, NB, b, D]`` by one ``index_select`` into the front of
        ``buffer`` (1-d, reused by every chunk: fresh multi-MiB tensors cost page faults)."""
        batch, heads, nb, b, dim = blocks.shape
        index = chunk.slot_index
        picked = buffer[: batch * len(index) * b * dim].view(batch, len(index), b, dim)
        torch.index_select(blocks.reshape(batch, heads * nb, b, dim), 1, index, out=picked)
        return picked.view(batch * heads, chunk.hi - chunk.lo, -1, dim)

    def slot_buffer(self, blocks: torch.Tensor) -> torch.Tensor:
        """A 1-d buffer large enough for :meth:`slots` of the largest chunk."""
        batch, _, _, b, dim = blocks.shape
        slots = max(len(chunk.slot_index) for chunk in self.chunks)
        return blocks.new_empty(batch * slots * b * dim)

    def scatter_slots(self, grad_blocks, grad_slots, chunk: _Chunk) -> None:
        """Add slot gradients ``[B*H, c, T, D]`` back onto their blocks (inverse of slots)."""
        batch, heads, nb, b, dim = grad_blocks.shape
        grad_blocks.view(batch, heads * nb, b, dim).index_add_(
            1, chunk.slot_index, grad_slots.reshape(batch, -1, b, dim)
        )

    def dropout_mask(self, shape, chunk: _Chunk, device) -> torch.Tensor | None:
        """Keep-mask (already scaled by 1/(1-p)) of the probabilities of ``chunk``."""
        if self.dropout_p == 0.0:
            return None
        generator = torch.Generator(device=device).manual_seed(self.seed + chunk.lo)
        keep = torch.rand(shape, generator=generator, device=device) >= self.dropout_p
        return keep.to(chunk.bias.dtype) / (1.0 - self.dropout_p)

    def split_rows(self, full: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, H, L, D]`` -> (ordinary rows as ``[B*H, n, b, D]`` view, global rows
        ``[B, H, G*b, D]`` or None)."""
        batch, heads, length, dim = full.shape
        start, stop = self.rows
        ordinary = full[:, :, start * b : stop * b].view(batch * heads, stop - start, b, dim)
        if stop - start == length // b:
            return ordinary, None
        return ordinary, torch.cat([full[:, :, : start * b], full[:, :, stop * b :]], dim=2)


def _as_4d(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, c, ..., X]`` -> ``[B*H, c, ..., X]`` (a view for the slices used here)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


class _SparseRows(torch.autograd.Function):
    """Softmax attention of each ordinary query block over its slots, chunk by chunk; the
    global rows' output (computed outside, by dense SDPA) is copied into the same output.

    On the CPU in float32 without dropout: one call of our compiled kernel for all ordinary
    rows, forward and backward (``layout.kernel_slots``). Otherwise, without dropout, every
    chunk is one fused CPU FlashAttention call on ``[B*H, c, b, D]`` queries and
    ``[B*H, c, T, D]`` gathered slots (and its fused backward), rows of the chunk acting as
    heads. With dropout (which that kernel lacks) or off the CPU the chunk is two matmuls
    around an explicit softmax. Forward saves only the inputs, the output and the row
    log-sum-exp; backward recomputes the scores block by block (regathering the slots chunk by
    chunk without the kernel), so memory stays ``O(L * D)`` plus one chunk, and key and value
    gradients are added in place.
    """

    @staticmethod
    def forward(ctx, query, k_blocks, v_blocks, global_out, layout: _SlotLayout):
        # query: [B, H, n, b, D]; k_blocks, v_blocks: [B, H, NB, b, D]; global_out [B, H, G*b, D]
        batch, heads, n, b, dim = query.shape
        start, stop = layout.rows
        scale = dim**-0.5
        out = query.new_empty(batch, heads, k_blocks.shape[2] * b, dim)  # [B, H, L, D]
        if global_out is not None:
            out[:, :, : start * b] = global_out[:, :, : start * b]
            out[:, :, stop * b :] = global_out[:, :, start * b :]
        rows_out, _ = layout.split_rows(out, b)  # [B*H, n, b, D] view
        rows_query = _as_4d(query)  # [B*H, n, b, D]
        lse_dtype = torch.promote_types(query.dtype, torch.float32)  # the fused kernel's
        lse = torch.empty(rows_query.shape[:-1], dtype=lse_dtype, device=query.device)
        ctx.save_for_backward(query, k_blocks, v_blocks, out, lse)
        ctx.layout = layout
        if layout.kernel_slots is not None:
            cpu_kernel.sparse_rows_forward(
                query,
                k_blocks.view(batch, heads, -1, dim),
                v_blocks.view(batch, heads, -1, dim),
                out[:, :, start * b : stop * b].view(query.shape),
                lse,
                *layout.kernel_slots,
            )
            return out
        k_buffer, v_buffer = layout.slot_buffer(k_blocks), layout.slot_buffer(v_blocks)
        fused = layout.dropout_p == 0.0 and query.device.type == "cpu"
        for chunk in layout.chunks:
            lo, hi = chunk.lo, chunk.hi
            keys = layout.slots(k_blocks, chunk, k_buffer)  # [B*H, c, T, D]
            values = layout.slots(v_blocks, chunk, v_buffer)
            if fused:
                chunk_out, chunk_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    rows_query[:, lo:hi], keys, values, attn_mask=chunk.bias, scale=scale
                )  # [B*H, c, b, D], [B*H, c, b]
                rows_out[:, lo:hi] = chunk_out
                lse[:, lo:hi] = chunk_lse
                continue
            scores = torch.matmul(rows_query[:, lo:hi], keys.transpose(-1, -2))  # [B*H,c,b,T]
            scores = scores.mul_(scale).add_(chunk.bias)
            top = scores.amax(dim=-1, keepdim=True)  # [B*H, c, b, 1]
            probs = scores.sub_(top).exp_()
            total = probs.sum(dim=-1, keepdim=True)
            probs /= total
            lse[:, lo:hi] = (top + total.log()).squeeze(-1)
            mask = layout.dropout_mask(probs.shape, chunk, probs.device)
            if mask is not None:
                probs *= mask
            torch.matmul(probs, values, out=rows_out[:, lo:hi])
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, k_blocks, v_blocks, out, lse = ctx.saved_tensors
        layout: _SlotLayout = ctx.layout
        batch, heads, n, b, dim = query.shape
        scale = dim**-0.5
        grad_out = grad_out.contiguous()
        grad_rows, grad_global = layout.split_rows(grad_out, b)  # [B*H, n, b, D]
        if layout.kernel_slots is not None:
            start, stop = layout.rows
            rows = slice(start * b, stop * b)
            grad_k, grad_v = torch.zeros_like(k_blocks), torch.zeros_like(v_blocks)
            grad_query = torch.empty_like(out)[:, :, rows].view(query.shape)
            cpu_kernel.sparse_rows_backward(
                query,
                k_blocks.view(batch, heads, -1, dim),
                v_blocks.view(batch, heads, -1, dim),
                out[:, :, rows].view(query.shape),
                grad_out[:, :, rows].view(query.shape),
                lse,
                grad_query,
                grad_k.view(batch, heads, -1, dim),
                grad_v.view(batch, heads, -1, dim),
                *layout.kernel_slots,
            )
            return grad_query, grad_k, grad_v, grad_global, None
        rows_out, _ = layout.split_rows(out, b)
        rows_query = _as_4d(query)
        fused = layout.dropout_p == 0.0 and query.device.type == "cpu"
        delta = None if fused else (grad_rows * rows_out).sum(-1)  # [B*H, n, b]
        grad_query = torch.empty_like(rows_query)
        grad_k, grad_v = torch.zeros_like(k_blocks), torch.zeros_like(v_blocks)
        k_buffer, v_buffer = layout.slot_buffer(k_blocks), layout.slot_buffer(v_blocks)
        for chunk in layout.chunks:
            lo, hi = chunk.lo, chunk.hi
            keys = layout.slots(k_blocks, chunk, k_buffer)  # [B*H, c, T, D]
            values = layout.slots(v_blocks, chunk, v_buffer)
            q_chunk, g_chunk = rows_query[:, lo:hi], grad_rows[:, lo:hi]  # [B*H, c, b, D]
            if fused:
                grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                    g_chunk,
                    q_chunk,
                    keys,
                    values,
                    rows_out[:, lo:hi],
                    lse[:, lo:hi],
                    0.0,
                    False,
                    attn_mask=chunk.bias,
                    scale=scale,
                )  # [B*H, c, b, D], [B*H, c, T, D], [B*H, c, T, D]
                grad_query[:, lo:hi] = grads[0]
                layout.scatter_slots(grad_k, grads[1], chunk)
                layout.scatter_slots(grad_v, grads[2], chunk)
                continue
            scores = torch.matmul(q_chunk, keys.transpose(-1, -2))  # [B*H, c, b, T]
            scores = scores.mul_(scale).add_(chunk.bias)
            probs = scores.sub_(lse[:, lo:hi, :, None]).exp_()
            grad_probs = torch.matmul(g_chunk, values.transpose(-1, -2))  # [B*H, c, b, T]
            mask = layout.dropout_mask(probs.shape, chunk, probs.device)
            if mask is not None:
                grad_probs *= mask
                grad_values = torch.matmul((probs * mask).transpose(-1, -2), g_chunk)
            else:
                grad_values = torch.matmul(probs.transpose(-1, -2), g_chunk)  # [B*H, c, T, D]
            grad_scores = probs.mul_(grad_probs.sub_(delta[:, lo:hi, :, None])).mul_(scale)
            grad_query[:, lo:hi] = torch.matmul(grad_scores, keys)
            grad_keys = torch.matmul(grad_scores.transpose(-1, -2), q_chunk)  # [B*H, c, T, D]
            layout.scatter_slots(grad_k, grad_keys, chunk)
            layout.scatter_slots(grad_v, grad_values, chunk)
        return grad_query.view(query.shape), grad_k, grad_v, grad_global, None
