"""``PretrainModule``: the thin LightningModule around :class:`BigBirdForMaskedLM`.

It adds only what training needs around the model: AdamW without weight decay on biases
and norm weights, linear warm-up then linear decay to zero at ``max_steps``, the per-step
attention-pattern hook, metrics (loss, masked-token accuracy, perplexity, bits per
character, tokens/s, bp/s) and the torch RNG state in checkpoints (so dropout continues
identically after ``--resume``). Precision, clipping, accumulation and parallelism are
trainer flags (see :mod:`dnabird.tasks.pretrain_run`).

Batches are dicts from :mod:`dnabird.data.mlm`: ``input_ids``, ``attention_mask``,
``labels`` ([B, L] int64) and ``source`` ([B, 4], unused here).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from dnabird.data.masking import IGNORE_INDEX
from dnabird.model import BigBirdConfig, BigBirdForMaskedLM
from dnabird.tasks.metrics import MaskedLMMetrics, masked_lm_sums


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = 1e-4
    """Peak learning rate (the paper: 1e-4)."""
    weight_decay: float = 0.01
    """Decoupled weight decay of weight matrices and embeddings (not biases or norms)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.999
    """AdamW beta2."""
    eps: float = 1e-6
    """AdamW epsilon."""
    warmup_steps: int = 10000
    """Optimizer steps of linear warm-up from 0 to ``lr``; then linear decay to 0."""


def warmup_linear_decay(step: int, warmup_steps: int, max_steps: int) -> float:
    """Learning-rate factor at optimizer step ``step``: ramps 0 -> 1 over ``warmup_steps``,
    then falls linearly to 0 at ``max_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


class PretrainModule(L.LightningModule):
    """MLM pretraining of a BigBird encoder.

    Arguments are plain JSON-like values (saved as hyperparameters, so checkpoints load
    with ``weights_only=True``): the model config dict, the optimizer config dict, the total
    number of optimizer steps and the tokenizer's bp-per-id table (list of ints, [V]).
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        optim: dict[str, Any],
        max_steps: int,
        bp_per_id: list[int],
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = BigBirdForMaskedLM(BigBirdConfig.from_dict(model_config))
        self.optim = OptimConfig(**optim)
        self.max_steps = max_steps
        self.register_buffer("bp_per_id", torch.tensor(bp_per_id, dtype=torch.float64))
        self.val_metrics = MaskedLMMetrics(self.bp_per_id)
        self._rng_to_restore: torch.Tensor | None = None
        self._last_step_time: float | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, V], targets [N])`` at the N predicted positions of the batch.

        The same computation as ``BigBirdForMaskedLM.forward`` (encoder, then the tied MLM
        head) but the head runs only where a label exists: with 10% masking that skips 90%
        of the [B, L, V] logits, which dominate the step of small models.
        """
        hidden = self.model.encoder(batch["input_ids"], batch["attention_mask"])  # (B, L, C)
        predicted = batch["labels"] != IGNORE_INDEX  # (B, L)
        embedding = self.model.encoder.embeddings.word_embeddings.weight  # (V, C)
        return self.model.head(hidden[predicted], embedding), batch["labels"][predicted]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        self.model.set_pattern_step(self.global_step)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, targets = self(batch)
        # mean cross-entropy over predicted tokens (0, not NaN, when there are none)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        loss = loss / max(1, targets.numel())
        labels = batch["labels"]
        with torch.no_grad():
            sums = masked_lm_sums(logits.detach(), targets, self.bp_per_id)
            tokens = sums["tokens"].clamp(min=1)
            original = torch.where(labels != IGNORE_INDEX, labels, batch["input_ids"])
            real = batch["attention_mask"].bool()
            metrics = {
                "train/loss": loss.detach(),
                "train/accuracy": sums["correct"] / tokens,
                "train/perplexity": torch.exp(sums["nll_nats"] / tokens),
                "train/bpc": sums["nll_nats"] / math.log(2) / sums["bp"].clamp(min=1),
            }
            now = time.perf_counter()
            if self._last_step_time is not None:
                elapsed = (now - self._last_step_time) / self.trainer.world_size
                metrics["throughput/tokens_per_s"] = real.sum().double() / elapsed
                metrics["throughput/bp_per_s"] = self.bp_per_id[original[real]].sum() / elapsed
            self._last_step_time = now
        self.log_dict({k: v.float() for k, v in metrics.items()}, prog_bar=False)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        # ranks checkpoints by step (newest kept)
        self.log("global_step", float(self.global_step), logger=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_metrics.update(*self(batch))

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log_dict({f"val/{k}": v.float() for k, v in values.items()}, prog_bar=False)
        self._last_step_time = None  # validation time is not training throughput

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
            betas=(self.optim.beta1, self.optim.beta2),
            eps=self.optim.eps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_linear_decay(step, self.optim.warmup_steps, self.max_steps),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Applied at the first training batch: restoring now would be undone by whatever
        # draws from the global generator between loading and training.
        self._rng_to_restore = checkpoint.get("torch_rng_state")
        if torch.cuda.is_available() and "cuda_rng_state" in checkpoint:
            torch.cuda.set_rng_state(checkpoint["cuda_rng_state"])
