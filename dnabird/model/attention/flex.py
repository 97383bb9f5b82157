"""FlexAttention backend: the pattern as a ``BlockMask``, run by ``torch.compile``-d kernels.

Shapes: ``q, k, v: [B, H, L, D]`` with ``L == pattern.seq_len``; ``key_padding_mask: [B, L]``
bool (True = real token); output ``[B, H, L, D]``.

The ``BlockMask`` is built directly from the pattern's key-block lists with
``BlockMask.from_kv_blocks`` (work ``O(B * H * NB^2)`` on block indices, never an
``[L, L]`` mask). Kernel tiles are ``tile = f * b`` tokens (``f`` pattern blocks): ``f = 1``
on the CPU; on CUDA ``tile >= 128``, because the Triton backward kernels of torch 2.13 need
sparse blocks that are multiples of 128 on recent GPUs. A tile pair is

- *full* when every token pair in it is attended (all its pattern blocks are allowed and none
  of its keys is padding): the kernel skips ``mask_mod`` there;
- *partial* when only some are: ``mask_mod`` decides token by token;
- absent when none are: never computed.

``mask_mod`` encodes the whole pattern (block table lookup and key padding), because eager
(uncompiled) FlexAttention ignores the block lists and applies only ``mask_mod``.

What depends on the pattern alone (its block grid as tiles of allowed blocks, and the block
table read by ``mask_mod``, on the device) is built once per (pattern, device, tile) and kept
in a small LRU cache of :data:`PATTERN_CACHE_SIZE` entries: the encoder hands each layer the
same pattern object call after call (per-step random patterns are new objects every step and
push old ones out). Each call does only what depends on the key padding, on the device with
no host-device copy or sync (given a ``key_padding_mask`` on that device): the padding of
every tile, the full and partial tile grids, their compaction to block lists (argsort) and
``BlockMask.from_kv_blocks``.

On the CPU, torch 2.13 has no FlexAttention backward and its C++ kernel fails to compile with
full blocks, so every listed CPU tile is partial and gradients raise :class:`ConfigError`.
The compiled function is created once per process and reused. Each new input shape compiles
again; past ``torch._dynamo.config.recompile_limit`` shapes torch runs it uncompiled (O(L^2)),
so feed few distinct lengths (pad batches to a fixed length).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

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


@dataclass(frozen=True, eq=False)
class PatternTiles:
    """The part of a ``BlockMask`` that depends only on the pattern, on one device.

    ``T = ceil(NB / tile)`` tiles of ``tile`` pattern blocks per side.
    """

    pattern: BlockPattern
    """The pattern (held, so that its ``id`` is not reused while the entry is cached)."""
    tile: int
    """Pattern blocks per kernel tile."""
    any_block: torch.Tensor
    """``[1, H, T, T]`` bool: some block pair of the tile is allowed."""
    all_blocks: torch.Tensor
    """``[1, H, T, T]`` bool: every block pair of the tile is allowed (blocks past ``NB``
    are not)."""
    block_table: torch.Tensor
    """``[H, NB+1, NB+1]`` bool: the block grid plus a False row and column for tokens past
    the pattern (what ``mask_mod`` reads)."""


PATTERN_CACHE_SIZE = 32
"""Most :class:`PatternTiles` kept by :func:`pattern_tiles` (least recently used dropped)."""
_pattern_cache: OrderedDict[tuple, PatternTiles] = OrderedDict()
_pattern_cache_lock = threading.Lock()


def clear_pattern_cache() -> None:
    """Drop every cached :class:`PatternTiles`."""
    with _pattern_cache_lock:
        _pattern_cache.clear()


def _cache_device(device: torch.device | str) -> torch.device:
    """``device`` with its index (``cuda`` -> ``cuda:N``), so one device has one cache key."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def make_pattern_tiles(pattern: BlockPattern, device: torch.device, tile: int) -> PatternTiles:
    """Build the :class:`PatternTiles` of ``pattern`` (uncached; see :func:`pattern_tiles`).

    Built outside inference mode, so the tensors can also serve later calls that record
    autograd (inference tensors cannot be saved for backward).
    """
    nb, heads = pattern.num_blocks, pattern.num_heads
    n_tiles = -(-nb // tile)
    with torch.inference_mode(False):
        grid = block_grid(pattern)  # [H, NB, NB] block may attend (CPU)
        block_table = F.pad(grid, (0, 1, 0, 1)).to(device)  # [H, NB+1, NB+1]
        tiled = block_table[:, :nb, :nb]
        tiled = F.pad(tiled, (0, n_tiles * tile - nb, 0, n_tiles * tile - nb))
        tiled = tiled.view(heads, n_tiles, tile, n_tiles, tile)  # [H, T, f, T, f]
        return PatternTiles(
            pattern=pattern,
            tile=tile,
            any_block=tiled.any(4).any(2)[None],  # [1, H, T, T]
            all_blocks=tiled.all(4).all(2)[None],  # [1, H, T, T]
            block_table=block_table,
        )


def pattern_tiles(pattern: BlockPattern, device: torch.device, tile: int) -> PatternTiles:
    """The :class:`PatternTiles` of ``pattern``, from the cache or built once and cached.

    Keyed on the pattern's identity (``BlockPattern`` compares by identity), ``device`` and
    ``tile``; at most :data:`PATTERN_CACHE_SIZE` entries, least recently used dropped first.
    """
    device = _cache_device(device)
    key = (id(pattern), device, tile)
    with _pattern_cache_lock:
        entry = _pattern_cache.get(key)
        if entry is not None and entry.pattern is pattern:
            _pattern_cache.move_to_end(key)
            return entry
    entry = make_pattern_tiles(pattern, device, tile)
    with _pattern_cache_lock:
        _pattern_cache[key] = entry
        _pattern_cache.move_to_end(key)
        while len(_pattern_cache) > PATTERN_CACHE_SIZE:
            _pattern_cache.popitem(last=False)
    return entry


def build_block_mask(
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None,
    batch: int,
    device: torch.device,
    tile: int = 1,
    full_tiles: bool = True,
    *,
    cache: bool = True,
):
    """The ``BlockMask`` of ``pattern`` with tiles of ``tile`` pattern blocks.

    ``key_padding_mask: [B, L]`` bool (``L = pattern.seq_len``) on ``device``, or None. The
    mask covers ``ceil(NB / tile) * tile * b`` tokens; keys past ``L`` are masked. With
    ``full_tiles`` False every listed tile is partial (for the CPU kernel). The pattern part
    comes from :func:`pattern_tiles` (``cache=False`` builds it afresh and keeps nothing).
    """
    from torch.nn.attention.flex_attention import BlockMask

    b, nb = pattern.block_size, pattern.num_blocks
    if cache:
        tiles = pattern_tiles(pattern, device, tile)
    else:
        tiles = make_pattern_tiles(pattern, device, tile)
    n_tiles = tiles.any_block.shape[-1]
    length = n_tiles * tile * b
    keep = torch.zeros(batch, length, dtype=torch.bool, device=device)  # [B, L_tiles]
    keep[:, : pattern.seq_len] = True if key_padding_mask is None else key_padding_mask
    keys = keep.view(batch, n_tiles, tile * b)  # [B, T, f*b]
    partial = tiles.any_block & keys.any(-1)[:, None, None, :]  # [B, H, T, T]
    if full_tiles:
        full = tiles.all_blocks & keys.all(-1)[:, None, None, :]  # [B, H, T, T]
        partial &= ~full

    def compact(listed: torch.Tensor):
        """Counts ``[B, H, T]`` and indices ``[B, H, T, T]`` (listed tiles first) as int32."""
        order = torch.argsort((~listed).to(torch.int8), dim=-1, stable=True)
        return listed.sum(-1).to(torch.int32), order.to(torch.int32)

    block_table = tiles.block_table  # [H, NB+1, NB+1]
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
