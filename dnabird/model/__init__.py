"""The BigBird model: config, attention patterns and kernels, encoder and heads.

Importing this package needs torch only (no Lightning, no genome libraries).
"""

from dnabird.model.config import PRESETS, BigBirdConfig

__all__ = ["PRESETS", "BigBirdConfig"]
