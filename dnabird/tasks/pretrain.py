"""``PretrainModule``: masked-LM pretraining of :class:`BigBirdForMaskedLM`.

Only the MLM step lives here; optimizer groups, schedule, RNG state in checkpoints and
throughput are :class:`~dnabird.tasks.base.TrainingModule`'s. The model is built with
``labelled_logits_only=True``: its forward with ``labels`` returns logits only at the ``N``
predicted positions (``[N, V]``), which skips ~90% of the ``[B, L, V]`` decoder output at
10% masking. Metrics: loss, masked-token accuracy, perplexity, bits per character
(:mod:`dnabird.tasks.metrics`); validation metrics are exact ratios of sums over all
batches and ranks, and absent (not logged) when validation predicted no token.

Batches are dicts from :mod:`dnabird.data.mlm`: ``input_ids``, ``attention_mask``,
``labels`` ([B, L] int64, -100 = not predicted) and ``source`` ([B, 4], unused here).
"""

from __future__ import annotations

from typing import Any

import torch

from dnabird.model import BigBirdConfig, BigBirdForMaskedLM, ModelOutput
from dnabird.model.config import IGNORE_INDEX
from dnabird.tasks.base import TrainingModule
from dnabird.tasks.metrics import MaskedLMMetrics, masked_lm_sums, masked_lm_values


class PretrainModule(TrainingModule):
    """MLM pretraining of a BigBird encoder.

    Arguments are plain JSON-like values (saved as hyperparameters, so checkpoints load
    with ``weights_only=True``): the model config dict, the optimizer config dict, the total
    number of optimizer steps and the tokenizer's bp-per-id table (list of ints, [V]).
    """

    progress_metrics = ("train/loss", "train/bpc")

    def __init__(
        self,
        model_config: dict[str, Any],
        optim: dict[str, Any],
        max_steps: int,
        bp_per_id: list[int],
    ) -> None:
        super().__init__(optim, max_steps)
        self.save_hyperparameters()
        config = BigBirdConfig.from_dict(model_config)
        self.model = BigBirdForMaskedLM(config, labelled_logits_only=True)
        self.register_buffer("bp_per_id", torch.tensor(bp_per_id, dtype=torch.float64))
        self.val_metrics = MaskedLMMetrics(self.bp_per_id)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The model on a batch: ``logits`` [N, V] at the N predicted positions (row-major,
        aligned with ``labels[labels != -100]``) and ``loss`` (mean cross-entropy)."""
        return self.model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self(batch)
        labels = batch["labels"]
        with torch.no_grad():
            targets = labels[labels != IGNORE_INDEX]
            values = masked_lm_values(masked_lm_sums(out.logits.detach(), targets, self.bp_per_id))
            metrics = {f"train/{k}": v for k, v in values.items() if k != "loss"}
            real = batch["attention_mask"].bool()
            original = torch.where(labels != IGNORE_INDEX, labels, batch["input_ids"])[real]
            metrics.update(self.throughput(real.sum(), self.bp_per_id[original].sum()))
        self.log("train/loss", out.loss.detach().float())
        self.log_dict({k: v.float() for k, v in metrics.items()})
        self.log("global_step", float(self.global_step), logger=False)  # checkpoints by step
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        labels = batch["labels"]
        self.val_metrics.update(self(batch).logits, labels[labels != IGNORE_INDEX])

    def on_validation_epoch_end(self) -> None:
        # sums of every rank (a rank may have had no batch); no values without a token
        with self.val_metrics.sync_context():
            values = masked_lm_values(self.val_metrics.sums())
        self.val_metrics.reset()
        self.log_dict({f"val/{k}": v.float() for k, v in values.items()})
