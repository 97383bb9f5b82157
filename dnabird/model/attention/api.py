"""One entry point for block-sparse attention; the one place that picks the backend.

Shape legend: ``q, k, v: [B, H, L, D]`` (batch, heads, tokens, head width); ``L`` may be any
length up to ``pattern.seq_len``; ``key_padding_mask: [B, L]`` bool, True = real token (False
keys are never attended); output ``[B, H, L, D]``. Softmax scale ``1 / sqrt(D)``.

Backends (the names in :data:`dnabird.model.config.ATTENTION_BACKENDS`; one module each, never
importing each other). The three ``blocked_*`` work on block views in O(L) memory, compute the
global query rows by one dense SDPA pass (but for the kernel's bfloat16 forward) and differ
only in the ordinary query blocks; they share :mod:`~dnabird.model.attention.slots` (slot
layout, gather, autograd, shape legend):

- ``dense`` (:mod:`~dnabird.model.attention.dense`): masked SDPA over the pattern's full
  ``[L, L]`` mask, O(L²). The readable oracle; short sequences.
- ``flex`` (:mod:`~dnabird.model.attention.flex`): FlexAttention with a BlockMask built from
  the pattern, under ``torch.compile``: fused Triton kernels on CUDA.
- ``blocked_kernel`` (:mod:`~dnabird.model.attention.blocked_kernel`): ordinary query blocks
  by our compiled C++ kernel, reading key runs in place. CPU, computed in float32 (bfloat16
  and float16 inputs too, as under ``torch.autocast``), except bfloat16 inference on a CPU
  with AVX-512 BF16, which runs the kernel's bfloat16 forward for every query block; no
  dropout.
- ``blocked_fused`` (:mod:`~dnabird.model.attention.blocked_fused`): ordinary query blocks by
  PyTorch's private fused CPU FlashAttention op over gathered key slots. CPU, no dropout; only
  when this torch has the op and it passes a probe call.
- ``blocked_explicit`` (:mod:`~dnabird.model.attention.blocked_explicit`): ordinary query
  blocks by matmul, softmax, matmul over gathered key slots. The plain path: any device and
  dtype, and the only blocked path with attention dropout.

Who runs when (:func:`choose_backend`; measured with ``benchmarks/attention.py``, see
``benchmarks/RESULTS.md``):

- ``auto``: ``dense`` when the pattern has at most :data:`DENSE_MAX_BLOCKS` blocks (at such
  lengths the pattern covers most blocks and one masked SDPA call is faster than the block
  machinery; when it covers all blocks this is plain full attention with key padding only);
  else ``flex`` on CUDA when gradients are recorded and there is no attention dropout (its
  fused backward); else as ``blocked``. Inference on CUDA runs ``blocked_explicit``: on one
  H200 it took 3.1 ms where flex took 8.2 ms (the BlockMask build alone 1.6 ms) at the
  ``base`` shape, 8 x 1,664 tokens in bf16 (``benchmarks/flex_mask.py``), at the price of
  memory (the gathered keys: 325 MB against flex's 14 MB for one 8k-token sequence).
- ``blocked``: the first of ``blocked_kernel`` (measured fastest on the CPU, faster than
  compiled FlexAttention there, training and inference), ``blocked_fused``,
  ``blocked_explicit`` that can run the inputs. So on the CPU: float32, bfloat16 or float16
  without dropout -> kernel; float64, or the kernel off or unbuildable -> fused op; dropout, or the
  fused op missing from this torch -> explicit. On CUDA -> explicit.
- any other name: that backend, which raises :class:`~dnabird.errors.ConfigError` if it cannot
  run the inputs (e.g. ``blocked_kernel`` with dropout, ``flex`` backward on the CPU).

Query rows with no visible key (possible only at padded positions) give unspecified finite
values that differ between backends; discard them, as the models do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnabird.errors import ConfigError
from dnabird.model.attention import blocked_fused, blocked_kernel
from dnabird.model.attention.blocked_explicit import blocked_explicit_attention
from dnabird.model.attention.dense import dense_attention
from dnabird.model.attention.flex import flex_sparse_attention
from dnabird.model.attention.slots import needs_gradients
from dnabird.model.config import ATTENTION_BACKENDS as BACKENDS
from dnabird.model.patterns import BlockPattern

DENSE_MAX_BLOCKS = 7
"""``auto`` uses the dense backend up to this many blocks (448 tokens at b = 64). Measured with
``benchmarks/attention.py --contenders ours-blocked ours-dense`` on the 2-core CPU container
(12 heads of width 64, b = 64, r = 3; table in ``benchmarks/RESULTS.md``): masked dense SDPA
was faster up to 448 tokens, forward and forward + backward; the blocked backend with our CPU
kernel from 512 (without the kernel the crossover was 768 to 1024 tokens, a few ms)."""

_RUN = {
    "dense": dense_attention,
    "flex": flex_sparse_attention,
    "blocked_kernel": blocked_kernel.blocked_kernel_attention,
    "blocked_fused": blocked_fused.blocked_fused_attention,
    "blocked_explicit": blocked_explicit_attention,
}
"""The function of every concrete backend (``auto`` and ``blocked`` resolve to one of these)."""


def choose_backend(
    q: torch.Tensor, pattern: BlockPattern, backend: str = "auto", dropout_p: float = 0.0
) -> str:
    """Name of the concrete backend ``sparse_attention`` runs for these inputs (a key of the
    table in the module docstring; ``auto`` and ``blocked`` resolved as described there)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")
    if backend == "auto":
        if pattern.num_blocks <= DENSE_MAX_BLOCKS:
            return "dense"
        if q.device.type == "cuda" and dropout_p == 0.0 and needs_gradients(q):
            return "flex"
    elif backend != "blocked":
        return backend
    if blocked_kernel.unsupported(q, pattern, dropout_p) is None:
        return "blocked_kernel"
    if blocked_fused.unsupported(q, pattern, dropout_p) is None:
        return "blocked_fused"
    return "blocked_explicit"


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
    (pass 0 in evaluation). ``backend``: one of :data:`BACKENDS` (see the module docstring).
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
        # An all-real mask is dropped on the CPU, where checking is free. On a GPU the check
        # would wait for the device once per layer; every backend handles an all-True mask.
        if key_padding_mask.device.type == "cpu" and key_padding_mask.all():
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
    out = _RUN[name](q, k, v, pattern, key_padding_mask, dropout_p)
    return out[:, :, :length] if extra else out
