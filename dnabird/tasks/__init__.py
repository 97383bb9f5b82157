"""Training tasks: thin LightningModules around the models, their configs, runs and metrics.

Shared by every training task:
:mod:`~dnabird.tasks.config` (run configs: ``load_config``, ``RunConfig`` with the ``optim``
and ``trainer`` sections, the packaged YAML files), :mod:`~dnabird.tasks.base` (the common
LightningModule: AdamW groups, schedule, RNG state, throughput),
:mod:`~dnabird.tasks.trainer` (run folder, Trainer, resume, export of the model folder) and
:mod:`~dnabird.tasks.callbacks` (progress in steps, Ctrl-C).

Pretraining: :mod:`~dnabird.tasks.pretrain_config` (``PretrainConfig``, mirrored by
``pipelines/pretrain_*.yaml``), :mod:`~dnabird.tasks.pretrain` (the MLM module),
:mod:`~dnabird.tasks.pretrain_run` (``run_pretrain``); :mod:`~dnabird.tasks.evaluate_mlm`
(held-out bits per character) and :mod:`~dnabird.tasks.metrics`.

Fine-tuning: :mod:`~dnabird.tasks.finetune_config` (``FinetuneConfig``, mirrored by
``pipelines/promoter*.yaml``), :mod:`~dnabird.tasks.finetune` (the classification module),
:mod:`~dnabird.tasks.finetune_run` (``run_finetune``: best checkpoint, test report with
baselines, export) and :mod:`~dnabird.tasks.classify` (a fine-tuned folder at work:
``Classifier``, evaluation, FASTA prediction).
"""
