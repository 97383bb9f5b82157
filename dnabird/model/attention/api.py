"""One entry point for block-sparse attention; picks the backend.

Shape legend: ``q, k, v: [B, H, L, D]`` (batch, heads, tokens, head width); ``L`` may be any
length up to ``pattern.seq_len``; ``key_padding_mask: [B, L]`` bool, True = real token (False
keys are never attended); output ``[B, H, L, D]``. Softmax scale ``1 / sqrt(D)``.

``backend="auto"`` chooses (measured with ``benchmarks/attention.py``, see
``benchmarks/RESULTS.md``):

- ``dense`` when the pattern has at most :data:`DENSE_MAX_BLOCKS` blocks: at such lengths the
  pattern covers most blocks and one masked SDPA call is faster than the block machinery
  (when it covers all blocks this is plain full attention with key padding only);
- ``flex`` on CUDA without attention dropout (fused Triton kernels, forward and backward);
- ``blocked`` otherwise: on the CPU for training *and* inference (compiled FlexAttention
  measured slower than ``blocked`` on the CPU; its float32 forward runs our compiled kernel,
  see :mod:`dnabird.model.attention.cpu_kernel`), and on CUDA with attention dropout
  (FlexAttention has no dropout).

Query rows with no visible key (possible only at padded positions) give unspecified finite
values that differ between backends; discard them, as the models do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnabird.errors import ConfigError
from dnabird.model.attention.blocked import blocked_attention
from dnabird.model.attention.dense import dense_attention
from dnabird.model.attention.flex import flex_sparse_attention
from dnabird.model.patterns import BlockPattern

BACKENDS = ("auto", "dense", "blocked", "flex")

DENSE_MAX_BLOCKS = 7
"""``auto`` uses the dense backend up to this many blocks (448 tokens at b = 64). Measured with
``benchmarks/attention.py --contenders ours-blocked ours-dense`` on the 2-core CPU container
(12 heads of width 64, b = 64, r = 3; table in ``benchmarks/RESULTS.md``): masked dense SDPA
was faster up to 448 tokens, forward and forward + backward; the blocked backend with our CPU
kernel from 512 (without the kernel the crossover was 768 to 1024 tokens, a few ms)."""


def choose_backend(
    q: torch.Tensor, pattern: BlockPattern, backend: str = "auto", dropout_p: float = 0.0
) -> str:
    """Name of the backend ``sparse_attention`` runs for these inputs (see module docstring)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")
    if backend != "auto":
        return backend
    if pattern.num_blocks <= DENSE_MAX_BLOCKS:
        return "dense"
    if q.device.type == "cuda" and dropout_p == 0.0:
        return "flex"
    return "blocked"


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    *,
    backend: str = "auto",
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention of ``q`` over ``k, v`` following ``pattern``: ``[B, H, L, D]``.

    Inputs shorter than ``pattern.seq_len`` are padded internally (padded keys masked) and the
    output is cut back to ``L``. ``dropout_p`` applies dropout to attention probabilities
    (pass 0 in evaluation).
    """
    batch, heads, length, dim = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one shape [B, H, L, D]; got {q.shape}, {k.shape}")
    if heads != pattern.num_heads or length > pattern.seq_len:
        raise ValueError(
            f"q is [B, {heads}, {length}, D] but the pattern covers {pattern.num_heads} heads "
            f"and {pattern.seq_len} tokens"
        )
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch, length) or key_padding_mask.dtype != torch.bool:
            raise ValueError(
                f"key_padding_mask must be a bool [B, L] = [{batch}, {length}] tensor; got "
                f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.all():
            key_padding_mask = None
    name = choose_backend(q, pattern, backend, dropout_p)
    if name == "dense":
        return dense_attention(q, k, v, pattern, key_padding_mask, dropout_p)
    extra = pattern.seq_len - length
    if extra:
        q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))  # [B, H, NB*b, D]
        if key_padding_mask is None:
            key_padding_mask = torch.ones(batch, length, dtype=torch.bool, device=q.device)
        key_padding_mask = F.pad(key_padding_mask, (0, extra), value=False)  # [B, NB*b]
    run = blocked_attention if name == "blocked" else flex_sparse_attention
    out = run(q, k, v, pattern, key_padding_mask, dropout_p)
    return out[:, :, :length] if extra else out
