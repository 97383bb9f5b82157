"""A fine-tuned model ready to score windows of sequence.

:class:`Predictor` wraps a :class:`~dnabird.tasks.classify.Classifier` (model, tokenizer,
fixed token window) with what prediction from files adds: the strand mode (``rc``), the
output columns (all the model's classes or features, or a selection) and the window in bp
every input is cut to (``window_bp``, recorded by ``dnabird finetune``).

A window of sequence is tokenized, wrapped in ``[CLS] ... [SEP]`` and padded to the model's
token window, as in training. A window whose tokens do not fit (e.g. a ``--window-bp``
larger than the model was trained on) is not cut: :meth:`Predictor.predict` reports it as
not scored, and the callers list it in the ``.NA`` file with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dnabird.errors import ConfigError
from dnabird.model.config import STRAND_MODES
from dnabird.tasks.classify import Classifier, combine_strands


@dataclass
class Predictor:
    """``classifier`` scoring ``window_bp`` bp windows (None: each sequence whole) in
    batches of ``batch_size``; outputs ``columns`` (class names or feature ids, the model's
    outputs at ``column_index``); ``rc``: how the reverse complement's prediction combines
    with the forward strand's (:data:`~dnabird.model.config.STRAND_MODES`)."""

    classifier: Classifier
    columns: tuple[str, ...]
    column_index: np.ndarray
    rc: str
    window_bp: int | None
    batch_size: int = 64

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        *,
        device: str | None = None,
        rc: str | None = None,
        features: Sequence[str] | str | None = None,
        window_bp: int | None = None,
        batch_size: int = 64,
        precision: str = "32-true",
    ) -> Predictor:
        """Open a fine-tuned model folder (``dnabird finetune``'s ``OUT/model``).

        ``rc``: None uses the model's own setting (``mean`` when it was trained to average
        the strands, else ``none``). ``features``: output columns, by id, name, category or
        a file of them (:func:`~dnabird.data.deepsea.select_features`); None: all.
        ``window_bp``: bp per window (None: the model's training window, when recorded).
        ``precision``: ``32-true`` (float32) or ``bf16-mixed`` (bfloat16 matrix products
        under autocast: about 1.6x faster on CPUs with bfloat16 instructions, probabilities
        within about 1e-2 of float32's; see ``benchmarks/RESULTS.md``).
        """
        from dnabird.data.deepsea import select_features
        from dnabird.data.multilabel import Features
        from dnabird.manifest import read_manifest

        if rc is not None and rc not in STRAND_MODES:
            raise ConfigError(f"--rc must be one of {', '.join(STRAND_MODES)}, got {rc!r}")
        if window_bp is not None and window_bp < 1:
            raise ConfigError(f"the window must be at least 1 bp, got {window_bp}")
        if batch_size < 1:
            raise ConfigError(f"the batch size must be at least 1, got {batch_size}")
        classifier = Classifier.load(model, device, precision)
        stored = read_manifest(model).get("data", {}).get("features")
        known = (
            Features(tuple(stored["ids"]), tuple(stored["names"]), tuple(stored["categories"]))
            if stored and list(stored["ids"]) == list(classifier.classes)
            else Features.from_names(classifier.classes)
        )
        index = select_features(known, features)
        mode = classifier.strand_mode(rc)
        return cls(
            classifier,
            tuple(classifier.classes[i] for i in index),
            index,
            mode,
            window_bp if window_bp is not None else classifier.window_bp,
            batch_size,
        )

    @property
    def source(self) -> str:
        """The model folder (for messages and manifests)."""
        return self.classifier.source

    def require_window_bp(self, what: str) -> int:
        """:attr:`window_bp`, or a ConfigError saying ``what`` needs one."""
        if self.window_bp is None:
            raise ConfigError(
                f"{self.source} records no training window in bp; give --window-bp for {what}"
            )
        return self.window_bp

    def predict(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Score ``sequences`` (any length; one window each), ``batch_size`` at a time.

        Returns ``(values float32 [N, F], scored bool [N])``: probabilities per output
        column, and whether the sequence's tokens (both strands' when ``rc`` uses the
        reverse strand) fit the model's window; rows not scored hold NaN.
        """
        from dnabird.data.classification import pad_to_window, tokenize
        from dnabird.genome.fasta import reverse_complements

        classifier = self.classifier
        room = classifier.window - 2
        strands = [tokenize(classifier.tokenizer, sequences)]
        if self.rc != "none":
            strands.append(tokenize(classifier.tokenizer, reverse_complements(sequences)))
        scored = np.array(
            [all(len(tokens[i]) <= room for tokens in strands) for i in range(len(sequences))],
            dtype=bool,
        )
        values = np.full((len(sequences), len(self.columns)), np.nan, dtype=np.float32)
        rows = np.flatnonzero(scored)
        for start in range(0, len(rows), self.batch_size):
            chosen = rows[start : start + self.batch_size]
            parts = [
                classifier.window_probabilities(
                    pad_to_window([tokens[i] for i in chosen], classifier.window)
                )[:, self.column_index]
                for tokens in strands
            ]
            values[chosen] = combine_strands(parts, self.rc)
        return values, scored

    def describe(self) -> dict[str, object]:
        """What a run manifest records about the model and its settings."""
        return {
            "model": self.source,
            "columns": len(self.columns),
            "token_window": self.classifier.window,
            "window_bp": self.window_bp,
            "rc": self.rc,
            "batch_size": self.batch_size,
            "precision": self.classifier.precision,
        }
