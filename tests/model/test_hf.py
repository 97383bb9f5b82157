"""Parity with Hugging Face transformers BigBird: conversion both ways, same logits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.model import BigBirdConfig, BigBirdEncoder, BigBirdForMaskedLM, bigbird
from dnabird.model.hf import config_from_hf, config_to_hf, from_hf, to_hf
from dnabird.model.patterns import BlockPattern, block_grid

transformers = pytest.importorskip("transformers")

ATOL = 1e-4


def hf_config(**overrides):
    """A small random-initialised HF BigBird config (block 8)."""
    fields = dict(
        vocab_size=96,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        block_size=8,
        num_random_blocks=1,
        attention_type="original_full",
        hidden_act="gelu_new",
        bos_token_id=None,
        eos_token_id=None,
        sep_token_id=None,
    )
    return transformers.BigBirdConfig(**{**fields, **overrides})


def batch(vocab_size: int, length: int, pad_from: int | None = None):
    """Ids [2, length] with token types; the second row is padded from ``pad_from``."""
    ids = torch.randint(5, vocab_size, (2, length))
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    types[:, length // 2 :] = 1
    if pad_from is not None:
        mask[1, pad_from:] = 0
        ids[1, pad_from:] = 0
    return ids, mask, types


def real_tokens(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits[mask.bool()]


def test_our_hf_named_fields_exist_in_transformers():
    hf_fields = set(transformers.BigBirdConfig().to_dict())
    ours = {f.name for f in dataclasses.fields(BigBirdConfig)}
    dnabird_only = {
        "num_global_blocks",
        "num_window_blocks",
        "global_mode",
        "random_mode",
        "random_seed",
        "attention_backend",
    }
    assert ours - dnabird_only <= hf_fields
    assert not dnabird_only & hf_fields


def test_config_round_trip():
    hf = hf_config(hidden_act="gelu", layer_norm_eps=1e-7, num_random_blocks=2)
    ours = config_from_hf(hf)
    assert (ours.hidden_act, ours.layer_norm_eps, ours.num_random_blocks) == ("gelu", 1e-7, 2)
    assert (ours.global_mode, ours.num_global_blocks, ours.num_window_blocks) == ("itc", 2, 3)
    back = config_to_hf(ours)
    for name in ("hidden_size", "block_size", "num_random_blocks", "hidden_act", "vocab_size"):
        assert getattr(back, name) == getattr(hf, name)


def test_masked_lm_from_hf_gives_hf_logits(seed):
    hf = transformers.BigBirdForMaskedLM(hf_config()).eval()
    ours = from_hf(hf).eval()
    assert isinstance(ours, BigBirdForMaskedLM)
    ids, mask, types = batch(96, 45, pad_from=30)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(
        real_tokens(got, mask), real_tokens(expected, mask), atol=ATOL, rtol=0
    )
    assert (expected - got).abs().max() < ATOL  # padded positions agree too (unpadded full)


def test_block_sparse_dense_backend_matches_hf_where_the_pattern_covers_everything(seed):
    """44 tokens in blocks of 8 -> 6 blocks: with 2 global blocks, a window of 3 and up to
    3 random blocks every query block sees every key block, so block-sparse attention is
    exactly full attention. The pattern is checked, not assumed."""
    hf = transformers.BigBirdForMaskedLM(hf_config()).eval()
    ours = from_hf(
        hf, attention_type="block_sparse", attention_backend="dense", num_random_blocks=3
    ).eval()
    assert all(block_grid(p).all() for p in ours.encoder.layer_patterns(6))
    ids, mask, types = batch(96, 44, pad_from=37)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(
        real_tokens(got, mask), real_tokens(expected, mask), atol=ATOL, rtol=0
    )


def hf_patterns(hf_model, length: int) -> list[BlockPattern]:
    """HF's own random blocks for each layer at ``length`` tokens, as BlockPatterns.

    Reproduces HF's training-mode draw (``np.random.seed(layer)``, then its plan-based
    sampler) and checks that no random block repeats a global or window block, so the
    pattern is a set of key blocks per query block, as ours.
    """
    config = hf_model.config
    b, nb, heads = config.block_size, length // config.block_size, config.num_attention_heads
    patterns = []
    for layer_index, layer in enumerate(hf_model.bert.encoder.layer):
        attention = layer.attention.self
        np.random.seed(layer_index)
        plan, plan_blocks = attention._get_rand_attn_plan(length, b, config.num_random_blocks)
        random = np.stack(
            attention._bigbird_block_rand_mask_with_head(
                from_seq_length=length,
                to_seq_length=length,
                from_block_size=b,
                to_block_size=b,
                num_heads=heads,
                plan_from_length=plan,
                plan_num_rand_blocks=plan_blocks,
            )
        )  # [H, NB - 2, r] for query blocks 1 .. NB-2
        width = nb
        kv = np.full((heads, nb, width), -1, dtype=np.int64)
        counts = np.zeros((heads, nb), dtype=np.int64)
        for h in range(heads):
            for i in range(nb):
                if i in (0, nb - 1):
                    row = list(range(nb))
                else:
                    fixed = {0, nb - 1, i - 1, i, i + 1}
                    chosen = [int(x) for x in random[h, i - 1]]
                    assert not fixed & set(chosen) and len(set(chosen)) == len(chosen)
                    row = sorted(fixed) + chosen
                kv[h, i, : len(row)], counts[h, i] = row, len(row)
        padded_random = np.full((heads, nb, random.shape[-1]), -1, dtype=np.int64)
        padded_random[:, 1:-1] = random
        patterns.append(
            BlockPattern(
                block_size=b,
                num_blocks=nb,
                global_blocks=(0, nb - 1),
                num_window_blocks=3,
                random_blocks=torch.from_numpy(padded_random),
                kv_blocks=torch.from_numpy(kv),
                kv_counts=torch.from_numpy(counts),
            )
        )
    return patterns


def test_block_sparse_matches_hf_block_sparse_given_hf_random_blocks(seed, monkeypatch):
    """HF's block-sparse kernel vs ours (dense backend) on 12 blocks, where most block pairs
    are left out, with HF's random draw fed to our encoder. HF runs in training mode (without
    dropout) because in eval mode it replaces every random block by block 0."""
    hf = transformers.BigBirdForMaskedLM(
        hf_config(
            attention_type="block_sparse",
            num_random_blocks=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    ).train()
    ours = from_hf(hf, attention_backend="dense").eval()
    patterns = hf_patterns(hf, 96)
    assert all(p.density() < 0.8 for p in patterns)
    monkeypatch.setattr(bigbird, "make_pattern", lambda config, nb, layer, step: patterns[layer])
    ids, _, types = batch(96, 96)
    with torch.no_grad():
        expected = hf(input_ids=ids, token_type_ids=types).logits
        got = ours(ids, token_type_ids=types).logits
        full = from_hf(hf, attention_type="original_full")(ids, token_type_ids=types).logits
    assert hf.bert.attention_type == "block_sparse"  # HF did not fall back to full attention
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert (full - expected).abs().max() > 10 * ATOL  # and the sparsity is visible


def test_encoder_from_hf_model_and_back(seed):
    hf = transformers.BigBirdModel(hf_config(), add_pooling_layer=False).eval()
    ours = from_hf(hf).eval()
    assert isinstance(ours, BigBirdEncoder)
    ids, mask, types = batch(96, 40, pad_from=25)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, attention_mask=mask, token_type_ids=types)
        back = to_hf(ours)(input_ids=ids, attention_mask=mask, token_type_ids=types)
    torch.testing.assert_close(
        real_tokens(got, mask), real_tokens(expected, mask), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(back.last_hidden_state, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_ours_to_hf_gives_our_logits(seed, hidden_act):
    config = BigBirdConfig.preset(
        "tiny", attention_type="original_full", hidden_act=hidden_act, block_size=8
    )
    ours = BigBirdForMaskedLM(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values
        for name, param in ours.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    hf = to_hf(ours).eval()
    assert isinstance(hf, transformers.BigBirdForMaskedLM)
    ids, mask, types = batch(config.vocab_size, 50, pad_from=33)
    with torch.no_grad():
        expected = ours(ids, attention_mask=mask, token_type_ids=types).logits
        got = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(
        real_tokens(got, mask), real_tokens(expected, mask), atol=ATOL, rtol=0
    )
    # Round trip: every weight comes back bit for bit.
    again = from_hf(hf)
    for name, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def test_unconvertible_models_are_config_errors():
    etc = BigBirdForMaskedLM(BigBirdConfig.preset("tiny", global_mode="etc"))
    with pytest.raises(ConfigError, match="ETC"):
        to_hf(etc)
    wide = BigBirdForMaskedLM(BigBirdConfig.preset("tiny", num_window_blocks=5))
    with pytest.raises(ConfigError, match="window"):
        to_hf(wide)
    with pytest.raises(ConfigError, match="rescale_embeddings"):
        config_from_hf(hf_config(rescale_embeddings=True))
    with pytest.raises(ConfigError, match="hidden_act"):
        config_from_hf(hf_config(hidden_act="silu"))
