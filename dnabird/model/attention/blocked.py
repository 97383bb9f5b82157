"""Blocked backend: block-sparse attention in pure PyTorch on block views. O(L) memory.

Shape legend: ``B`` batch, ``H`` heads, ``L = NB * b`` tokens (a block multiple: the API pads),
``D`` head width, ``NB`` blocks of ``b`` tokens, ``n`` ordinary (non-global) query blocks,
``G`` global blocks, ``w`` window blocks, ``R`` random slots, ``S = G + w + R`` key blocks per
ordinary query block, ``T = S * b`` keys per ordinary query block.

- ``q, k, v: [B, H, L, D]``, ``key_padding_mask: [B, L]`` bool (True = real token), output
  ``[B, H, L, D]``.
- Global query rows (a run of blocks at the start and one at the end) see every key: one dense
  SDPA pass.
- Each ordinary query block ``i`` gathers its keys as ``[global | window | random]`` by one
  ``index_select`` over the blocks of all heads (window blocks off the sequence are clamped
  and masked), a few query blocks at a time into reused buffers; on the CPU without dropout
  each chunk is then one fused FlashAttention kernel call (and its fused backward), the rows
  of the chunk acting as heads; otherwise one batched matmul, a softmax over the ``T`` keys
  and one batched matmul with the values.
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
    pieces = []
    if pattern.global_blocks:
        rows = torch.cat([q[:, :, : start * b], q[:, :, stop * b :]], dim=2)  # [B, H, G*b, D]
        bias = None
        if key_padding_mask is not None:
            bias = _keep_to_bias(key_padding_mask[:, None, None, :], q.dtype)  # [B, 1, 1, L]
        global_out = F.scaled_dot_product_attention(
            rows, k, v, attn_mask=bias, dropout_p=dropout_p
        )  # [B, H, G*b, D]
        pieces.append(global_out[:, :, : start * b])
    if stop > start:
        pieces.append(_ordinary_rows(q, k, v, pattern, key_padding_mask, dropout_p, start, stop))
    if pattern.global_blocks:
        pieces.append(global_out[:, :, start * b :])
    return torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0]


def _keep_to_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a bool "may attend" tensor into an additive bias: 0 or the dtype's minimum."""
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


def _ordinary_rows(q, k, v, pattern, key_padding_mask, dropout_p, start, stop) -> torch.Tensor:
    """Attention output ``[B, H, n*b, D]`` of the ordinary query blocks ``start .. stop-1``."""
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
    keep = slot_ok[None, :, :, :, None]  # [1, H, n, S, 1]
    if key_padding_mask is not None:
        keep = keep & key_padding_mask.view(batch, nb, b)[:, slot_idx]  # [B, H, n, S, b]
    keep = keep.expand(-1, -1, -1, -1, b).reshape(keep.shape[0], heads, n, 1, -1)
    head_offset = torch.arange(heads, device=device)[:, None, None] * nb  # [H, 1, 1]
    layout = _SlotLayout(
        slot_flat=slot_idx + head_offset,  # [H, n, S] into the H*NB blocks of all heads
        bias=_keep_to_bias(keep.expand(batch, -1, -1, -1, -1), q.dtype),  # [B, H, n, 1, T]
        dropout_p=dropout_p,
        seed=int(torch.randint(0, 2**62, (1,))) if dropout_p > 0.0 else 0,
    )
    query = q[:, :, start * b : stop * b].reshape(batch, heads, n, b, dim)  # a view
    k_blocks = k.contiguous().view(batch, heads, nb, b, dim)  # [B, H, NB, b, D]
    v_blocks = v.contiguous().view(batch, heads, nb, b, dim)  # (slots gather from flat views)
    out = _SparseRows.apply(query, k_blocks, v_blocks, layout)  # [B, H, n, b, D]
    return out.reshape(batch, heads, n * b, dim)


@dataclass(frozen=True)
class _SlotLayout:
    """Where the key slots of the ordinary rows come from (see :func:`_ordinary_rows`)."""

    slot_flat: torch.Tensor
    """``[H, n, S]`` key block of every slot, as an index into the ``H * NB`` blocks of all
    heads (slots that are not real keys point at some block and are masked by ``bias``)."""
    bias: torch.Tensor
    """``[B, H, n, 1, T]`` additive score bias (0 or the dtype's minimum)."""
    dropout_p: float
    """Dropout probability on attention probabilities."""
    seed: int
    """Seed of the dropout masks (regenerated, not stored, for the backward pass)."""

    def chunks(self, batch: int, heads: int, n: int, b: int):
        """Yield ``(lo, hi)`` row ranges sized so one chunk's scores hold ~``_CHUNK_ELEMENTS``."""
        target = _CHUNK_ELEMENTS if self.bias.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
        size = max(1, target // (batch * heads * b * self.bias.shape[-1]))
        for lo in range(0, n, size):
            yield lo, min(n, lo + size)

    def slots(self, blocks: torch.Tensor, lo: int, hi: int, buffer: torch.Tensor) -> torch.Tensor:
        """Keys (or values) of the slots of rows ``lo .. hi-1``: ``[B, H, c, T, D]``, gathered
        from the blocks ``[B, H, NB, b, D]`` by one ``index_select`` into the front of
        ``buffer`` (1-d, reused by every chunk: fresh multi-MiB tensors cost page faults)."""
        batch, heads, nb, b, dim = blocks.shape
        index = self.slot_flat[:, lo:hi].reshape(-1)  # [H*c*S]
        picked = buffer[: batch * len(index) * b * dim].view(batch, len(index), b, dim)
        torch.index_select(blocks.reshape(batch, heads * nb, b, dim), 1, index, out=picked)
        return picked.view(batch, heads, hi - lo, -1, dim)

    def slot_buffer(self, blocks: torch.Tensor, n: int) -> torch.Tensor:
        """A 1-d buffer large enough for :meth:`slots` of the largest chunk."""
        batch, heads, _, b, dim = blocks.shape
        rows = max(hi - lo for lo, hi in self.chunks(batch, heads, n, b))
        return blocks.new_empty(batch * heads * rows * self.slot_flat.shape[-1] * b * dim)

    def scatter_slots(self, grad_blocks, grad_slots, lo: int, hi: int) -> None:
        """Add slot gradients ``[B, H, c, T, D]`` back onto their blocks (inverse of slots)."""
        batch, heads, nb, b, dim = grad_blocks.shape
        grad_blocks.view(batch, heads * nb, b, dim).index_add_(
            1, self.slot_flat[:, lo:hi].reshape(-1), grad_slots.reshape(batch, -1, b, dim)
        )

    def dropout_mask(self, shape, lo: int, device) -> torch.Tensor | None:
        """Keep-mask (already scaled by 1/(1-p)) of the probabilities of the chunk at ``lo``."""
        if self.dropout_p == 0.0:
            return None
        generator = torch.Generator(device=device).manual_seed(self.seed + lo)
        keep = torch.rand(shape, generator=generator, device=device) >= self.dropout_p
        return keep.to(self.bias.dtype) / (1.0 - self.dropout_p)


def _as_4d(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, c, ..., X]`` -> ``[B*H, c, ..., X]`` (a view for the slices used here)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


class _SparseRows(torch.autograd.Function):
    """Softmax attention of each ordinary query block over its slots, chunk by chunk.

    Without dropout every chunk is one fused CPU FlashAttention call (forward, and its backward
    kernel in backward) on ``[B*H, c, b, D]`` queries and ``[B*H, c, T, D]`` gathered slots,
    rows of the chunk acting as heads. With dropout (which that kernel lacks) or off the CPU the
    chunk is two matmuls around an explicit softmax. Forward saves only the inputs, the output
    and the row log-sum-exp; backward regathers the slots chunk by chunk, so memory stays
    ``O(L * D)`` plus one chunk, and slot gradients are added back in place onto the key and
    value blocks.
    """

    @staticmethod
    def forward(ctx, query, k_blocks, v_blocks, layout: _SlotLayout):
        # query: [B, H, n, b, D]; k_blocks, v_blocks: [B, H, NB, b, D]
        batch, heads, n, b, dim = query.shape
        scale = dim**-0.5
        out = torch.empty_like(query)
        lse_dtype = torch.promote_types(query.dtype, torch.float32)  # the fused kernel's
        lse = torch.empty(query.shape[:-1], dtype=lse_dtype, device=query.device)
        k_buffer, v_buffer = layout.slot_buffer(k_blocks, n), layout.slot_buffer(v_blocks, n)
        for lo, hi in layout.chunks(batch, heads, n, b):
            keys = layout.slots(k_blocks, lo, hi, k_buffer)  # [B, H, c, T, D]
            values = layout.slots(v_blocks, lo, hi, v_buffer)
            if layout.dropout_p == 0.0 and query.device.type == "cpu":
                chunk_out, chunk_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    _as_4d(query[:, :, lo:hi]),
                    _as_4d(keys),
                    _as_4d(values),
                    attn_mask=_as_4d(layout.bias[:, :, lo:hi]),
                    scale=scale,
                )  # [B*H, c, b, D], [B*H, c, b]
                out[:, :, lo:hi] = chunk_out.view(batch, heads, hi - lo, b, dim)
                lse[:, :, lo:hi] = chunk_lse.view(batch, heads, hi - lo, b)
                continue
            scores = torch.matmul(query[:, :, lo:hi], keys.transpose(-1, -2))  # [B,H,c,b,T]
            scores = scores.mul_(scale).add_(layout.bias[:, :, lo:hi])
            top = scores.amax(dim=-1, keepdim=True)  # [B, H, c, b, 1]
            probs = scores.sub_(top).exp_()
            total = probs.sum(dim=-1, keepdim=True)
            probs /= total
            lse[:, :, lo:hi] = (top + total.log()).squeeze(-1)
            mask = layout.dropout_mask(probs.shape, lo, probs.device)
            if mask is not None:
                probs *= mask
            out[:, :, lo:hi] = torch.matmul(probs, values)
        ctx.save_for_backward(query, k_blocks, v_blocks, out, lse)
        ctx.layout = layout
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, k_blocks, v_blocks, out, lse = ctx.saved_tensors
        layout: _SlotLayout = ctx.layout
        batch, heads, n, b, dim = query.shape
        scale = dim**-0.5
        grad_out = grad_out.contiguous()
        fused = layout.dropout_p == 0.0 and query.device.type == "cpu"
        delta = None if fused else (grad_out * out).sum(-1)  # [B, H, n, b]
        grad_query = torch.empty_like(query)
        grad_k, grad_v = torch.zeros_like(k_blocks), torch.zeros_like(v_blocks)
        k_buffer, v_buffer = layout.slot_buffer(k_blocks, n), layout.slot_buffer(v_blocks, n)
        for lo, hi in layout.chunks(batch, heads, n, b):
            keys = layout.slots(k_blocks, lo, hi, k_buffer)  # [B, H, c, T, D]
            values = layout.slots(v_blocks, lo, hi, v_buffer)
            q_chunk, g_chunk = query[:, :, lo:hi], grad_out[:, :, lo:hi]  # [B, H, c, b, D]
            if fused:
                grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                    _as_4d(g_chunk),
                    _as_4d(q_chunk),
                    _as_4d(keys),
                    _as_4d(values),
                    _as_4d(out[:, :, lo:hi]),
                    _as_4d(lse[:, :, lo:hi]),
                    0.0,
                    False,
                    attn_mask=_as_4d(layout.bias[:, :, lo:hi]),
                    scale=scale,
                )  # [B*H, c, b, D], [B*H, c, T, D], [B*H, c, T, D]
                grad_query[:, :, lo:hi] = grads[0].view(q_chunk.shape)
                layout.scatter_slots(grad_k, grads[1], lo, hi)
                layout.scatter_slots(grad_v, grads[2], lo, hi)
                continue
            scores = torch.matmul(q_chunk, keys.transpose(-1, -2))  # [B, H, c, b, T]
            scores = scores.mul_(scale).add_(layout.bias[:, :, lo:hi])
            probs = scores.sub_(lse[:, :, lo:hi, :, None]).exp_()
            grad_probs = torch.matmul(g_chunk, values.transpose(-1, -2))  # [B, H, c, b, T]
            mask = layout.dropout_mask(probs.shape, lo, probs.device)
            if mask is not None:
                grad_probs *= mask
                grad_values = torch.matmul((probs * mask).transpose(-1, -2), g_chunk)
            else:
                grad_values = torch.matmul(probs.transpose(-1, -2), g_chunk)  # [B, H, c, T, D]
            grad_scores = probs.mul_(grad_probs.sub_(delta[:, :, lo:hi, :, None])).mul_(scale)
            grad_query[:, :, lo:hi] = torch.matmul(grad_scores, keys)
            grad_keys = torch.matmul(grad_scores.transpose(-1, -2), q_chunk)  # [B, H, c, T, D]
            layout.scatter_slots(grad_k, grad_keys, lo, hi)
            layout.scatter_slots(grad_v, grad_values, lo, hi)
        return grad_query, grad_k, grad_v, None
