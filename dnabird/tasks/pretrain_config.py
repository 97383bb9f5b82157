"""``PretrainConfig``: every setting of a pretraining run, as typed dataclasses.

The YAML files in ``pipelines/`` (``pretrain_tiny.yaml``, ``pretrain_grch37.yaml``) mirror
these classes section by section; ``key.sub=value`` overrides on the command line are
parsed as YAML values. Unknown keys and wrongly typed values are a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dnabird.data.masking import MaskingConfig
from dnabird.data.mlm import MLMDataConfig
from dnabird.errors import ConfigError
from dnabird.tasks.pretrain import OptimConfig


@dataclass
class ModelSection:
    """Which model to train."""

    preset: str = "tiny"
    """Size preset of :class:`~dnabird.model.BigBirdConfig`: tiny, small, base or large."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """BigBirdConfig fields replacing the preset's (``vocab_size`` comes from the tokenizer)."""


@dataclass
class TrainerSection:
    """Lightning Trainer settings: length, hardware, precision, checkpoints, logs."""

    max_steps: int = 1000
    """Optimizer steps of the run (the schedule decays to 0 here)."""
    accelerator: str = "auto"
    """``cpu``, ``gpu`` or ``auto``."""
    devices: Any = "auto"
    """Devices per node (int, list or ``auto``)."""
    num_nodes: int = 1
    """Nodes (multi-node runs launch through torchrun or SLURM; see the README)."""
    strategy: str = "auto"
    """Lightning strategy: ``auto``, ``ddp``, ``fsdp``, ``ddp_spawn``..."""
    precision: str = "auto"
    """``auto`` = ``bf16-mixed`` on GPU and ``32-true`` on CPU, or any Lightning precision."""
    accumulate_grad_batches: int = 1
    """Batches per optimizer step (effective batch = batch_size x devices x nodes x this)."""
    gradient_clip_val: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    log_every_steps: int = 10
    """Optimizer steps between logged training metrics."""
    val_every_steps: int = 500
    """Optimizer steps between validations."""
    checkpoint_every_steps: int = 500
    """Optimizer steps between checkpoints (``last.ckpt`` is refreshed each time)."""
    keep_checkpoints: int = 3
    """Step checkpoints kept besides ``last.ckpt`` (-1 = all)."""


@dataclass
class PretrainConfig:
    """A pretraining run: output folder, seed and the sections below."""

    out: str = "runs/pretrain"
    """Run folder: checkpoints/, logs/, model/ (the exported model)."""
    seed: int = 0
    """Seed of initialisation, shuffling, masking and validation split."""
    data: MLMDataConfig = field(default_factory=MLMDataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, default: Any, annotation: str, where: str) -> Any:
    if annotation == "Any":
        return value
    if dataclasses.is_dataclass(default):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(type(default), value, where)
    if isinstance(default, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(default, bool):
            raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, float) and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(default, (int, float, str, list, dict)) and not isinstance(value, type(default)):
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    defaults = cls()
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(annotations))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}")
    kwargs = {
        name: _coerce(
            value, getattr(defaults, name), annotations[name], f"{where}.{name}" if where else name
        )
        for name, value in values.items()
    }
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> PretrainConfig:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply
    ``key.sub=value`` overrides (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        _set_path(tree, key.strip(), yaml.safe_load(text))
    return _build(PretrainConfig, tree, "")
