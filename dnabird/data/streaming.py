"""Multi-label batches streamed from a DeepSEA ``.mat`` file too large to hold in memory.

Data path::

    train.mat (MATLAB v7.3 / HDF5, N examples)    dnabird.data.deepsea.DeepSEAFile
      -> the stream of example rows (0-based), chunk c being rows
         [c * chunk_size, min((c + 1) * chunk_size, N)) (0-based, half-open):
         training: epoch e visits the chunks in a permuted order and each chunk's rows in a
         permuted order, each row as one strand (a coin per row); drawn from (seed, e) only
         (epoch_stream); evaluation: one pass in file order (file_order)
      -> DDP rank r takes every world_size-th row of the stream, in batches; DataLoader
         workers take batches in turn                                 (deal_batches)
      -> a worker reads the chunk holding its batch's rows (one chunk in memory at a time),
         reverse-complements the rows whose coin says so, tokenizes, pads to the window
      -> batches (dnabird.data.classification.batch_tensors): input_ids, attention_mask
         [B, L] int64, labels float32 [B, F], bp int64 [B]; in evaluation with
         ``reverse``, reverse_input_ids and reverse_attention_mask [B, L] too

The training order is a pure function of ``(seed, epoch, chunk_size, N)``: a resumed run
skips the batches it consumed and continues exactly, whatever the number of DataLoader
workers; DDP ranks partition the stream. Shuffling is I/O friendly: chunks are read whole
(one hyperslab each), and every example comes once per epoch. Memory per worker is one
chunk, whatever ``N``: at its peak (the one-hot slab being decoded) about 12 KB per example
of 1,000 bp with 919 labels, ~50 MB for 4,096. Each worker reads every chunk in which it
has a batch (all of them when batches are much smaller than chunks) and tokenizes only its
own batches: with 1,000 bp, ~0.04 ms per example to read and decode and ~0.1 ms to
tokenize on one core, so ``W`` workers give about ``1 / (0.04 + 0.1 / W)`` examples per ms
(W = 1: ~7,000/s, 4: ~15,000/s; at most ~25,000/s).

:class:`StreamingWindowBatches` is the dataset; :class:`StreamingDataModule` feeds
Lightning with it and an in-memory validation split (DeepSEA's ``valid.mat``: 8,000
examples).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from dnabird.data.classification import (
    ClassificationDataModule,
    WindowedSplit,
    batch_loader,
    batch_tensors,
    pad_to_window,
    tokenize,
    worker_batches,
)
from dnabird.genome.fasta import reverse_complements

if TYPE_CHECKING:
    from dnabird.data.deepsea import DeepSEAFile
    from dnabird.tokenizer import DNATokenizer

DEFAULT_CHUNK_SIZE = 4096
"""Examples per chunk: one read of the file, the unit of shuffling and of memory."""


# ----------------------------------------------------------------------------- the stream
def chunk_bounds(n: int, chunk_size: int, chunk: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` (0-based, half-open) of chunk ``chunk`` of ``n`` examples."""
    start = chunk * chunk_size
    return start, min(start + chunk_size, n)


def epoch_stream(
    n: int, chunk_size: int, seed: int, epoch: int, coins: bool = False
) -> Iterator[np.ndarray]:
    """Epoch ``epoch``'s training order of ``n`` examples, one int64 array per chunk, each
    row coded ``2 * row + strand`` (strand 1: the reverse complement).

    The chunks come in the order of ``default_rng([seed, epoch, 1]).permutation``; chunk
    ``c``'s rows in the order of ``default_rng([seed, epoch, c, 2]).permutation``; with
    ``coins``, row ``start + j`` of chunk ``c`` is reversed where
    ``default_rng([seed, epoch, c, 3]).integers(0, 2, size)[j]`` is 1 (a coin per
    (seed, epoch, row) for a given ``chunk_size``), else every strand is 0. (Each key ends
    in a distinct non-zero tag: numpy's SeedSequence ignores trailing zeros, so
    ``[s, e, 0]`` would draw what ``[s, e]`` draws.) Memory: one chunk's arrays."""
    chunks = math.ceil(n / chunk_size)
    for c in np.random.default_rng([seed, epoch, 1]).permutation(chunks).tolist():
        start, stop = chunk_bounds(n, chunk_size, c)
        local = np.random.default_rng([seed, epoch, c, 2]).permutation(stop - start)
        strands = 0
        if coins:
            strands = np.random.default_rng([seed, epoch, c, 3]).integers(0, 2, stop - start)
            strands = strands[local]
        yield 2 * (start + local) + strands


def file_order(n: int, chunk_size: int) -> Iterator[np.ndarray]:
    """Rows ``0 .. n-1`` in file order, coded ``2 * row`` (forward strand), one int64 array
    per chunk."""
    for start in range(0, n, chunk_size):
        yield 2 * np.arange(start, min(start + chunk_size, n), dtype=np.int64)


# ----------------------------------------------------------------------------- batches
class _ChunkReader:
    """Rows of an open :class:`DeepSEAFile`, read one whole chunk at a time (the chunk of
    the latest rows is kept: a stream visits each chunk's rows together)."""

    def __init__(self, data: DeepSEAFile, chunk_size: int) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self._chunk = -1
        self._examples = None

    def take(self, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Sequences and labels uint8 [n, F] of ``rows`` (0-based), in that order."""
        chunks = rows // self.chunk_size
        sequences: list[str] = []
        labels = []
        for part in np.split(np.arange(len(rows)), np.flatnonzero(np.diff(chunks)) + 1):
            chunk = int(chunks[part[0]])
            if chunk != self._chunk:
                self._examples = None  # free the old chunk before reading the new one
                start, stop = chunk_bounds(len(self.data), self.chunk_size, chunk)
                self._examples = self.data.read(start, stop)
                self._chunk = chunk
            local = rows[part] - chunk * self.chunk_size
            sequences.extend(self._examples.sequences[i] for i in local.tolist())
            labels.append(self._examples.labels[local])
        return sequences, np.concatenate(labels)


@dataclass(kw_only=True)
class StreamingWindowBatches(IterableDataset):
    """Batches of a DeepSEA ``.mat`` file read lazily (dicts of :func:`batch_tensors`; see
    the module docstring).

    ``path``: the file (MATLAB v7.3 is read one chunk at a time; a v5 file is loaded whole
    by :class:`DeepSEAFile` at the first read); ``tokenizer`` and ``window`` (tokens) make
    the windows, ``[CLS] ids [SEP]`` padded (:func:`pad_to_window`; a sequence longer than
    the window is an InputError naming its 0-based row, unless ``truncate``);
    ``features``: the label columns to keep (int indices into the file's ``F``; None: all).

    ``train``: an endless stream, epoch ``e`` in :func:`epoch_stream`'s order, each row
    as one strand: the reverse complement (tokenized on its own) where ``reverse`` and its
    coin say so; full batches only; ``skip_batches`` of this rank's batches skipped
    (resume). Otherwise one pass in file order (the last batch may be short), with both
    strands in each batch when ``reverse``. Rank ``rank`` of ``world_size`` takes every
    ``world_size``-th row of the stream; DataLoader workers take batches in turn
    (:func:`deal_batches`).

    The file is opened (and closed) here to check it, and opened again by each iteration,
    i.e. inside each DataLoader worker: no HDF5 handle crosses a fork.
    """

    path: str | Path
    tokenizer: DNATokenizer
    window: int
    batch_size: int
    train: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    skip_batches: int = 0
    reverse: bool = False
    truncate: bool = False
    features: np.ndarray | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    num_examples: int = field(init=False)
    """N, the examples in the file."""

    def __post_init__(self) -> None:
        from dnabird.data.deepsea import DeepSEAFile

        IterableDataset.__init__(self)
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ValueError(
                f"batch_size and chunk_size must be >= 1, got {self.batch_size}, {self.chunk_size}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside [0, world_size={self.world_size})")
        with DeepSEAFile(self.path) as data:
            self.num_examples = len(data)
            count = data.num_features
        if self.features is not None:
            self.features = np.asarray(self.features, dtype=np.int64)
            outside = (self.features < 0) | (self.features >= count)
            if self.features.ndim != 1 or outside.any():
                raise ValueError(f"features must be column indices in [0, {count})")

    def _stream(self) -> Iterator[np.ndarray]:
        n, size = self.num_examples, self.chunk_size
        if not self.train:
            return file_order(n, size)
        epochs = (epoch_stream(n, size, self.seed, e, self.reverse) for e in itertools.count())
        return itertools.chain.from_iterable(epochs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        from dnabird.data.deepsea import DeepSEAFile

        batches = worker_batches(
            self._stream(),
            self.batch_size,
            rank=self.rank,
            world_size=self.world_size,
            skip_batches=self.skip_batches if self.train else 0,
            train=self.train,
        )
        with DeepSEAFile(self.path) as data:
            reader = _ChunkReader(data, self.chunk_size)
            for codes in batches:
                rows, strands = codes // 2, codes % 2 == 1
                sequences, labels = reader.take(rows)
                if self.features is not None:
                    labels = labels[:, self.features]
                yield self._batch(rows, strands, sequences, labels)

    def _batch(
        self, rows: np.ndarray, strands: np.ndarray, sequences: list[str], labels: np.ndarray
    ) -> dict[str, torch.Tensor]:
        names = [f"example {row} (0-based)" for row in rows.tolist()]
        bp = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        shown = list(sequences)
        flipped = np.flatnonzero(strands).tolist()
        for i, text in zip(flipped, reverse_complements([shown[i] for i in flipped]), strict=True):
            shown[i] = text
            names[i] += " (reverse strand)"
        both = None
        if not self.train and self.reverse:
            both = self._windows(
                reverse_complements(sequences), [f"{n} (reverse strand)" for n in names]
            )
        return batch_tensors(self._windows(shown, names), labels, bp, both)

    def _windows(self, sequences: Sequence[str], names: list[str]) -> np.ndarray:
        return pad_to_window(
            tokenize(self.tokenizer, sequences),
            self.window,
            truncate=self.truncate,
            names=names,
            source=str(self.path),
        )


class StreamingDataModule(ClassificationDataModule):
    """Training batches streamed from a DeepSEA ``.mat`` file
    (:class:`StreamingWindowBatches`), validation from an in-memory :class:`WindowedSplit`
    (one pass every validation, as :class:`ClassificationDataModule` does).

    The training loader resumes exactly: it skips ``trainer.global_step x
    accumulate_grad_batches`` batches of the stream, the number a restored run consumed.
    ``reverse``: reverse-complement augmentation in training (the validation split carries
    its own reverse windows, or not); ``features``, ``truncate``, ``chunk_size`` as in
    :class:`StreamingWindowBatches`.
    """

    def __init__(
        self,
        train_path: str | Path,
        validation: WindowedSplit | None,
        tokenizer: DNATokenizer,
        window: int,
        batch_size: int,
        seed: int,
        *,
        reverse: bool = False,
        truncate: bool = False,
        features: np.ndarray | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        num_workers: int = 0,
    ) -> None:
        super().__init__(None, validation, batch_size, seed, num_workers)
        self.train_path = train_path
        self.tokenizer = tokenizer
        self.window = window
        self.reverse = reverse
        self.truncate = truncate
        self.features = features
        self.chunk_size = chunk_size

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        dataset = StreamingWindowBatches(
            path=self.train_path,
            tokenizer=self.tokenizer,
            window=self.window,
            batch_size=self.batch_size,
            train=True,
            seed=self.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            skip_batches=trainer.global_step * trainer.accumulate_grad_batches,
            reverse=self.reverse,
            truncate=self.truncate,
            features=self.features,
            chunk_size=self.chunk_size,
        )
        return batch_loader(dataset, self.num_workers, self.seed)
