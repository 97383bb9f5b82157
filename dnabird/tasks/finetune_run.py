"""Run a fine-tuning job from a :class:`~dnabird.tasks.finetune_config.FinetuneConfig`:
check it, read and split the data, claim the run folder, fit (or resume), keep the best
weights, evaluate them on the test split next to the baselines, export the model.

The run folder, the Trainer, resume and export are :mod:`dnabird.tasks.trainer`'s; this
module wires the fine-tuning pieces into them: the model folder's tokenizer, the labelled
splits and their fixed windows (:mod:`dnabird.data.classification`),
:class:`~dnabird.tasks.finetune.FinetuneModule`, and the selection of the best validation
(a weights-only ``checkpoints/best.ckpt`` kept by Lightning's ``ModelCheckpoint``, and
``EarlyStopping``; both keep their state in every checkpoint, so a resumed run selects and
stops exactly as a straight one).

Run folder, besides the trainer's ``checkpoints/``, ``logs/`` and ``model/``::

    report.json       test-split reports of the model and the baselines (95% bootstrap CIs)
    roc_pr.png        ROC and precision-recall curves of the model and the baselines
    confusion.png     the model's confusion matrix on the test split
    manifest.json     written last
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.tasks.finetune_config import FinetuneConfig
from dnabird.tasks.trainer import CHECKPOINT_DIR, TrainingRun, build_trainer

if TYPE_CHECKING:
    from dnabird.data.chromatin import MultiLabelSplits
    from dnabird.data.classification import LabelledSplits, WindowedSplit
    from dnabird.tasks.classify import Classifier

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "best.ckpt"
REPORT_NAME = "report.json"
MODEL_NAME = "dnabird"
"""The fine-tuned model's row in reports and tables (the baselines: ``kmer_logreg``, ...)."""


def run_finetune(
    config: FinetuneConfig,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    *,
    overwrite: bool = False,
    accept_changes: bool = False,
    command: str | None = None,
) -> Path:
    """Fine-tune per ``config`` and return the exported model folder ``OUT/model``.

    ``resume``, ``overwrite``, ``accept_changes``, ``callbacks`` and ``command`` as in
    :func:`dnabird.tasks.pretrain_run.run_pretrain`. Every input is read and checked before
    the run folder is claimed, so a bad file leaves no folder behind. A run folder already
    holding this run, complete, is returned as it is.
    """
    import lightning as L
    import torch

    from dnabird.data.chromatin import load_multilabel_splits
    from dnabird.data.classification import ClassificationDataModule, load_splits
    from dnabird.files import sha256_file
    from dnabird.model.pretrained import WEIGHTS_NAME, head_class
    from dnabird.tasks.finetune import FinetuneModule

    config.check()
    tokenizer = _tokenizer(config)
    model_config = config.model.build(tokenizer.vocab_size)
    multilabel = config.task == "multilabel"
    if multilabel:
        splits = load_multilabel_splits(config.data, config.multilabel, config.seed)
        classes = splits.features.ids
        window, windowed = _multilabel_windows(config, tokenizer, model_config, splits)
    else:
        splits = load_splits(config.data, config.seed)
        classes = splits.classes
        window, windowed = _windows(config, tokenizer, model_config, splits)
    log.info(
        "data: %s sequences (train, validation, test), each in a window of %d tokens",
        " / ".join(f"{sum(n.values()):,}" for n in splits.counts().values()),
        window,
    )
    threshold = config.early_stopping.threshold
    if not multilabel and len(classes) != 2 and threshold != 0.5:
        raise ConfigError(
            f"early_stopping.threshold={threshold}: a threshold splits two classes, and "
            f"data.classes has {len(classes)}; leave it at 0.5 (the arg-max decides)"
        )
    if threshold == "validation" and not len(windowed["validation"]):
        raise InputError(
            f"{config.data.train}: the validation split is empty, so "
            "early_stopping.threshold=validation cannot be chosen; give data.validation or "
            "a fixed threshold"
        )
    if config.early_stopping.metric is not None and not len(windowed["validation"]):
        raise InputError(
            f"{config.data.train}: the validation split is empty (split counts "
            f"{splits.counts()['validation']}), so early_stopping.metric="
            f"{config.early_stopping.metric} cannot select weights; give data.validation, a "
            "larger data.split validation fraction, or early_stopping.metric=null"
        )
    if multilabel and splits.streamed is not None:
        from dnabird.data.streaming import StreamingDataModule

        datamodule = StreamingDataModule(
            config.data.train,
            windowed["validation"],
            tokenizer,
            window,
            config.data.batch_size,
            config.seed,
            reverse=config.multilabel.reverse_complement,
            truncate=config.data.truncate,
            features=splits.feature_index,
            num_workers=config.data.num_workers,
        )
    else:
        datamodule = ClassificationDataModule(
            windowed["train"],
            windowed["validation"],
            config.data.batch_size,
            config.seed,
            config.data.num_workers,
        )
    files = config.data.files()
    inputs = {
        "tokenizer_sha256": hashlib.sha256(tokenizer.model_proto).hexdigest(),
        "data_sha256": {key: _input_sha256(path) for key, path in files.items()},
    }
    if config.model.init is not None:
        inputs["init_sha256"] = sha256_file(Path(config.model.init) / WEIGHTS_NAME)
    if multilabel and config.multilabel.names is not None:
        inputs["names_sha256"] = sha256_file(config.multilabel.names)
    head_args = _head_args(config, len(classes), tokenizer)
    with torch.device("meta"):  # shapes only, to check a checkpoint before resuming
        shapes = head_class(config.head)(model_config, **head_args)
    out = Path(config.out)
    trainer = build_trainer(
        config,
        out,
        [*_selection_callbacks(config, out), *callbacks],
        val_batches=datamodule.val_batches,
    )
    with TrainingRun(
        config,
        inputs,
        shapes,
        resume=resume,
        overwrite=overwrite,
        accept_changes=accept_changes,
        command=command,
    ) as run:
        if run.done:
            return run.model_dir
        L.seed_everything(config.seed, workers=True, verbose=False)
        module = FinetuneModule(
            _initial_model(config, model_config, head_args, tokenizer),
            config.to_dict()["optim"],
            config.trainer.max_steps,
            freeze_encoder=config.model.freeze_encoder,
            layer_lr_decay=config.model.layer_lr_decay,
            monitor=config.early_stopping.metric,
        )
        run.fit(trainer, module, datamodule)
        best = _restore_best(config, module, out)
        test = None
        decision = {}  # two classes: the threshold the exported model decides at
        if trainer.is_global_zero:
            from dnabird.tasks.classify import Classifier

            device = trainer.strategy.root_device  # Lightning moved the model to the CPU
            classifier = Classifier(
                module.model.to(device),
                tokenizer,
                tuple(classes),
                window,
                config.data.truncate,
                device,
                average_strands=config.average_strands,
            )
            if not multilabel and len(classes) == 2:
                classifier.threshold = _decision_threshold(config, splits, classifier)
                decision = {"threshold": classifier.threshold}
        if trainer.is_global_zero and len(windowed["test"]):
            if multilabel:
                from dnabird.tasks.profiles_report import evaluate_profiles

                test = evaluate_profiles(config, splits, classifier, out)
            else:
                test = evaluate_test(config, splits, classifier, out)
        task_data = (
            {"features": splits.features.to_json(), "positives": splits.positives()}
            if multilabel
            else {"negatives": splits.negatives}
        )
        return run.export(
            trainer,
            module,
            tokenizer,
            task=config.task,
            classes=list(classes),
            max_length=window,
            window_bp=max(int(part.bp.max()) for part in windowed.values() if len(part)),
            truncate=config.data.truncate,
            average_strands=config.average_strands,
            inputs={
                "data": {key: _describe_input(path) for key, path in files.items()},
                **({"init": str(config.model.init)} if config.model.init else {}),
            },
            data={
                "splits": splits.counts(),
                "drawn_splits": splits.drawn,
                **task_data,
            },
            best=best,
            stopped_early=_stopped_by_patience(trainer),
            test=test,
            **decision,
        )


def _windows(
    config: FinetuneConfig, tokenizer: Any, model_config: Any, splits: LabelledSplits
) -> tuple[int, dict[str, WindowedSplit]]:
    """The fixed window (``data.max_length``, or from the longest tokenized sequence of
    every split, and of the reverse complements evaluation reads with
    ``data.average_strands``: :func:`~dnabird.data.classification.default_window`) and each
    split's windows; with ``data.average_strands`` the validation split's reverse
    complements too (its batches then hold both strands)."""
    from dnabird.data.classification import (
        default_window,
        pad_to_window,
        tokenize,
        window_split,
    )
    from dnabird.genome.fasta import reverse_complements

    parts = {name: splits.part(name) for name in ("train", "validation", "test")}
    tokens = {name: tokenize(tokenizer, part.sequences) for name, part in parts.items()}
    lengths = [len(ids) for part in tokens.values() for ids in part]
    reverse = {}
    if config.data.average_strands:
        for name in ("validation", "test"):
            reverse[name] = tokenize(tokenizer, reverse_complements(parts[name].sequences))
            lengths.extend(len(ids) for ids in reverse[name])
    window = config.data.max_length or default_window(
        max(lengths), model_config.block_size, model_config.max_position_embeddings
    )
    windowed = {
        name: window_split(part, tokens[name], window, config.data.truncate)
        for name, part in parts.items()
    }
    if "validation" in reverse:
        part = parts["validation"]
        windowed["validation"].reverse = pad_to_window(
            reverse["validation"],
            window,
            truncate=config.data.truncate,
            names=part.ids,
            source=part.source,
        )
    return window, windowed


def _multilabel_windows(
    config: FinetuneConfig, tokenizer: Any, model_config: Any, splits: MultiLabelSplits
) -> tuple[int, dict[str, WindowedSplit]]:
    """:func:`_windows` of a multi-label run: both strands tokenized where they are used
    (training with ``multilabel.reverse_complement``, evaluation with
    ``multilabel.average_strands``), the window fitting the longest of either."""
    from dnabird.data.chromatin import tokenize_strands, windowed_examples
    from dnabird.data.classification import default_window

    section = config.multilabel
    tokens = {
        name: tokenize_strands(
            tokenizer,
            splits.part(name),
            section.reverse_complement if name == "train" else section.average_strands,
        )
        for name in ("train", "validation", "test")
    }
    lengths = [
        len(ids)
        for strands in tokens.values()
        for ids_list in strands
        if ids_list
        for ids in ids_list
    ]
    window = config.data.max_length or default_window(
        max(lengths), model_config.block_size, model_config.max_position_embeddings
    )
    windowed = {
        name: windowed_examples(splits.part(name), tokens[name], window, config.data.truncate)
        for name in tokens
    }
    return window, windowed


def _input_sha256(path: str) -> str:
    """sha256 of an input file, or of a dataset folder's manifest (which lists its shards'
    checksums)."""
    from dnabird.files import sha256_file
    from dnabird.manifest import MANIFEST_NAME

    target = Path(path)
    return sha256_file(target / MANIFEST_NAME if target.is_dir() else target)


def _describe_input(path: str) -> dict[str, Any]:
    """:func:`dnabird.manifest.describe_file` of an input file or a dataset folder's
    manifest."""
    from dnabird.manifest import MANIFEST_NAME, describe_file

    target = Path(path)
    if target.is_dir():
        return {"folder": str(target), "manifest": describe_file(target / MANIFEST_NAME)}
    return describe_file(target)


def _head_args(config: FinetuneConfig, num_labels: int, tokenizer: Any) -> dict[str, Any]:
    """Arguments of the head class besides the config: the outputs, the pooling, the base
    features (for pieces up to the tokenizer's longest, and whether the head reads their
    summary) and the multi-label loss's positive weight."""
    args: dict[str, Any] = {"num_labels": num_labels, "pooling": config.model.pooling}
    if config.model.base_channels:
        args["base_channels"] = config.model.base_channels
        args["max_piece_bp"] = int(tokenizer.bp_per_id.max())
        args["base_pooling"] = config.model.base_pooling
        args["base_pooling_bins"] = config.model.base_pooling_bins
    if config.task == "multilabel":
        args["pos_weight"] = config.multilabel.pos_weight
    return args


def _tokenizer(config: FinetuneConfig) -> Any:
    """THE tokenizer: ``model.init``'s own, or ``model.tokenizer`` (a tokenizer folder or a
    model folder holding one) for a model from scratch."""
    from dnabird.model.pretrained import TOKENIZER_DIR, load_tokenizer
    from dnabird.tokenizer import MODEL_FILE, DNATokenizer

    if config.model.init is not None:
        return load_tokenizer(config.model.init)
    folder = Path(config.model.tokenizer)
    if (folder / TOKENIZER_DIR).is_dir() and not (folder / MODEL_FILE).is_file():
        return load_tokenizer(folder)
    return DNATokenizer.from_pretrained(folder)


def _initial_model(
    config: FinetuneConfig, model_config: Any, head_args: dict[str, Any], tokenizer: Any
) -> Any:
    """The classifier before training: a new head (``head_args``) on ``model.init``'s
    encoder, or a new model from the preset (drawn from the global generator: seed it
    first); new base features spell the tokenizer's pieces."""
    from dnabird.model.pretrained import head_class, load_model

    if config.model.init is None:
        model = head_class(config.head)(model_config, **head_args)
    else:
        model = load_model(
            config.model.init,
            config.head,
            new_head=True,
            config_overrides=config.model.config_overrides(),
            **head_args,
        )
    if model.bases is not None:
        model.bases.set_vocabulary(tokenizer.pieces)
    return model


def _selection_callbacks(config: FinetuneConfig, out: Path) -> list[Any]:
    """Lightning callbacks keeping the best validation's weights in
    ``checkpoints/best.ckpt`` and stopping after ``early_stopping.patience`` validations
    without improvement (none without ``early_stopping.metric``)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    section = config.early_stopping
    if section.metric is None:
        return []
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=out / CHECKPOINT_DIR,
            filename=Path(BEST_CHECKPOINT).stem,
            monitor=section.metric,
            mode=section.direction,
            save_top_k=1,
            save_weights_only=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
    ]
    if section.patience:
        callbacks.append(
            EarlyStopping(monitor=section.metric, mode=section.direction, patience=section.patience)
        )
    return callbacks


def _stopped_by_patience(trainer: Any) -> bool:
    """Whether early stopping ended the run (not ``max_steps`` or ``max_time_s``)."""
    callback = trainer.early_stopping_callback
    return callback is not None and callback.wait_count >= callback.patience


def _restore_best(config: FinetuneConfig, module: Any, out: Path) -> dict[str, Any] | None:
    """Load the best validation's weights into ``module``; return ``{"metric", "mode",
    "step", "value"}``, or None (no metric, or no validation ran: the last weights stay)."""
    import torch

    section = config.early_stopping
    path = out / CHECKPOINT_DIR / BEST_CHECKPOINT
    if section.metric is None:
        return None
    if not path.is_file():
        log.warning(
            "no validation ran (trainer.val_every_steps=%d, trainer.max_steps=%d): exporting "
            "the last weights",
            config.trainer.val_every_steps,
            config.trainer.max_steps,
        )
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(saved["state_dict"])
    (selector,) = [
        c
        for c in module.trainer.checkpoint_callbacks
        if getattr(c, "monitor", None) == section.metric
    ]
    return {
        "metric": section.metric,
        "mode": section.direction,
        "step": int(saved["global_step"]),
        "value": float(selector.best_model_score),
    }


def _decision_threshold(
    config: FinetuneConfig, splits: LabelledSplits, classifier: Classifier
) -> float:
    """``early_stopping.threshold`` of a two-class model: the number given, or the one of the
    best F1 of ``classifier`` (the selected weights) on the validation split."""
    from dnabird.tasks.classification_metrics import best_f1_threshold

    if config.early_stopping.threshold != "validation":
        return float(config.early_stopping.threshold)
    validation = splits.part("validation")
    probabilities = classifier.probabilities(
        validation.sequences, validation.ids, validation.source, config.data.batch_size
    )
    threshold = best_f1_threshold(validation.labels, probabilities[:, 1])
    log.info("decision threshold %.4f: the best F1 on the validation split", threshold)
    return threshold


def evaluate_test(
    config: FinetuneConfig, splits: LabelledSplits, classifier: Classifier, out: Path
) -> dict[str, Any]:
    """Score ``classifier`` (the selected weights, split at its ``threshold``) on the test
    split next to the baselines trained on the same training split (their thresholds chosen
    as ``early_stopping.threshold`` says, both strands averaged as the model's are); write
    ``report.json``, ``roc_pr.png`` and ``confusion.png`` into ``out``; return
    ``{"reports": {name: report}, ...}``."""
    from dnabird.baselines import run_baselines
    from dnabird.files import write_text_atomic
    from dnabird.plots import plot_confusion, plot_roc_pr
    from dnabird.tasks.classify import evaluate_classifier

    train, test = splits.part("train"), splits.part("test")
    log.info(
        "test split: scoring the model and the baselines (trained on the %d training "
        "sequences) on %d sequences",
        len(train),
        len(test),
    )
    report, probabilities = evaluate_classifier(
        classifier, test, batch_size=config.data.batch_size, seed=config.seed
    )
    predicted = {MODEL_NAME: probabilities}
    validation = None  # the baselines' thresholds are chosen there too
    if config.early_stopping.threshold == "validation":
        part = splits.part("validation")
        validation = (part.sequences, part.labels)
    baselines = run_baselines(
        (train.sequences, train.labels),
        (test.sequences, test.labels),
        splits.classes,
        seed=config.seed,
        probabilities=predicted,
        threshold=classifier.threshold,
        validation=validation,
        average_strands=config.data.average_strands,
    )
    reports = {MODEL_NAME: report, **baselines}
    result = {
        "classes": list(splits.classes),
        "test_counts": splits.counts()["test"],
        "reports": reports,
    }
    write_text_atomic(out / REPORT_NAME, json.dumps(result, indent=2) + "\n")
    title = f"{Path(config.data.train).name}: test split ({len(test):,} sequences)"
    plot_roc_pr(_curves(test.labels, predicted, splits.classes), out / "roc_pr.png", title)
    plot_confusion(
        report["confusion"], splits.classes, out / "confusion.png", f"{MODEL_NAME}, {title}"
    )
    return result


def _curves(
    labels: np.ndarray, predicted: dict[str, np.ndarray], classes: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What :func:`dnabird.plots.plot_roc_pr` draws from each model's probabilities
    ``[N, K]``: P(class 1) for two classes; else the fine-tuned model's curve of each class
    against the rest."""
    if len(classes) == 2:
        return {name: (labels, p[:, 1]) for name, p in predicted.items()}
    return {
        f"{MODEL_NAME}: {name} vs rest": (
            (labels == k).astype(np.int64),
            predicted[MODEL_NAME][:, k],
        )
        for k, name in enumerate(classes)
    }
