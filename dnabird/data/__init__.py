"""Datasets and data modules: token shards (:mod:`~dnabird.data.tokens`) and the
pretraining and fine-tuning data built on them."""
