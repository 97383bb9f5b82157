"""Training tasks: thin LightningModules around the models, their configs and metrics.

Pretraining: :mod:`~dnabird.tasks.pretrain` (the module), :mod:`~dnabird.tasks.pretrain_config`
(typed config mirrored by ``pipelines/pretrain_*.yaml``), :mod:`~dnabird.tasks.pretrain_run`
(Trainer, checkpoints, export), :mod:`~dnabird.tasks.evaluate_mlm` (held-out bits per
character) and :mod:`~dnabird.tasks.metrics`.
"""
