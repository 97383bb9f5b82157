"""Task heads: shapes, losses against hand computations, tying, save/load round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from dnabird.errors import ConfigError, InputError
from dnabird.model import (
    BigBirdConfig,
    BigBirdForMaskedLM,
    BigBirdForMultiLabelClassification,
    BigBirdForQuestionAnswering,
    BigBirdForSequenceClassification,
    BigBirdForTokenClassification,
    ModelOutput,
)


def tiny(**overrides) -> BigBirdConfig:
    """The tiny preset without dropout (deterministic forward passes)."""
    return BigBirdConfig.preset(
        "tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides
    )


def inputs(config: BigBirdConfig, batch: int = 3, length: int = 70):
    """Random ids with [CLS]=2 in front and a padded tail on the last row."""
    ids = torch.randint(5, config.vocab_size, (batch, length))
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[-1, length - 20 :] = 0
    ids[-1, length - 20 :] = config.pad_token_id
    return ids, mask


def build(name: str, config: BigBirdConfig):
    return {
        "mlm": lambda: BigBirdForMaskedLM(config),
        "cls": lambda: BigBirdForSequenceClassification(config, num_labels=3),
        "multilabel": lambda: BigBirdForMultiLabelClassification(config, 5, pos_weight=2.0),
        "token": lambda: BigBirdForTokenClassification(config, num_labels=4),
        "qa": lambda: BigBirdForQuestionAnswering(config),
    }[name]()


HEADS = ["mlm", "cls", "multilabel", "token", "qa"]
MODES = [
    pytest.param(dict(attention_type="original_full"), id="full"),
    pytest.param(dict(attention_type="block_sparse", attention_backend="dense"), id="itc"),
    pytest.param(
        dict(attention_type="block_sparse", attention_backend="dense", global_mode="etc"),
        id="etc",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("head", HEADS)
def test_forward_shapes_without_labels(seed, head, mode):
    config = tiny(**mode)
    model = build(head, config).eval()
    ids, mask = inputs(config)
    out = model(ids, attention_mask=mask)
    assert isinstance(out, ModelOutput) and out.loss is None
    B, L, C = 3, 70, config.hidden_size
    expected = {
        "mlm": (B, L, config.vocab_size),
        "cls": (B, 3),
        "multilabel": (B, 5),
        "token": (B, L, 4),
        "qa": (B, L, 2),
    }[head]
    assert out.logits.shape == expected
    assert out.hidden_states.shape == (B, L, C)


def test_masked_lm_loss_is_cross_entropy_over_predicted_tokens(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForMaskedLM(config).eval()
    ids, mask = inputs(config)
    labels = torch.full_like(ids, -100)
    chosen = [(0, 3), (0, 40), (1, 7), (2, 11)]
    for b, i in chosen:
        labels[b, i] = ids[b, i]
    out = model(ids, attention_mask=mask, labels=labels)
    by_hand = torch.stack(
        [-torch.log_softmax(out.logits[b, i], -1)[ids[b, i]] for b, i in chosen]
    ).mean()
    torch.testing.assert_close(out.loss, by_hand)
    nothing = model(ids, attention_mask=mask, labels=torch.full_like(ids, -100)).loss
    assert nothing.item() == 0.0  # no predicted token: 0, not NaN


def test_masked_lm_labelled_logits_only_matches_the_full_logits(seed, tmp_path):
    config = tiny(attention_type="original_full")
    full = BigBirdForMaskedLM(config).eval()
    sparse = BigBirdForMaskedLM(config, labelled_logits_only=True).eval()
    sparse.load_state_dict(full.state_dict())
    ids, mask = inputs(config)
    labels = ids.masked_fill(torch.rand(ids.shape) > 0.15, -100)
    expected = full(ids, attention_mask=mask, labels=labels)
    got = sparse(ids, attention_mask=mask, labels=labels)
    assert got.logits.shape == ((labels != -100).sum().item(), config.vocab_size)
    torch.testing.assert_close(got.logits, expected.logits[labels != -100])
    torch.testing.assert_close(got.loss, expected.loss)
    assert sparse(ids, attention_mask=mask).logits.shape == expected.logits.shape  # no labels
    sparse.save_pretrained(tmp_path)
    assert BigBirdForMaskedLM.from_pretrained(tmp_path).labelled_logits_only


def test_masked_lm_decoder_is_tied_to_the_input_embeddings(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForMaskedLM(config).eval()
    ids, mask = inputs(config)
    out = model(ids, attention_mask=mask)
    head = model.head
    transformed = head.layer_norm(F.gelu(head.dense(out.hidden_states)))
    embedding = model.encoder.embeddings.word_embeddings.weight
    torch.testing.assert_close(out.logits, transformed @ embedding.T + head.bias)
    # One copy of the matrix in the weights; gradients reach it from the decoder side too.
    assert not any("decoder" in name for name in model.state_dict())
    model(ids, labels=ids).loss.backward()
    assert embedding.grad[ids.unique()].abs().sum() > 0


def test_sequence_classification_pools_the_cls_token(seed):
    config = tiny(attention_type="block_sparse", attention_backend="dense", global_mode="etc")
    model = BigBirdForSequenceClassification(config, num_labels=3).eval()
    ids, mask = inputs(config)
    labels = torch.tensor([0, 2, 1])
    out = model(ids, attention_mask=mask, labels=labels)
    pooled = torch.tanh(model.head.pooler(out.hidden_states[:, 0]))
    by_hand = model.head.classifier(pooled)
    torch.testing.assert_close(out.logits, by_hand)
    torch.testing.assert_close(out.loss, F.cross_entropy(by_hand, labels))


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("model_class", ["cls", "multilabel"])
def test_mean_and_max_pooling_read_the_real_tokens_only(seed, tmp_path, pooling, model_class):
    config = tiny(attention_type="block_sparse", attention_backend="dense")
    model = {
        "cls": lambda: BigBirdForSequenceClassification(config, num_labels=3, pooling=pooling),
        "multilabel": lambda: BigBirdForMultiLabelClassification(config, 5, pooling=pooling),
    }[model_class]().eval()
    ids, mask = inputs(config)
    out = model(ids, attention_mask=mask)
    rows = []  # by hand, one sequence at a time over its unpadded tokens
    for h, real in zip(out.hidden_states, mask.bool(), strict=True):
        kept = h[real]
        rows.append(kept.mean(dim=0) if pooling == "mean" else kept.max(dim=0).values)
    pooled = torch.tanh(model.head.pooler(torch.stack(rows)))
    torch.testing.assert_close(out.logits, model.head.classifier(pooled))
    # Every row is read, so cls_only changes nothing; the padding's hidden states do not count.
    torch.testing.assert_close(model(ids, mask, cls_only=True).logits, out.logits)
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert loaded.head.pooling == pooling
    torch.testing.assert_close(loaded(ids, mask).logits, out.logits)


def test_unknown_pooling_is_a_config_error():
    with pytest.raises(ConfigError, match="pooling must be one of cls, mean, max, got 'sum'"):
        BigBirdForSequenceClassification(tiny(), num_labels=2, pooling="sum")


def test_sequence_regression_with_one_label(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForSequenceClassification(config, num_labels=1).eval()
    ids, mask = inputs(config)
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = model(ids, attention_mask=mask, labels=targets)
    torch.testing.assert_close(out.loss, ((out.logits[:, 0] - targets) ** 2).mean())


@pytest.mark.parametrize("pos_weight", [None, 3.0, [1.0, 2.0, 0.5, 4.0, 1.5]])
def test_multilabel_bce_with_pos_weight_matches_hand_computation(seed, pos_weight):
    config = tiny(attention_type="original_full")
    model = BigBirdForMultiLabelClassification(config, 5, pos_weight=pos_weight).eval()
    with torch.no_grad():  # spread the logits so the loss terms differ visibly
        model.head.classifier.weight.mul_(50)
    ids, mask = inputs(config)
    labels = torch.tensor([[1, 0, 0, 1, 1], [0, 0, 1, 0, 1], [1, 1, 1, 0, 0]])
    out = model(ids, attention_mask=mask, labels=labels)
    x, y = out.logits.double(), labels.double()
    w = torch.ones(5, dtype=torch.double) if pos_weight is None else torch.tensor(pos_weight)
    p = torch.sigmoid(x)
    by_hand = -(w * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    torch.testing.assert_close(out.loss.double(), by_hand, atol=1e-5, rtol=1e-5)


def test_multilabel_rejects_non_positive_pos_weight():
    with pytest.raises(ConfigError, match="pos_weight"):
        BigBirdForMultiLabelClassification(tiny(), 3, pos_weight=[1.0, 0.0, 2.0])
    with pytest.raises(ConfigError, match="num_labels"):
        BigBirdForSequenceClassification(tiny(), 0)


def test_token_classification_ignores_minus_100(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForTokenClassification(config, num_labels=4).eval()
    ids, mask = inputs(config)
    labels = torch.randint(0, 4, ids.shape).masked_fill(mask == 0, -100)
    out = model(ids, attention_mask=mask, labels=labels)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))


def test_question_answering_span_loss_and_padding(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForQuestionAnswering(config).eval()
    ids, mask = inputs(config)
    labels = torch.tensor([[3, 5], [10, 10], [7, 200]])  # 200 is out of range: ignored
    out = model(ids, attention_mask=mask, labels=labels)
    start, end = out.logits[..., 0], out.logits[..., 1]
    start_loss = F.cross_entropy(start, labels[:, 0])
    end_loss = F.cross_entropy(end[:2], labels[:2, 1])
    torch.testing.assert_close(out.loss, (start_loss + end_loss) / 2)
    # Padded tokens can never be the predicted start or end.
    assert (start[-1, 50:] < -1e30).all() and (end[-1, 50:] < -1e30).all()
    assert start[-1].argmax() < 50


@pytest.mark.parametrize("head", HEADS)
def test_gradients_flow_through_heads_and_encoder(seed, head):
    config = tiny(attention_type="block_sparse", attention_backend="dense")
    model = build(head, config).train()
    ids, mask = inputs(config)
    labels = {
        "mlm": ids.masked_fill(torch.rand(ids.shape) > 0.3, -100),
        "cls": torch.tensor([0, 1, 2]),
        "multilabel": torch.randint(0, 2, (3, 5)),
        "token": torch.randint(0, 4, ids.shape),
        "qa": torch.tensor([[1, 4], [2, 2], [30, 40]]),
    }[head]
    model(ids, attention_mask=mask, labels=labels).loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip_gives_identical_logits(seed, tmp_path, head, mode):
    config = tiny(**mode, random_seed=11)
    model = build(head, config).eval()
    ids, mask = inputs(config)
    before = model(ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"config.json", "model.safetensors"}
    loaded = type(model).from_pretrained(tmp_path / "run").eval()
    assert loaded.config == config
    assert torch.equal(loaded(ids, attention_mask=mask).logits, before)
    with safe_open(str(tmp_path / "run" / "model.safetensors"), framework="pt") as handle:
        assert handle.metadata()["head"] == type(model).__name__


def test_multilabel_pos_weight_survives_save_load(tmp_path):
    model = BigBirdForMultiLabelClassification(tiny(), 3, pos_weight=[1.0, 2.0, 7.5])
    model.save_pretrained(tmp_path)
    loaded = BigBirdForMultiLabelClassification.from_pretrained(tmp_path)
    assert loaded.pos_weight.tolist() == [1.0, 2.0, 7.5]
    changed = BigBirdForMultiLabelClassification.from_pretrained(tmp_path, pos_weight=4.0)
    assert changed.pos_weight.tolist() == [4.0, 4.0, 4.0]


def test_classifier_starts_from_a_pretrained_masked_lm(seed, tmp_path):
    config = tiny(attention_type="original_full")
    mlm = BigBirdForMaskedLM(config).eval()
    mlm.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="holds a BigBirdForMaskedLM"):  # no silent new head
        BigBirdForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    classifier = BigBirdForSequenceClassification.from_pretrained(
        tmp_path, new_head=True, num_labels=2
    ).eval()
    ids, mask = inputs(config)
    torch.testing.assert_close(
        classifier(ids, attention_mask=mask).hidden_states,
        mlm(ids, attention_mask=mask).hidden_states,
        atol=0,
        rtol=0,
    )
    switched = BigBirdForMaskedLM.from_pretrained(
        tmp_path, config_overrides={"attention_type": "block_sparse", "attention_backend": "dense"}
    )
    assert switched.config.attention_type == "block_sparse"
    with pytest.raises(ConfigError, match="unknown field"):
        BigBirdForMaskedLM.from_pretrained(tmp_path, config_overrides={"atention_type": "x"})


def test_load_errors_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="model folder not found"):
        BigBirdForMaskedLM.from_pretrained(tmp_path / "missing")
    BigBirdForSequenceClassification(tiny(), 3).save_pretrained(tmp_path / "cls")
    with pytest.raises(InputError, match="weights do not fit") as info:
        BigBirdForSequenceClassification.from_pretrained(tmp_path / "cls", num_labels=4)
    assert "\n" not in str(info.value)
    (tmp_path / "cls" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        BigBirdForSequenceClassification.from_pretrained(tmp_path / "cls")


def test_set_pattern_step_reaches_the_encoder():
    model = BigBirdForMaskedLM(tiny(random_mode="per_step"))
    model.set_pattern_step(12)
    assert model.encoder.pattern_step == 12


def test_model_output_reads_like_transformers_outputs(seed):
    """transformers' outputs are dicts of their non-None fields (loss, logits, ...):
    ``out[0]`` is the loss when there is one, the logits otherwise."""
    config = tiny(attention_type="original_full")
    model = BigBirdForSequenceClassification(config, num_labels=3).eval()
    ids, mask = inputs(config)
    plain = model(ids, attention_mask=mask)
    assert plain.keys() == ("logits", "hidden_states") and list(plain) == list(plain.keys())
    assert len(plain) == 2 and "logits" in plain and "loss" not in plain and 0 not in plain
    assert plain[0] is plain.logits and plain["logits"] is plain.logits
    assert plain[1] is plain["hidden_states"] is plain.hidden_states
    assert plain.to_tuple() == plain.values() == (plain.logits, plain.hidden_states)
    with pytest.raises(KeyError):
        plain["loss"]
    with pytest.raises(IndexError):
        plain[2]
    labelled = model(ids, attention_mask=mask, labels=torch.tensor([0, 2, 1]))
    assert labelled.keys() == ("loss", "logits", "hidden_states")
    assert labelled[0] is labelled.loss and labelled[1] is labelled.logits
    assert labelled[-1] is labelled.hidden_states and labelled[:2] == (labelled.loss, labelled[1])
    assert dict(labelled) == dict(labelled.items())
    assert list(dict(labelled)) == ["loss", "logits", "hidden_states"]


def test_model_output_fields_are_documented():
    import pydoc

    text = " ".join(pydoc.render_doc(ModelOutput, renderer=pydoc.plaintext).split())
    for name, phrase in [
        ("loss", "Scalar (0-d) float32 training loss"),
        ("logits", "masked LM ``[B, L, V]``"),
        ("hidden_states", "Output of the last encoder layer, ``[B, L, C]``"),
    ]:
        assert name in text and phrase in text


B, L = 3, 70  # inputs() shape
BAD_LABELS = [
    pytest.param(
        "mlm", torch.zeros(B, L - 1, dtype=torch.long), r"of shape \[3, 70\]", id="mlm-shape"
    ),
    pytest.param("mlm", torch.zeros(B, L), "integer class ids", id="mlm-float"),
    pytest.param("mlm", torch.full((B, L), 512), "found 512", id="mlm-id-past-vocab"),
    pytest.param("mlm", torch.full((B, L), -5), "found -5", id="mlm-negative-id"),
    pytest.param("cls", torch.tensor([0, 3, 1]), r"0\.\.2 .*found 3 \(labels\[1\]\)", id="cls-k"),
    pytest.param("cls", torch.tensor([[0], [1], [2]]), r"of shape \[3\]", id="cls-shape"),
    pytest.param("cls", torch.tensor([0.0, 1.0, 2.0]), "integer class ids", id="cls-float"),
    pytest.param("reg", torch.tensor([0.5, float("nan"), 1.0]), "finite", id="reg-nan"),
    pytest.param("reg", torch.ones(B, 1), r"of shape \[3\]", id="reg-shape"),
    pytest.param("multilabel", torch.full((B, 5), 2.0), r"numbers in \[0, 1\]", id="ml-2"),
    pytest.param("multilabel", torch.full((B, 5), float("nan")), "found nan", id="ml-nan"),
    pytest.param("multilabel", torch.ones(B, 4), r"of shape \[3, 5\]", id="ml-shape"),
    pytest.param("token", torch.full((B, L), 4), "found 4", id="token-k"),
    pytest.param("token", torch.zeros(B, L, 4), r"of shape \[3, 70\]", id="token-shape"),
    pytest.param("qa", torch.zeros(B, dtype=torch.long), r"of shape \[3, 2\]", id="qa-shape"),
    pytest.param("qa", torch.zeros(B, 2), "integer token indices", id="qa-float"),
]


@pytest.mark.parametrize(("head", "labels", "message"), BAD_LABELS)
def test_labels_of_the_wrong_shape_type_or_range_are_one_line_input_errors(
    seed, head, labels, message
):
    """Before, these crashed inside the loss (IndexError, "Target 3 is out of bounds"),
    broadcast silently ([B, 1] regression targets against [B] predictions: a wrong loss)
    or returned NaN."""
    config = tiny(attention_type="original_full")
    model = (
        BigBirdForSequenceClassification(config, num_labels=1)
        if head == "reg"
        else build(head, config)
    )
    ids, mask = inputs(config)
    with pytest.raises(InputError, match=message) as info:
        model(ids, attention_mask=mask, labels=labels)
    assert "\n" not in str(info.value) and type(model).__name__ in str(info.value)


def test_sequence_classification_all_ignored_labels_give_zero_loss_not_nan(seed):
    config = tiny(attention_type="original_full")
    model = BigBirdForSequenceClassification(config, num_labels=3)
    ids, mask = inputs(config)
    out = model(ids, attention_mask=mask, labels=torch.full((3,), -100))
    assert out.loss.item() == 0.0
    some = model(ids, attention_mask=mask, labels=torch.tensor([-100, 2, 0]))
    expected = F.cross_entropy(some.logits[1:], torch.tensor([2, 0]))
    torch.testing.assert_close(some.loss, expected)
