"""Which key blocks each query block sees: BigBird's block-sparse pattern as pure index math.

The sequence (padded to a multiple of ``block_size``) is cut into ``NB`` blocks. For each
layer and head, query block ``i`` sees (paper, Zaheer et al. 2020, Fig. 1 and Table 8):

- the global blocks (ITC: the first ``ceil(g/2)`` and last ``floor(g/2)`` blocks of the
  sequence; ETC: the first ``g`` blocks, which hold the prepended global tokens);
- its window, blocks ``i - w//2 .. i + w//2`` (clipped to the sequence);
- ``r`` random blocks, distinct from its window and the global blocks (fewer when not enough
  blocks remain), drawn per head from a generator seeded by ``(random_seed, layer)`` — or
  ``(random_seed, layer, step)`` with ``random_mode="per_step"`` during training.

A global query block sees every block. The pattern is the same in training and evaluation
(unlike Hugging Face's BigBird, which draws new random blocks at every training forward and
puts block 0 in every random slot in eval mode; ``random_mode="hf"`` reproduces the latter:
its patterns have no random blocks, and the encoder counts block 0 ``1 + r`` times).

Shapes: ``H`` heads, ``NB`` blocks, ``K`` key blocks per row at most, ``R`` random slots,
``L = NB * block_size`` tokens. Block indices are 0-based; index ``-1`` pads unused slots.
Global blocks are always a run at the start and a run at the end of the sequence (either may
be empty); the kernels rely on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dnabird.errors import ConfigError


@dataclass(frozen=True, eq=False)
class BlockPattern:
    """The key blocks of every (head, query block) of one attention layer.

    All tensors are int64 on the CPU; ``-1`` pads slots past a row's count.
    """

    block_size: int
    """Tokens per block (b)."""
    num_blocks: int
    """Blocks in the (padded) sequence (NB)."""
    global_blocks: tuple[int, ...]
    """Sorted block indices that attend everywhere and are attended by all."""
    num_window_blocks: int
    """Window width in blocks (w, odd): query block i sees i - w//2 .. i + w//2."""
    random_blocks: torch.Tensor
    """``[H, NB, R]`` random key blocks of each non-global query block (-1 padded; all -1 on
    global rows)."""
    kv_blocks: torch.Tensor
    """``[H, NB, K]`` every key block each query block sees: global, then window, then random
    for ordinary rows; all blocks ``0..NB-1`` for global rows; -1 padded."""
    kv_counts: torch.Tensor
    """``[H, NB]`` number of valid entries of each ``kv_blocks`` row."""

    def __post_init__(self) -> None:
        front = 0
        while front < len(self.global_blocks) and self.global_blocks[front] == front:
            front += 1
        back = self.global_blocks[front:]
        if tuple(back) != tuple(range(self.num_blocks - len(back), self.num_blocks)):
            raise ConfigError(
                f"BlockPattern: global blocks {self.global_blocks} are not a run at the start "
                f"and a run at the end of {self.num_blocks} blocks"
            )

    @property
    def num_heads(self) -> int:
        """Number of heads (H)."""
        return int(self.kv_blocks.shape[0])

    @property
    def seq_len(self) -> int:
        """Padded sequence length in tokens (``num_blocks * block_size``)."""
        return self.num_blocks * self.block_size

    @property
    def num_front_global(self) -> int:
        """Global blocks at the start of the sequence (blocks ``0 .. n-1``)."""
        count = 0
        while count < len(self.global_blocks) and self.global_blocks[count] == count:
            count += 1
        return count

    @property
    def num_back_global(self) -> int:
        """Global blocks at the end of the sequence."""
        return len(self.global_blocks) - self.num_front_global

    def density(self) -> float:
        """Fraction of the ``NB x NB`` block grid computed (averaged over heads)."""
        return float(self.kv_counts.sum()) / (self.num_heads * self.num_blocks**2)


def global_block_indices(num_blocks: int, num_global_blocks: int, global_mode: str) -> list[int]:
    """Return the sorted global block indices for ``itc`` or ``etc`` (clipped to the sequence)."""
    g = min(num_global_blocks, num_blocks)
    if global_mode == "etc":
        return list(range(g))
    if global_mode != "itc":
        raise ConfigError(f"unknown global_mode {global_mode!r}; choose itc or etc")
    front = math.ceil(g / 2)
    return list(range(front)) + list(range(num_blocks - (g - front), num_blocks))


def build_pattern(
    num_blocks: int,
    block_size: int,
    num_heads: int,
    global_blocks: list[int] | tuple[int, ...],
    num_window_blocks: int,
    num_random_blocks: int,
    seed: list[int] | int,
) -> BlockPattern:
    """Draw a pattern: window and globals fixed, ``r`` random blocks per row and head.

    ``seed`` (an int or a list of non-negative ints) seeds a NumPy generator; the same seed
    gives the same pattern on every platform.
    """
    if num_blocks < 1 or block_size < 1 or num_heads < 1:
        raise ConfigError("build_pattern: num_blocks, block_size and num_heads must be >= 1")
    if num_window_blocks < 1 or num_window_blocks % 2 == 0:
        raise ConfigError("build_pattern: num_window_blocks must be a positive odd number")
    nb, half = num_blocks, num_window_blocks // 2
    is_global = np.zeros(nb, dtype=bool)
    is_global[list(global_blocks)] = True
    rows = np.arange(nb)
    # window[i, j]: key block j is in the window of query block i and is not global.
    offsets = np.abs(rows[:, None] - rows[None, :])
    window = (offsets <= half) & ~is_global[None, :]
    taken = window | is_global[None, :]  # [NB, NB] blocks a random draw must avoid
    r = max(0, min(num_random_blocks, nb))
    # Random draw without replacement: rank the free blocks of each row by a uniform key.
    keys = np.random.default_rng(seed).random((num_heads, nb, nb))
    keys[:, taken] = np.inf
    order = np.argsort(keys, axis=-1, kind="stable")[:, :, :r]  # [H, NB, r]
    free = np.take_along_axis(~np.broadcast_to(taken, keys.shape), order, axis=-1)
    random_blocks = np.where(free & ~is_global[None, :, None], order, -1)

    globals_ = np.flatnonzero(is_global)
    kv_rows, counts = [], np.zeros((num_heads, nb), dtype=np.int64)
    for h in range(num_heads):
        head_rows = []
        for i in range(nb):
            if is_global[i]:
                row = rows
            else:
                rand = random_blocks[h, i]
                row = np.concatenate([globals_, np.flatnonzero(window[i]), rand[rand >= 0]])
            head_rows.append(row)
            counts[h, i] = len(row)
        kv_rows.append(head_rows)
    width = int(counts.max())
    kv = np.full((num_heads, nb, width), -1, dtype=np.int64)
    for h in range(num_heads):
        for i in range(nb):
            kv[h, i, : counts[h, i]] = kv_rows[h][i]
    return BlockPattern(
        block_size=block_size,
        num_blocks=nb,
        global_blocks=tuple(int(x) for x in globals_),
        num_window_blocks=num_window_blocks,
        random_blocks=torch.from_numpy(np.ascontiguousarray(random_blocks, dtype=np.int64)),
        kv_blocks=torch.from_numpy(kv),
        kv_counts=torch.from_numpy(counts),
    )


def make_pattern(config, num_blocks: int, layer: int, step: int | None = None) -> BlockPattern:
    """The pattern of encoder layer ``layer`` for a sequence of ``num_blocks`` blocks.

    ``config`` is a :class:`~dnabird.model.config.BigBirdConfig`. Random blocks are seeded by
    ``(config.random_seed, layer)``; with ``random_mode == "per_step"`` and a training
    ``step`` given, by ``(config.random_seed, layer, step)`` instead. With
    ``random_mode == "hf"`` there are none: transformers' eval mode fills every random slot
    with block 0, which is global already (the encoder weighs it, see
    :func:`dnabird.model.bigbird.weigh_first_block`). ``num_blocks`` counts the prepended
    global-token blocks in ETC mode.
    """
    seed = [config.random_seed, layer]
    if config.random_mode == "per_step" and step is not None:
        seed.append(step)
    num_random_blocks = 0 if config.random_mode == "hf" else config.num_random_blocks
    return build_pattern(
        num_blocks=num_blocks,
        block_size=config.block_size,
        num_heads=config.num_attention_heads,
        global_blocks=global_block_indices(
            num_blocks, config.num_global_blocks, config.global_mode
        ),
        num_window_blocks=config.num_window_blocks,
        num_random_blocks=num_random_blocks,
        seed=seed,
    )


def block_grid(pattern: BlockPattern) -> torch.Tensor:
    """``BoolTensor [H, NB, NB]``: True where query block i sees key block j."""
    h, nb, _ = pattern.kv_blocks.shape
    grid = torch.zeros(h, nb, nb + 1, dtype=torch.bool)  # column NB absorbs the -1 pads
    index = torch.where(pattern.kv_blocks >= 0, pattern.kv_blocks, nb)
    grid.scatter_(2, index, True)
    return grid[:, :, :nb]


def dense_mask(pattern: BlockPattern) -> torch.Tensor:
    """``BoolTensor [H, L, L]``: True where query token i may attend to key token j."""
    b = pattern.block_size
    return block_grid(pattern).repeat_interleave(b, dim=1).repeat_interleave(b, dim=2)
