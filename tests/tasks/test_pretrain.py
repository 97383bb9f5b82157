"""Tests of MLM pretraining: schedule, optimizer groups, configs, the data module's split
(exact resume and DDP run in processes: tests/integration/test_pretrain_processes.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.tasks.base import warmup_linear_decay
from dnabird.tasks.config import load_config
from dnabird.tasks.pretrain import PretrainModule
from dnabird.tasks.pretrain_config import PretrainConfig

REPO = Path(__file__).resolve().parents[2]


def test_warmup_then_linear_decay() -> None:
    factors = [warmup_linear_decay(s, 4, 12) for s in range(14)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:13] == [1 - i / 8 for i in range(9)]
    assert factors[13] == 0.0


def test_no_weight_decay_on_biases_and_norms() -> None:
    from dnabird.model import BigBirdConfig

    config = BigBirdConfig.preset("tiny", vocab_size=40)
    module = PretrainModule(config.to_dict(), {"weight_decay": 0.1}, 10, [0] * 40)
    optimizer = module.configure_optimizers()["optimizer"]
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert all(
        n.endswith("bias") or "norm" in n for n in map(names.get, map(id, no_decay["params"]))
    )
    assert all(p.ndim == 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_module_scores_only_labelled_positions_like_the_full_forward() -> None:
    from dnabird.model import BigBirdConfig

    torch.manual_seed(0)
    config = BigBirdConfig.preset("tiny", vocab_size=40, max_position_embeddings=64)
    module = PretrainModule(config.to_dict(), {}, 10, [0] * 40).eval()
    assert module.model.labelled_logits_only
    ids = torch.randint(5, 40, (2, 64))
    labels = torch.where(torch.rand(2, 64) < 0.2, ids, -100)
    mask = torch.ones_like(ids)
    mask[1, 50:] = 0
    labels[1, 50:] = -100
    out = module({"input_ids": ids, "attention_mask": mask, "labels": labels})
    module.model.labelled_logits_only = False
    reference = module.model(ids, mask, labels=labels)  # [B, L, V] everywhere
    picked = labels != -100
    assert out.logits.shape == (int(picked.sum()), 40)
    torch.testing.assert_close(out.logits, reference.logits[picked], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, reference.loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["pretrain_tiny.yaml", "pretrain_grch37.yaml"])
def test_pipeline_configs_load(name: str) -> None:
    config = load_config(
        PretrainConfig, REPO / "pipelines" / name, ["trainer.max_steps=7", "optim.lr=0.5"]
    )
    assert config.trainer.max_steps == 7 and config.optim.lr == 0.5


@pytest.mark.parametrize(
    ("chromosomes", "fraction", "batches", "expected"),
    [([], 0.0, 10, False), ([], 0.1, 0, False), ([], 0.1, 10, True), (["chr2"], 0.0, 10, True)],
)
def test_data_module_validates_only_with_a_split_and_batches(
    token_folder: Path, chromosomes, fraction, batches, expected
) -> None:
    module = _data_module(token_folder, chromosomes, fraction, batches)
    assert module.validates is expected
    if not expected:
        assert module.val_dataloader() == []


def _data_module(token_folder: Path, chromosomes=(), fraction=0.0, batches=10, tokenizer=None):
    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import MLMDataModule
    from dnabird.tasks.pretrain_config import MLMDataConfig
    from dnabird.tokenizer import DNATokenizer

    config = MLMDataConfig(
        tokens=str(token_folder),
        val_chromosomes=list(chromosomes),
        val_fraction=fraction,
        val_batches=batches,
    )
    tokenizer = tokenizer or DNATokenizer.from_pretrained(token_folder / "tokenizer")
    return MLMDataModule(config, MaskingConfig(), 0, tokenizer)


def test_data_module_counts_the_split_and_refuses_an_empty_training_set(
    token_folder: Path,
) -> None:
    module = _data_module(token_folder, ["chr2"])
    assert module.train_documents > 0 and module.val_documents > 0
    assert module.train_documents + module.val_documents == 93
    with pytest.raises(ConfigError) as err:
        _data_module(token_folder, ["chr1", "chr2"])
    message = str(err.value)
    assert "validation split takes every document (93)" in message
    assert "ranks" not in message  # not the readers' message it used to be
    with pytest.raises(ConfigError, match=r"no document on chr21 in .*chr1, chr2"):
        _data_module(token_folder, ["chr21"])


def test_data_module_refuses_another_tokenizer(token_folder: Path) -> None:
    from dnabird.tokenizer import DNATokenizer

    rng = np.random.default_rng(0)
    other = DNATokenizer.train(["".join(rng.choice(list("ACGT"), 300)) for _ in range(50)], 40)
    with pytest.raises(ConfigError, match="made by another tokenizer"):
        _data_module(token_folder, tokenizer=other)


def test_an_empty_validation_split_gives_no_validation_metrics(token_folder: Path) -> None:
    import warnings

    from dnabird.model import BigBirdConfig

    data = _data_module(token_folder, fraction=1e-6)  # selects none of the 93 documents
    assert data.val_documents == 0 and not data.validates and data.val_dataloader() == []
    config = BigBirdConfig.preset("tiny", vocab_size=40)
    module = PretrainModule(config.to_dict(), {}, 10, [1] * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compute called before update", nothing logged
        module.on_validation_epoch_end()
