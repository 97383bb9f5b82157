"""Tests of the run-config loader (dnabird.tasks.config) and of PretrainConfig's checks:
every mistake is one ConfigError naming the dotted key, and reading imports no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dnabird.cli import main
from dnabird.errors import ConfigError
from dnabird.tasks.config import (
    PIPELINES,
    OptimConfig,
    RunConfig,
    TrainerSection,
    load_config,
    packaged_configs,
)
from dnabird.tasks.pretrain_config import PretrainConfig

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    size: int = 1
    rate: float = 0.5
    names: list[str] = field(default_factory=list)


@dataclass
class Toy:
    """A config of another task: the loader is generic."""

    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_generic_loader_builds_any_dataclass_with_nested_overrides(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text("name: a\ninner:\n  size: 3\n  names: [chr1]\n")
    toy = load_config(Toy, path, ["inner.rate=1e-3", "inner.names=[chr2, 21]", "flag=true"])
    assert toy == Toy("a", True, Inner(3, 1e-3, ["chr2", "21"]))  # unquoted 21 is a name
    assert load_config(Toy) == Toy()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inner.sise=3", r"^inner\.sise: unknown key; did you mean size\?$"),
        ("colour=red", r"^colour: unknown key; known: name, flag, inner$"),
        ("inner.size=many", r"^inner\.size: expected int, got 'many'$"),
        ("inner.size=2.5", r"^inner\.size: expected int, got 2\.5$"),
        ("flag=1", r"^flag: expected true or false, got 1$"),
        ("inner.names=chr1", r"^inner\.names: expected a list \(list of str\), got 'chr1'$"),
        ("inner.names=[[1]]", r"^inner\.names\[0\]: expected str, got \[1\]$"),
        ("inner=3", r"^inner: expected a mapping of keys, got 3$"),
        ("inner.size.x=3", r"^inner\.size: expected int, got \{'x': 3\}$"),
        ("inner.size=3 inner.size.x=3", r"^override inner\.size\.x: inner\.size is a value"),
        ("novalue", r"^override 'novalue': expected key\.sub=value$"),
    ],
)
def test_mistakes_name_the_dotted_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Toy, None, override.split())


def test_yaml_mistakes_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(PretrainConfig, bad)
    assert "\n" not in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(PretrainConfig, bad)


def test_float_overrides_accept_exponent_notation() -> None:
    # YAML 1.1 parses "1e-4" (no dot) as a string; users type it that way.
    assert load_config(PretrainConfig, None, ["optim.lr=1e-4"]).optim.lr == 1e-4
    with pytest.raises(ConfigError, match="optim.lr: expected float"):
        load_config(PretrainConfig, None, ["optim.lr=fast"])


def test_shared_sections_are_defined_once() -> None:
    assert issubclass(PretrainConfig, RunConfig)
    fields = {f.name: f.type for f in dataclasses.fields(PretrainConfig)}
    assert {"out", "seed", "optim", "trainer", "data", "masking", "model"} == set(fields)
    config = load_config(PretrainConfig, "tiny")
    assert type(config.optim) is OptimConfig and type(config.trainer) is TrainerSection


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_steps=-5", "trainer.max_steps=-5: must be a positive integer"),
        ("trainer.val_every_steps=0", "trainer.val_every_steps=0"),
        ("trainer.checkpoint_every_steps=0", "trainer.checkpoint_every_steps=0"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0"),
        ("trainer.keep_checkpoints=-2", "trainer.keep_checkpoints=-2"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1.0"),
        ("trainer.max_time_s=0", "trainer.max_time_s=0"),
        ("trainer.accelerator=tpu", "trainer.accelerator='tpu': must be one of auto, cpu"),
        ("trainer.precision=16", "trainer.precision='16': must be one of"),
        ("trainer.devices=0", "trainer.devices=0"),
        ("data.batch_size=0", "data.batch_size=0: must be a positive integer"),
        ("data.max_length=2", "data.max_length=2"),
        ("data.num_workers=-1", "data.num_workers=-1"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5: must be in [0, 1)"),
        ("optim.lr=0", "optim.lr=0.0: must be positive"),
        ("optim.beta2=1.0", "optim.beta2=1.0: must be in [0, 1)"),
        ("optim.warmup_steps=-1", "optim.warmup_steps=-1"),
        ("masking.rate=0", "masking.rate must be in (0, 1]"),
        ("seed=-1", "seed=-1"),
    ],
)
def test_ranges_are_checked_when_reading(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(PretrainConfig, "tiny", [override])
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.overrides.blok_size=8",
            r"model\.overrides\.blok_size: not a BigBirdConfig "
            r"field; did you mean block_size\?",
        ),  # fmt: skip
        (
            "model.preset=tiyn",
            r"model\.preset='tiyn': unknown preset; did you mean tiny\? "
            r"presets: tiny, small, base, large",
        ),  # fmt: skip
        (
            "model.overrides.num_window_blocks=2",
            r"model \(preset tiny \+ overrides\): "
            r"num_window_blocks must be a positive odd number",
        ),  # fmt: skip
        (
            "data.max_length=4096",
            r"data\.max_length=4096 exceeds the model's "
            r"max_position_embeddings=512",
        ),  # fmt: skip
        ("trainer.strategy=dpp", r"trainer\.strategy='dpp': unknown strategy; did you mean ddp"),
    ],
)
def test_model_and_trainer_are_checked_before_any_work(override: str, message: str) -> None:
    config = load_config(PretrainConfig, "tiny", [override])  # types and ranges are fine
    with pytest.raises(ConfigError, match=message):
        config.check()


def test_gpu_asked_for_without_one_says_how_to_run_on_cpu(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = load_config(PretrainConfig, "grch37")  # the README's config sets gpu
    config.check(hardware=False)  # printing it anywhere is fine
    with pytest.raises(ConfigError) as err:
        config.check()
    assert str(err.value) == (
        "trainer.accelerator=gpu: no CUDA GPU is available on this machine; run on the CPU "
        "with trainer.accelerator=cpu"
    )
    load_config(PretrainConfig, "grch37", ["trainer.accelerator=cpu"]).check()


def test_reading_a_config_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys\n"
        "from dnabird.tasks.config import load_config\n"
        "from dnabird.tasks.pretrain_config import PretrainConfig\n"
        "config = load_config(PretrainConfig, 'grch37', ['trainer.max_steps=5'])\n"
        "assert config.trainer.max_steps == 5\n"
        "print(sorted(m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"


def test_packaged_configs_by_name_and_file_name() -> None:
    assert set(packaged_configs("pretrain")) == {"tiny", "grch37"}
    assert PIPELINES.parent == Path(__import__("dnabird").__file__).parent  # in the package
    assert (REPO / "pipelines").resolve() == PIPELINES.resolve()  # one source of truth
    for name in (
        "tiny",
        "pretrain_tiny",
        "pretrain_tiny.yaml",
        str(PIPELINES / "pretrain_tiny.yaml"),
    ):
        assert load_config(PretrainConfig, name).data.max_length == 512
    with pytest.raises(ConfigError) as err:
        load_config(PretrainConfig, "tiyn")
    assert "packaged: grch37, tiny" in str(err.value)


def test_print_config_checks_everything(capsys: pytest.CaptureFixture) -> None:
    assert main(["pretrain", "--config", "tiny", "--print-config", "trainer.max_steps=9"]) == 0
    printed = capsys.readouterr().out
    assert "max_steps: 9" in printed and "preset: tiny" in printed
    mistakes = ("model.preset=tiyn", "model.overrides.blok_size=8", "trainer.max_steps=-5",
                "trainer.strategy=dpp")  # fmt: skip
    for args in ([m] for m in mistakes):
        assert main(["pretrain", "--config", "tiny", "--print-config", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dnabird: error: ") and len(err.strip().splitlines()) == 1
    assert main(["pretrain", "--config", "nope", "--print-config"]) == 2
    assert "packaged: grch37, tiny" in capsys.readouterr().err
