"""Blocked backend, plain path: matmul, softmax, matmul over gathered key slots. O(L) memory.

The readable reference of the blocked family and its only path with attention dropout; runs on
any device and dtype. Shapes and the shared machinery (global rows, key slots, chunks): see
:mod:`dnabird.model.attention.slots`.

Per chunk of ``c`` ordinary query blocks, with keys and values ``[B*H, c, T, D]`` gathered:

- forward: ``scores = q k^T * scale + bias`` (``[B*H, c, b, T]``), a softmax over the ``T``
  keys (``lse = max + log(sum)`` kept for backward), dropout on the probabilities, ``probs v``;
- backward (FlashAttention's, from the forward's ``lse``: ``P = exp(scores - lse)``):
  ``dP = dO v^T``, ``dS = P (dP - rowsum(dO * O)) * scale``, ``dq = dS k``, ``dk = dS^T q``,
  ``dv = P^T dO``; key and value gradients are scattered back onto their blocks.

Dropout masks come from a generator seeded per call and chunk, so backward regenerates them
instead of storing them.
"""

from __future__ import annotations

import torch

from dnabird.model.attention.slots import Chunk, ChunkPlan, SlotTable, attend_blocks, flat
from dnabird.model.patterns import BlockPattern


def blocked_explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` with ``L == pattern.seq_len``."""
    return attend_blocks(
        q, k, v, pattern, key_padding_mask, dropout_p, _ExplicitRows, "blocked_explicit"
    )


class _ExplicitRows:
    """The ordinary rows chunk by chunk (a :class:`~dnabird.model.attention.slots.Rows`)."""

    def __init__(
        self,
        table: SlotTable,
        q: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        dropout_p: float,
    ) -> None:
        self.plan = ChunkPlan(table, q, key_padding_mask)
        self.dropout_p = dropout_p
        self.seed = int(torch.randint(0, 2**62, (1,))) if dropout_p > 0.0 else 0

    def dropout_mask(self, scores: torch.Tensor, chunk: Chunk) -> torch.Tensor | None:
        """Keep-mask (already scaled by 1/(1-p)) of the chunk's probabilities, or None."""
        if self.dropout_p == 0.0:
            return None
        generator = torch.Generator(device=scores.device).manual_seed(self.seed + chunk.lo)
        keep = torch.rand(scores.shape, generator=generator, device=scores.device)
        return (keep >= self.dropout_p).to(scores.dtype) / (1.0 - self.dropout_p)

    def forward(self, query, k, v, out_rows, lse) -> None:
        scale = query.shape[-1] ** -0.5
        rows_query, rows_out = flat(query), flat(out_rows)  # [B*H, n, b, D]
        for chunk, keys, values in self.plan.gather(k, v):  # [B*H, c, T, D]
            lo, hi = chunk.lo, chunk.hi
            scores = torch.matmul(rows_query[:, lo:hi], keys.transpose(-1, -2))  # [B*H,c,b,T]
            scores = scores.mul_(scale).add_(chunk.bias)
            top = scores.amax(dim=-1, keepdim=True)  # [B*H, c, b, 1]
            probs = scores.sub_(top).exp_()
            total = probs.sum(dim=-1, keepdim=True)
            probs /= total
            lse[:, lo:hi] = (top + total.log()).squeeze(-1)
            mask = self.dropout_mask(probs, chunk)
            if mask is not None:
                probs *= mask
            torch.matmul(probs, values, out=rows_out[:, lo:hi])

    def backward(self, query, k, v, out_rows, grad_rows, lse, grad_query, grad_k, grad_v):
        scale = query.shape[-1] ** -0.5
        rows_query, rows_grad, rows_grad_query = flat(query), flat(grad_rows), flat(grad_query)
        delta = (rows_grad * flat(out_rows)).sum(-1)  # [B*H, n, b]
        for chunk, keys, values in self.plan.gather(k, v):  # [B*H, c, T, D]
            lo, hi = chunk.lo, chunk.hi
            q_chunk, g_chunk = rows_query[:, lo:hi], rows_grad[:, lo:hi]  # [B*H, c, b, D]
            scores = torch.matmul(q_chunk, keys.transpose(-1, -2))  # [B*H, c, b, T]
            scores = scores.mul_(scale).add_(chunk.bias)
            probs = scores.sub_(lse[:, lo:hi, :, None]).exp_()
            grad_probs = torch.matmul(g_chunk, values.transpose(-1, -2))  # [B*H, c, b, T]
            mask = self.dropout_mask(probs, chunk)
            if mask is not None:
                grad_probs *= mask
                grad_values = torch.matmul((probs * mask).transpose(-1, -2), g_chunk)
            else:
                grad_values = torch.matmul(probs.transpose(-1, -2), g_chunk)  # [B*H, c, T, D]
            grad_scores = probs.mul_(grad_probs.sub_(delta[:, lo:hi, :, None])).mul_(scale)
            rows_grad_query[:, lo:hi] = torch.matmul(grad_scores, keys)
            grad_keys = torch.matmul(grad_scores.transpose(-1, -2), q_chunk)  # [B*H, c, T, D]
            self.plan.scatter(grad_k, grad_keys, chunk)
            self.plan.scatter(grad_v, grad_values, chunk)
