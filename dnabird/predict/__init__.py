"""Prediction from files: FASTA, BED + genome and VCF in; profiles, variant effects,
in-silico mutagenesis and embeddings out.

The path of the data: inputs (:mod:`~dnabird.predict.inputs`,
:mod:`~dnabird.predict.variants`) -> fixed bp windows -> :class:`Predictor` (a fine-tuned
model in batches) -> :mod:`~dnabird.predict.engine` (one process, or many through
Lightning) -> :mod:`~dnabird.predict.writers` (TSV, HDF5, Parquet, ``.NA``). The public
functions (:mod:`~dnabird.predict.api`) load lazily, so ``import dnabird.predict`` is
light.
"""

from __future__ import annotations

_LAZY = {
    "Predictor": "dnabird.predict.predictor",
    "predict": "dnabird.predict.api",
    "predict_to_file": "dnabird.predict.api",
    "variant_effect": "dnabird.predict.api",
    "variant_effect_to_file": "dnabird.predict.api",
    "ism": "dnabird.predict.api",
    "embed": "dnabird.predict.api",
    "read_table": "dnabird.predict.api",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dnabird.predict' has no attribute {name!r}")
