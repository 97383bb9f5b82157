"""``PretrainConfig``: every setting of a pretraining run, as typed dataclasses.

The packaged YAML files (``dnabird/pipelines/pretrain_tiny.yaml``, ``pretrain_grch37.yaml``)
mirror these classes section by section; read one with
``load_config(PretrainConfig, "tiny", ["trainer.max_steps=50"])``
(:func:`dnabird.tasks.config.load_config`). ``out``, ``seed``, ``optim`` and ``trainer``
come from :class:`~dnabird.tasks.config.RunConfig`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dnabird.data.masking import MaskingConfig
from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError
from dnabird.tasks.config import RunConfig, require

if TYPE_CHECKING:
    from dnabird.model import BigBirdConfig


@document_fields
@dataclass
class MLMDataConfig:
    """Where the tokens are and how they become batches (:mod:`dnabird.data.mlm`)."""

    tokens: str = ""
    """Token folder written by ``dnabird tokenize`` (holds ``tokenizer/``)."""
    max_length: int = 4096
    """Tokens per sequence, ``[CLS]``/``[SEP]`` included (the paper: 4096)."""
    batch_size: int = 8
    """Sequences per batch and device (effective batch = this x devices x accumulation)."""
    num_workers: int = 0
    """DataLoader worker processes per device."""
    mix_documents: bool = False
    """Pack several documents into one sequence (``[SEP]`` between them)."""
    shuffle_buffer: int = 256
    """Sequences in the training shuffle buffer (0 or 1: no shuffle buffer)."""
    val_chromosomes: list[str] = field(default_factory=list)
    """Documents on these chromosomes are held out for validation."""
    val_fraction: float = 0.0
    """Fraction of the other documents (hashed doc_id) held out for validation, in [0, 1)."""
    val_batches: int = 50
    """Validation batches per evaluation (0 = no validation)."""

    def validate(self, key: str) -> None:
        require(self.max_length >= 3, f"{key}.max_length", self.max_length, ">= 3")
        require(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "a positive integer")
        for name in ("num_workers", "shuffle_buffer", "val_batches"):
            require(getattr(self, name) >= 0, f"{key}.{name}", getattr(self, name), ">= 0")
        fraction = self.val_fraction
        require(0 <= fraction < 1, f"{key}.val_fraction", fraction, "in [0, 1)")


@document_fields
@dataclass
class ModelSection:
    """Which model to train: a size preset and the fields that differ from it."""

    preset: str = "tiny"
    """Size preset of :class:`~dnabird.model.BigBirdConfig`: tiny, small, base or large."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """BigBirdConfig fields replacing the preset's (``vocab_size`` comes from the tokenizer)."""

    def validate(self, key: str) -> None:
        require(bool(self.preset), f"{key}.preset", self.preset, "a preset name")

    def build(self, vocab_size: int | None = None, key: str = "model") -> BigBirdConfig:
        """The BigBirdConfig: preset, then overrides, then ``vocab_size`` (the tokenizer's;
        None keeps the preset's). Every mistake is a ConfigError naming its key."""
        import dataclasses

        from dnabird.model import PRESETS, BigBirdConfig

        if self.preset not in PRESETS:
            close = difflib.get_close_matches(self.preset, PRESETS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"{key}.preset={self.preset!r}: unknown preset; {hint}presets: {', '.join(PRESETS)}"
            )
        known = [f.name for f in dataclasses.fields(BigBirdConfig)]
        for name in self.overrides:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean {close[0]}?" if close else "see dnabird.model.BigBirdConfig"
                raise ConfigError(f"{key}.overrides.{name}: not a BigBirdConfig field; {hint}")
        overrides = dict(self.overrides)
        if vocab_size is not None:
            if overrides.get("vocab_size", vocab_size) != vocab_size:
                raise ConfigError(
                    f"{key}.overrides.vocab_size={overrides['vocab_size']}: the tokenizer has "
                    f"{vocab_size} ids; drop the override"
                )
            overrides["vocab_size"] = vocab_size
        try:
            return BigBirdConfig.preset(self.preset, **overrides)
        except ConfigError as err:
            message = str(err).removeprefix("BigBirdConfig: ")
            raise ConfigError(f"{key} (preset {self.preset} + overrides): {message}") from None


@document_fields
@dataclass
class PretrainConfig(RunConfig):
    """A pretraining run: the shared run sections, then data, masking and model."""

    stage: ClassVar[str] = "pretrain"
    resumable_changes: ClassVar[tuple[str, ...]] = (
        *RunConfig.resumable_changes,
        "data.tokens",  # the token folder is identified by its manifest's checksum
        "data.num_workers",  # the data stream does not depend on it
        "data.val_batches",
    )

    out: str = "runs/pretrain"
    """Run folder: checkpoints/, logs/, model/ (the exported model), manifest.json."""
    data: MLMDataConfig = field(default_factory=MLMDataConfig)
    """The token folder and how it becomes batches; the validation split."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """Which tokens are predicted and how they are corrupted (BERT's 80/10/10)."""
    model: ModelSection = field(default_factory=ModelSection)
    """The model's size preset and overrides."""

    def check(self, hardware: bool = True) -> None:
        super().check(hardware)
        model = self.model.build()
        if model.max_position_embeddings < self.data.max_length:
            raise ConfigError(
                f"data.max_length={self.data.max_length} exceeds the model's "
                f"max_position_embeddings={model.max_position_embeddings}; lower data.max_length "
                "or raise model.overrides.max_position_embeddings"
            )
