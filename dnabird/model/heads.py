"""Task models: a :class:`~dnabird.model.bigbird.BigBirdEncoder` plus one small head.

Every model is ``encoder`` + ``head`` and has the same call::

    out = model(input_ids, attention_mask=None, token_type_ids=None, labels=None)
    out.logits, out.hidden_states, out.loss   # loss is None without labels
    out[0], out["logits"]                     # as transformers' outputs (see ModelOutput)

Shapes: ``B`` batch, ``L`` tokens, ``C`` hidden size, ``V`` vocabulary, ``K`` labels.

=================================  ==================  =====================================
model                              logits              labels (loss)
=================================  ==================  =====================================
BigBirdForMaskedLM                 [B, L, V] (*)       [B, L] long, -100 = not predicted (CE)
BigBirdForSequenceClassification   [B, K]              [B] long, -100 = ignored (CE);
                                                       K = 1: [B] float (MSE)
BigBirdForMultiLabelClassification [B, K]              [B, K] float 0/1 (BCE, pos_weight)
BigBirdForTokenClassification      [B, L, K]           [B, L] long, -100 = ignored (CE)
BigBirdForQuestionAnswering        [B, L, 2]           [B, 2] long (start, end) token indices,
                                   (start, end)        end inclusive (mean of two CEs)
=================================  ==================  =====================================

(*) ``[N, V]`` at the ``N`` labelled tokens with ``labelled_logits_only=True``.

Labels of another shape or dtype, class ids outside ``0..K-1`` (other than -100), and
multi-label targets outside [0, 1] or non-finite regression targets are a one-line
:class:`~dnabird.errors.InputError` naming the model.

The masked-LM decoder is tied to the input token embeddings (plus its own bias), as in
BERT. Sequence-level heads pool the [CLS] token (position 0 of the input; or the mean or
maximum over the real tokens, ``pooling``) through a dense layer and tanh, as BERT's pooler.
``save_pretrained``/``from_pretrained`` write and read
``config.json`` + ``model.safetensors`` (see :mod:`dnabird.model.pretrained`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError, InputError
from dnabird.model.bases import BaseFeatures, check_bins
from dnabird.model.bigbird import BigBirdEncoder, describe_tensor, init_weights, make_activation
from dnabird.model.config import IGNORE_INDEX, POOLINGS, BigBirdConfig
from dnabird.model.pretrained import load_weights, save_weights


@document_fields
@dataclass(kw_only=True)
class ModelOutput:
    """What every task model returns; read like transformers' outputs.

    Fields by name (``out.logits``) or key (``out["logits"]``), or by position among the
    fields that are not None, in the order loss, logits, hidden_states: ``out[0]`` is the
    loss when labels were given and the logits otherwise, as in transformers. Like
    transformers' ``ModelOutput`` (a dict of its non-None fields), iterating yields the
    names, ``len`` counts them, ``keys()``, ``values()`` and ``items()`` list them,
    ``out["loss"]`` without labels is a KeyError, and ``to_tuple()`` gives the values.
    """

    loss: torch.Tensor | None = None
    """Scalar (0-d) float32 training loss as the model's ``loss`` method defines it; None
    when no labels were given."""
    logits: torch.Tensor
    """Head output: masked LM ``[B, L, V]`` (``[N, V]`` at the labelled tokens with
    ``labelled_logits_only=True`` and labels), sequence and multi-label classification
    ``[B, K]``, token classification ``[B, L, K]``, question answering ``[B, L, 2]``
    (start, end scores); see the module table."""
    hidden_states: torch.Tensor
    """Output of the last encoder layer, ``[B, L, C]`` (``[B, 1, C]`` from a sequence
    classifier called with ``cls_only=True``; transformers calls this
    ``last_hidden_state``; its ``hidden_states`` is a tuple of every layer's output, which
    dnabird does not return)."""

    def keys(self) -> tuple[str, ...]:
        """Names of the fields that are not None, in order (loss, logits, hidden_states)."""
        return tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None)

    def values(self) -> tuple[torch.Tensor, ...]:
        """Values of the fields that are not None, in the order of :meth:`keys`."""
        return self.to_tuple()

    def items(self) -> tuple[tuple[str, torch.Tensor], ...]:
        """``(name, value)`` of the fields that are not None, in order."""
        return tuple((name, getattr(self, name)) for name in self.keys())

    def to_tuple(self) -> tuple[torch.Tensor, ...]:
        """The non-None fields' values, in order (transformers' ``to_tuple``)."""
        return tuple(getattr(self, name) for name in self.keys())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


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
        *,
        new_head: bool = False,
        **head_args: Any,
    ) -> BigBirdPreTrainedModel:
        """Load a model folder written by :meth:`save_pretrained` (weights on the CPU).

        The folder must hold a ``cls`` model: the whole model is restored (saved head
        arguments are defaults for ``head_args``). A folder written by another head is a
        ConfigError, since its ``cls`` head would be new and untrained, unless
        ``new_head=True``: then only the encoder is loaded and a fresh head is built from
        ``head_args`` (e.g. a classifier from a pretrained masked LM, or a classifier with
        other labels). ``config_overrides`` replaces config fields that do not change weight
        shapes (dropout, ``attention_backend``, ``attention_type``, ...).
        :func:`dnabird.model.pretrained.load_model` opens a folder as the head it holds
        and checks its files against the manifest first.
        """
        config, state, head, saved_args = load_weights(directory)
        if head != cls.__name__ and not new_head:
            raise ConfigError(
                f"{directory}: holds a {head or 'model without a recorded head'}, not a "
                f"{cls.__name__} (its head would be new and untrained); use a {cls.__name__} "
                "model folder, or new_head=True to put a new head on its encoder deliberately"
            )
        if config_overrides:
            config = BigBirdConfig.from_dict({**config.to_dict(), **config_overrides})
        model = cls(config, **(head_args if new_head else {**saved_args, **head_args}))
        target = model.encoder if new_head else model
        if new_head:
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
        self.activation = make_activation(config.hidden_act)
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
        _check_labels(self, labels, h.shape[:2], "classes", self.config.vocab_size)
        if self.labelled_logits_only:
            predicted = labels != IGNORE_INDEX  # (B, L)
            logits = self.head(h[predicted], embedding)  # (N, V)
            labels = labels[predicted]  # (N,)
        else:
            logits = self.head(h, embedding)  # (B, L, V)
        loss = _mean_cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.flatten())
        return ModelOutput(logits=logits, hidden_states=h, loss=loss)


def pool_states(h: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """``h: [B, L, C]`` -> ``[B, C]`` as :data:`~dnabird.model.config.POOLINGS` describes;
    ``attention_mask: [B, L]`` (1 = real token; None: every token is real)."""
    if pooling == "cls":
        return h[:, 0]
    if attention_mask is None:
        return h.mean(dim=1) if pooling == "mean" else h.amax(dim=1)
    real = attention_mask.bool()[..., None]  # (B, L, 1)
    if pooling == "mean":
        return (h * real).sum(dim=1) / real.sum(dim=1).clamp_min(1)
    return h.masked_fill(~real, torch.finfo(h.dtype).min).amax(dim=1)


class ClassificationHead(nn.Module):
    """Pooling of the last hidden states (``pooling``, one of
    :data:`~dnabird.model.config.POOLINGS`), pooler (dense + tanh), dropout, linear
    classifier. ``summary_size > 0``: the classifier also reads a ``[B, summary_size]``
    summary of the sequence beside the pooled state (the base features' maxima and means,
    ``base_pooling``)."""

    def __init__(
        self, config: BigBirdConfig, num_labels: int, pooling: str = "cls", summary_size: int = 0
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.summary_size = summary_size
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size + summary_size, num_labels)

    def forward(
        self,
        h: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        summary: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``h: [B, L, C]``, ``attention_mask: [B, L]`` (1 = real token), ``summary: [B, S]``
        (exactly when ``summary_size`` is S > 0) -> ``[B, K]``."""
        pooled = torch.tanh(self.pooler(pool_states(h, attention_mask, self.pooling)))  # (B, C)
        if self.summary_size:
            pooled = torch.cat([pooled, summary.to(pooled.dtype)], dim=-1)  # (B, C + S)
        return self.classifier(self.dropout(pooled))  # (B, K)


class _LabelledHeadModel(BigBirdPreTrainedModel):
    """Encoder -> ``self.head`` -> logits, with ``self.loss(logits, labels)`` when labels are
    given; subclasses set ``head`` and define ``loss``.

    ``num_labels`` outputs; ``base_channels > 0`` adds base-resolution features to the token
    embeddings (``self.bases``, :class:`~dnabird.model.bases.BaseFeatures`, for pieces up to
    ``max_piece_bp`` long, the tokenizer's longest; call its ``set_vocabulary`` on a new
    model), None when 0."""

    def __init__(
        self,
        config: BigBirdConfig,
        num_labels: int,
        base_channels: int = 0,
        max_piece_bp: int = 0,
    ) -> None:
        super().__init__(config)
        self.num_labels = _positive(num_labels, "num_labels")
        self.bases = (
            BaseFeatures(config.vocab_size, max_piece_bp, config.hidden_size, base_channels)
            if base_channels
            else None
        )

    def head_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"num_labels": self.num_labels}
        if self.bases is not None:
            args["base_channels"] = self.bases.channels
            args["max_piece_bp"] = self.bases.piece_codes.shape[1]
        return args

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ModelOutput:
        """``input_ids: [B, L]``; labels as the subclass's ``loss`` documents."""
        h = self.encoder(input_ids, attention_mask, token_type_ids, base_features=self.bases)
        return self._output(self.head(h), h, labels)  # logits (B, L, K) per token

    def _output(
        self, logits: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None
    ) -> ModelOutput:
        """The head's ``logits`` on hidden states ``h``, and the loss when labelled."""
        loss = None if labels is None else self.loss(logits, labels)
        return ModelOutput(logits=logits, hidden_states=h, loss=loss)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BigBirdForSequenceClassification(_LabelledHeadModel):
    """One label per sequence from the pooled last hidden states: cross-entropy over
    ``num_labels`` classes, or mean-squared-error regression when ``num_labels == 1``.

    ``pooling``: the [CLS] token (``cls``, BERT's), or the ``mean`` or ``max`` over the real
    tokens (:func:`pool_states`). ``bases``: ``base_channels`` and ``max_piece_bp``, the
    base-resolution features of :class:`_LabelledHeadModel`. ``base_pooling=True`` (with
    base features): the classifier also reads the maximum and mean of each base-feature
    channel over each of ``base_pooling_bins`` consecutive segments of the sequence (1: the
    whole sequence; :meth:`~dnabird.model.bases.BaseFeatures.read`)."""

    def __init__(
        self,
        config: BigBirdConfig,
        num_labels: int,
        pooling: str = "cls",
        base_pooling: bool = False,
        base_pooling_bins: int = 1,
        **bases: int,
    ) -> None:
        super().__init__(config, num_labels, **bases)
        if base_pooling and self.bases is None:
            raise ConfigError("base_pooling needs base features: set base_channels > 0")
        check_bins(base_pooling_bins)
        if base_pooling_bins > 1 and not base_pooling:
            raise ConfigError(
                f"base_pooling_bins={base_pooling_bins} segments the summary: set base_pooling"
            )
        self.base_pooling_bins = base_pooling_bins
        summary_size = 2 * self.bases.channels * base_pooling_bins if base_pooling else 0
        self.head = ClassificationHead(config, num_labels, pooling, summary_size)
        self.head.apply(init_weights(config))

    def head_args(self) -> dict[str, Any]:
        return {
            **super().head_args(),
            "pooling": self.head.pooling,
            "base_pooling": bool(self.head.summary_size),
            "base_pooling_bins": self.base_pooling_bins,
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cls_only: bool = False,
    ) -> ModelOutput:
        """``input_ids: [B, L]``; labels as :meth:`loss` documents. ``cls_only=True`` with
        ``cls`` pooling: the encoder's last layer computes the [CLS] row alone (the row the
        head reads; see ``BigBirdEncoder.forward(first_only=True)``): the same logits for
        less work, and ``hidden_states`` is then ``[B, 1, C]``. The other poolings read every
        row, so they ignore it."""
        first_only = cls_only and self.head.pooling == "cls"
        summaries: list[torch.Tensor] = []

        def tokens_and_summary(ids: torch.Tensor) -> torch.Tensor:
            """The base features of the encoder's checked, block-padded ids, keeping their
            summary (padding tokens span no bases, so it is the unpadded rows')."""
            tokens, summary = self.bases.read(ids, self.base_pooling_bins)  # (B, L', C), (B, S)
            summaries.append(summary)
            return tokens

        h = self.encoder(
            input_ids,
            attention_mask,
            token_type_ids,
            first_only=first_only,
            base_features=tokens_and_summary if self.head.summary_size else self.bases,
        )
        summary = summaries[0] if summaries else None
        return self._output(self.head(h, attention_mask, summary), h, labels)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``logits [B, K]`` against ``labels: [B]`` class indices (long; -100
        ignored; 0 when all are), or finite targets (float) when ``num_labels == 1``."""
        if self.num_labels == 1:
            _check_labels(self, labels, logits.shape[:1], "real")
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        _check_labels(self, labels, logits.shape[:1], "classes", self.num_labels)
        return _mean_cross_entropy(logits, labels)


class BigBirdForMultiLabelClassification(BigBirdForSequenceClassification):
    """Independent binary labels per sequence (e.g. the 919 DeepSEA chromatin profiles):
    binary cross-entropy with logits, averaged over batch and labels.

    ``pos_weight``: weight of positive examples, one float for all labels or one per label
    (``num_labels`` values, e.g. negatives/positives per profile); None means 1.
    ``head_options``: ``pooling`` and the base features, as for sequence classification.
    """

    def __init__(
        self,
        config: BigBirdConfig,
        num_labels: int,
        pos_weight: float | Sequence[float] | torch.Tensor | None = None,
        **head_options: Any,
    ) -> None:
        super().__init__(config, num_labels, **head_options)
        # on the CPU explicitly: the check below must also run when built on the meta device
        cpu = torch.device("cpu")
        weight = (
            torch.ones(num_labels, device=cpu)
            if pos_weight is None
            else torch.as_tensor(pos_weight, device=cpu)
        )
        weight = weight.to(torch.float32).expand(num_labels).clone()
        if not bool((weight > 0).all()):
            raise ConfigError("pos_weight must be positive")
        # Saved in the head arguments (JSON), not in the weights.
        self.register_buffer("pos_weight", weight, persistent=False)  # (K,)

    def head_args(self) -> dict[str, Any]:
        return {**super().head_args(), "pos_weight": self.pos_weight.tolist()}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``logits, labels: [B, K]``; labels 0/1 (float or int; soft targets in [0, 1])."""
        _check_labels(self, labels, logits.shape, "unit")
        return F.binary_cross_entropy_with_logits(
            logits.float(), labels.float(), pos_weight=self.pos_weight
        )


class BigBirdForTokenClassification(_LabelledHeadModel):
    """A label per token: dropout + linear on every hidden state, cross-entropy
    (``bases``: as for sequence classification)."""

    def __init__(self, config: BigBirdConfig, num_labels: int, **bases: int) -> None:
        super().__init__(config, num_labels, **bases)
        self.head = nn.Sequential(
            nn.Dropout(config.hidden_dropout_prob), nn.Linear(config.hidden_size, num_labels)
        )
        self.head.apply(init_weights(config))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``logits: [B, L, K]``; ``labels: [B, L]`` long, -100 where ignored (e.g. padding)."""
        _check_labels(self, labels, logits.shape[:2], "classes", self.num_labels)
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
            B, L = logits.shape[:2]
            _check_labels(self, labels, (B, 2), "indices")
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


_LABEL_KINDS = {
    "classes": "integer class ids in 0..{last} (or -100 to ignore)",
    "indices": "integer token indices",
    "unit": "numbers in [0, 1]",
    "real": "finite numbers",
}


def _check_labels(
    model: nn.Module,
    labels: torch.Tensor,
    shape: Sequence[int],
    kind: str,
    num_classes: int = 0,
) -> None:
    """One-line InputError unless ``labels`` is a tensor of ``shape`` on the model's device
    holding the ``kind`` of values (see ``_LABEL_KINDS``; ``classes`` ids are checked against
    ``num_classes``). The value check costs one host-device synchronisation."""
    expected = _LABEL_KINDS[kind].format(last=num_classes - 1)
    integer = kind in ("classes", "indices")
    if (
        not isinstance(labels, torch.Tensor)
        or tuple(labels.shape) != tuple(shape)
        or labels.dtype == torch.bool
        or labels.dtype.is_complex
        or (integer and labels.dtype.is_floating_point)
    ):
        raise InputError(
            f"{type(model).__name__}: labels must be {expected} of shape {list(shape)}; got "
            f"{describe_tensor(labels)}"
        )
    device = next(model.parameters()).device
    if labels.device != device:
        raise InputError(
            f"{type(model).__name__}: labels are on {labels.device} but the model on {device}"
        )
    if kind == "classes":
        bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    elif kind == "unit":
        bad = ~((labels >= 0) & (labels <= 1))  # NaN fails both comparisons
    elif kind == "real":
        bad = ~torch.isfinite(labels)
    else:
        return
    if bool(bad.any()):
        value = labels[bad][0].item()
        raise InputError(
            f"{type(model).__name__}: labels must be {expected}; found {value!r} "
            f"(labels{[int(i) for i in bad.nonzero()[0]]})"
        )


def _positive(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value
