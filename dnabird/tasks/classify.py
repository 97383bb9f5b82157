"""Fine-tuned classifiers at work: open a model folder, predict, evaluate.

A fine-tuned model folder (``dnabird finetune``'s ``OUT/model``) records in its manifest
what a prediction needs besides the weights and the tokenizer: ``task``, ``classes`` (class
or feature ``i`` is output ``i``), ``max_length`` (the fixed window every sequence is padded
to, as in training), ``truncate``, ``window_bp`` (the bp of sequence per training window)
and ``average_strands`` (absent in folders of sequence classifiers made before it: false).
:meth:`Classifier.load` opens one; every prediction pads each sequence to that one window
(:func:`dnabird.data.classification.pad_to_window`), so a sequence gets the same
probabilities alone or in any batch.

- :meth:`Classifier.probabilities`: ``float64 [N, K]``, batch by batch: class probabilities
  (softmax; rows sum to 1) of a sequence classifier, or one independent P(label) per
  feature (sigmoid) of a multi-label model, the mean of both strands' when
  ``average_strands`` (or as an ``rc`` of :data:`~dnabird.model.config.STRAND_MODES` says).
- :func:`evaluate_classifier`: a labelled set -> a classification report with 95% bootstrap
  intervals (:func:`dnabird.tasks.classification_metrics.classification_report`).

Predicting files (FASTA, BED + genome, VCF) is :mod:`dnabird.predict`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dnabird.errors import InputError
from dnabird.model.config import STRAND_MODES

if TYPE_CHECKING:
    from dnabird.data.labelled import LabelledSequences
    from dnabird.model import BigBirdForSequenceClassification
    from dnabird.tokenizer import DNATokenizer

HEADS = ("BigBirdForSequenceClassification", "BigBirdForMultiLabelClassification")
"""The heads a :class:`Classifier` runs: one class per sequence, or independent labels."""


@dataclass
class Classifier:
    """A classifier ready to predict: ``model`` (eval mode, on ``device``), its
    ``tokenizer``, ``classes`` (output order: class names, or feature ids of a multi-label
    model), the fixed ``window`` in tokens, ``truncate`` (cut longer sequences instead of
    refusing them) and ``average_strands`` (average each sequence's and its reverse
    complement's probabilities: the run's ``data.`` or ``multilabel.average_strands``)."""

    model: BigBirdForSequenceClassification
    tokenizer: DNATokenizer
    classes: tuple[str, ...]
    window: int
    truncate: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "model"
    """Where the model came from (for messages)."""
    average_strands: bool = False
    window_bp: int | None = None
    """The bp of sequence the model was trained on per window (None: not recorded)."""
    precision: str = "32-true"
    """What the forward passes run at (:data:`~dnabird.model.config.INFERENCE_PRECISIONS`):
    float32, or bfloat16 matrix products under autocast (``bf16-mixed``)."""
    threshold: float = 0.5
    """Two classes: a sequence is called ``classes[1]`` when P(``classes[1]``) is above it
    (the run's ``early_stopping.threshold``, e.g. chosen on the validation split)."""

    def strand_mode(self, rc: str | None = None) -> str:
        """How predictions combine both strands: ``rc`` (one of
        :data:`~dnabird.model.config.STRAND_MODES`), or by default ``mean`` for a model
        trained with ``average_strands``, else ``none``."""
        return rc if rc is not None else ("mean" if self.average_strands else "none")

    @property
    def multilabel(self) -> bool:
        """Independent labels (sigmoid per output) rather than one class (softmax)."""
        from dnabird.model import BigBirdForMultiLabelClassification

        return isinstance(self.model, BigBirdForMultiLabelClassification)

    @classmethod
    def load(
        cls, folder: str | os.PathLike, device: str | None = None, precision: str = "32-true"
    ) -> Classifier:
        """Open a fine-tuned model folder (files checked against its manifest) on ``device``
        (``cpu``, ``cuda``, ``cuda:N``; None: CUDA when available), predicting at
        ``precision`` (``32-true`` or ``bf16-mixed``). InputError when the folder holds no
        sequence classifier (e.g. a pretrained masked LM)."""
        from dnabird.manifest import read_manifest
        from dnabird.model.pretrained import (
            check_precision,
            for_inference,
            load_model,
            load_tokenizer,
            resolve_device,
            stored_head,
        )

        chosen = resolve_device(device)
        check_precision(precision)
        folder = Path(folder)
        head = stored_head(folder)
        manifest = read_manifest(folder) if (folder / "manifest.json").is_file() else {}
        if head not in HEADS or not manifest.get("classes") or not manifest.get("max_length"):
            raise InputError(
                f"{folder}: not a fine-tuned classifier (it holds a {head}"
                f"{'' if manifest.get('classes') else ' and records no classes'}); give the "
                "model folder of a `dnabird finetune` run (OUT/model)"
            )
        model = load_model(folder, head)
        tokenizer = load_tokenizer(folder, verify=False)  # load_model checked every file
        return cls(
            for_inference(model, chosen, precision),
            tokenizer,
            tuple(manifest["classes"]),
            int(manifest["max_length"]),
            bool(manifest.get("truncate", False)),
            chosen,
            str(folder),
            bool(manifest.get("average_strands", False)),
            manifest.get("window_bp"),
            precision,
            float(manifest.get("threshold", 0.5)),
        )

    def windows(
        self, sequences: Sequence[str], names: Sequence[str] | None = None, source: str = "input"
    ) -> np.ndarray:
        """Token windows ``int32 [N, window]`` of ``sequences`` (InputError naming
        ``names[i]`` in ``source`` for one longer than the window, unless ``truncate``)."""
        from dnabird.data.classification import pad_to_window, tokenize

        return pad_to_window(
            tokenize(self.tokenizer, sequences),
            self.window,
            truncate=self.truncate,
            names=names,
            source=source,
        )

    def probabilities(
        self,
        sequences: Sequence[str],
        names: Sequence[str] | None = None,
        source: str = "input",
        batch_size: int = 64,
        rc: str | None = None,
    ) -> np.ndarray:
        """Probabilities ``float64 [N, K]`` (columns in :attr:`classes` order; see the module
        docstring), in batches of ``batch_size``; both strands combined as
        :meth:`strand_mode` of ``rc`` says. InputError if the model gives a non-finite
        value."""
        from dnabird.genome.fasta import reverse_complements

        mode = self.strand_mode(rc)
        strands = [self.windows(sequences, names, source)]
        if mode != "none":
            reverse_names = [f"{n} (reverse strand)" for n in names] if names else None
            strands.append(self.windows(reverse_complements(sequences), reverse_names, source))
        out = []
        for start in range(0, len(strands[0]), batch_size):
            parts = [self.window_probabilities(w[start : start + batch_size]) for w in strands]
            out.append(combine_strands(parts, mode))
        return np.concatenate(out) if out else np.empty((0, len(self.classes)))

    @torch.no_grad()
    def window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities ``float64 [B, K]`` of one batch of token windows ``int [B, L]``
        (the model in eval mode; its previous mode is restored). InputError if the model
        gives a non-finite value."""
        from dnabird.data.classification import batch_tensors
        from dnabird.model.pretrained import inference_autocast

        batch = batch_tensors(windows)
        was_training = self.model.training
        self.model.eval()
        try:
            with inference_autocast(self.device, self.precision):
                logits = self.model(
                    batch["input_ids"].to(self.device),
                    batch["attention_mask"].to(self.device),
                    cls_only=True,  # the head reads [CLS]: the last layer computes it alone
                ).logits.double()
        finally:
            self.model.train(was_training)
        if self.multilabel:
            result = torch.sigmoid(logits).cpu().numpy()
        else:
            result = torch.softmax(logits, dim=-1).cpu().numpy()
        if not np.isfinite(result).all():
            raise InputError(
                f"{self.source}: the model gives non-finite outputs (NaN or inf); its weights "
                "are broken: export or train it again"
            )
        return result


def combine_strands(parts: Sequence[np.ndarray], mode: str) -> np.ndarray:
    """One prediction from the forward strand's ``parts[0]`` and, when given, the reverse
    complement's ``parts[1]`` (same shape), as ``mode`` says
    (:data:`~dnabird.model.config.STRAND_MODES`)."""
    if mode == "none" or len(parts) == 1:
        return parts[0]
    if mode == "mean":
        return (parts[0] + parts[1]) / 2
    if mode == "max":
        return np.maximum(parts[0], parts[1])
    raise ValueError(f"unknown strand mode {mode!r}; choose from {', '.join(STRAND_MODES)}")


def scores(probabilities: np.ndarray) -> np.ndarray:
    """What :func:`~dnabird.tasks.classification_metrics.classification_report` scores:
    P(class 1) ``[N]`` for two classes, else the probabilities ``[N, K]``."""
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def evaluate_classifier(
    classifier: Classifier,
    rows: LabelledSequences,
    *,
    batch_size: int = 64,
    resamples: int = 1000,
    seed: int = 0,
    rc: str | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score ``classifier`` on labelled ``rows`` (their classes must be the classifier's;
    two classes split at its ``threshold``; strands combined as ``rc`` says, see
    :meth:`Classifier.probabilities`): ``(report, probabilities [N, K])``, the report a
    :func:`~dnabird.tasks.classification_metrics.classification_report` with 95% bootstrap
    intervals (``resamples``, ``seed``)."""
    from dnabird.tasks.classification_metrics import classification_report

    if tuple(rows.classes) != tuple(classifier.classes):
        raise InputError(
            f"{rows.source}: classes {list(rows.classes)} differ from the model's "
            f"{list(classifier.classes)}; read the file with the model's classes"
        )
    probabilities = classifier.probabilities(rows.sequences, rows.ids, rows.source, batch_size, rc)
    report = classification_report(
        rows.labels,
        scores(probabilities),
        classifier.classes,
        resamples=resamples,
        seed=seed,
        threshold=classifier.threshold,
    )
    return report, probabilities
