"""BigBirdConfig: every architectural choice of a dnabird model, with presets.

Field names follow ``transformers.BigBirdConfig`` wherever one exists there, so users and
the weight converter meet familiar names; fields new to dnabird get descriptive names.
This module imports no torch, so configs can be read and validated anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError

CONFIG_NAME = "config.json"

IGNORE_INDEX = -100
"""Label value meaning "no prediction here" (masked LM, token and sequence classification),
as in transformers; the one definition, in this torch-free module so that data code
(:mod:`dnabird.data.masking`) uses it without loading torch."""

ATTENTION_TYPES = ("block_sparse", "original_full")
ATTENTION_BACKENDS = (
    "auto",
    "dense",
    "flex",
    "blocked",
    "blocked_kernel",
    "blocked_fused",
    "blocked_explicit",
)
GLOBAL_MODES = ("itc", "etc")
RANDOM_MODES = ("fixed", "per_step", "hf")
INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")
"""Precisions a loaded model predicts at (Lightning's names, as in ``trainer.precision``):
float32 throughout, or matrix products in bfloat16 under :func:`torch.autocast` (see
:func:`dnabird.model.pretrained.inference_autocast`)."""

STRAND_MODES = ("mean", "max", "none")
"""How a prediction combines with its reverse complement's: their mean, their maximum, or
the forward strand's alone (``--rc``)."""

POOLINGS = ("cls", "mean", "max")
"""What a sequence head reads of the last hidden states: the [CLS] token (position 0), or
the mean or the elementwise maximum over the sequence's real tokens (padding left out)."""

ACTIVATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "gelu": ("GELU", {}),  # exact (erf)
    "gelu_new": ("GELU", {"approximate": "tanh"}),
    "relu": ("ReLU", {}),
}
"""Feed-forward activations by ``hidden_act`` name (names as in transformers' ``ACT2FN``):
the ``torch.nn`` module class name and its keyword arguments (names, so this module needs no
torch; :func:`dnabird.model.bigbird.make_activation` builds the module)."""

HF_GLOBAL_BLOCKS = 2
"""Global blocks of transformers' block-sparse BigBird (ITC: the first and the last block)."""
HF_WINDOW_BLOCKS = 3
"""Window blocks of transformers' block-sparse BigBird (query block i sees i-1, i, i+1)."""


@document_fields
@dataclass
class BigBirdConfig:
    """Architecture of a BigBird encoder (BERT-style, post-LN) with block-sparse attention."""

    vocab_size: int = 32000
    """Number of token ids, special tokens included."""
    hidden_size: int = 768
    """Width of every token representation (d_model)."""
    num_hidden_layers: int = 12
    """Number of encoder layers."""
    num_attention_heads: int = 12
    """Attention heads per layer; must divide ``hidden_size``."""
    intermediate_size: int = 3072
    """Width of the feed-forward layer inside each encoder layer."""
    hidden_act: str = "gelu"
    """Feed-forward activation: ``gelu`` (exact erf), ``gelu_new`` (tanh approximation) or
    ``relu``."""
    hidden_dropout_prob: float = 0.1
    """Dropout on embeddings and on each sub-layer's output, in [0, 1)."""
    attention_probs_dropout_prob: float = 0.1
    """Dropout on attention probabilities, in [0, 1)."""
    max_position_embeddings: int = 4096
    """Longest input in tokens (learned absolute positions), special tokens included."""
    type_vocab_size: int = 2
    """Number of token-type (segment) ids."""
    layer_norm_eps: float = 1e-12
    """Epsilon of every LayerNorm."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of weights."""
    pad_token_id: int = 0
    """Id of the padding token (its embedding row is zero-initialised)."""

    attention_type: str = "block_sparse"
    """``block_sparse`` (BigBird) or ``original_full`` (every token sees every token, as
    BERT)."""
    block_size: int = 64
    """Tokens per attention block (b)."""
    num_random_blocks: int = 3
    """Random key blocks per query block (r), distinct from its window and global blocks."""
    num_global_blocks: int = 2
    """Global blocks (g). ITC: the first ceil(g/2) and last floor(g/2) blocks of the
    sequence are global; ETC: g blocks of learned global tokens are prepended."""
    num_window_blocks: int = 3
    """Sliding window width in blocks (w, odd): query block i sees blocks i-w//2..i+w//2."""
    global_mode: str = "itc"
    """``itc`` (internal transformer construction: some sequence blocks are global) or
    ``etc`` (extended: extra global tokens in front of the sequence)."""
    random_mode: str = "fixed"
    """``fixed``: random blocks drawn once per layer and head from ``random_seed`` and the
    same in training and evaluation; ``per_step``: drawn anew at every training step
    (evaluation still uses the fixed draw); ``hf``: what Hugging Face transformers' BigBird
    computes in eval mode (the mode of models imported with ``dnabird.model.hf.from_hf``):
    every random slot holds block 0, so ordinary query blocks weigh the keys of block 0
    ``1 + num_random_blocks`` times, and inputs of at most
    ``full_attention_max_tokens = (5 + 2 * num_random_blocks) * block_size`` tokens use full
    attention; needs ITC with 2 global and 3 window blocks (transformers' layout)."""
    random_seed: int = 0
    """Seed of the random-block draw (reproducible patterns)."""
    attention_backend: str = "auto"
    """Kernel for block-sparse attention: ``dense`` (masked SDPA, the reference),
    ``blocked`` (pure PyTorch, differentiable, O(L) memory), ``flex`` (FlexAttention,
    fused on GPU) or ``auto`` (chosen by device, training and length; see
    ``dnabird.model.attention.api``)."""

    def __post_init__(self) -> None:
        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ConfigError(f"BigBirdConfig: {message}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "block_size",
        ):
            check(
                is_int(getattr(self, name)) and getattr(self, name) > 0,
                f"{name} must be a positive integer, got {getattr(self, name)!r}",
            )
        for name in ("num_random_blocks", "num_global_blocks", "num_window_blocks", "random_seed"):
            check(
                is_int(getattr(self, name)),
                f"{name} must be an integer, got {getattr(self, name)!r}",
            )
        for name in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "layer_norm_eps",
            "initializer_range",
        ):
            value = getattr(self, name)
            check(
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value),
                f"{name} must be a finite number, got {value!r}",
            )
        for name in ("attention_type", "attention_backend", "global_mode", "random_mode"):
            check(isinstance(getattr(self, name), str), f"{name} must be a string")
        check(isinstance(self.hidden_act, str), "hidden_act must be a string")
        check(
            self.hidden_size % self.num_attention_heads == 0,
            f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
            f"{self.num_attention_heads}",
        )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            check(0.0 <= getattr(self, name) < 1.0, f"{name} must be in [0, 1)")
        check(self.num_random_blocks >= 0, "num_random_blocks must be >= 0")
        check(self.random_seed >= 0, "random_seed must be >= 0")
        check(self.initializer_range > 0, "initializer_range must be positive")
        check(self.num_global_blocks >= 0, "num_global_blocks must be >= 0")
        check(
            self.num_window_blocks >= 1 and self.num_window_blocks % 2 == 1,
            "num_window_blocks must be a positive odd number",
        )
        check(0 <= self.pad_token_id < self.vocab_size, "pad_token_id must be a valid token id")
        check(
            self.random_mode != "hf"
            or (
                self.global_mode == "itc"
                and self.num_global_blocks == HF_GLOBAL_BLOCKS
                and self.num_window_blocks == HF_WINDOW_BLOCKS
            ),
            f"random_mode hf needs transformers' layout: global_mode itc, num_global_blocks "
            f"{HF_GLOBAL_BLOCKS}, num_window_blocks {HF_WINDOW_BLOCKS}",
        )
        check(self.layer_norm_eps > 0, "layer_norm_eps must be positive")
        for name, allowed in (
            ("attention_type", ATTENTION_TYPES),
            ("attention_backend", ATTENTION_BACKENDS),
            ("global_mode", GLOBAL_MODES),
            ("random_mode", RANDOM_MODES),
            ("hidden_act", ACTIVATIONS),
        ):
            check(
                getattr(self, name) in allowed,
                f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}",
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``hidden_size // num_attention_heads``)."""
        return self.hidden_size // self.num_attention_heads

    @property
    def num_global_tokens(self) -> int:
        """Learned global tokens prepended to the sequence (ETC only; 0 for ITC)."""
        return self.num_global_blocks * self.block_size if self.global_mode == "etc" else 0

    @property
    def full_attention_max_tokens(self) -> int:
        """Inputs of at most this many tokens (before padding) use full attention even when
        ``attention_type`` is ``block_sparse``: transformers' rule ``(5 + 2r) * block_size``
        with ``random_mode="hf"``, 0 (never) otherwise."""
        if self.random_mode != "hf":
            return 0
        return (5 + 2 * self.num_random_blocks) * self.block_size

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BigBirdConfig:
        """Build a config from a dict; unknown keys are an error (typos are not ignored)."""
        if not isinstance(values, dict):
            raise ConfigError(f"BigBirdConfig: expected a mapping of fields, got {values!r:.60}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"BigBirdConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**values)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON to ``path`` (a file, or a folder for ``config.json``)."""
        from dnabird.files import write_text_atomic

        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BigBirdConfig:
        """Read a config written by :meth:`save` (a JSON file, or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"{path}: model config not found")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BigBirdConfig:
        """Return a preset (``tiny``, ``small``, ``base``, ``large``) with ``overrides``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


#: Named sizes. ``base`` is the paper's genomics model (BERT-base shape, 4096 positions).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=1024,
        block_size=16,
        vocab_size=512,
    ),
    "small": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=4096,
    ),
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=4096,
    ),
    "large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=4096,
    ),
}
