"""FlexAttention backend: the pattern as a ``BlockMask``, run by ``torch.compile``-d kernels.

Shapes: ``q, k, v: [B, H, L, D]`` with ``L == pattern.seq_len``; ``key_padding_mask: [B, L]``
bool (True = real token); output ``[B, H, L, D]``.

The ``BlockMask`` is built directly from the pattern's key-block lists with
``BlockMask.from_kv_blocks`` (work ``O(H * NB^2)`` on block indices, never an ``[L, L]`` mask).
Kernel tiles are ``tile = f * b`` tokens (``f`` pattern blocks): ``f = 1`` on the CPU; on
CUDA ``tile >= 128``, because the Triton backward kernels of torch 2.13 need sparse blocks that
are multiples of 128 on recent GPUs. A tile pair is

- *full* when every token pair in it is attended (all its pattern blocks are allowed and none
  of its keys is padding): the kernel skips ``mask_mod`` there;
- *partial* when only some are: ``mask_mod`` decides token by token;
- absent when none are: never computed.

``mask_mod`` encodes the whole pattern (block table lookup and key padding), because eager
(uncompiled) FlexAttention ignores the block lists and applies only ``mask_mod``.
On the CPU, torch 2.13 has no FlexAttention backward and its C++ kernel fails to compile with
full blocks, so every listed CPU tile is partial and gradients raise :class:`ConfigError`.
The compiled function is created once per process and reused. Each new input shape compiles
again; past ``torch._dynamo.config.recompile_limit`` shapes torch runs it uncompiled (O(L^2)),
so feed few distinct lengths (pad batches to a fixed length).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnabird.errors import ConfigError
from dnabird.model.patterns import BlockPattern, block_grid

_CUDA_MIN_TILE = 128
_compiled_flex = None


def _flex_function(compiled: bool):
    """``flex_attention``, wrapped once by ``torch.compile`` when ``compiled``."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if not compiled:
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def tile_blocks(pattern: BlockPattern, device: torch.device) -> int:
    """Pattern blocks per kernel tile (``f``) on ``device`` (see the module docstring)."""
    b = pattern.block_size
    if torch.device(device).type != "cuda" or b % _CUDA_MIN_TILE == 0:
        return 1
    if _CUDA_MIN_TILE % b:
        raise ConfigError(
            f"flex backend on CUDA needs block_size dividing or divisible by {_CUDA_MIN_TILE}, "
            f"got {b}"
        )
    return _CUDA_MIN_TILE // b


def build_block_mask(
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None,
    batch: int,
    device: torch.device,
    tile: int = 1,
    full_tiles: bool = True,
):
    """The ``BlockMask`` of ``pattern`` with tiles of ``tile`` pattern blocks.

    ``key_padding_mask: [B, L]`` (``L = pattern.seq_len``) or None. The mask covers
    ``ceil(NB / tile) * tile * b`` tokens; keys past ``L`` are masked. With ``full_tiles``
    False every listed tile is partial (for the CPU kernel).
    """
    from torch.nn.attention.flex_attention import BlockMask

    b, nb, heads = pattern.block_size, pattern.num_blocks, pattern.num_heads
    n_tiles = -(-nb // tile)
    length = n_tiles * tile * b
    grid = block_grid(pattern).to(device)  # [H, NB, NB] block may attend
    grid = F.pad(grid, (0, n_tiles * tile - nb, 0, n_tiles * tile - nb))
    grid = grid.view(heads, n_tiles, tile, n_tiles, tile)
    keep = torch.zeros(batch, length, dtype=torch.bool, device=device)  # [B, L_tiles]
    keep[:, : pattern.seq_len] = True if key_padding_mask is None else key_padding_mask
    keys_full = keep.view(batch, n_tiles, tile * b).all(-1)  # [B, T]: tile has no padding

    any_block = grid.any(4).any(2)[None]  # [1, H, T, T]
    if full_tiles:
        full = grid.all(4).all(2)[None] & keys_full[:, None, None, :]  # [B, H, T, T]
    else:
        full = torch.zeros(1, 1, 1, 1, dtype=torch.bool, device=device)
    partial = any_block & keep.view(batch, n_tiles, -1).any(-1)[:, None, None, :] & ~full

    def compact(listed: torch.Tensor):
        """Counts ``[B, H, T]`` and indices ``[B, H, T, T]`` (listed tiles first) as int32."""
        listed = listed.expand(batch, heads, n_tiles, n_tiles)
        order = torch.argsort((~listed).to(torch.int8), dim=-1, stable=True)
        return listed.sum(-1).to(torch.int32), order.to(torch.int32)

    block_table = F.pad(block_grid(pattern), (0, 1, 0, 1)).to(device)  # [H, NB+1, NB+1]
    last = nb  # row/column of False for tokens past the pattern

    def mask_mod(b_idx, h_idx, q_idx, kv_idx):
        q_block = torch.clamp(q_idx // b, max=last)
        kv_block = torch.clamp(kv_idx // b, max=last)
        return block_table[h_idx, q_block, kv_block] & keep[b_idx, kv_idx]

    counts, indices = compact(partial)
    full_args = compact(full) if full_tiles else (None, None)
    return BlockMask.from_kv_blocks(
        counts,
        indices,
        *full_args,
        BLOCK_SIZE=tile * b,
        mask_mod=mask_mod,
        seq_lengths=(length, length),
    )


def flex_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    *,
    compiled: bool = True,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` with FlexAttention (``L == pattern.seq_len``)."""
    batch, heads, length, _ = q.shape
    if length != pattern.seq_len or heads != pattern.num_heads:
        raise ValueError(
            f"flex_sparse_attention: q is [B, {heads}, {length}, D] but the pattern is for "
            f"{pattern.num_heads} heads and {pattern.seq_len} tokens"
        )
    if dropout_p > 0.0:
        raise ConfigError("flex attention backend has no attention dropout; use blocked")
    on_cpu = q.device.type == "cpu"
    if on_cpu and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise ConfigError(
            "flex attention backend has no CPU backward in this torch; use blocked for training"
        )
    tile = tile_blocks(pattern, q.device)
    mask = build_block_mask(
        pattern, key_padding_mask, batch, q.device, tile=tile, full_tiles=not on_cpu
    )
    extra = mask.seq_lengths[0] - length
    if extra:
        q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))
    out = _flex_function(compiled)(q, k, v, block_mask=mask)
    return out[:, :, :length]
