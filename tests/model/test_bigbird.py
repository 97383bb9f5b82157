"""BigBirdEncoder: shapes, padding, patterns in train/eval, gradients, initialisation."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dnabird.errors import InputError
from dnabird.model import BigBirdConfig, BigBirdEncoder, bigbird
from dnabird.model.attention import sparse_attention
from dnabird.model.config import ACTIVATIONS, ATTENTION_BACKENDS
from dnabird.model.patterns import block_grid


def tiny(**overrides) -> BigBirdConfig:
    """The tiny preset (block 16) without dropout, so train and eval modes compute alike."""
    return BigBirdConfig.preset(
        "tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides
    )


def random_ids(config: BigBirdConfig, batch: int, length: int) -> torch.Tensor:
    return torch.randint(5, config.vocab_size, (batch, length))


MODES = [
    pytest.param(dict(attention_type="original_full"), id="full"),
    pytest.param(dict(attention_type="block_sparse", attention_backend="dense"), id="itc"),
    pytest.param(
        dict(attention_type="block_sparse", attention_backend="dense", global_mode="etc"),
        id="etc",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length", [1, 16, 37, 150])
def test_output_has_input_length(seed, mode, length):
    config = tiny(**mode)
    encoder = BigBirdEncoder(config).eval()
    h = encoder(random_ids(config, 2, length))
    assert h.shape == (2, length, config.hidden_size)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("mode", MODES)
def test_padded_batch_matches_unpadded_sequences(seed, mode):
    """Real tokens of a padded batch get the outputs of each sequence run alone.

    Block-sparse lengths share one block count (145..160 tokens -> 10 blocks of 16): the
    pattern (which blocks are global, which random) depends on the number of blocks.
    """
    config = tiny(**mode)
    encoder = BigBirdEncoder(config).eval()
    lengths = [150, 145, 160]
    batch = torch.full((3, 160), config.pad_token_id)
    mask = torch.zeros(3, 160, dtype=torch.long)
    singles = []
    for row, length in enumerate(lengths):
        ids = random_ids(config, 1, length)
        batch[row, :length], mask[row, :length] = ids[0], 1
        singles.append(encoder(ids)[0])
    out = encoder(batch, attention_mask=mask)
    for row, length in enumerate(lengths):
        torch.testing.assert_close(out[row, :length], singles[row], atol=1e-5, rtol=1e-5)


FIRST_ROW_CASES = [
    pytest.param(dict(attention_type="original_full"), True, id="full"),
    pytest.param(dict(), True, id="itc-auto"),
    pytest.param(dict(random_mode="hf"), True, id="itc-hf-mode"),
    pytest.param(dict(num_global_blocks=1), True, id="itc-one-global"),
    pytest.param(dict(num_global_blocks=0), False, id="no-global"),
    pytest.param(dict(global_mode="etc"), False, id="etc"),
]


@pytest.mark.parametrize(("mode", "skips_rows"), FIRST_ROW_CASES)
def test_first_only_gives_the_first_row_and_skips_the_others_where_it_sees_every_key(
    seed, mode, skips_rows
):
    config = tiny(**mode)
    encoder = BigBirdEncoder(config).eval()
    rows_fed = []
    encoder.layers[-1].intermediate.register_forward_hook(
        lambda module, inputs, output: rows_fed.append(inputs[0].shape[1])
    )
    for length in (37, 300):  # full attention, then block-sparse (19 blocks of 16)
        ids = random_ids(config, 3, length)
        mask = torch.ones_like(ids)
        mask[1, length // 2 :] = 0
        with torch.no_grad():
            full = encoder(ids, mask)
            rows_fed.clear()
            first = encoder(ids, mask, first_only=True)
        assert first.shape == (3, 1, config.hidden_size)
        torch.testing.assert_close(first, full[:, :1], rtol=1e-5, atol=1e-5)
        # the last layer's feed-forward ran on [CLS] alone, or on every (padded) row
        assert rows_fed == [1] if skips_rows else rows_fed[0] >= length


def test_a_sequence_classifier_with_cls_only_gives_the_same_logits(seed):
    from dnabird.model import BigBirdForSequenceClassification

    config = tiny()
    model = BigBirdForSequenceClassification(config, 3).eval()
    ids = random_ids(config, 2, 300)
    with torch.no_grad():
        full, fast = model(ids), model(ids, cls_only=True)
    torch.testing.assert_close(fast.logits, full.logits, rtol=1e-5, atol=1e-6)
    assert fast.hidden_states.shape == (2, 1, config.hidden_size)
    assert full.hidden_states.shape == (2, 300, config.hidden_size)


def test_cls_only_training_gives_the_same_loss_and_gradients(seed):
    from dnabird.model import BigBirdForMultiLabelClassification

    config = tiny()
    model = BigBirdForMultiLabelClassification(config, 4).train()  # no dropout in tiny()
    ids = random_ids(config, 3, 300)
    mask = torch.ones_like(ids)
    mask[2, 200:] = 0
    labels = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float32)
    results = []
    for cls_only in (False, True):
        model.zero_grad()
        loss = model(ids, mask, labels=labels, cls_only=cls_only).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_full, grads_full), (loss_fast, grads_fast) = results
    torch.testing.assert_close(loss_fast, loss_full, rtol=1e-6, atol=1e-7)
    assert all(g.abs().sum() > 0 for g in grads_fast)  # every parameter still learns
    for fast, full in zip(grads_fast, grads_full, strict=True):
        torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-7)


def test_padding_changes_nothing_when_its_content_changes(seed):
    """Padded positions are never attended: garbage token ids there do not matter."""
    config = tiny(attention_type="block_sparse", attention_backend="dense")
    encoder = BigBirdEncoder(config).eval()
    ids = random_ids(config, 2, 100)
    mask = torch.ones_like(ids)
    mask[1, 70:] = 0
    garbage = ids.clone()
    garbage[1, 70:] = random_ids(config, 1, 30)
    torch.testing.assert_close(
        encoder(ids, mask)[1, :70], encoder(garbage, mask)[1, :70], atol=0, rtol=0
    )


def test_block_sparse_is_sparse_and_equals_full_when_the_pattern_covers_everything(seed):
    config = tiny(attention_type="block_sparse", attention_backend="dense")
    encoder = BigBirdEncoder(config).eval()
    full = BigBirdEncoder(tiny(attention_type="original_full")).eval()
    full.load_state_dict(encoder.state_dict())
    # 4 blocks: every query block sees every key block (2 global + window 3 + random).
    assert all(block_grid(p).all() for p in encoder.layer_patterns(4))
    short = random_ids(config, 2, 60)
    torch.testing.assert_close(encoder(short), full(short), atol=1e-5, rtol=1e-5)
    # 20 blocks: the pattern leaves blocks out, so the outputs must differ from full attention.
    assert not any(block_grid(p).all() for p in encoder.layer_patterns(20))
    long = random_ids(config, 1, 320)
    assert (encoder(long) - full(long)).abs().max() > 1e-3


@pytest.mark.parametrize("global_mode", ["itc", "etc"])
def test_train_and_eval_use_the_same_random_blocks(seed, global_mode):
    config = tiny(attention_type="block_sparse", attention_backend="dense", global_mode=global_mode)
    encoder = BigBirdEncoder(config)
    ids = random_ids(config, 2, 300)
    num_blocks = -(-300 // config.block_size) + config.num_global_tokens // config.block_size
    encoder.train()
    trained = encoder(ids)
    train_patterns = encoder.layer_patterns(num_blocks)
    encoder.eval()
    evaluated = encoder(ids)
    eval_patterns = encoder.layer_patterns(num_blocks)
    torch.testing.assert_close(trained, evaluated, atol=0, rtol=0)
    for a, b in zip(train_patterns, eval_patterns, strict=True):
        assert torch.equal(a.kv_blocks, b.kv_blocks)
    # Layers draw different random blocks; a fresh model with the same seed draws the same.
    assert not torch.equal(eval_patterns[0].kv_blocks, eval_patterns[1].kv_blocks)
    again = BigBirdEncoder(config).layer_patterns(num_blocks)
    for a, b in zip(again, eval_patterns, strict=True):
        assert torch.equal(a.kv_blocks, b.kv_blocks)


def test_per_step_random_blocks_change_with_the_step_in_training_only(seed):
    config = tiny(attention_type="block_sparse", attention_backend="dense", random_mode="per_step")
    encoder = BigBirdEncoder(config)
    ids = random_ids(config, 1, 320)
    encoder.eval()
    fixed = encoder(ids)
    encoder.train()
    encoder.set_pattern_step(3)
    step3 = encoder(ids)
    encoder.set_pattern_step(4)
    step4 = encoder(ids)
    encoder.set_pattern_step(3)
    torch.testing.assert_close(encoder(ids), step3, atol=0, rtol=0)  # reproducible per step
    assert (step3 - step4).abs().max() > 1e-4
    assert (step3 - fixed).abs().max() > 1e-4
    encoder.eval()
    torch.testing.assert_close(encoder(ids), fixed, atol=0, rtol=0)  # eval: the fixed draw
    # Fixed mode ignores the step.
    fixed_encoder = BigBirdEncoder(tiny(attention_type="block_sparse", attention_backend="dense"))
    before = fixed_encoder.layer_patterns(20)[0].kv_blocks
    fixed_encoder.set_pattern_step(9)
    assert torch.equal(fixed_encoder.layer_patterns(20)[0].kv_blocks, before)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_every_parameter(seed, mode):
    config = tiny(**mode)
    encoder = BigBirdEncoder(config).train()
    ids = random_ids(config, 2, 70)
    token_types = torch.randint(0, 2, ids.shape)
    encoder(ids, token_type_ids=token_types).pow(2).mean().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_initialisation_follows_bert(seed):
    config = tiny(global_mode="etc")
    encoder = BigBirdEncoder(config)
    std = config.initializer_range
    q = encoder.layers[0].attention.query
    assert abs(q.weight.std().item() - std) < 0.2 * std and q.weight.mean().abs() < 0.2 * std
    assert torch.count_nonzero(q.bias) == 0
    assert torch.equal(encoder.layers[1].output_norm.weight, torch.ones(config.hidden_size))
    assert torch.count_nonzero(encoder.layers[1].output_norm.bias) == 0
    words = encoder.embeddings.word_embeddings.weight
    assert torch.count_nonzero(words[config.pad_token_id]) == 0
    assert abs(words.std().item() - std) < 0.2 * std
    assert abs(encoder.global_tokens.std().item() - std) < 0.2 * std


def test_activation_follows_the_config(seed):
    exact = BigBirdEncoder(tiny(attention_type="original_full", hidden_act="gelu")).eval()
    tanh = BigBirdEncoder(tiny(attention_type="original_full", hidden_act="gelu_new")).eval()
    tanh.load_state_dict(exact.state_dict())
    x = torch.linspace(-3, 3, 101)
    torch.testing.assert_close(exact.layers[0].activation(x), F.gelu(x))
    torch.testing.assert_close(tanh.layers[0].activation(x), F.gelu(x, approximate="tanh"))
    ids = random_ids(exact.config, 1, 40)
    assert (exact(ids) - tanh(ids)).abs().max() > 0


def test_token_types_and_positions_matter(seed):
    config = tiny(attention_type="original_full")
    encoder = BigBirdEncoder(config).eval()
    ids = random_ids(config, 1, 30)
    base = encoder(ids)
    assert (encoder(ids, token_type_ids=torch.ones_like(ids)) - base).abs().max() > 1e-3
    # The same token at two positions gets different outputs (absolute positions).
    same = torch.full((1, 30), 7)
    out = encoder(same)
    assert (out[0, 3] - out[0, 20]).abs().max() > 1e-3


def test_too_long_input_is_an_input_error():
    config = tiny(max_position_embeddings=64)
    with pytest.raises(InputError, match="longer than max_position_embeddings 64"):
        BigBirdEncoder(config)(torch.zeros(1, 65, dtype=torch.long))


def test_import_needs_neither_lightning_nor_genome_libraries():
    code = (
        "import sys\n"
        "for name in ('lightning', 'pytorch_lightning', 'pyfaidx', 'Bio', 'transformers'):\n"
        "    sys.modules[name] = None\n"
        "import torch, dnabird.model as m\n"
        "model = m.BigBirdForMaskedLM(m.BigBirdConfig.preset('tiny'))\n"
        "print(model(torch.ones(1, 40, dtype=torch.long)).logits.shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 40, 512])" in result.stdout


@pytest.mark.parametrize("global_mode", ["itc", "etc"])
def test_blocked_backend_matches_the_dense_oracle_in_the_whole_encoder(seed, global_mode):
    """Outputs and parameter gradients of the encoder (float64, so any difference is a bug,
    not rounding), padded batch of 2 sequences, 13 blocks."""
    dense = BigBirdEncoder(
        tiny(attention_type="block_sparse", attention_backend="dense", global_mode=global_mode)
    ).double()
    blocked = BigBirdEncoder(dataclasses.replace(dense.config, attention_backend="blocked"))
    blocked.double().load_state_dict(dense.state_dict())
    ids = random_ids(dense.config, 2, 200)
    mask = torch.ones_like(ids)
    mask[1, 150:] = 0
    outputs = []
    for encoder in (dense, blocked):
        out = encoder(ids, attention_mask=mask)
        (out * mask[..., None]).pow(2).sum().backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-10, rtol=1e-10)
    grads = dict(dense.named_parameters())
    for name, param in blocked.named_parameters():
        torch.testing.assert_close(param.grad, grads[name].grad, atol=1e-9, rtol=1e-9)


WEIGH_CASES = [
    pytest.param(name, "cpu", marks=[pytest.mark.slow] if name == "flex" else [], id=name)
    for name in ATTENTION_BACKENDS  # flex on the CPU compiles for 30 s
    if name != "auto"
] + [pytest.param("flex", "cuda", marks=pytest.mark.gpu, id="flex-cuda")]


@pytest.mark.parametrize(("backend", "device"), WEIGH_CASES)
def test_weigh_first_block_counts_block_0_one_plus_r_times_in_ordinary_rows(seed, backend, device):
    """transformers' eval mode, from its definition: softmax where the keys of block 0 count
    1 + r times for ordinary (non-global) query blocks, computed by hand, equals attention
    with the extra channel of weigh_first_block (head width 17), on every backend."""
    config = tiny(block_size=4, num_random_blocks=2, random_mode="hf")
    nb, b, r, heads, dim = 8, 4, 2, config.num_attention_heads, config.head_dim
    pattern = BigBirdEncoder(config).layer_patterns(nb)[0]
    q, k, v = (torch.randn(2, heads, nb * b, dim) for _ in range(3))
    weighted = bigbird.weigh_first_block(
        q.to(device), k.to(device), v.to(device), pattern, math.log1p(r)
    )
    got = sparse_attention(*weighted, pattern, backend=backend)[..., :dim].cpu()
    scores = q @ k.transpose(-1, -2) / dim**0.5  # [B, H, L, L]
    allowed = block_grid(pattern).repeat_interleave(b, 1).repeat_interleave(b, 2)  # [H, L, L]
    counts = torch.ones(nb * b, nb * b)
    counts[b : (nb - 1) * b, :b] = 1 + r  # ordinary query rows x keys of block 0
    weights = torch.where(allowed, counts * (scores - scores.amax(-1, keepdim=True)).exp(), 0)
    expected = weights / weights.sum(-1, keepdim=True) @ v
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_random_mode_hf_is_full_attention_up_to_transformers_length_then_sparse(seed):
    """random_mode "hf", block 16, r = 3: full attention up to (5 + 6) * 16 = 176 tokens
    (exactly the full model), block-sparse above."""
    hf_mode = BigBirdEncoder(tiny(random_mode="hf", attention_backend="dense")).eval()
    full = BigBirdEncoder(tiny(attention_type="original_full")).eval()
    full.load_state_dict(hf_mode.state_dict())
    for length, same in [(176, True), (100, True), (177, False)]:
        ids = random_ids(hf_mode.config, 2, length)
        difference = (hf_mode(ids) - full(ids)).abs().max()
        assert (difference < 1e-5) == same, length


def test_random_mode_hf_without_random_blocks_is_the_plain_window_and_globals(seed):
    """With r = 0 there is nothing to weigh: above 80 tokens the "hf" model computes what a
    "fixed" model without random blocks computes."""
    config = tiny(num_random_blocks=0, attention_backend="dense")
    fixed = BigBirdEncoder(config).eval()
    hf_mode = BigBirdEncoder(dataclasses.replace(config, random_mode="hf")).eval()
    hf_mode.load_state_dict(fixed.state_dict())
    ids = random_ids(config, 2, 150)
    torch.testing.assert_close(hf_mode(ids), fixed(ids), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("make_ids", "extra", "message"),
    [
        (lambda: torch.zeros(2, 10), {}, "integer token ids; got a tensor of dtype float32"),
        (lambda: torch.zeros(10, dtype=torch.long), {}, r"\[batch, length\]"),
        (lambda: [[5, 6, 7]], {}, "got list"),
        (lambda: torch.zeros(2, 0, dtype=torch.long), {}, "is empty"),
        (lambda: torch.full((2, 10), 512), {}, r"from 512 to 512, outside the vocabulary 0\.\.511"),
        (lambda: torch.full((2, 10), -1), {}, "outside the vocabulary"),
        (
            lambda: torch.ones(2, 10, dtype=torch.long),
            {"attention_mask": torch.ones(2, 9)},
            r"attention_mask must have the shape of input_ids \[2, 10\]",
        ),
        (
            lambda: torch.ones(2, 10, dtype=torch.long),
            {"attention_mask": torch.full((2, 10), 2)},
            "0 \\(padding\\) or 1",
        ),
        (
            lambda: torch.ones(2, 10, dtype=torch.long),
            {"token_type_ids": torch.full((2, 10), 2)},
            r"token_type_ids must be in 0\.\.1",
        ),
        (
            lambda: torch.ones(2, 10, dtype=torch.long),
            {"token_type_ids": torch.zeros(2, 10)},
            "token_type_ids must hold integers",
        ),
    ],
)
def test_inputs_the_encoder_cannot_take_are_one_line_input_errors(make_ids, extra, message):
    """Before: IndexError tracebacks from the embedding ("index out of range in self"),
    a silently accepted mask value 2, or a ConfigError about blocks for an empty input."""
    encoder = BigBirdEncoder(tiny())
    with pytest.raises(InputError, match=message) as info:
        encoder(make_ids(), **extra)
    assert "\n" not in str(info.value)


def test_integer_ids_of_any_width_give_the_int64_result(seed):
    config = tiny(attention_backend="dense")
    encoder = BigBirdEncoder(config).eval()
    ids = random_ids(config, 2, 40)
    types = torch.randint(0, 2, ids.shape)
    expected = encoder(ids, token_type_ids=types)
    for dtype in (torch.int32, torch.int16):
        got = encoder(ids.to(dtype), token_type_ids=types.to(dtype))
        torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_every_activation_name_builds_its_formula():
    """One table (config.ACTIVATIONS) names the activations; each builds the formula of
    transformers' ACT2FN entry of that name."""
    x = torch.linspace(-4, 4, 201, dtype=torch.float64)
    formulas = {
        "gelu": 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
        "gelu_new": 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "relu": x.clamp_min(0),
    }
    assert set(ACTIVATIONS) == set(formulas)
    for name, expected in formulas.items():
        torch.testing.assert_close(bigbird.make_activation(name)(x), expected)
