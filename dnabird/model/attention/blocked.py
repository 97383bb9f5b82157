"""Blocked backend: block-sparse attention in pure PyTorch on block views. O(L) memory.

Shape legend: ``B`` batch, ``H`` heads, ``L = NB * b`` tokens (a block multiple: the API pads),
``D`` head width, ``NB`` blocks of ``b`` tokens, ``n`` ordinary (non-global) query blocks,
``G`` global blocks, ``w`` window blocks, ``R`` random slots, ``S = G + w + R`` key blocks per
ordinary query block, ``T = S * b`` keys per ordinary query block.

- ``q, k, v: [B, H, L, D]``, ``key_padding_mask: [B, L]`` bool (True = real token), output
  ``[B, H, L, D]``.
- Global query rows (a run of blocks at the start and one at the end) see every key: one dense
  SDPA pass.
- Each ordinary query block ``i`` gathers its keys as ``[global | window | random]``: global
  blocks are shared by all rows, the window comes from shifted views of the padded block
  tensor (no gather), random blocks from one gather; then one batched matmul, a softmax over
  the ``T`` keys and one batched matmul with the values.
- Slots that are not real keys (window blocks off the sequence or global — those are already in
  the global slots —, unused random slots, padded tokens) get the dtype's minimum as score, so a
  row with no visible key stays finite.

Everything is differentiable with autograd; activations are ``O(L * T)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dnabird.model.patterns import BlockPattern

_CHUNK_ELEMENTS = 1 << 20
"""Target size (elements) of one chunk's score tensor on the CPU: keeps intermediates in cache
(and allocations reusable). Tried 2^16..2^23 at 4096 tokens: 2^20 was fastest."""
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
        start=start,
        half=half,
        pad_front=max(0, half - start),
        pad_back=max(0, stop - 1 + half - (nb - 1)),
        global_idx=global_idx,
        random_flat=(random_idx.clamp(min=0) + head_offset),  # [H, n, R] into H*NB blocks
        bias=_keep_to_bias(keep, q.dtype),  # [B or 1, H, n, 1, T]
        dropout_p=dropout_p,
        seed=int(torch.randint(0, 2**62, (1,))) if dropout_p > 0.0 else 0,
    )
    query = q[:, :, start * b : stop * b].reshape(batch, heads, n, b, dim) * dim**-0.5
    k_blocks = k.view(batch, heads, nb, b, dim)  # [B, H, NB, b, D]
    v_blocks = v.view(batch, heads, nb, b, dim)
    out = _SparseRows.apply(query, k_blocks, v_blocks, layout)  # [B, H, n, b, D]
    return out.reshape(batch, heads, n * b, dim)


@dataclass(frozen=True)
class _SlotLayout:
    """Where the key slots of the ordinary rows come from (see :func:`_ordinary_rows`)."""

    start: int
    """First ordinary query block."""
    half: int
    """Window half-width in blocks (w // 2)."""
    pad_front: int
    """Zero blocks needed before block 0 by the first row's window."""
    pad_back: int
    """Zero blocks needed after the last block by the last row's window."""
    global_idx: torch.Tensor
    """``[G]`` global key blocks."""
    random_flat: torch.Tensor
    """``[H, n, R]`` random key blocks as indices into the ``H * NB`` blocks of all heads."""
    bias: torch.Tensor
    """``[B or 1, H, n, 1, T]`` additive score bias (0 or the dtype's minimum)."""
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

    @property
    def padded(self) -> bool:
        """Whether some window reaches past the sequence (zero blocks are added there)."""
        return self.pad_front > 0 or self.pad_back > 0

    def sources(self, blocks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What :meth:`slots` reads: the blocks ``[B, H, NB, b, D]``, the same with zero blocks
        where windows reach past the sequence (the blocks themselves when none do — always
        with ITC and g >= 2), and the global blocks ``[B, H, 1, G, b, D]``."""
        padded = blocks
        if self.padded:
            padded = F.pad(blocks, (0, 0, 0, 0, self.pad_front, self.pad_back))
        return blocks, padded, blocks[:, :, self.global_idx][:, :, None]

    def first_window_block(self, lo: int) -> int:
        """Index into the padded blocks of the first window block of relative row ``lo``."""
        return self.start + lo - self.half + self.pad_front

    def slots(self, sources: tuple[torch.Tensor, ...], lo: int, hi: int) -> torch.Tensor:
        """Keys (or values) of the slots of rows ``lo .. hi-1``: ``[B, H, c, T, D]``."""
        blocks, padded, globals_ = sources
        batch, heads, nb, b, dim = blocks.shape
        c, first = hi - lo, self.first_window_block(lo)
        window = [padded[:, :, first + j : first + j + c, None] for j in range(2 * self.half + 1)]
        random = blocks.reshape(batch, heads * nb, b, dim).index_select(
            1, self.random_flat[:, lo:hi].reshape(-1)
        )  # [B, H*c*R, b, D]
        random = random.view(batch, heads, c, -1, b, dim)
        slots = torch.cat([globals_.expand(-1, -1, c, -1, -1, -1), *window, random], dim=3)
        return slots.view(batch, heads, c, -1, dim)  # [B, H, c, S*b, D]

    def scatter_slots(self, grad_blocks, grad_padded, grad_slots, lo: int, hi: int) -> None:
        """Add slot gradients ``[B, H, c, T, D]`` back onto their blocks (inverse of slots)."""
        batch, heads, nb, b, dim = grad_blocks.shape
        c, first, g = hi - lo, self.first_window_block(lo), len(self.global_idx)
        grad_slots = grad_slots.view(batch, heads, c, -1, b, dim)  # [B, H, c, S, b, D]
        if g:
            grad_blocks.index_add_(2, self.global_idx, grad_slots[:, :, :, :g].sum(2))
        for j in range(2 * self.half + 1):
            grad_padded[:, :, first + j : first + j + c] += grad_slots[:, :, :, g + j]
        random = grad_slots[:, :, :, g + 2 * self.half + 1 :]  # [B, H, c, R, b, D]
        grad_blocks.view(batch, heads * nb, b, dim).index_add_(
            1, self.random_flat[:, lo:hi].reshape(-1), random.reshape(batch, -1, b, dim)
        )

    def dropout_mask(self, shape, lo: int, device) -> torch.Tensor | None:
        """Keep-mask (already scaled by 1/(1-p)) of the probabilities of the chunk at ``lo``."""
        if self.dropout_p == 0.0:
            return None
        generator = torch.Generator(device=device).manual_seed(self.seed + lo)
        keep = torch.rand(shape, generator=generator, device=device) >= self.dropout_p
        return keep.to(self.bias.dtype) / (1.0 - self.dropout_p)


class _SparseRows(torch.autograd.Function):
    """Softmax attention of each ordinary query block over its slots, chunk by chunk.

    Forward saves only the inputs, the output and the row log-sum-exp; backward recomputes the
    probabilities chunk by chunk (as FlashAttention does), so memory stays ``O(L * D)`` plus
    one chunk, and slot gradients are added back in place onto the key and value blocks.
    """

    @staticmethod
    def forward(ctx, query, k_blocks, v_blocks, layout: _SlotLayout):
        # query: [B, H, n, b, D] (pre-scaled); k_blocks, v_blocks: [B, H, NB, b, D]
        batch, heads, n, b, dim = query.shape
        k_sources, v_sources = layout.sources(k_blocks), layout.sources(v_blocks)
        training = any(ctx.needs_input_grad[:3])
        out = torch.empty_like(query)
        lse = torch.empty(query.shape[:-1], dtype=query.dtype, device=query.device)
        for lo, hi in layout.chunks(batch, heads, n, b):
            keys = layout.slots(k_sources, lo, hi)  # [B, H, c, T, D]
            scores = torch.matmul(query[:, :, lo:hi], keys.transpose(-1, -2))  # [B,H,c,b,T]
            scores += layout.bias[:, :, lo:hi]
            if training:  # in-place softmax that also yields the log-sum-exp for backward
                top = scores.amax(dim=-1, keepdim=True)  # [B, H, c, b, 1]
                probs = scores.sub_(top).exp_()
                total = probs.sum(dim=-1, keepdim=True)
                probs /= total
                lse[:, :, lo:hi] = (top + total.log()).squeeze(-1)
            else:  # inference: one fused kernel
                probs = torch.softmax(scores, dim=-1)
            mask = layout.dropout_mask(probs.shape, lo, probs.device)
            if mask is not None:
                probs *= mask
            out[:, :, lo:hi] = torch.matmul(probs, layout.slots(v_sources, lo, hi))
        ctx.save_for_backward(query, k_blocks, v_blocks, out, lse)
        ctx.layout = layout
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, k_blocks, v_blocks, out, lse = ctx.saved_tensors
        layout: _SlotLayout = ctx.layout
        batch, heads, n, b, dim = query.shape
        k_sources, v_sources = layout.sources(k_blocks), layout.sources(v_blocks)
        grad_out = grad_out.contiguous()
        delta = (grad_out * out).sum(-1)  # [B, H, n, b]
        grad_query = torch.empty_like(query)
        grad_k, grad_v = torch.zeros_like(k_blocks), torch.zeros_like(v_blocks)
        grad_k_padded, grad_v_padded = grad_k, grad_v  # window gradients land here
        if layout.padded:
            grad_k_padded = torch.zeros_like(k_sources[1])  # [B, H, NB + pads, b, D]
            grad_v_padded = torch.zeros_like(v_sources[1])
        for lo, hi in layout.chunks(batch, heads, n, b):
            keys = layout.slots(k_sources, lo, hi)  # [B, H, c, T, D]
            values = layout.slots(v_sources, lo, hi)
            q_chunk, g_chunk = query[:, :, lo:hi], grad_out[:, :, lo:hi]  # [B, H, c, b, D]
            scores = torch.matmul(q_chunk, keys.transpose(-1, -2))  # [B, H, c, b, T]
            scores += layout.bias[:, :, lo:hi]
            probs = scores.sub_(lse[:, :, lo:hi, :, None]).exp_()
            grad_probs = torch.matmul(g_chunk, values.transpose(-1, -2))  # [B, H, c, b, T]
            mask = layout.dropout_mask(probs.shape, lo, probs.device)
            if mask is not None:
                grad_probs *= mask
                grad_values = torch.matmul((probs * mask).transpose(-1, -2), g_chunk)
            else:
                grad_values = torch.matmul(probs.transpose(-1, -2), g_chunk)  # [B, H, c, T, D]
            grad_scores = probs.mul_(grad_probs.sub_(delta[:, :, lo:hi, :, None]))
            grad_query[:, :, lo:hi] = torch.matmul(grad_scores, keys)
            grad_keys = torch.matmul(grad_scores.transpose(-1, -2), q_chunk)  # [B, H, c, T, D]
            layout.scatter_slots(grad_k, grad_k_padded, grad_keys, lo, hi)
            layout.scatter_slots(grad_v, grad_v_padded, grad_values, lo, hi)
        if layout.padded:
            nb, front = k_blocks.shape[2], layout.pad_front
            grad_k += grad_k_padded[:, :, front : front + nb]
            grad_v += grad_v_padded[:, :, front : front + nb]
        return grad_query, grad_k, grad_v, None
