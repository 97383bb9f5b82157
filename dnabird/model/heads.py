"""Task models: a :class:`~dnabird.model.bigbird.BigBirdEncoder` plus one small head.

Every model is ``encoder`` + ``head`` and has the same call::

    out = model(input_ids, attention_mask=None, token_type_ids=None, labels=None)
    out.logits, out.hidden_states, out.loss   # loss is None without labels

Shapes: ``B`` batch, ``L`` tokens, ``C`` hidden size, ``V`` vocabulary, ``K`` labels.

=================================  ==================  =====================================
model                              logits              labels (loss)
=================================  ==================  =====================================
BigBirdForMaskedLM                 [B, L, V] (*)       [B, L] long, -100 = not predicted (CE)
BigBirdForSequenceClassification   [B, K]              [B] long (CE); K = 1: [B] float (MSE)
BigBirdForMultiLabelClassification [B, K]              [B, K] float 0/1 (BCE, pos_weight)
BigBirdForTokenClassification      [B, L, K]           [B, L] long, -100 = ignored (CE)
BigBirdForQuestionAnswering        [B, L, 2]           [B, 2] long (start, end) token indices,
                                   (start, end)        end inclusive (mean of two CEs)
=================================  ==================  =====================================

(*) ``[N, V]`` at the ``N`` labelled tokens with ``labelled_logits_only=True``.

The masked-LM decoder is tied to the input token embeddings (plus its own bias), as in
BERT. Sequence-level heads pool the [CLS] token (position 0 of the input) through a dense
layer and tanh, as BERT's pooler. ``save_pretrained``/``from_pretrained`` write and read
``config.json`` + ``model.safetensors`` (see :mod:`dnabird.model.pretrained`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnabird.errors import ConfigError, InputError
from dnabird.model.bigbird import ACTIVATIONS, BigBirdEncoder, init_weights
from dnabird.model.config import BigBirdConfig
from dnabird.model.pretrained import load_weights, save_weights

IGNORE_INDEX = -100
"""Label value meaning "no prediction here" (masked LM, token classification)."""


@dataclass
class ModelOutput:
    """What every task model returns."""

    logits: torch.Tensor
    """Head output; shape per model (see the module table)."""
    hidden_states: torch.Tensor
    """Last encoder layer, ``[B, L, C]``."""
    loss: torch.Tensor | None = None
    """Scalar training loss, or None when no labels were given."""


class BigBirdPreTrainedModel(nn.Module):
    """Base of the task models: the encoder, saving/loading and the pattern-step hook."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = BigBirdEncoder(config)

    def head_args(self) -> dict[str, Any]:
        """Constructor arguments beyond ``config`` (JSON-serialisable), saved with weights."""
        return {}

    def set_pattern_step(self, step: int) -> None:
        """Training-step hook: redraw random blocks for ``step`` (``random_mode="per_step"``)."""
        self.encoder.set_pattern_step(step)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        name = type(self).__name__
        save_weights(directory, self.config, self.state_dict(), name, self.head_args())

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        config_overrides: dict[str, Any] | None = None,
        **head_args: Any,
    ) -> BigBirdPreTrainedModel:
        """Load a model folder written by :meth:`save_pretrained` (weights on the CPU).

        If the folder was written by the same class, the whole model is restored (saved head
        arguments are defaults for ``head_args``); otherwise only its encoder is loaded and
        the head is freshly initialised (e.g. a classifier from a pretrained masked LM).
        ``config_overrides`` replaces config fields that do not change weight shapes
        (dropout, ``attention_backend``, ``attention_type``, ...).
        """
        config, state, head, saved_args = load_weights(directory)
        if config_overrides:
            config = BigBirdConfig.from_dict({**config.to_dict(), **config_overrides})
        same_head = head == cls.__name__
        model = cls(config, **({**saved_args, **head_args} if same_head else head_args))
        target = model if same_head else model.encoder
        if not same_head:
            prefix = "encoder."
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            target.load_state_dict(state, strict=True)
        except RuntimeError as err:
            reason = " ".join(str(err).split())[:300]
            raise InputError(f"{directory}: weights do not fit {cls.__name__} ({reason})") from None
        return model


class MaskedLMHead(nn.Module):
    """Dense + activation + LayerNorm, then the tied decoder: ``h @ E^T + bias``."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.dense = nn.Linear(C, C)
        self.activation = ACTIVATIONS[config.hidden_act]()
        self.layer_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``h: [..., C]``, ``embedding: [V, C]`` (the input embeddings) -> ``[..., V]``."""
        t = self.layer_norm(self.activation(self.dense(h)))  # (..., C)
        return F.linear(t, embedding, self.bias)  # (..., V)


class BigBirdForMaskedLM(BigBirdPreTrainedModel):
    """Masked-language-model pretraining: logits over the vocabulary at every position.

    ``labelled_logits_only=True`` (for pretraining) computes logits only where labels are
    not -100 when labels are given: ``logits`` is then ``[N, V]`` for the ``N`` predicted
    tokens in row-major order, i.e. aligned with ``labels[labels != -100]``. This skips
    the ``[B, L, V]`` decoder output (about a fifth of a base model's forward FLOPs with a
    32k vocabulary, and ``4 * B * L * V`` bytes) for the ~85% of tokens without a loss.
    """

    def __init__(self, config: BigBirdConfig, labelled_logits_only: bool = False) -> None:
        super().__init__(config)
        self.labelled_logits_only = bool(labelled_logits_only)
        self.head = MaskedLMHead(config)
        self.head.apply(init_weights(config))

    def head_args(self) -> dict[str, Any]:
        return {"labelled_logits_only": self.labelled_logits_only}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ModelOutput:
        """``labels: [B, L]`` long, -100 where nothing is predicted; the loss is the mean
        cross-entropy over predicted tokens (0, not NaN, when there are none)."""
        h = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, L, C)
        embedding = self.encoder.embeddings.word_embeddings.weight  # (V, C)
        if labels is None:
            return ModelOutput(logits=self.head(h, embedding), hidden_states=h)
        if self.labelled_logits_only:
            predicted = labels != IGNORE_INDEX  # (B, L)
            logits = self.head(h[predicted], embedding)  # (N, V)
            labels = labels[predicted]  # (N,)
        else:
            logits = self.head(h, embedding)  # (B, L, V)
        loss = _mean_cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.flatten())
        return ModelOutput(logits=logits, hidden_states=h, loss=loss)


class ClassificationHead(nn.Module):
    """[CLS] pooler (dense + tanh on position 0), dropout, linear classifier."""

    def __init__(self, config: BigBirdConfig, num_labels: int) -> None:
        super().__init__()
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h: [B, L, C]`` -> ``[B, K]``."""
        pooled = torch.tanh(self.pooler(h[:, 0]))  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, K)


class _LabelledHeadModel(BigBirdPreTrainedModel):
    """Encoder -> ``self.head`` -> logits, with ``self.loss(logits, labels)`` when labels are
    given; subclasses set ``num_labels`` and ``head`` and define ``loss``."""

    num_labels: int

    def head_args(self) -> dict[str, Any]:
        return {"num_labels": self.num_labels}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ModelOutput:
        """``input_ids: [B, L]``; labels as the subclass's ``loss`` documents."""
        h = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, L, C)
        logits = self.head(h)  # (B, K) per sequence or (B, L, K) per token
        loss = None if labels is None else self.loss(logits, labels)
        return ModelOutput(logits=logits, hidden_states=h, loss=loss)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BigBirdForSequenceClassification(_LabelledHeadModel):
    """One label per sequence from the pooled [CLS] token: cross-entropy over
    ``num_labels`` classes, or mean-squared-error regression when ``num_labels == 1``."""

    def __init__(self, config: BigBirdConfig, num_labels: int) -> None:
        super().__init__(config)
        self.num_labels = _positive(num_labels, "num_labels")
        self.head = ClassificationHead(config, num_labels)
        self.head.apply(init_weights(config))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``logits [B, K]`` against ``labels: [B]`` class indices (long), or
        targets (float) when ``num_labels == 1``."""
        if self.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        return F.cross_entropy(logits.float(), labels)


class BigBirdForMultiLabelClassification(BigBirdForSequenceClassification):
    """Independent binary labels per sequence (e.g. the 919 DeepSEA chromatin profiles):
    binary cross-entropy with logits, averaged over batch and labels.

    ``pos_weight``: weight of positive examples, one float for all labels or one per label
    (``num_labels`` values, e.g. negatives/positives per profile); None means 1.
    """

    def __init__(
        self,
        config: BigBirdConfig,
        num_labels: int,
        pos_weight: float | Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__(config, num_labels)
        weight = torch.ones(num_labels) if pos_weight is None else torch.as_tensor(pos_weight)
        weight = weight.to(torch.float32).expand(num_labels).clone()
        if not bool((weight > 0).all()):
            raise ConfigError("pos_weight must be positive")
        # Saved in the head arguments (JSON), not in the weights.
        self.register_buffer("pos_weight", weight, persistent=False)  # (K,)

    def head_args(self) -> dict[str, Any]:
        return {"num_labels": self.num_labels, "pos_weight": self.pos_weight.tolist()}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``logits, labels: [B, K]``; labels 0/1 (float or int)."""
        return F.binary_cross_entropy_with_logits(
            logits.float(), labels.float(), pos_weight=self.pos_weight
        )


class BigBirdForTokenClassification(_LabelledHeadModel):
    """A label per token: dropout + linear on every hidden state, cross-entropy."""

    def __init__(self, config: BigBirdConfig, num_labels: int) -> None:
        super().__init__(config)
        self.num_labels = _positive(num_labels, "num_labels")
        self.head = nn.Sequential(
            nn.Dropout(config.hidden_dropout_prob), nn.Linear(config.hidden_size, num_labels)
        )
        self.head.apply(init_weights(config))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``logits: [B, L, K]``; ``labels: [B, L]`` long, -100 where ignored (e.g. padding)."""
        return _mean_cross_entropy(logits.flatten(0, 1), labels.flatten())


class BigBirdForQuestionAnswering(BigBirdPreTrainedModel):
    """Span extraction: start and end logits per token (padding tokens never win).

    ``logits[..., 0]`` are start scores, ``logits[..., 1]`` end scores; labels ``[B, 2]``
    hold the 0-based start and inclusive end token of the answer; labels outside
    ``[0, L)`` are ignored.
    """

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__(config)
        self.head = nn.Linear(config.hidden_size, 2)
        self.head.apply(init_weights(config))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ModelOutput:
        h = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, L, C)
        logits = self.head(h)  # (B, L, 2)
        if attention_mask is not None:
            pad = ~attention_mask.bool()[..., None]  # (B, L, 1)
            logits = logits.masked_fill(pad, torch.finfo(logits.dtype).min)
        loss = None
        if labels is not None:
            L = logits.shape[1]
            labels = labels.masked_fill((labels < 0) | (labels >= L), IGNORE_INDEX)  # (B, 2)
            loss = (
                _mean_cross_entropy(logits[..., 0], labels[:, 0])
                + _mean_cross_entropy(logits[..., 1], labels[:, 1])
            ) / 2
        return ModelOutput(logits=logits, hidden_states=h, loss=loss)


def _mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits [N, K]`` vs ``labels [N]`` averaged over labels != -100
    (in float32); 0 when every label is -100."""
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (labels != IGNORE_INDEX).sum().clamp_min(1)


def _positive(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value
