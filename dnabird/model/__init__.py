"""The BigBird model: config, attention patterns and kernels, encoder and heads.

Importing this package needs torch and safetensors only (no Lightning, no genome
libraries). Weight conversion to and from transformers lives in :mod:`dnabird.model.hf`
and imports transformers only when called.
"""

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
]
