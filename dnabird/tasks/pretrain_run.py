"""Run a pretraining job: build data, model and Trainer from a :class:`PretrainConfig`,
fit (or resume), and export the model.

Run folder layout::

    OUT/checkpoints/step-00000500.ckpt ...  last.ckpt   (Lightning checkpoints, for --resume)
    OUT/logs/metrics.csv  (+ TensorBoard events when tensorboard is installed)
    OUT/model/  model.safetensors, config.json, tokenizer/, manifest.json  (the export)

Resuming reloads ``last.ckpt`` with ``weights_only=True`` (model, optimizer, scheduler,
loop counters, torch RNG) and the data stream skips the batches already consumed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnabird.errors import ConfigError
from dnabird.tasks.pretrain_config import PretrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
EXPORT_DIR = "model"


def _precision(config: PretrainConfig) -> str:
    import torch

    if config.trainer.precision != "auto":
        return config.trainer.precision
    on_gpu = config.trainer.accelerator in ("gpu", "cuda") or (
        config.trainer.accelerator == "auto" and torch.cuda.is_available()
    )
    return "bf16-mixed" if on_gpu else "32-true"


def _route_lightning_logs() -> None:
    """When the application has configured logging (the CLI has), send Lightning's records
    through that handler alone, at its level: Lightning's import adds a console handler of
    its own, which printed every message twice. Its product advert is dropped."""
    import lightning  # noqa: F401 - the import is what adds the handler

    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_an_advert)


def _not_an_advert(record: logging.LogRecord) -> bool:
    """Drop Lightning's "Tip: try installing litlogger" line: an advert, not about the run."""
    return "litlogger" not in record.getMessage()


def _loggers(out: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(out, name="logs", version="")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(out, name="logs", version="tensorboard"))
    else:
        log.info("tensorboard is not installed; logging to CSV only (%s)", out / "logs")
    return loggers


def build_model_config(config: PretrainConfig, vocab_size: int):
    """The BigBirdConfig of the run: preset + overrides, vocabulary from the tokenizer."""
    from dnabird.model import BigBirdConfig

    overrides = dict(config.model.overrides)
    if overrides.get("vocab_size", vocab_size) != vocab_size:
        raise ConfigError(
            f"model.overrides.vocab_size={overrides['vocab_size']} but the tokenizer has "
            f"{vocab_size} ids; drop the override"
        )
    overrides["vocab_size"] = vocab_size
    model_config = BigBirdConfig.preset(config.model.preset, **overrides)
    if model_config.max_position_embeddings < config.data.max_length:
        raise ConfigError(
            f"data.max_length={config.data.max_length} exceeds the model's "
            f"max_position_embeddings={model_config.max_position_embeddings}"
        )
    return model_config


def run_pretrain(
    config: PretrainConfig, resume: bool = False, callbacks: Sequence[Any] = ()
) -> Path:
    """Train per ``config`` (continuing from ``OUT/checkpoints/last.ckpt`` if ``resume``);
    return the export folder ``OUT/model``. ``callbacks`` are extra Lightning callbacks."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from dnabird.data.mlm import MLMDataModule
    from dnabird.progress import enabled as progress_enabled
    from dnabird.tasks.pretrain import PretrainModule

    _route_lightning_logs()
    out = Path(config.out)
    last = out / CHECKPOINT_DIR / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise ConfigError(f"{last}: no checkpoint to resume from")
    if not resume and last.exists():
        raise ConfigError(f"{out}: already holds a run; pass --resume or choose another out")
    if config.data.val_batches > 0 and config.trainer.val_every_steps <= 0:
        raise ConfigError("trainer.val_every_steps must be positive when data.val_batches > 0")

    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = MLMDataModule(config.data, config.masking, config.seed)
    tokenizer = datamodule.tokenizer
    model_config = build_model_config(config, tokenizer.vocab_size)
    module = PretrainModule(
        model_config.to_dict(),
        dataclasses.asdict(config.optim),
        config.trainer.max_steps,
        [int(n) for n in tokenizer.bp_per_id],
    )
    t = config.trainer
    checkpoints = ModelCheckpoint(
        dirpath=out / CHECKPOINT_DIR,
        filename="step-{step:08d}",
        auto_insert_metric_name=False,
        every_n_train_steps=t.checkpoint_every_steps,
        save_top_k=t.keep_checkpoints,
        monitor="global_step",
        mode="max",
        save_last=True,
    )
    trainer = L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=_precision(config),
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val or None,
        log_every_n_steps=t.log_every_steps,
        val_check_interval=t.val_every_steps * t.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        limit_val_batches=config.data.val_batches if datamodule.validates else 0,
        num_sanity_val_steps=0,
        logger=_loggers(out),
        callbacks=[checkpoints, LearningRateMonitor("step"), *callbacks],
        enable_progress_bar=progress_enabled(),
        enable_model_summary=False,
        default_root_dir=out,
    )
    started = time.time()
    with warnings.catch_warnings():
        # Lightning 2.6 calls a pytree API that torch 2.13 deprecates; nothing for users to do
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        trainer.fit(
            module, datamodule=datamodule, ckpt_path=last if resume else None, weights_only=True
        )
    export = out / EXPORT_DIR
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        export_model(module, tokenizer, config, export, trainer.global_step, metrics, started)
    return export


def export_model(module, tokenizer, config, export: Path, steps, metrics, started) -> None:
    """Write the self-describing model folder (weights, config, tokenizer, manifest),
    built under a temporary name and renamed into place when complete."""
    from dnabird.manifest import describe_file, new_manifest, write_manifest

    tmp = export.with_name(f".{export.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    module.model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp / "tokenizer")
    manifest = new_manifest(
        "pretrain",
        config.to_dict(),
        inputs={"tokens_manifest": describe_file(Path(config.data.tokens) / "manifest.json")},
        steps=steps,
        final_metrics=metrics,
        seconds=round(time.time() - started, 1),
        seed=config.seed,
    )
    write_manifest(tmp, manifest)
    if export.exists():
        shutil.rmtree(export)
    os.replace(tmp, export)
