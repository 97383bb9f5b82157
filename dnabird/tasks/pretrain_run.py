"""Run a pretraining job from a :class:`~dnabird.tasks.pretrain_config.PretrainConfig`:
check it, open the token folder, claim the run folder, fit (or resume), export the model.

The run folder, the Trainer, resume and export are :mod:`dnabird.tasks.trainer`'s; this
module only wires the pretraining pieces into them: the token folder and its tokenizer
(:mod:`dnabird.data.mlm`) and :class:`~dnabird.tasks.pretrain.PretrainModule`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnabird.tasks.pretrain_config import PretrainConfig
from dnabird.tasks.trainer import TrainingRun, build_trainer


def run_pretrain(
    config: PretrainConfig,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    *,
    overwrite: bool = False,
    accept_changes: bool = False,
    command: str | None = None,
) -> Path:
    """Pretrain per ``config`` and return the exported model folder ``OUT/model``.

    ``resume``: continue the run in ``config.out`` (interrupted, or finished and extended by
    a larger ``trainer.max_steps``); ``overwrite``: replace whatever run ``config.out``
    holds; ``accept_changes``: resume although settings or inputs changed (see
    :class:`~dnabird.tasks.trainer.TrainingRun`); ``callbacks``: extra Lightning callbacks;
    ``command``: how the user continues an interrupted run (for the Ctrl-C message).
    A run folder already holding this run, complete, is returned as it is.
    """
    import lightning as L
    import torch

    from dnabird.data.mlm import MLMDataModule, open_token_folder
    from dnabird.files import sha256_file
    from dnabird.manifest import describe_file
    from dnabird.model import BigBirdForMaskedLM
    from dnabird.tasks.pretrain import PretrainModule
    from dnabird.tokenizer import DNATokenizer

    config.check()
    tokens = open_token_folder(config.data.tokens, verify=False)
    tokenizer = DNATokenizer.from_pretrained(tokens.tokenizer_dir)
    model_config = config.model.build(tokenizer.vocab_size)
    datamodule = MLMDataModule(config.data, config.masking, config.seed, tokenizer)
    tokens_manifest = Path(config.data.tokens) / "manifest.json"
    inputs = {
        "tokenizer_sha256": hashlib.sha256(tokenizer.model_proto).hexdigest(),
        "tokens_manifest_sha256": sha256_file(tokens_manifest),
    }
    with torch.device("meta"):  # shapes only, to check a checkpoint before resuming
        shapes = BigBirdForMaskedLM(model_config)
    val_batches = config.data.val_batches if datamodule.validates else 0
    trainer = build_trainer(config, Path(config.out), callbacks, val_batches=val_batches)
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
        module = PretrainModule(
            model_config.to_dict(),
            config.to_dict()["optim"],
            config.trainer.max_steps,
            [int(n) for n in tokenizer.bp_per_id],
        )
        run.fit(trainer, module, datamodule)
        module.model.labelled_logits_only = False  # the export gives logits everywhere
        return run.export(
            trainer, module, tokenizer, inputs={"tokens_manifest": describe_file(tokens_manifest)}
        )
