"""Dense backend: the readable oracle. Builds the full boolean mask, runs masked SDPA.

Shapes: ``q, k, v: [B, H, L, D]``; ``key_padding_mask: [B, L]`` bool (True = real token);
output ``[B, H, L, D]``. Costs O(L^2) time and memory: for tests and short sequences only.
Any ``L <= pattern.seq_len`` is accepted: the pattern's mask is cut to the first ``L``
tokens, which is the same as padding to a block multiple and masking the padded keys.
When every block sees every block (short sequences) only key padding is masked, which is
plain full attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnabird.model.patterns import BlockPattern, dense_mask


def attention_bias(
    pattern: BlockPattern, length: int, key_padding_mask: torch.Tensor | None, dtype, device
) -> torch.Tensor | None:
    """Additive mask: 0 where attended, the dtype's minimum elsewhere; None if all attended.

    Shape ``[B or 1, H, L, L]``, or ``[B, 1, 1, L]`` when the pattern is full. A finite
    minimum (not -inf) keeps rows with no visible key finite.
    """
    if pattern.density() == 1.0:
        if key_padding_mask is None:
            return None
        allowed = key_padding_mask[:, None, None, :].to(device)  # [B, 1, 1, L]
    else:
        allowed = dense_mask(pattern)[:, :length, :length].to(device)[None]  # [1, H, L, L]
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask[:, None, None, :].to(device)  # [B, H, L, L]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return bias.masked_fill_(~allowed, torch.finfo(dtype).min)


def dense_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention computed densely: softmax(q k^T / sqrt(D) + mask) v."""
    bias = attention_bias(pattern, q.shape[-2], key_padding_mask, q.dtype, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
