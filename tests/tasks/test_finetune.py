"""FinetuneModule: layer-wise learning rates, a frozen encoder, validation metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    matthews_corrcoef,
    roc_auc_score,
)

from dnabird.model import BigBirdConfig, BigBirdForSequenceClassification
from dnabird.tasks.config import OptimConfig
from dnabird.tasks.finetune import FinetuneModule, validation_metrics


def _model(layers: int = 3) -> BigBirdForSequenceClassification:
    config = BigBirdConfig.preset(
        "tiny", vocab_size=30, num_hidden_layers=layers, max_position_embeddings=64, block_size=8
    )
    return BigBirdForSequenceClassification(config, num_labels=2)


def _optim(**values) -> dict:
    return {**vars(OptimConfig(lr=1e-3, warmup_steps=0)), **values}


def _groups(module: FinetuneModule) -> list[dict]:
    return module.configure_optimizers()["optimizer"].param_groups


def test_layer_wise_decay_gives_each_layer_its_share_of_the_rate() -> None:
    model = _model(layers=3)
    module = FinetuneModule(model, _optim(), 10, layer_lr_decay=0.5)
    groups = _groups(module)
    name_of = {id(p): n for n, p in model.named_parameters()}
    rate = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in rate, name_of[id(p)]  # each parameter in one group
            rate[id(p)] = (group["lr"], group["weight_decay"])
    assert len(rate) == len(list(model.parameters()))
    expected = {"head": 1e-3, "encoder.layers.2": 5e-4, "encoder.layers.1": 2.5e-4}
    expected |= {"encoder.layers.0": 1.25e-4, "encoder.embeddings": 6.25e-5}
    for name, p in model.named_parameters():
        (prefix,) = [k for k in expected if name.startswith(k + ".")]
        lr, decay = rate[id(p)]
        assert lr == pytest.approx(expected[prefix]), name
        assert decay == (0.01 if p.ndim >= 2 else 0.0), name
    assert groups[0]["lr"] == pytest.approx(1e-3)  # train/lr logs the head's (peak) rate
    flat = FinetuneModule(_model(), _optim(), 10)
    assert len(_groups(flat)) == 2 and {g["lr"] for g in _groups(flat)} == {1e-3}


def test_resume_with_a_new_rate_keeps_each_groups_share() -> None:
    module = FinetuneModule(_model(layers=2), _optim(), 10, layer_lr_decay=0.5)
    optimizers = module.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    checkpoint = {
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [scheduler.state_dict()],
    }
    module.optim = OptimConfig(**_optim(lr=2e-3))  # an accepted change of the peak rate
    module._apply_optim_settings(checkpoint)
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    shares = [g["lr_scale"] for g in groups]
    assert sorted(set(shares), reverse=True) == [1.0, 0.5, 0.25, 0.125]
    assert [g["initial_lr"] for g in groups] == pytest.approx([2e-3 * s for s in shares])
    assert checkpoint["lr_schedulers"][0]["base_lrs"] == pytest.approx([2e-3 * s for s in shares])


def test_a_frozen_encoder_gets_no_gradient_no_state_and_no_dropout() -> None:
    torch.manual_seed(0)
    model = _model(layers=2)
    module = FinetuneModule(model, _optim(), 10, freeze_encoder=True)
    (optimizer,) = [module.configure_optimizers()["optimizer"]]
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert trained == {id(p) for p in model.head.parameters()}
    module.train()
    assert model.head.training and not model.encoder.training
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = {
        "input_ids": torch.randint(12, 30, (4, 16)),
        "attention_mask": torch.ones(4, 16, dtype=torch.long),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    module(batch).loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == name.startswith("head."), name
    # the encoder's features do not depend on dropout: the same in train and eval mode
    features = model.encoder(batch["input_ids"])
    assert torch.equal(features, model.encoder(batch["input_ids"]))


def test_validation_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=200)
    logits = torch.tensor(rng.normal(size=(200, 2)) + labels[:, None] * [0, 0.8])
    values = validation_metrics(logits, torch.tensor(labels))
    p = torch.softmax(logits, dim=-1).numpy()
    predicted = (p[:, 1] > 0.5).astype(int)
    assert values["loss"] == pytest.approx(log_loss(labels, p))
    assert values["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert values["f1"] == pytest.approx(f1_score(labels, predicted))
    assert values["mcc"] == pytest.approx(matthews_corrcoef(labels, predicted))
    assert values["auroc"] == pytest.approx(roc_auc_score(labels, p[:, 1]))
    assert values["auprc"] == pytest.approx(average_precision_score(labels, p[:, 1]))
    three = torch.tensor(rng.normal(size=(90, 3)))
    targets = torch.tensor(np.arange(90) % 3)
    multi = validation_metrics(three, targets)
    probabilities = torch.softmax(three, dim=-1).numpy()
    expected = roc_auc_score(targets.numpy(), probabilities, multi_class="ovr", average="macro")
    assert multi["auroc"] == pytest.approx(expected)
    assert multi["f1"] == pytest.approx(
        f1_score(targets.numpy(), probabilities.argmax(1), average="macro")
    )
    # a single class: AUROC undefined, left out (absent is not zero)
    single = validation_metrics(logits[:5], torch.ones(5, dtype=torch.long))
    assert "auroc" not in single and "auprc" not in single and "accuracy" in single
