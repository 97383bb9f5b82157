"""``TrainingModule``: what every dnabird LightningModule shares around its model.

- AdamW with weight decay on weight matrices and embeddings, none on biases and norm
  weights (the parameters with fewer than 2 dimensions), within each group of
  :meth:`TrainingModule.parameter_groups` (one by default; fine-tuning's layer-wise
  learning-rate decay gives one per layer, each at its own share of the rate). Parameters
  that do not require a gradient (a frozen encoder) get no optimizer state.
- Linear warm-up to ``optim.lr`` over ``optim.warmup_steps``, then linear decay to 0 at
  ``max_steps`` (:func:`warmup_linear_decay`), stepped per optimizer step.
- The model's per-step attention-pattern hook (``random_mode="per_step"``).
- The torch RNG state in checkpoints, restored at the first batch after ``--resume`` so
  dropout continues exactly as in an uninterrupted run.
- On resume the optimizer and schedule take the current ``optim`` settings and
  ``max_steps`` (a run extended with a larger ``trainer.max_steps``, or changes accepted
  with ``--accept-changes``); unchanged settings restore exactly.
- The learning rate of each step (``train/lr``) and throughput metrics
  (``throughput/tokens_per_s``, ``throughput/bp_per_s``) from
  :meth:`TrainingModule.throughput`, over all ranks, validation time excluded.

Clipping, precision, accumulation and parallelism are trainer flags
(:func:`dnabird.tasks.trainer.build_trainer`), never baked into the module. A task module
sets ``self.model`` (a :class:`~dnabird.model.BigBirdPreTrainedModel`) and implements its
``training_step``/``validation_step``.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from dnabird.tasks.config import OptimConfig


def warmup_linear_decay(step: int, warmup_steps: int, max_steps: int) -> float:
    """Learning-rate factor at optimizer step ``step``: ramps 0 -> 1 over ``warmup_steps``,
    then falls linearly to 0 at ``max_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


class TrainingModule(L.LightningModule):
    """Base of the task modules (see the module docstring).

    ``optim``: an :class:`OptimConfig` as a dict; ``max_steps``: optimizer steps of the run.
    """

    progress_metrics: tuple[str, ...] = ("train/loss",)
    """Logged metrics shown in progress bars and progress lines."""

    def __init__(self, optim: dict[str, Any], max_steps: int) -> None:
        super().__init__()
        self.optim = OptimConfig(**optim)
        self.max_steps = max_steps
        self._rng_to_restore: torch.Tensor | None = None
        self._last_step_time: float | None = None

    # ---------------------------------------------------------------- optimizer
    def parameter_groups(self) -> list[tuple[float, list[torch.nn.Parameter]]]:
        """``[(lr_scale, parameters)]``: the model's parameters in groups, each learning at
        ``lr_scale x`` the scheduled rate (e.g. layer-wise decay); parameters that do not
        require a gradient are left out of the optimizer. Default: one group at 1."""
        return [(1.0, list(self.model.parameters()))]

    def configure_optimizers(self) -> dict[str, Any]:
        groups = []
        for scale, params in self.parameter_groups():
            trained = [p for p in params if p.requires_grad]
            for decay in (True, False):  # weight matrices and embeddings; biases and norms
                chosen = [p for p in trained if (p.ndim >= 2) == decay]
                if chosen:
                    groups.append(
                        {
                            "params": chosen,
                            "lr": self.optim.lr * scale,
                            "lr_scale": scale,
                            "decay": decay,
                            "weight_decay": self.optim.weight_decay if decay else 0.0,
                        }
                    )
        optimizer = torch.optim.AdamW(
            groups,
            lr=self.optim.lr,
            weight_decay=self.optim.weight_decay,
            betas=(self.optim.beta1, self.optim.beta2),
            eps=self.optim.eps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_factor(step))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def lr_factor(self, step: int) -> float:
        """The schedule: learning rate at optimizer step ``step`` over ``optim.lr``."""
        return warmup_linear_decay(step, self.optim.warmup_steps, self.max_steps)

    # ---------------------------------------------------------------- hooks
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        self.model.set_pattern_step(self.global_step)
        # the learning rate of this optimizer step (one row per step, also when accumulating)
        self.log("train/lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]))

    def on_validation_start(self) -> None:
        self._last_step_time = None  # validation time is not training throughput

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
        self._apply_optim_settings(checkpoint)

    def _apply_optim_settings(self, checkpoint: dict[str, Any]) -> None:
        """Make the restored optimizer and schedule follow ``self.optim`` and
        ``self.max_steps`` (they are restored after this hook, from ``checkpoint``)."""
        optimizers = checkpoint.get("optimizer_states") or []
        schedulers = checkpoint.get("lr_schedulers") or []
        if len(optimizers) != 1 or len(schedulers) != 1:
            return
        step = int(schedulers[0].get("last_epoch", 0))
        factor = self.lr_factor(step)
        groups = optimizers[0].get("param_groups", [])
        for i, group in enumerate(groups):
            # checkpoints written before groups carried lr_scale/decay: [decayed, not]
            peak = self.optim.lr * group.get("lr_scale", 1.0)
            group.update(
                lr=peak * factor,
                initial_lr=peak,
                weight_decay=self.optim.weight_decay if group.get("decay", i == 0) else 0.0,
                betas=(self.optim.beta1, self.optim.beta2),
                eps=self.optim.eps,
            )
        schedulers[0]["base_lrs"] = [group["initial_lr"] for group in groups]
        schedulers[0]["_last_lr"] = [group["lr"] for group in groups]

    # ---------------------------------------------------------------- metrics
    def throughput(self, tokens: torch.Tensor, bp: torch.Tensor) -> dict[str, torch.Tensor]:
        """``throughput/tokens_per_s`` and ``throughput/bp_per_s`` of all ranks, from this
        rank's real (non-padding) ``tokens`` and the ``bp`` they cover in this batch and the
        time since the previous batch (empty at the first batch and after validation)."""
        now = time.perf_counter()
        last, self._last_step_time = self._last_step_time, now
        if last is None:
            return {}
        elapsed = (now - last) / self.trainer.world_size
        return {
            "throughput/tokens_per_s": tokens.double() / elapsed,
            "throughput/bp_per_s": bp.double() / elapsed,
        }
