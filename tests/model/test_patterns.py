"""Tests of the block-sparse pattern (index math) and its PNG drawing."""

from __future__ import annotations

import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.model.config import BigBirdConfig
from dnabird.model.patterns import (
    BlockPattern,
    block_grid,
    build_pattern,
    dense_mask,
    global_block_indices,
    make_pattern,
)


def config(**overrides) -> BigBirdConfig:
    return BigBirdConfig.preset("tiny", **overrides)


def rows_of(pattern: BlockPattern, head: int) -> list[list[int]]:
    kv, counts = pattern.kv_blocks[head], pattern.kv_counts[head]
    return [kv[i, : counts[i]].tolist() for i in range(pattern.num_blocks)]


def test_global_block_indices_itc_and_etc():
    assert global_block_indices(10, 2, "itc") == [0, 9]
    assert global_block_indices(10, 3, "itc") == [0, 1, 9]
    assert global_block_indices(10, 3, "etc") == [0, 1, 2]
    assert global_block_indices(10, 0, "itc") == []
    assert global_block_indices(2, 5, "itc") == [0, 1]  # clipped to the sequence


@pytest.mark.parametrize("mode", ["itc", "etc"])
@pytest.mark.parametrize("num_blocks", [3, 9, 16, 40])
@pytest.mark.parametrize("r", [0, 1, 3])
def test_pattern_has_the_paper_structure(mode, num_blocks, r):
    """Global rows see all; other rows see g global + window + r random, no duplicates."""
    cfg = config(global_mode=mode, num_random_blocks=r, num_global_blocks=2)
    pattern = make_pattern(cfg, num_blocks, layer=1)
    glob = set(global_block_indices(num_blocks, 2, mode))
    assert set(pattern.global_blocks) == glob
    assert pattern.kv_blocks.shape[:2] == (cfg.num_attention_heads, num_blocks)
    for head in range(cfg.num_attention_heads):
        for i, row in enumerate(rows_of(pattern, head)):
            assert len(row) == len(set(row)), f"duplicate key block in row {i}"
            assert all(0 <= j < num_blocks for j in row)
            # -1 pads every slot past the count
            assert (pattern.kv_blocks[head, i, len(row) :] == -1).all()
            if i in glob:
                assert sorted(row) == list(range(num_blocks))
                assert (pattern.random_blocks[head, i] == -1).all()
                continue
            window = {j for j in (i - 1, i, i + 1) if 0 <= j < num_blocks} - glob
            random = [j for j in pattern.random_blocks[head, i].tolist() if j >= 0]
            assert set(row) == glob | window | set(random)
            assert not set(random) & (glob | window), "random block overlaps window/global"
            free = num_blocks - len(glob | window)
            assert len(random) == min(r, free)
            assert len(row) == len(glob) + len(window) + len(random)


def test_random_blocks_differ_between_heads_and_layers_and_are_reproducible():
    cfg = config(num_attention_heads=4, num_random_blocks=3)
    a = make_pattern(cfg, 32, layer=0)
    assert torch.equal(a.kv_blocks, make_pattern(cfg, 32, layer=0).kv_blocks)
    assert not torch.equal(a.random_blocks[0], a.random_blocks[1])
    assert not torch.equal(a.random_blocks, make_pattern(cfg, 32, layer=1).random_blocks)
    other_seed = make_pattern(config(num_attention_heads=4, random_seed=7), 32, layer=0)
    assert not torch.equal(a.random_blocks, other_seed.random_blocks)


def test_step_only_matters_in_per_step_mode():
    fixed = config(random_mode="fixed")
    assert torch.equal(
        make_pattern(fixed, 32, 0, step=5).kv_blocks, make_pattern(fixed, 32, 0).kv_blocks
    )
    per_step = config(random_mode="per_step")
    p5, p6 = make_pattern(per_step, 32, 0, step=5), make_pattern(per_step, 32, 0, step=6)
    assert not torch.equal(p5.random_blocks, p6.random_blocks)
    assert torch.equal(p5.kv_blocks, make_pattern(per_step, 32, 0, step=5).kv_blocks)
    # no step (evaluation) -> the fixed draw
    assert torch.equal(
        make_pattern(per_step, 32, 0).kv_blocks, make_pattern(fixed, 32, 0).kv_blocks
    )


def test_hf_mode_pattern_is_transformers_layout_without_random_blocks():
    """transformers' eval mode puts block 0 (global already) in every random slot: the
    pattern is global + window only, at every layer and step (the encoder weighs block 0)."""
    hf = config(random_mode="hf", num_attention_heads=4)
    for layer, step in [(0, None), (1, 7)]:
        pattern = make_pattern(hf, 12, layer, step=step)
        assert (pattern.random_blocks == -1).all()
        assert rows_of(pattern, 3)[5] == [0, 11, 4, 5, 6]
        assert rows_of(pattern, 0)[1] == [0, 11, 1, 2]
        assert rows_of(pattern, 2)[0] == list(range(12))


def test_dense_mask_matches_block_lists():
    pattern = build_pattern(7, 3, 2, [0, 6], 3, 2, seed=3)
    mask = dense_mask(pattern)
    assert mask.shape == (2, 21, 21)
    for h in range(2):
        for i, row in enumerate(rows_of(pattern, h)):
            for j in range(7):
                block = mask[h, i * 3 : i * 3 + 3, j * 3 : j * 3 + 3]
                assert bool(block.all()) == (j in row)
                assert bool(block.any()) == (j in row)
    assert pattern.density() == pytest.approx(float(block_grid(pattern).float().mean()))


def test_globals_must_be_a_prefix_and_a_suffix():
    with pytest.raises(ConfigError, match="run at the start"):
        build_pattern(8, 4, 1, [0, 3], 3, 1, seed=0)
    with pytest.raises(ConfigError, match="odd"):
        build_pattern(8, 4, 1, [0], 2, 1, seed=0)


def test_plot_block_pattern_writes_a_png_with_all_cell_kinds(tmp_path):
    import matplotlib.image

    from dnabird.plots import PATTERN_COLOURS, pattern_cells, plot_block_pattern

    pattern = make_pattern(config(), 16, layer=0)
    cells = pattern_cells(pattern, head=1)
    assert set(cells.ravel().tolist()) == {0, 1, 2, 3}
    assert (cells[0] == 1).all() and (cells[:, -1] == 1).all()  # ITC: first and last global
    random = pattern.random_blocks[1, 5]
    assert all(cells[5, j] == 3 for j in random.tolist() if j >= 0)
    out = tmp_path / "pattern.png"
    plot_block_pattern(pattern, out, head=1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(out)[..., :3]
    for name in ("global", "window", "random"):
        colour = torch.tensor(PATTERN_COLOURS[name])
        close = (torch.from_numpy(pixels.copy()) - colour).abs().max(-1).values < 0.02
        assert close.sum() > 50, f"no {name} cells drawn"
    assert not list(tmp_path.glob(".*.tmp"))
