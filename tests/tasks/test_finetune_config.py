"""FinetuneConfig: packaged configs, every mistake a one-line ConfigError naming its key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from dnabird.errors import ConfigError
from dnabird.model import BigBirdForMaskedLM
from dnabird.model.config import BigBirdConfig
from dnabird.model.pretrained import write_model_folder
from dnabird.tasks.config import PIPELINES, load_config, packaged_configs
from dnabird.tasks.finetune_config import FinetuneConfig


def _keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if isinstance(value, dict) and key != "overrides":
            keys |= _keys(value, dotted + ".")
    return keys


@pytest.mark.parametrize(
    "name", ["promoter", "promoter_gpu", "chromatin_peaks", "chromatin_deepsea"]
)
def test_packaged_configs_mirror_every_field(name: str) -> None:
    assert set(packaged_configs("finetune", FinetuneConfig.config_prefixes)) >= {name}
    config = load_config(FinetuneConfig, name)
    config.check(hardware=False)
    written = yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())
    assert _keys(written) == _keys(config.to_dict())  # every key written, none unknown
    if name.startswith("promoter"):
        assert config.data.negatives == "substitute" and config.data.label == "promoter"
        assert config.data.train.endswith("shared/data/promoters/human_TATA_EPDnew_300bp.txt")
    else:
        assert config.task == "multilabel" and config.multilabel.pos_weight == 8.0


def test_every_field_is_documented() -> None:
    from dnabird.docstrings import field_docs
    from dnabird.tasks import finetune_config as module

    for cls in (
        module.FinetuneConfig,
        module.FinetuneModelSection,
        module.ClassificationDataConfig,
        module.EarlyStoppingSection,
    ):
        docs = field_docs(cls)
        assert {f.name for f in dataclasses.fields(cls)} <= set(docs), cls.__name__
        assert "Fields:" in cls.__doc__


BASE = ["model.preset=tiny", "model.tokenizer=tok", "data.train=x.csv"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.tokenizer=tok", "data.train=x.csv"],
            r"model.init and model.preset: give exactly one",
        ),
        (["model.preset=tiny", "model.init=m", "data.train=x.csv"], r"give exactly one"),
        (["model.preset=tiny", "data.train=x.csv"], r"model.tokenizer: required with model.preset"),
        (
            ["model.init=m", "model.tokenizer=t", "data.train=x"],
            r"model.tokenizer=t: .*brings its own",
        ),
        ([*BASE, "model.layer_lr_decay=0"], r"model.layer_lr_decay=0.0: must be in \(0, 1\]"),
        (
            [*BASE, "model.freeze_encoder=true", "model.layer_lr_decay=0.8"],
            r"model.layer_lr_decay=0.8: the encoder is frozen",
        ),
        ([*BASE, "model.dropout=1"], r"model.dropout=1.0: must be in \[0, 1\)"),
        ([*BASE, "model.base_channels=-1"], r"model.base_channels=-1: must be a whole number"),
        (
            [*BASE, "model.base_pooling=true"],
            r"model.base_pooling=true reads the base features: set model.base_channels",
        ),
        (
            [*BASE, "model.base_channels=8", "model.base_pooling_bins=20"],
            r"model.base_pooling_bins=20 segments the base-pooling summary: set "
            r"model.base_pooling=true",
        ),
        (
            [
                *BASE,
                "model.base_channels=8",
                "model.base_pooling=true",
                "model.base_pooling_bins=0",
            ],
            r"model.base_pooling_bins=0: must be a whole number >= 1",
        ),
        (
            [*BASE, "task=multilabel", "data.reverse_complement=true"],
            r"data.reverse_complement=true: multi-label runs choose a strand",
        ),
        (
            [*BASE, "task=multilabel", "data.average_strands=true"],
            r"data.average_strands=true: multi-label runs average the strands with "
            r"multilabel.average_strands",
        ),
        ([*BASE, "model.pooling=sum"], r"model.pooling='sum': must be one of \('cls', 'mean'"),
        ([*BASE, "task=multi-label"], r"task='multi-label': must be one of sequence, multilabel"),
        (
            [*BASE, "task=multilabel", "data.classes=[a, b]"],
            r"data.classes=\['a', 'b'\]: task multilabel reads its 0/1 labels from the data",
        ),
        (
            [*BASE, "task=multilabel", "early_stopping.metric=val/f1"],
            r"early_stopping.metric=val/f1: task multilabel logs val/loss, val/auroc, val/auprc",
        ),
        ([*BASE, "task=multilabel", "multilabel.pos_weight=0"], r"multilabel.pos_weight=0.0"),
        (
            [*BASE, "early_stopping.metric=val/aucroc"],
            r"early_stopping.metric='val/aucroc': must be one of val/loss",
        ),
        ([*BASE, "early_stopping.mode=up"], r"early_stopping.mode='up'"),
        ([*BASE, "early_stopping.patience=-1"], r"early_stopping.patience=-1"),
        (
            [*BASE, "early_stopping.threshold=1.5"],
            r"early_stopping.threshold=1.5: must be a probability in \[0, 1\] or validation",
        ),
        (
            [*BASE, "early_stopping.threshold=best"],
            r"early_stopping.threshold='best': must be a probability",
        ),
        (
            [*BASE, "early_stopping.metric=null", "early_stopping.threshold=validation"]
            + ["data.split=[0.9, 0.0, 0.1]"],
            r"early_stopping.threshold=validation: there is no validation split",
        ),
        (
            [*BASE, "task=multilabel", "early_stopping.threshold=0.3"],
            r"early_stopping.threshold=0.3: multi-label models are reported by AUROC",
        ),
        (
            [*BASE, "data.split=[1.0, 0.0, 0.0]"],
            r"early_stopping.metric=val/auroc: there is no validation split",
        ),
        ([*BASE, "data.batch_size=0"], r"data.batch_size=0"),
        ([*BASE, "data.max_length=2"], r"data.max_length=2"),
        ([*BASE, "data.clases=[a, b]"], r"data.clases: unknown key; did you mean classes\?"),
        ([*BASE, "model.init=3"], r"give exactly one"),
        ([*BASE, "seed=null"], r"seed: expected int, got None"),
    ],
)
def test_config_mistakes_are_one_line_errors_naming_the_key(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(FinetuneConfig, None, overrides)
    assert "\n" not in str(info.value)


def test_null_overrides_a_packaged_value() -> None:
    config = load_config(
        FinetuneConfig,
        "promoter",
        [
            "model.init=null",
            "model.preset=small",
            "model.tokenizer=tok",
            "early_stopping.metric=null",
        ],
    )
    assert config.model.init is None and config.early_stopping.metric is None
    assert config.early_stopping.direction == "max"
    assert (
        load_config(
            FinetuneConfig, "promoter", ["early_stopping.metric=val/loss"]
        ).early_stopping.direction
        == "min"
    )


def test_check_finds_missing_files_and_models_that_do_not_fit(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("sequence,label\nACGT,a\n")
    data = [f"data.train={tmp_path / 'x.csv'}"]
    with pytest.raises(ConfigError, match=r"^model.init=.*nowhere: folder not found"):
        load_config(FinetuneConfig, None, [*data, f"model.init={tmp_path / 'nowhere'}"]).check()
    with pytest.raises(ConfigError, match=r"^model.tokenizer=.*tok: folder not found"):
        load_config(
            FinetuneConfig,
            None,
            [*data, "model.preset=tiny", f"model.tokenizer={tmp_path / 'tok'}"],
        ).check()
    (tmp_path / "tok").mkdir()
    with pytest.raises(
        ConfigError, match=r"model.preset='tiyn': unknown preset; did you mean tiny"
    ):
        load_config(
            FinetuneConfig,
            None,
            [*data, "model.preset=tiyn", f"model.tokenizer={tmp_path / 'tok'}"],
        ).check()
    config = BigBirdConfig.preset("tiny", vocab_size=20, max_position_embeddings=64, block_size=8)
    write_model_folder(tmp_path / "model", BigBirdForMaskedLM(config), {"stage": "pretrain"})
    init = [*data, f"model.init={tmp_path / 'model'}"]
    load_config(FinetuneConfig, None, [*init, "model.overrides.attention_backend=dense"]).check()
    with pytest.raises(ConfigError, match=r"model.overrides.hidden_size: changes the shape"):
        load_config(FinetuneConfig, None, [*init, "model.overrides.hidden_size=32"]).check()
    with pytest.raises(
        ConfigError, match=r"model.overrides \(with model.init\): unknown field\(s\) blok_size"
    ):
        load_config(FinetuneConfig, None, [*init, "model.overrides.blok_size=8"]).check()
    with pytest.raises(
        ConfigError, match=r"data.max_length=128 exceeds the model's max_position_embeddings=64"
    ):
        load_config(FinetuneConfig, None, [*init, "data.max_length=128"]).check()
    with pytest.raises(
        ConfigError,
        match=r"--config promotr: .*\(packaged: chromatin_deepsea, chromatin_peaks, promoter, "
        r"promoter_gpu",
    ):
        load_config(FinetuneConfig, "promotr")
