"""What every training run shares: the run folder, the Lightning Trainer, the export.

A training task is then a few lines (this is :func:`dnabird.tasks.pretrain_run.run_pretrain`;
fine-tuning is the same with its module and data module)::

    config.check()                                   # the whole config, before any work
    trainer = build_trainer(config, out, val_batches=...)
    with TrainingRun(config, inputs, model, resume=...) as run:
        if run.done:                                 # this run is already complete
            return run.model_dir
        L.seed_everything(config.seed, workers=True)
        module = PretrainModule(...)
        run.fit(trainer, module, datamodule)
        return run.export(trainer, module, tokenizer)

Run folder (``config.out``, claimed through :class:`dnabird.outputs.OutputFolder`)::

    checkpoints/step-00000500.ckpt ... last.ckpt   Lightning checkpoints (for --resume)
    logs/metrics.csv                              one curve across resumes
    logs/tensorboard/                             when tensorboard is installed
    model/                                        the exported model folder
    manifest.json                                 written last: the run is complete

The run record is the config plus the checksums of the inputs (``inputs``: tokenizer,
token folder...). Resuming compares it with what the folder holds: settings that cannot
change the trained weights (``RunConfig.resumable_changes``: ``trainer.max_steps``, log and
checkpoint intervals...) may differ; anything else (learning rate, model size, tokenizer)
is refused with the differences named, unless ``accept_changes``. Resuming reloads
``last.ckpt`` with ``weights_only=True`` (model, optimizer, schedule, loop counters, RNG).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from dnabird.errors import ConfigError, DnabirdError, InputError
from dnabird.outputs import RUN_NAME, OutputFolder, describe_changes, differences
from dnabird.tasks.config import RunConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LOG_DIR = "logs"
MODEL_DIR = "model"


class TrainingInterrupted(DnabirdError):
    """Training stopped by Ctrl-C; the message says where the last checkpoint is and how
    to continue. The CLI prints it on one line and exits 130."""

    exit_code = 130


def is_global_zero() -> bool:
    """Whether this process is the first of its job (before the Trainer exists): every rank
    variable a launcher sets (torchrun, SLURM, Lightning's own DDP launcher) is 0 or unset."""
    names = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") == "0" for name in names)


class TrainingRun:
    """A training run's folder: claimed, checked against its inputs, resumed or refused.

    Arguments: the run's ``config`` (a :class:`RunConfig`), ``inputs`` (JSON-able
    checksums of what the run reads, e.g. the tokenizer's sha256), ``model`` (the model to
    train, or one of its shapes on the ``meta`` device: a checkpoint of other shapes is
    refused before anything is touched), ``resume`` (continue the
    interrupted or finished run in ``config.out``: ``--resume``), ``overwrite`` (start again
    in a folder holding another run), ``accept_changes`` (resume although settings
    changed), ``command`` (the command that continues the run, for messages).

    After entering: ``done`` (the folder already holds this run, complete: nothing to do),
    ``checkpoint`` (the checkpoint training continues from, or None), ``manifest`` (the
    finished run's manifest when ``done``).
    """

    def __init__(
        self,
        config: RunConfig,
        inputs: dict[str, Any],
        model: Any,
        *,
        resume: bool = False,
        overwrite: bool = False,
        accept_changes: bool = False,
        command: str | None = None,
    ) -> None:
        if resume and overwrite:
            raise ConfigError("--resume continues the run and --overwrite replaces it; choose one")
        if accept_changes and not resume:
            raise ConfigError(
                "--accept-changes continues a run with changed settings; add --resume"
            )
        self.config = config
        self.model = model
        self.path = Path(config.out)
        self.run = {"config": config.to_dict(), **inputs}
        self.resume = resume
        self.overwrite = overwrite
        self.accept_changes = accept_changes
        self.command = command or "the same command with --resume"
        self.done = False
        self.checkpoint: Path | None = None
        self.manifest: dict[str, Any] | None = None
        self.started = time.time()
        self._folder: OutputFolder | None = None

    @property
    def last_checkpoint(self) -> Path:
        return self.path / CHECKPOINT_DIR / LAST_CHECKPOINT

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def ignored(self) -> list[str]:
        return [f"config.{key}" for key in type(self.config).resumable_changes]

    # ------------------------------------------------------------------ claim
    def __enter__(self) -> TrainingRun:
        if not is_global_zero():  # rank 0 claimed and checked the folder
            self._follow()
            return self
        if not (self.overwrite or self.accept_changes):
            self._refuse_changes()
        if self.resume and self.last_checkpoint.is_file():
            check_checkpoint_fits(self.last_checkpoint, self.model)
        self._folder = OutputFolder(
            self.path,
            self.config.stage,
            self.run,
            overwrite=self.overwrite,
            resume=self.resume,
            accept_changes=self.accept_changes,
            ignore=self.ignored,
        ).__enter__()
        try:
            self._decide(self._folder)
        except BaseException:
            self._folder.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            self._folder.__exit__(*exc)
            self._folder = None

    def _refuse_changes(self) -> None:
        """One line naming what differs from the run the folder holds (config or inputs),
        before anything is touched."""
        stored = _stored_run(self.path, self.config.stage)
        if stored is None:
            return
        changes = {
            key.removeprefix("config."): pair
            for key, pair in differences(stored, self.run).items()
            if not any(key == k or key.startswith(k + ".") for k in self.ignored)
        }
        if changes:
            continue_hint = "add --resume --accept-changes to continue it with these"
            raise ConfigError(
                f"{self.path}: holds a {self.config.stage} run with other settings or inputs "
                f"({describe_changes(changes)}); {continue_hint}, --overwrite to start "
                "again, or choose another out"
            )

    def _decide(self, folder: OutputFolder) -> None:
        if folder.complete:
            steps = int((folder.manifest or {}).get("steps", 0))
            if not (self.resume and self.config.trainer.max_steps > steps):
                self.done, self.manifest = True, folder.manifest
                log.info(
                    "%s: already holds this %s run, complete (%d steps); nothing to do "
                    "(--resume with a larger trainer.max_steps trains further)",
                    self.path,
                    self.config.stage,
                    steps,
                )
                return
            _reopen(folder)  # a longer run: continue from the finished run's checkpoint
        warmup, total = self.config.optim.warmup_steps, self.config.trainer.max_steps
        if warmup >= total:
            log.warning(
                "optim.warmup_steps=%d >= trainer.max_steps=%d: the learning rate stays below "
                "optim.lr for the whole run",
                warmup,
                total,
            )
        if folder.changes:
            log.warning("continuing with changed settings: %s", describe_changes(folder.changes))
        if folder.resuming:
            if self.last_checkpoint.is_file():
                self.checkpoint = self.last_checkpoint
            else:
                log.info("%s: no checkpoint yet; starting from step 0", self.path)

    def _follow(self) -> None:
        """Another rank's view: the same decision from what rank 0 found (read-only)."""
        stored = _read_json(self.path / "manifest.json")
        steps = int(stored.get("steps", 0)) if stored else 0
        if stored and not (self.resume and self.config.trainer.max_steps > steps):
            self.done = True
        elif self.resume and self.last_checkpoint.is_file():
            self.checkpoint = self.last_checkpoint

    # ------------------------------------------------------------------ train
    def fit(self, trainer: Any, module: Any, datamodule: Any) -> None:
        """Fit with ``trainer`` (from :func:`build_trainer`), continuing from
        :attr:`checkpoint`. Ctrl-C raises :class:`TrainingInterrupted` after saving a
        checkpoint at the next step boundary (a second Ctrl-C: at once, no checkpoint)."""
        from dnabird.tasks.callbacks import StopOnInterrupt

        (stopper,) = [c for c in trainer.callbacks if isinstance(c, StopOnInterrupt)]
        handler = signal.getsignal(signal.SIGINT)
        try:
            with warnings.catch_warnings():
                # Lightning 2.6 calls a pytree API torch 2.13 deprecates; nothing users can do
                warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
                # a resumed run's checkpoints are expected there
                warnings.filterwarnings("ignore", message="Checkpoint directory .* not empty")
                trainer.fit(
                    module, datamodule=datamodule, ckpt_path=self.checkpoint, weights_only=True
                )
        except SystemExit:  # Lightning's answer to a second Ctrl-C
            if not trainer.interrupted:
                raise
            raise self._interrupted(trainer.global_step, saved=False) from None
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, handler)
        if stopper.stopped_at is not None:
            raise self._interrupted(stopper.stopped_at, saved=True)

    def _interrupted(self, step: int, saved: bool) -> TrainingInterrupted:
        total = self.config.trainer.max_steps
        if saved:
            where = f"checkpoint saved to {self.last_checkpoint}"
        elif self.last_checkpoint.is_file():
            kept = checkpoint_step(self.last_checkpoint)
            where = f"the last checkpoint is {self.last_checkpoint} (step {kept})"
        else:
            return TrainingInterrupted(
                f"interrupted at step {step} of {total}, before the first checkpoint: "
                "nothing to resume; start again with --overwrite"
            )
        return TrainingInterrupted(
            f"interrupted at step {step} of {total}; {where}; `{self.command}` continues"
        )

    # ------------------------------------------------------------------ export
    def export(self, trainer: Any, module: Any, tokenizer: Any, **fields: Any) -> Path:
        """Write the model folder (``OUT/model``, via
        :func:`dnabird.model.pretrained.write_model_folder`) and then the run's manifest;
        return the model folder. ``fields`` (e.g. ``inputs``) go into both manifests."""
        from dnabird.manifest import new_manifest

        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "global_step"}
        manifest = new_manifest(
            self.config.stage,
            self.config.to_dict(),
            steps=trainer.global_step,
            final_metrics=metrics,
            seconds=round(time.time() - self.started, 1),
            seed=self.config.seed,
            **fields,
        )
        if trainer.is_global_zero:
            from dnabird.model.pretrained import write_model_folder

            write_model_folder(self.model_dir, module.model, manifest, tokenizer=tokenizer)
            if self._folder is not None:
                self._folder.finish({**manifest, "model": MODEL_DIR})
        self.manifest = manifest
        return self.model_dir


def _reopen(folder: OutputFolder) -> None:
    """Turn a finished run folder back into an interrupted one (the run record returns,
    then the manifest goes), so that a longer run continues from its last checkpoint."""
    from dnabird.files import write_text_atomic
    from dnabird.manifest import MANIFEST_NAME

    record = {"stage": folder.stage, "run": folder.run}
    write_text_atomic(folder.path / RUN_NAME, json.dumps(record, indent=2) + "\n")
    (folder.path / MANIFEST_NAME).unlink()
    folder.complete, folder.manifest, folder.resuming = False, None, True


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _stored_run(folder: Path, stage: str) -> dict[str, Any] | None:
    """The run record of the ``stage`` run ``folder`` holds (finished or not), if any."""
    from dnabird.manifest import MANIFEST_NAME

    for name in (MANIFEST_NAME, RUN_NAME):
        record = _read_json(folder / name)
        if record is not None:
            if record.get("stage") == stage and isinstance(record.get("run"), dict):
                return record["run"]
            return None
    return None


# ----------------------------------------------------------------------------- checkpoints
def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a truncated or foreign file: say which
        reason = " ".join(str(err).split())[:200]
        raise InputError(f"{path}: not a readable checkpoint ({reason})") from None


def checkpoint_step(path: Path) -> int:
    """The optimizer step a Lightning checkpoint was saved at."""
    return int(_load_checkpoint(path).get("global_step", 0))


def check_checkpoint_fits(path: Path, model: Any) -> None:
    """ConfigError when the checkpoint's weights (``model.*`` of its state dict) do not have
    ``model``'s names and shapes (another model size or vocabulary), instead of a
    size-mismatch traceback inside Lightning."""
    stored = _load_checkpoint(path).get("state_dict", {})
    for name, tensor in model.state_dict().items():
        old = stored.get(f"model.{name}")
        if old is None or tuple(old.shape) != tuple(tensor.shape):
            was = "absent" if old is None else str(list(old.shape))
            raise ConfigError(
                f"{path}: cannot continue this run with these settings: model.{name} is "
                f"{was} in the checkpoint but {list(tensor.shape)} now (another model size "
                "or tokenizer); use --overwrite to start again"
            )


# ----------------------------------------------------------------------------- Trainer
def precision(config: RunConfig) -> str:
    """The Lightning precision: the configured one, or for ``auto`` ``bf16-mixed`` on a
    GPU and ``32-true`` on the CPU."""
    import torch

    if config.trainer.precision != "auto":
        return config.trainer.precision
    on_gpu = config.trainer.accelerator in ("gpu", "cuda") or (
        config.trainer.accelerator == "auto" and torch.cuda.is_available()
    )
    return "bf16-mixed" if on_gpu else "32-true"


def build_trainer(
    config: RunConfig, out: Path, callbacks: Sequence[Any] = (), *, val_batches: int = 0
) -> Any:
    """The Lightning Trainer of a run in folder ``out``: the ``trainer`` section's
    hardware, precision, accumulation and clipping; checkpoints every
    ``checkpoint_every_steps`` (``last.ckpt`` + the newest ``keep_checkpoints``); metrics
    to ``logs/metrics.csv`` (continued across resumes) and TensorBoard when installed;
    ``val_batches`` validation batches every ``val_every_steps`` (0: no validation); a
    step progress bar on a terminal, else progress lines every ``log_every_steps``; a
    clean stop with a checkpoint on Ctrl-C. Writes nothing yet: build it before claiming
    the run folder, so a combination Lightning refuses is a one-line ConfigError first.
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dnabird.progress import enabled as progress_enabled
    from dnabird.tasks.callbacks import ProgressLog, StepProgressBar, StopOnInterrupt

    route_lightning_logs()
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
    bar = progress_enabled()
    feedback = (
        StepProgressBar(config.stage) if bar else ProgressLog(config.stage, t.log_every_steps)
    )
    try:
        return L.Trainer(
            max_steps=t.max_steps,
            max_time=None if t.max_time_s is None else timedelta(seconds=t.max_time_s),
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            precision=precision(config),
            accumulate_grad_batches=t.accumulate_grad_batches,
            gradient_clip_val=t.gradient_clip_val or None,
            log_every_n_steps=t.log_every_steps,
            val_check_interval=t.val_every_steps * t.accumulate_grad_batches,
            check_val_every_n_epoch=None,
            limit_val_batches=val_batches,
            num_sanity_val_steps=0,
            logger=loggers(out),
            callbacks=[
                checkpoints,
                feedback,
                StopOnInterrupt(out / CHECKPOINT_DIR / LAST_CHECKPOINT),
                *callbacks,
            ],
            enable_progress_bar=bar,
            enable_model_summary=False,
            default_root_dir=out,
        )
    except (ValueError, TypeError) as err:  # Lightning's MisconfigurationException included
        raise ConfigError(f"trainer: {' '.join(str(err).split())}") from None


def route_lightning_logs() -> None:
    """When the application has configured logging (the CLI has), send Lightning's records
    through that handler alone, at its level: Lightning's import adds a console handler of
    its own, which printed every message twice. Its product advert is dropped."""
    import lightning  # noqa: F401 - the import is what adds the handler

    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_an_advert not in rank_zero.filters:
        rank_zero.addFilter(_not_an_advert)


def _not_an_advert(record: logging.LogRecord) -> bool:
    """Drop Lightning's "Tip: try installing litlogger" line: an advert, not about the run."""
    return "litlogger" not in record.getMessage()


def loggers(out: Path) -> list[Any]:
    """``logs/metrics.csv`` (:func:`continued_csv_logger`) and, when tensorboard is
    installed, ``logs/tensorboard/``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    found = [continued_csv_logger(out)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        found.append(TensorBoardLogger(out, name=LOG_DIR, version="tensorboard"))
    else:
        log.info("tensorboard is not installed; logging to CSV only (%s)", out / LOG_DIR)
    return found


def continued_csv_logger(out: Path) -> Any:
    """A CSVLogger writing ``out/logs/metrics.csv`` row by row that continues the file of
    an earlier part of the run: rows before the resume point stay, rows the resumed run
    logs again replace the old ones (Lightning's own deletes the file when it starts)."""
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class ContinuedWriter(ExperimentWriter):
        def __init__(self, log_dir: str) -> None:
            super().__init__(log_dir)
            self.previous = _read_csv(Path(self.metrics_file_path))

        def _check_log_dir_exists(self) -> None:
            """Keep the earlier part's metrics (Lightning deletes them here)."""

        def save(self) -> None:
            if self.previous is not None and self.metrics:
                header, rows = self.previous
                first = min(int(row["step"]) for row in self.metrics)
                kept = [row for row in rows if int(float(row["step"])) < first]
                keys = sorted(set(header).union(*self.metrics))
                _write_csv(Path(self.metrics_file_path), keys, kept)
                self.metrics_keys = keys
                self.previous = None
            super().save()

    class ContinuedCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> ExperimentWriter:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ContinuedWriter(log_dir=self.log_dir)
            return self._experiment

    return ContinuedCSVLogger(out, name=LOG_DIR, version="", flush_logs_every_n_steps=1)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]] | None:
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row.get("step")]
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, keys: list[str], rows: list[dict[str, Any]]) -> None:
    from dnabird.files import write_text_atomic

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, restval="")  # "\r\n", as Lightning's
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
