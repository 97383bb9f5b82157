"""Tests of the training callbacks: progress in optimizer steps, progress lines, Ctrl-C."""

from __future__ import annotations

import logging
import signal
from types import SimpleNamespace

import pytest
import torch

from dnabird.progress import set_enabled
from dnabird.tasks.callbacks import ProgressLog, StepProgressBar, StopOnInterrupt


def _trainer(step: int, **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(
        max_steps=1000,
        global_step=step,
        is_global_zero=True,
        world_size=1,
        callback_metrics={k.replace("__", "/"): torch.tensor(v) for k, v in metrics.items()},
        should_stop=False,
    )


MODULE = SimpleNamespace(progress_metrics=("train/loss", "train/bpc"))


def test_progress_bar_counts_optimizer_steps_not_epochs(capsys: pytest.CaptureFixture) -> None:
    set_enabled(True)
    try:
        bar = StepProgressBar("pretrain")
        trainer = _trainer(100)  # a resumed run starts at its step
        bar.on_train_start(trainer, MODULE)
        trainer.global_step = 120
        trainer.callback_metrics = _trainer(0, train__loss=5.1234, train__bpc=1.9).callback_metrics
        bar.on_train_batch_end(trainer, MODULE, None, None, 0)
        bar.on_train_end(trainer, MODULE)
    finally:
        set_enabled(None)
    err = capsys.readouterr().err
    assert "pretrain" in err and "120/1000" in err and "loss=5.123" in err and "bpc=1.9" in err
    assert "Epoch" not in err


def test_progress_lines_every_n_steps(caplog: pytest.LogCaptureFixture) -> None:
    feedback = ProgressLog("pretrain", every=10)
    trainer = _trainer(0)
    feedback.on_train_start(trainer, MODULE)
    with caplog.at_level(logging.INFO, logger="dnabird.train"):
        for step in (1, 9, 10, 10, 11, 20):  # 10 twice: accumulated batches of one step
            trainer.global_step = step
            trainer.callback_metrics = _trainer(
                0, train__loss=5.0, train__bpc=1.93, throughput__tokens_per_s=5310.4
            ).callback_metrics
            feedback.on_train_batch_end(trainer, MODULE, None, None, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith(
        "pretrain step 10/1000: loss 5.0000, bpc 1.9300, 5,310 tokens/s, ETA"
    )
    assert lines[1].startswith("pretrain step 20/1000")


def test_first_ctrl_c_stops_at_the_next_step_with_a_checkpoint(tmp_path) -> None:
    saved = []
    trainer = _trainer(4)
    trainer.save_checkpoint = saved.append
    stopper = StopOnInterrupt(tmp_path / "last.ckpt")
    previous = signal.getsignal(signal.SIGINT)
    stopper.on_train_start(trainer, MODULE)
    try:
        signal.raise_signal(signal.SIGINT)  # handled: no KeyboardInterrupt
        assert stopper.requested and signal.getsignal(signal.SIGINT) is previous
        stopper.on_train_batch_end(trainer, MODULE, None, None, 0)  # mid-accumulation
        assert not saved and not trainer.should_stop
        trainer.global_step = 5
        stopper.on_train_batch_end(trainer, MODULE, None, None, 1)
        assert saved == [tmp_path / "last.ckpt"] and trainer.should_stop
        assert stopper.stopped_at == 5
    finally:
        stopper.on_train_end(trainer, MODULE)
        signal.signal(signal.SIGINT, previous)
