"""Lightning callbacks of every training run: progress in steps, and a clean Ctrl-C.

- :class:`StepProgressBar`: on a terminal, one bar counting optimizer steps
  (``pretrain  120/1000 [01:10<09:30, loss 5.12, bpc 1.93]``), not Lightning's epoch bar
  (``Epoch 0/-2`` with an endless stream).
- :class:`ProgressLog`: without a bar (stderr not a terminal, or ``--no-progress``), one
  log line every ``every`` steps: step, the task's progress metrics, tokens/s and ETA.
- :class:`StopOnInterrupt`: the first Ctrl-C finishes the optimizer step under way, saves
  ``last.ckpt`` and stops training (all ranks together); a second Ctrl-C stops at once.

Metrics shown are the module's ``progress_metrics`` (see
:class:`~dnabird.tasks.base.TrainingModule`), read from ``trainer.callback_metrics``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

log = logging.getLogger("dnabird.train")


def _shown(trainer: L.Trainer, names: tuple[str, ...]) -> dict[str, float]:
    """``{short name: value}`` of the named metrics logged so far (``train/bpc`` -> bpc)."""
    metrics = trainer.callback_metrics
    return {name.rsplit("/", 1)[-1]: float(metrics[name]) for name in names if name in metrics}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StepProgressBar(ProgressBar):
    """A tqdm bar over optimizer steps (resumed runs start at their step), with the
    module's progress metrics; silent during validation but for a "validating" note."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description
        self._enabled = True
        self._bar: Any = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from dnabird.progress import progress

        if self._enabled and trainer.is_global_zero:
            self._bar = progress(
                total=trainer.max_steps,
                initial=trainer.global_step,
                unit="step",
                desc=self.description,
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self._bar is None:
            return
        self._bar.update(trainer.global_step - self._bar.n)
        shown = _shown(trainer, pl_module.progress_metrics)
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str("validating")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ProgressLog(L.Callback):
    """Logs ``<description> step 120/1000: loss 5.1234, bpc 1.9312, 5,310 tokens/s,
    ETA 9:30`` every ``every`` optimizer steps, on the first rank."""

    def __init__(self, description: str, every: int) -> None:
        self.description = description
        self.every = max(1, every)
        self._start: tuple[float, int] = (time.perf_counter(), 0)
        self._last = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)
        self._last = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step
        # one line per optimizer step (not per accumulated batch), on the first rank
        if not trainer.is_global_zero or step == self._last or step % self.every:
            return
        self._last = step
        parts = [f"{k} {v:.4f}" for k, v in _shown(trainer, pl_module.progress_metrics).items()]
        speed = trainer.callback_metrics.get("throughput/tokens_per_s")
        if speed is not None:
            parts.append(f"{float(speed):,.0f} tokens/s")
        started, first = self._start
        if step > first:
            per_step = (time.perf_counter() - started) / (step - first)
            parts.append(f"ETA {_duration(per_step * (trainer.max_steps - step))}")
        log.info("%s step %d/%d: %s", self.description, step, trainer.max_steps, ", ".join(parts))


class StopOnInterrupt(L.Callback):
    """Ctrl-C (SIGINT) once: finish the optimizer step under way, save ``checkpoint``, stop
    training. Ctrl-C twice: Lightning's immediate stop. ``stopped_at`` holds the step of the
    checkpoint written, None when training was not stopped by this callback.

    Ranks decide together (a rank's request is shared at each step), so every rank stops
    after the same step and the checkpoint is complete.
    """

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: Any = None
        self._seen_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._seen_step = trainer.global_step
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
        log.warning(
            "interrupted: stopping after this step and saving a checkpoint "
            "(Ctrl-C again to stop at once)"
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if trainer.global_step == self._seen_step:
            return  # no optimizer step since the last batch (gradient accumulation)
        self._seen_step = trainer.global_step
        stop = self.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.save_checkpoint(self.checkpoint)
            trainer.should_stop = True
            self.stopped_at = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
