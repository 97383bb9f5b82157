"""Multi-label (chromatin-profile) fine-tuning data: files -> splits -> windows of both strands.

Data path::

    data.train / validation / test          a make-dataset folder (its train/validation/
                                            test shards), a multi-label Parquet file,
                                            a DeepSEA CSV or .mat file (dnabird.data.deepsea)
      -> features: named by the data, or by multilabel.names; multilabel.features selects
      -> splits: a folder's own, a split column, files given for validation/test, or drawn
         from train by sequence identity with data.split (chromatin windows overlap their
         neighbours: drawing random windows leaks; make-dataset splits by region instead)
      -> tokens of each sequence AND of its reverse complement (tokens are not
         strand-symmetric), [CLS] ... [SEP], padded to one fixed window
      -> WindowedSplit (dnabird.data.classification): labels uint8 [N, F], reverse windows

Batches are :mod:`dnabird.data.classification`'s (:class:`WindowBatches`,
:class:`ClassificationDataModule`): training shows each window as one strand chosen by a
seeded coin (``multilabel.reverse_complement``); validation carries both strands for
averaging (``multilabel.average_strands``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dnabird.data.classification import WindowedSplit, fractions_to_draw, pad_to_window, tokenize
from dnabird.data.multilabel import Features, MultiLabelExamples
from dnabird.data.splits import SPLITS, split_by_identity
from dnabird.errors import ConfigError, InputError
from dnabird.genome.fasta import reverse_complements

if TYPE_CHECKING:
    from dnabird.tasks.finetune_config import ClassificationDataConfig, MultiLabelSection
    from dnabird.tokenizer import DNATokenizer

log = logging.getLogger(__name__)

FORMATS = ("dataset",)
"""``data.format`` values of ``task: multilabel`` besides ``auto`` (a folder is a
``make-dataset`` dataset; a file's format goes by its extension: ``.parquet``, ``.csv``,
``.tsv`` (optionally ``.gz``), ``.mat``)."""


def streams(path: str | Path) -> bool:
    """Whether a training input is streamed rather than read: a DeepSEA ``.mat`` file
    (``train.mat`` holds 4.4 million examples)."""
    return Path(path).suffix.lower() == ".mat"


@dataclass
class MultiLabelSplits:
    """The run's examples by split (``train``, ``validation``, ``test``; a missing split is
    empty), their ``features`` (the selected ones; ``feature_index``: their columns in the
    data) and ``drawn`` (``{"fractions", "seed"}`` when the splits were drawn from
    ``data.train``, else None). ``streamed``: the number of training examples when they
    are streamed from ``source`` (a ``.mat`` file: the ``train`` part is then empty), else
    None."""

    parts: dict[str, MultiLabelExamples]
    features: Features
    feature_index: np.ndarray
    drawn: dict[str, Any] | None
    source: str
    streamed: int | None = None

    def part(self, name: str) -> MultiLabelExamples:
        return self.parts[name]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {"examples": N}}``."""
        counts = {name: {"examples": len(part)} for name, part in self.parts.items()}
        if self.streamed is not None:
            counts["train"]["examples"] = self.streamed
        return counts

    def positives(self) -> dict[str, dict[str, int]]:
        """``{split: {feature id: examples labelled 1}}`` (not of a streamed training set:
        counting them would read it whole)."""
        ids = self.features.ids
        return {
            name: dict(zip(ids, part.labels.sum(axis=0).tolist(), strict=True))
            for name, part in self.parts.items()
            if not (name == "train" and self.streamed is not None)
        }


def read_examples(
    path: str | Path, format: str = "auto", features: Features | None = None
) -> MultiLabelExamples | dict[str, MultiLabelExamples]:
    """Examples of one input: a ``make-dataset`` folder gives ``{split: examples}``; a
    file gives its examples (``features``: names for a file that has none, e.g. DeepSEA
    CSV)."""
    from dnabird.data.deepsea import read_multilabel
    from dnabird.data.peak_dataset import read_dataset

    path = Path(path)
    if format == "dataset" or (format == "auto" and path.is_dir()):
        return read_dataset(path)
    return read_multilabel(path, features=features)


def load_multilabel_splits(
    data: ClassificationDataConfig, section: MultiLabelSection, seed: int
) -> MultiLabelSplits:
    """Read ``data``'s inputs, name and select the features, assign splits (module
    docstring). Every split must hold the same features; the training split must not be
    empty."""
    from dnabird.data.deepsea import read_feature_names, select_features

    names = read_feature_names(section.names) if section.names is not None else None
    streamed = None
    if streams(data.train):
        from dnabird.data.deepsea import DeepSEAFile

        with DeepSEAFile(data.train, names) as handle:
            streamed, features = len(handle), handle.features
        empty = MultiLabelExamples([], np.zeros((0, len(features))), features, str(data.train))
        parts, drawn = {"train": empty}, None
    else:
        train = read_examples(data.train, data.format, names)
        if isinstance(train, dict):
            parts = {name: train.get(name) for name in SPLITS}
            drawn = None
        else:
            parts, drawn = _split(train, data, seed)
    for name in ("validation", "test"):
        path = getattr(data, name)
        if path is not None:
            given = read_examples(path, data.format, names)
            if isinstance(given, dict):
                raise ConfigError(f"data.{name}={path}: a dataset folder; give it as data.train")
            parts[name] = given
    reference = parts["train"]
    if reference is None or not (len(reference) or streamed):
        raise InputError(f"{data.train}: the training split is empty")
    index = select_features(reference.features, section.features)
    features = reference.features.subset(index)
    out = {}
    for name in SPLITS:
        part = parts.get(name)
        if part is None:
            part = MultiLabelExamples(
                [], np.zeros((0, len(reference.features))), reference.features
            )
        if part.features.ids != reference.features.ids:
            raise InputError(
                f"{part.source}: its features ({len(part.features)}, first "
                f"{part.features.ids[:2]}) differ from the training data's "
                f"({len(reference.features)}, first {reference.features.ids[:2]})"
            )
        out[name] = part.select_features(index)
    return MultiLabelSplits(out, features, index, drawn, str(data.train), streamed)


def _split(
    examples: MultiLabelExamples, data: ClassificationDataConfig, seed: int
) -> tuple[dict[str, MultiLabelExamples | None], dict[str, Any] | None]:
    """Split one file's examples: by its ``split`` column, or drawn by sequence identity
    (the fractions of splits given as files go to training)."""
    if "split" in examples.columns:
        column = np.asarray([str(v) for v in examples.columns["split"]])
        unknown = sorted(set(column) - set(SPLITS))
        if unknown:
            raise InputError(
                f"{examples.source}: split column holds {unknown[:3]}; use {', '.join(SPLITS)}"
            )
        return {name: examples.subset(column == name) for name in SPLITS}, None
    fractions = fractions_to_draw(data)
    if fractions[1] == fractions[2] == 0:
        return {"train": examples, "validation": None, "test": None}, None
    log.warning(
        "%s: splits drawn at random by sequence identity; overlapping genome windows in two "
        "splits leak (make-dataset splits by region)",
        examples.source,
    )
    split = split_by_identity(
        examples.sequences, np.zeros(len(examples), np.int64), fractions, seed
    )
    parts = {name: examples.subset(split == name) for name in SPLITS}
    return parts, {"fractions": fractions, "seed": seed}


Strands = tuple[list[list[int]], list[list[int]] | None]
"""Token ids of each sequence, and of each reverse complement (or None)."""


def tokenize_strands(
    tokenizer: DNATokenizer, examples: MultiLabelExamples, both_strands: bool
) -> Strands:
    """Token ids (no special tokens) of ``examples``' sequences and, when ``both_strands``,
    of their reverse complements (tokenized on their own: tokens are not
    strand-symmetric)."""
    forward = tokenize(tokenizer, examples.sequences)
    if not both_strands:
        return forward, None
    return forward, tokenize(tokenizer, reverse_complements(examples.sequences))


def windowed_examples(
    examples: MultiLabelExamples, tokens: Strands, window: int, truncate: bool
) -> WindowedSplit:
    """:class:`WindowedSplit` of ``examples`` from their ``tokens``
    (:func:`tokenize_strands`): labels uint8 ``[N, F]``, reverse windows when tokenized."""
    names = [f"row {i + 1}" for i in range(len(examples))]
    forward, backward = tokens
    windows = pad_to_window(forward, window, truncate=truncate, names=names, source=examples.source)
    reverse = None
    if backward is not None:
        reverse = pad_to_window(
            backward,
            window,
            truncate=truncate,
            names=[f"{name} (reverse strand)" for name in names],
            source=examples.source,
        )
    bp = np.fromiter((len(s) for s in examples.sequences), dtype=np.int64, count=len(examples))
    return WindowedSplit(windows, examples.labels, bp, reverse)


def central(sequences: Sequence[str], bp: int | None) -> list[str]:
    """The central ``bp`` bases of each sequence (all of a shorter one; None: all)."""
    if bp is None:
        return list(sequences)
    out = []
    for s in sequences:
        start = max(0, (len(s) - bp) // 2)
        out.append(s[start : start + bp])
    return out
