"""``FinetuneModule``: sequence classification and multi-label prediction on the pooled
``[CLS]`` token.

Only the classification step lives here; optimizer groups, schedule, RNG state in
checkpoints and throughput are :class:`~dnabird.tasks.base.TrainingModule`'s. The model is
a :class:`~dnabird.model.BigBirdForSequenceClassification` trained with cross-entropy, or
a :class:`~dnabird.model.BigBirdForMultiLabelClassification` (chromatin profiles) trained
with binary cross-entropy weighted by its ``pos_weight`` (built by the caller: a new head
on a pretrained encoder, or a new model from a preset).

- ``freeze_encoder``: the encoder's parameters do not require a gradient (so they get no
  optimizer state) and the encoder stays in eval mode (no dropout): only the head (and the
  model's base features, :mod:`dnabird.model.bases`, which sit outside the encoder) learns.
- ``layer_lr_decay`` d < 1 (:meth:`FinetuneModule.parameter_groups`): the head (and base
  features) learn at the scheduled rate, encoder layer ``i`` of ``L`` at ``d^(L-i)`` times
  it, the embeddings (and ETC global tokens) at ``d^(L+1)``.
- Validation: the logits of the whole validation split (all ranks) are scored at the end
  of each validation with :func:`validation_metrics`: ``val/loss`` (mean cross-entropy) and
  ``val/accuracy, precision, recall, f1, mcc, auroc, auprc``
  (:mod:`dnabird.tasks.classification_metrics`: binary on P(class 1), macro averages for
  more classes). Multi-label (:func:`multilabel_validation_metrics`): ``val/loss`` (the
  training loss), ``val/auroc`` and ``val/auprc``, means over the features whose labels
  hold both classes. A batch with ``reverse_input_ids`` is scored on both strands and the
  probabilities averaged (a sequence classifier's validation then reads the logarithms of
  the averaged class probabilities as logits). A metric that is undefined is not logged
  (absent is not zero).

Batches are dicts from :mod:`dnabird.data.classification`: ``input_ids``,
``attention_mask`` ([B, L] int64, one fixed L), ``labels`` ([B] int64 class indices or
[B, F] float 0/1), ``bp`` ([B] int64), optionally ``reverse_input_ids`` and
``reverse_attention_mask``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dnabird.model import BigBirdForMultiLabelClassification, BigBirdForSequenceClassification
from dnabird.tasks.base import TrainingModule


def validation_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``loss`` and the classification metrics of ``logits [N, K]`` against ``labels [N]``;
    undefined metrics (AUROC of a single class) are left out."""
    from dnabird.tasks.classification_metrics import binary_metrics, multiclass_metrics

    logits, labels = logits.double().cpu(), labels.long().cpu()
    values = {"loss": float(F.cross_entropy(logits, labels))}
    probabilities = torch.softmax(logits, dim=-1).numpy()
    target = labels.numpy()
    if probabilities.shape[1] == 2:
        metrics = binary_metrics(target, probabilities[:, 1])
    else:
        metrics = multiclass_metrics(target, probabilities)
    values.update({k: v for k, v in metrics.items() if not math.isnan(v)})
    return values


def multilabel_validation_metrics(
    probabilities: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor
) -> dict[str, float]:
    """``loss`` (binary cross-entropy weighted by ``pos_weight`` [F], as in training) and
    ``auroc``, ``auprc`` (means over the features with both classes; left out when none)
    of ``probabilities [N, F]`` against 0/1 ``labels [N, F]``."""
    from dnabird.tasks.multilabel_metrics import per_feature_metrics

    p, y = probabilities.double().cpu(), labels.double().cpu()
    logits = torch.logit(p, eps=1e-7)
    values = {
        "loss": float(
            F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight.double().cpu())
        )
    }
    for name, per_feature in per_feature_metrics(y.numpy(), p.numpy()).items():
        defined = per_feature[~np.isnan(per_feature)]
        if defined.size:
            values[name] = float(defined.mean())
    return values


class FinetuneModule(TrainingModule):
    """Fine-tuning of a :class:`~dnabird.model.BigBirdForSequenceClassification`.

    ``model``: the classifier to train (weights as loaded or initialised); ``optim``: an
    :class:`~dnabird.tasks.config.OptimConfig` as a dict; ``max_steps``: optimizer steps of
    the run; ``freeze_encoder``, ``layer_lr_decay``: see the module docstring;
    ``monitor``: the validation metric shown in progress (e.g. ``val/auroc``).
    """

    def __init__(
        self,
        model: BigBirdForSequenceClassification,
        optim: dict[str, Any],
        max_steps: int,
        *,
        freeze_encoder: bool = False,
        layer_lr_decay: float = 1.0,
        monitor: str | None = None,
    ) -> None:
        super().__init__(optim, max_steps)
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.freeze_encoder = freeze_encoder
        self.layer_lr_decay = layer_lr_decay
        if freeze_encoder:
            model.encoder.requires_grad_(False)
        self.multilabel = isinstance(model, BigBirdForMultiLabelClassification)
        self.progress_metrics = ("train/loss", *((monitor,) if monitor else ()))
        self._val_logits: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def train(self, mode: bool = True) -> FinetuneModule:
        """Train mode, but for a frozen encoder (its dropout stays off)."""
        super().train(mode)
        if self.freeze_encoder:
            self.model.encoder.eval()
        return self

    def on_train_start(self) -> None:
        # here rather than at construction: Lightning warns about modules in eval mode
        # before this hook, and keeps each module's mode across validations after it
        if self.freeze_encoder:
            self.model.encoder.eval()

    def parameter_groups(self) -> list[tuple[float, list[torch.nn.Parameter]]]:
        """Layer-wise learning-rate decay (``layer_lr_decay`` < 1): the head at 1, encoder
        layer ``i`` of ``L`` at ``d^(L-i)``, embeddings and global tokens at ``d^(L+1)``;
        one group otherwise."""
        d = self.layer_lr_decay
        if d == 1.0:
            return super().parameter_groups()
        encoder = self.model.encoder
        layers = list(encoder.layers)
        top = len(layers)
        in_encoder = {id(p) for p in encoder.parameters()}
        in_layers = {id(p) for p in encoder.layers.parameters()}
        groups = [(1.0, [p for p in self.model.parameters() if id(p) not in in_encoder])]
        groups += [(d ** (top - i), list(layers[i].parameters())) for i in reversed(range(top))]
        bottom = [p for p in encoder.parameters() if id(p) not in in_layers]  # embeddings
        groups.append((d ** (top + 1), bottom))
        return groups

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        """The model on a batch: ``logits`` [B, K], and ``loss`` when it has ``labels`` (its
        last layer computes the [CLS] row alone, the row the head reads: the same loss and
        gradients for less work)."""
        return self.model(
            batch["input_ids"], batch["attention_mask"], labels=batch.get("labels"), cls_only=True
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self(batch)
        size = len(batch["labels"])
        with torch.no_grad():
            speed = self.throughput(batch["attention_mask"].sum(), batch["bp"].sum())
            if not self.multilabel:
                accuracy = (out.logits.argmax(-1) == batch["labels"]).float().mean()
                self.log("train/accuracy", accuracy, batch_size=size)
        self.log("train/loss", out.loss.detach().float(), batch_size=size)
        self.log_dict({k: v.float() for k, v in speed.items()}, batch_size=size)
        self.log("global_step", float(self.global_step), logger=False)  # checkpoints by step
        return out.loss

    def on_validation_epoch_start(self) -> None:
        self._val_logits, self._val_labels = [], []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Keep the batch's logits (sequence) or probabilities (multi-label) for the end of
        the validation. When the batch has both strands, their probabilities are averaged
        (a sequence classifier keeps the logarithms of the averaged class probabilities:
        logits whose softmax is that average)."""
        logits = self.model(batch["input_ids"], batch["attention_mask"], cls_only=True).logits
        if "reverse_input_ids" in batch:
            other = self.model(
                batch["reverse_input_ids"], batch["reverse_attention_mask"], cls_only=True
            ).logits
            if self.multilabel:
                logits = (torch.sigmoid(logits.double()) + torch.sigmoid(other.double())) / 2
            else:
                both = torch.stack([logits.double(), other.double()]).softmax(-1)  # [2, B, K]
                logits = both.mean(0).log()
        elif self.multilabel:
            logits = torch.sigmoid(logits.double())
        self._val_logits.append(logits.detach())
        self._val_labels.append(batch["labels"])

    def on_validation_epoch_end(self) -> None:
        k = self.model.num_labels
        logits = torch.cat(self._val_logits) if self._val_logits else torch.empty(0, k)
        labels = torch.cat(self._val_labels) if self._val_labels else torch.empty(0)
        labels = labels.to(self.device)
        logits, labels = self._gathered(
            logits.to(self.device), labels if self.multilabel else labels.long()
        )
        self._val_logits, self._val_labels = [], []
        if not len(labels):
            return
        if self.multilabel:
            values = multilabel_validation_metrics(logits, labels, self.model.pos_weight)
        else:
            values = validation_metrics(logits, labels)
        # every rank holds the same values: no reduction needed
        self.log_dict({f"val/{name}": float(v) for name, v in values.items()}, sync_dist=False)

    def _gathered(
        self, logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of every rank (ranks may hold different numbers of rows)."""
        if self.trainer.world_size == 1:
            return logits, labels
        sizes = self.all_gather(torch.tensor(len(labels), device=self.device)).flatten()
        most = int(sizes.max())
        pad = most - len(labels)
        logits = F.pad(logits, (0, 0, 0, pad))
        labels = F.pad(labels, (0, 0) * (labels.dim() - 1) + (0, pad), value=-1)
        every_logits = self.all_gather(logits).reshape(-1, most, logits.shape[-1])
        every_labels = self.all_gather(labels).reshape(-1, most, *labels.shape[1:])
        keep = [slice(0, int(n)) for n in sizes]
        return (
            torch.cat([every_logits[r, s] for r, s in enumerate(keep)]),
            torch.cat([every_labels[r, s] for r, s in enumerate(keep)]),
        )
