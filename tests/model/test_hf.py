"""Parity with Hugging Face transformers BigBird: conversion both ways, same logits.

transformers' BigBird (eval mode) uses full attention for inputs of at most (5 + 2r) * b
tokens and, above, puts block 0 in every random slot; ``from_hf`` models reproduce that
(``random_mode="hf"``), ``to_hf`` is exact for those and for full attention, and states where
our own random blocks make outputs differ.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.model import BigBirdConfig, BigBirdEncoder, BigBirdForMaskedLM, bigbird
from dnabird.model.hf import config_from_hf, config_to_hf, from_hf, hf_differences, to_hf
from dnabird.model.patterns import BlockPattern

transformers = pytest.importorskip("transformers")

ATOL = 1e-4


def hf_config(**overrides):
    """A small random-initialised HF BigBird config (block 8; weights 10 times larger than
    BERT's, so that attending to other blocks changes the outputs visibly)."""
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
        initializer_range=0.2,
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


def perturbed(model):
    """``model`` with non-trivial LayerNorm and bias values (initialised ones are 1 and 0)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return model


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
    assert ours.random_mode == "hf"  # transformers' eval-mode attention
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


@pytest.mark.parametrize("backend", ["dense", "blocked", "auto"])
def test_from_hf_scores_as_transformers_in_eval_mode_at_every_length(seed, backend):
    """Block 8, 2 random blocks: transformers uses full attention up to (5 + 2*2) * 8 = 72
    tokens and block-sparse attention with block 0 in every random slot above; the imported
    model follows both rules (lengths longest first: transformers' switch to full attention
    lasts). Before random_mode "hf", from_hf used dnabird's own random blocks, which differ
    wherever they do not cover every block (all lengths here but 45 tokens)."""
    hf = transformers.BigBirdForMaskedLM(
        hf_config(attention_type="block_sparse", num_random_blocks=2)
    ).eval()
    perturbed(hf)
    ours = from_hf(hf, attention_backend=backend).eval()
    assert ours.config.random_mode == "hf" and ours.config.full_attention_max_tokens == 72
    own_random = from_hf(hf, attention_backend=backend, random_mode="fixed").eval()
    for length, hf_attention, own_random_differs in [
        (200, "block_sparse", True),
        (73, "block_sparse", True),
        (72, "original_full", True),
        (45, "original_full", False),
    ]:
        ids, mask, types = batch(96, length, pad_from=length - 11)
        with torch.no_grad():
            expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
            got = ours(ids, attention_mask=mask, token_type_ids=types).logits
            other = own_random(ids, attention_mask=mask, token_type_ids=types).logits
        assert hf.bert.attention_type == hf_attention, length
        torch.testing.assert_close(
            real_tokens(got, mask), real_tokens(expected, mask), atol=ATOL, rtol=0
        )
        difference = real_tokens(other - expected, mask).abs().max()
        assert (difference > 10 * ATOL) == own_random_differs, length


def test_from_hf_of_a_model_that_switched_to_full_attention_warns(seed):
    hf = transformers.BigBirdModel(
        hf_config(attention_type="block_sparse", num_random_blocks=2), add_pooling_layer=False
    ).eval()
    hf(input_ids=torch.randint(5, 96, (1, 30)))  # short: transformers switches for good
    assert hf.attention_type == "original_full"
    with pytest.warns(UserWarning, match="switched to original_full.*up to 72 tokens"):
        ours = from_hf(hf)
    assert ours.config.attention_type == "block_sparse"


@pytest.mark.parametrize("length", [1100, 1024])
def test_from_hf_matches_transformers_at_block_64_with_3_random_blocks(seed, length):
    """The paper's block layout (b = 64, r = 3: full attention up to 704 tokens) at 1100
    tokens and at 1024, a length for which transformers takes its other sampler (the
    paper's fixed plans for 1024, 3072 and 4096 tokens) in training mode."""
    hf = transformers.BigBirdForMaskedLM(
        hf_config(
            attention_type="block_sparse",
            block_size=64,
            num_random_blocks=3,
            max_position_embeddings=1536,
        )
    ).eval()
    perturbed(hf)
    ours = from_hf(hf).eval()
    ids, mask, types = batch(96, length, pad_from=length - 100)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    assert hf.bert.attention_type == "block_sparse"
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
    dropout) because in eval mode it replaces every random block by block 0; ours keeps its
    own random-block rule (``random_mode="fixed"``) with the patterns replaced."""
    hf = transformers.BigBirdForMaskedLM(
        hf_config(
            attention_type="block_sparse",
            num_random_blocks=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    ).train()
    ours = from_hf(hf, attention_backend="dense", random_mode="fixed").eval()
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


def tiny_mlm(**overrides) -> BigBirdForMaskedLM:
    config = BigBirdConfig.preset("tiny", block_size=8, initializer_range=0.2, **overrides)
    return perturbed(BigBirdForMaskedLM(config)).eval()


def hf_logits(hf, ids: torch.Tensor) -> torch.Tensor:
    """Logits of a fresh copy of ``hf`` (its switch to full attention lasts otherwise)."""
    fresh = type(hf)(hf.config).eval()
    fresh.load_state_dict(hf.state_dict())
    with torch.no_grad():
        return fresh(input_ids=ids).logits


def test_to_hf_is_exact_for_a_random_mode_hf_model_at_every_length(seed):
    ours = tiny_mlm(num_random_blocks=2, random_mode="hf")  # full attention up to 72 tokens
    hf = to_hf(ours)
    for length in (40, 72, 73, 150):
        ids = torch.randint(5, 512, (2, length))
        with torch.no_grad():
            expected = ours(ids).logits
        torch.testing.assert_close(hf_logits(hf, ids), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(("random_blocks", "random_mode"), [(3, "fixed"), (0, "fixed"), (0, "hf")])
def test_to_hf_refuses_where_transformers_would_differ_and_states_where_outputs_agree(
    seed, random_blocks, random_mode
):
    """to_hf refuses a model transformers would run differently (our own random blocks;
    no random blocks at all, which transformers cannot run above its full-attention length);
    with exact=False it warns with the lengths where outputs agree, and the statement is
    checked at those lengths and just beyond them."""
    ours = tiny_mlm(num_random_blocks=random_blocks, random_mode=random_mode)
    with pytest.raises(ConfigError, match="outputs agree only for inputs.*exact=False"):
        to_hf(ours)
    with pytest.warns(UserWarning, match="agree only for inputs") as caught:
        hf = to_hf(ours, exact=False)
    message = str(caught[0].message)
    assert message.endswith(hf_differences(ours.config))
    full_up_to = int(re.search(r"full attention for inputs of at most (\d+)", message)[1])
    agree_up_to = int(re.search(r"agree only for inputs of at most (\d+)", message)[1])
    assert full_up_to == (5 + 2 * random_blocks) * 8
    assert 0 < agree_up_to <= full_up_to

    def difference(length: int) -> float:
        ids = torch.randint(5, 512, (1, length))
        with torch.no_grad():
            return float((hf_logits(hf, ids) - ours(ids).logits).abs().max())

    assert difference(agree_up_to) < ATOL
    if agree_up_to < full_up_to:  # ours is sparse there, transformers full
        assert difference(agree_up_to + 8) > 10 * ATOL
    if random_blocks:  # block 0 in place of our random blocks
        assert difference(full_up_to + 30) > 10 * ATOL
    else:
        with pytest.raises(RuntimeError):  # transformers' own failure
            difference(full_up_to + 30)


def test_to_hf_is_exact_without_a_warning_where_nothing_differs():
    for model in (tiny_mlm(attention_type="original_full"), tiny_mlm(random_mode="hf")):
        assert hf_differences(model.config) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            to_hf(model)


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
