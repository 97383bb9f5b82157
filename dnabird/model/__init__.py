"""The BigBird model: config, attention patterns and kernels, encoder and heads.

Names load on first use (PEP 562), so ``from dnabird.model import BigBirdConfig`` (like
``dnabird.model.config``) imports no torch and run configs can be read and validated
anywhere; the models need torch and safetensors only (no Lightning, no genome libraries).
Weight conversion to and from transformers lives in :mod:`dnabird.model.hf` and imports
transformers only when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnabird.model.bigbird import BigBirdEncoder
    from dnabird.model.config import PRESETS, BigBirdConfig
    from dnabird.model.heads import (
        BigBirdForMaskedLM,
        BigBirdForMultiLabelClassification,
        BigBirdForQuestionAnswering,
        BigBirdForSequenceClassification,
        BigBirdForTokenClassification,
        BigBirdPreTrainedModel,
        ModelOutput,
    )
    from dnabird.model.pretrained import (
        load_model,
        load_tokenizer,
        verify_model_folder,
        write_model_folder,
    )

_HOME = {
    "PRESETS": "config",
    "BigBirdConfig": "config",
    "BigBirdEncoder": "bigbird",
    "BigBirdForMaskedLM": "heads",
    "BigBirdForMultiLabelClassification": "heads",
    "BigBirdForQuestionAnswering": "heads",
    "BigBirdForSequenceClassification": "heads",
    "BigBirdForTokenClassification": "heads",
    "BigBirdPreTrainedModel": "heads",
    "ModelOutput": "heads",
    "load_model": "pretrained",
    "load_tokenizer": "pretrained",
    "verify_model_folder": "pretrained",
    "write_model_folder": "pretrained",
}
"""Public name -> the submodule defining it."""

__all__ = [
    "PRESETS",
    "BigBirdConfig",
    "BigBirdEncoder",
    "BigBirdForMaskedLM",
    "BigBirdForMultiLabelClassification",
    "BigBirdForQuestionAnswering",
    "BigBirdForSequenceClassification",
    "BigBirdForTokenClassification",
    "BigBirdPreTrainedModel",
    "ModelOutput",
    "load_model",
    "load_tokenizer",
    "verify_model_folder",
    "write_model_folder",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use (or a submodule by its name)."""
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
