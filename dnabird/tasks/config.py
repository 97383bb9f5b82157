"""Run configs: typed dataclasses, read from YAML with ``key.sub=value`` overrides.

Every training task's config is a :class:`RunConfig` (``out``, ``seed``, ``optim``,
``trainer``, defined once here) extended with the task's own sections, e.g.
:class:`~dnabird.tasks.pretrain_config.PretrainConfig` adds ``data``, ``masking`` and
``model``. Commented YAML files mirror them section by section; they ship inside the
package (``dnabird/pipelines/``, linked as ``pipelines/`` at the top of the repository), so
``--config tiny`` finds ``pretrain_tiny.yaml`` from any installation.

Reading a config is :func:`load_config` and imports neither torch nor Lightning: YAML, then
the overrides (values parsed as YAML), then types (unknown keys and wrong types are a
:class:`~dnabird.errors.ConfigError` naming the dotted key and what is allowed), then ranges
(each section's ``validate(key)``). :meth:`RunConfig.check` adds what needs the model
package or the machine (model fields, a GPU that is not there) and runs before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
"""The packaged YAML configs (``pretrain_tiny.yaml``, ``pretrain_grch37.yaml``, ...)."""

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("auto", "32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")

C = TypeVar("C")


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError("key=value: must be allowed")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r}: must be {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@document_fields
@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule (linear warm-up, then linear decay to 0)."""

    lr: float = 1e-4
    """Peak learning rate (the BigBird paper: 1e-4)."""
    weight_decay: float = 0.01
    """Decoupled weight decay of weight matrices and embeddings (not biases or norms)."""
    beta1: float = 0.9
    """AdamW beta1, in [0, 1)."""
    beta2: float = 0.999
    """AdamW beta2, in [0, 1)."""
    eps: float = 1e-6
    """AdamW epsilon."""
    warmup_steps: int = 100
    """Optimizer steps of linear warm-up from 0 to ``lr`` (fewer than ``trainer.max_steps``);
    then linear decay to 0 at ``trainer.max_steps``. The paper's runs use 10,000."""

    def validate(self, key: str) -> None:
        require(self.lr > 0, f"{key}.lr", self.lr, "positive")
        require(self.weight_decay >= 0, f"{key}.weight_decay", self.weight_decay, ">= 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            require(0 <= value < 1, f"{key}.{name}", value, "in [0, 1)")
        require(self.eps > 0, f"{key}.eps", self.eps, "positive")
        require(self.warmup_steps >= 0, f"{key}.warmup_steps", self.warmup_steps, ">= 0")


@document_fields
@dataclass
class TrainerSection:
    """Lightning Trainer settings: length, hardware, precision, checkpoints, logs."""

    max_steps: int = 1000
    """Optimizer steps of the run (the schedule decays to 0 here). May be raised when
    resuming (``--resume``) to train further."""
    max_time_s: float | None = None
    """Wall-clock limit of the training loop in seconds (null: none). The run stops cleanly
    at the limit, before ``max_steps`` if need be (the learning rate then has not decayed to
    0), and is exported as usual. For fixed time budgets: a GPU lease, a SLURM allocation."""
    accelerator: str = "auto"
    """``cpu``, ``gpu`` (= ``cuda``), ``mps`` or ``auto`` (a GPU when there is one)."""
    devices: int | str | list[int] = "auto"
    """Devices per node: a count, a list of GPU indices or ``auto``."""
    num_nodes: int = 1
    """Nodes (multi-node runs launch through torchrun or SLURM; see docs/install.md,
    "Clusters")."""
    strategy: str = "auto"
    """Lightning strategy: ``auto``, ``ddp``, ``fsdp``, ``ddp_spawn``..."""
    precision: str = "auto"
    """``auto`` = ``bf16-mixed`` on GPU and ``32-true`` on CPU, or a Lightning precision
    (``32-true``, ``bf16-mixed``, ``16-mixed``, ``bf16-true``, ``16-true``, ``64-true``)."""
    accumulate_grad_batches: int = 1
    """Batches per optimizer step (effective batch = batch_size x devices x nodes x this)."""
    gradient_clip_val: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    log_every_steps: int = 10
    """Optimizer steps between logged metrics (``logs/metrics.csv``) and, without a
    progress bar (stderr not a terminal, or ``--no-progress``), between progress lines."""
    val_every_steps: int = 500
    """Optimizer steps between validations."""
    checkpoint_every_steps: int = 500
    """Optimizer steps between checkpoints (``last.ckpt`` is refreshed each time)."""
    keep_checkpoints: int = 3
    """Step checkpoints kept besides ``last.ckpt`` (-1 = all)."""

    def validate(self, key: str) -> None:
        for name in (
            "max_steps",
            "num_nodes",
            "accumulate_grad_batches",
            "log_every_steps",
            "val_every_steps",
            "checkpoint_every_steps",
        ):
            value = getattr(self, name)
            require(value >= 1, f"{key}.{name}", value, "a positive integer")
        if self.max_time_s is not None:
            require(self.max_time_s > 0, f"{key}.max_time_s", self.max_time_s, "positive or null")
        keep, clip = self.keep_checkpoints, self.gradient_clip_val
        require(keep >= -1, f"{key}.keep_checkpoints", keep, ">= 0, or -1 for all")
        require(clip >= 0, f"{key}.gradient_clip_val", clip, ">= 0 (0 = no clipping)")
        for name, allowed in (("accelerator", ACCELERATORS), ("precision", PRECISIONS)):
            value = getattr(self, name)
            require(value in allowed, f"{key}.{name}", value, f"one of {', '.join(allowed)}")
        devices = self.devices
        ok = (
            (_is_int(devices) and (devices >= 1 or devices == -1))
            or devices == "auto"
            or (
                isinstance(devices, list)
                and devices
                and all(_is_int(d) and d >= 0 for d in devices)
            )
            or (isinstance(devices, str) and all(p.strip().isdigit() for p in devices.split(",")))
        )
        allowed = "a positive count, -1 (all), a list of device indices or auto"
        require(ok, f"{key}.devices", devices, allowed)

    def check(self, key: str, hardware: bool = True) -> None:
        """What needs torch and Lightning: the strategy exists and, with ``hardware``, the
        GPUs asked for are there."""
        import torch
        from lightning.pytorch.strategies import StrategyRegistry

        known = ("auto", *StrategyRegistry.available_strategies())
        if self.strategy not in known:
            close = difflib.get_close_matches(self.strategy, known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "e.g. auto, ddp, fsdp"
            raise ConfigError(f"{key}.strategy={self.strategy!r}: unknown strategy; {hint}")
        if not hardware:
            return
        if self.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"{key}.accelerator={self.accelerator}: no CUDA GPU is available on this "
                f"machine; run on the CPU with {key}.accelerator=cpu"
            )
        if (
            self.accelerator in ("gpu", "cuda", "auto")
            and torch.cuda.is_available()
            and _is_int(self.devices)
            and self.devices > torch.cuda.device_count()
        ):
            raise ConfigError(
                f"{key}.devices={self.devices}: this machine has {torch.cuda.device_count()} "
                f"GPU(s); use {key}.devices=auto (all of them) or fewer"
            )
        if self.accelerator == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(
                f"{key}.accelerator=mps: MPS is not available here; use {key}.accelerator=cpu"
            )


@document_fields
@dataclass
class RunConfig:
    """What every training run has: its folder, its seed, the optimizer and the trainer.
    Tasks subclass it with their own sections and set :attr:`stage`."""

    stage: ClassVar[str] = "run"
    """The task's name: the run folder's manifest stage and the prefix of its packaged
    configs (``pretrain`` -> ``pretrain_*.yaml``)."""
    resumable_changes: ClassVar[tuple[str, ...]] = (
        "out",
        "trainer.max_steps",
        "trainer.log_every_steps",
        "trainer.val_every_steps",
        "trainer.checkpoint_every_steps",
        "trainer.keep_checkpoints",
    )
    """Dotted keys that may differ when a run is resumed: they cannot change the weights
    trained so far (``trainer.max_steps`` extends or shortens the run). Any other change
    needs ``--accept-changes``."""
    config_prefixes: ClassVar[tuple[str, ...]] = ()
    """Name prefixes of the task's packaged configs besides ``<stage>_`` (fine-tuning's are
    named after their data: ``promoter.yaml``, ``promoter_gpu.yaml``)."""

    out: str = "runs/run"
    """Run folder: checkpoints/, logs/, model/ (the exported model), manifest.json."""
    seed: int = 0
    """Seed of initialisation, shuffling, masking and splits."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """AdamW and the learning-rate schedule."""
    trainer: TrainerSection = field(default_factory=TrainerSection)
    """Length of the run, hardware, precision, checkpoints and logs."""

    def validate(self, key: str = "") -> None:
        """Checks across sections (each section checks its own ranges)."""
        require(bool(self.out), "out", self.out, "a folder path")
        require(self.seed >= 0, "seed", self.seed, ">= 0")

    def check(self, hardware: bool = True) -> None:
        """Checks that need torch, Lightning or the model package; run before any work.
        ``hardware=False`` skips what depends on this machine (printing a GPU config on a
        laptop is fine)."""
        self.trainer.check("trainer", hardware)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able data (YAML sections as nested dicts)."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- reading
def packaged_configs(stage: str | None = None, prefixes: Sequence[str] = ()) -> dict[str, Path]:
    """``{name: path}`` of the YAML configs shipped with dnabird; with ``stage``, only that
    stage's, named without its prefix (``pretrain_tiny.yaml`` -> ``tiny``), and those whose
    name starts with one of ``prefixes`` (a task's :attr:`RunConfig.config_prefixes`), named
    in full (``promoter_gpu.yaml`` -> ``promoter_gpu``)."""
    found = {}
    for path in sorted(PIPELINES.glob("*.yaml")):
        if stage is None or path.stem.startswith(tuple(prefixes)):
            found[path.stem] = path
        elif path.stem.startswith(f"{stage}_"):
            found[path.stem[len(stage) + 1 :]] = path
    return found


def resolve_config(source: str | Path, stage: str, prefixes: Sequence[str] = ()) -> Path:
    """The YAML file meant by ``source``: an existing file, else a packaged config by
    name (``tiny``, ``pretrain_tiny`` or ``pretrain_tiny.yaml`` for stage ``pretrain``).
    ``prefixes``: as in :func:`packaged_configs` (the names listed when none matches)."""
    path = Path(source)
    if path.is_file():
        return path
    name = str(source)
    for candidate in (name, f"{name}.yaml", f"{stage}_{name}.yaml"):
        if "/" not in candidate and (PIPELINES / candidate).is_file():
            return PIPELINES / candidate
    names = ", ".join(packaged_configs(stage, prefixes)) or "none"
    raise ConfigError(
        f"--config {source}: no such file, nor a packaged {stage} config (packaged: {names}); "
        "give one of those names or the path of a YAML file"
    )


def load_config(cls: type[C], source: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """Read a run config of dataclass ``cls`` (e.g. ``PretrainConfig``).

    ``source``: a YAML file, the name of a packaged config (:func:`resolve_config`) or None
    (the defaults). ``overrides``: ``key.sub=value`` strings applied in order, values parsed
    as YAML (``trainer.max_steps=50``, ``data.val_chromosomes=[chr21]``). Types and ranges
    are checked (``validate``); the whole config is valid when this returns.
    """
    tree: dict[str, Any] = {}
    if source is not None:
        stage, prefixes = getattr(cls, "stage", "run"), getattr(cls, "config_prefixes", ())
        path = resolve_config(source, stage, prefixes)
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # e.g. a path with a colon: keep the text as given
        _set_path(tree, key.strip(), value)
    config = _build(cls, tree, "")
    _validate(config, "")
    return config


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for depth, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(keys[: depth + 1])
            raise ConfigError(f"override {dotted}: {where} is a value, not a section")
    node[keys[-1]] = value


def _build(cls: type, values: Any, key: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, every field type-checked."""
    if not isinstance(values, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping of keys, got {values!r:.60}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        where = f"{key}.{name}" if key else str(name)
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(fields)}"
            raise ConfigError(f"{where}: unknown key; {hint}")
        kwargs[name] = _coerce(value, hints[name], where)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as type ``hint`` (int, float, str, bool, None, list[...], dict[...], unions
    such as ``str | None``, dataclasses); a ConfigError naming ``key`` when it is not one."""
    if hint is Any:
        return value
    if hint is type(None):  # an optional field's null
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r:.60}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(hint):
            try:
                return _coerce(value, member, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_describe(hint)}, got {value!r:.60}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list ({_describe(hint)}), got {value!r:.60}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r:.60}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r:.60}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if _is_int(value):
            return value
    elif hint is str:
        if isinstance(value, str):
            return value
        if _is_int(value):  # a chromosome called 21, unquoted
            return str(value)
    raise ConfigError(f"{key}: expected {_describe(hint)}, got {value!r:.60}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return f"list of {_describe(item)}"
    names = {int: "int", float: "float", str: "str", bool: "true/false", type(None): "null"}
    return names.get(hint, str(hint))


def _validate(config: Any, key: str) -> None:
    """Call ``validate`` on every section (depth first), then on the root."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value, f"{key}.{f.name}" if key else f.name)
    if hasattr(config, "validate"):
        config.validate(key)
