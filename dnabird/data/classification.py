"""Sequence-classification data: labelled files -> splits -> fixed token windows -> batches.

Data path::

    data.train / validation / test files       (dnabird.data.labelled.read_labelled)
      -> negatives for positives-only files    (dnabird.data.negatives; one per positive,
         negative i of the run's positives seeded by (seed, i); it goes to its positive's
         split)
      -> splits: the files' own (validation/test files, a split column) or drawn from
         data.train by sequence identity       (dnabird.data.splits.split_by_identity)
      -> with data.negative_draws = K > 1: K - 1 more negatives per training positive,
         each draw beside its own copy of the positives (ids ``<id>|draw<k>``)
      -> with data.reverse_complement: every training row's reverse complement, same label
         (ids ``<id>|reverse``)
      -> tokens with the model folder's tokenizer, [CLS] ... [SEP]
      -> every sequence padded to ONE window of max_length tokens (block-sparse attention
         depends on the padded length, so a sequence's output must not depend on the other
         sequences of its batch: one fixed length makes it so)
      -> batches: input_ids, attention_mask [B, L] int64, labels [B] int64, bp [B] int64

:func:`load_splits` makes the labelled rows with their split; :func:`tokenize`,
:func:`default_window` and :func:`pad_to_window` make the windows (also used at prediction
time with the window stored in the model folder); :class:`WindowBatches` and
:class:`ClassificationDataModule` feed Lightning. Training batches are an endless stream,
epoch ``e`` a permutation seeded by ``(seed, e)``, dealt to DDP ranks in turn: a pure
function of the seed, so a resumed run skips the batches it consumed and continues exactly,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dnabird.data.labelled import LabelledSequences, concatenate, read_labelled
from dnabird.data.mlm import _ignore_interrupts
from dnabird.data.negatives import promoter_negatives
from dnabird.data.splits import SPLITS, split_by_identity, split_counts
from dnabird.errors import ConfigError, InputError
from dnabird.genome.fasta import reverse_complements
from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID

if TYPE_CHECKING:
    from dnabird.tasks.finetune_config import ClassificationDataConfig
    from dnabird.tokenizer import DNATokenizer

log = logging.getLogger(__name__)

NEGATIVE_CLASS = "negative"
"""Name of the negatives' class when ``data.classes`` is not given (``[negative, label]``)."""


# ----------------------------------------------------------------------------- splits
@dataclass
class LabelledSplits:
    """The run's labelled rows, each in a split.

    ``rows``: every row (``rows.split`` is a str array [N] of ``train``/``validation``/
    ``test``); ``negatives``: what was made (``{"scheme", "seed", "made"}``, or
    ``{"file": path, "rows"}``), None without negatives; ``drawn``: whether the splits were
    drawn from ``data.train`` (``{"fractions", "seed"}``) or None when every split came
    with the data.
    """

    rows: LabelledSequences
    negatives: dict[str, Any] | None
    drawn: dict[str, Any] | None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.rows.classes

    def part(self, name: str) -> LabelledSequences:
        """The rows of split ``name`` (in file order)."""
        return self.rows.subset(self.rows.split == name)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: rows}}`` (:func:`dnabird.data.splits.split_counts`)."""
        return split_counts(self.rows.split, self.rows.labels, self.classes)


def load_splits(data: ClassificationDataConfig, seed: int) -> LabelledSplits:
    """Read ``data``'s files, add negatives, assign splits (see the module docstring).

    ``data.train`` goes to the splits its ``split`` column names, else is split by identity
    with ``data.split`` fractions (the fractions of splits given as files go to training);
    ``data.validation`` and ``data.test`` are those splits. Every class must be in the
    training split, and in the validation and test splits when they are not empty
    (InputError otherwise: metrics of a split without a class are undefined).
    """
    classes = _declared_classes(data)
    scheme = data.scheme
    made = 0

    def read(path: str, key: str) -> LabelledSequences:
        try:
            return read_labelled(
                path,
                format=data.format,
                label=data.label,
                classes=classes,
                labels_file=data.labels_file,
                label_field=data.label_field,
            )
        except ConfigError as err:  # e.g. a format the name does not tell: name the key
            raise ConfigError(f"data.{key}: {err}") from None

    def with_negatives(positives: LabelledSequences) -> LabelledSequences:
        nonlocal made
        if scheme is None:
            return positives
        negative = 1 - positives.classes.index(data.label)
        try:
            sequences = promoter_negatives(positives.sequences, scheme, seed, first_index=made)
        except InputError as err:  # counted over the run's positives: name the file too
            raise InputError(f"{positives.source}: {scheme} negatives: {err}") from None
        made += len(sequences)
        negatives = LabelledSequences(
            ids=[f"{name}|{scheme}" for name in positives.ids],
            sequences=sequences,
            labels=np.full(len(sequences), negative, dtype=np.int64),
            classes=positives.classes,
            source=f"{scheme} negatives of {positives.source}",
            split=positives.split,
        )
        return concatenate([positives, negatives])

    train = read(data.train, "train")
    if classes is None:
        classes = train.classes  # the given files must then hold these classes
    parts = []
    drawn = None
    if data.negatives_file is not None:
        negative = [c for c in classes if c != data.label]
        file_negatives = read_labelled(
            data.negatives_file, format=data.format, label=negative[0], classes=classes
        )
        pool = concatenate([train, file_negatives])
    else:
        pool = train
    if pool.split is None:
        fractions = fractions_to_draw(data)
        if fractions[1] == fractions[2] == 0:  # nothing to draw
            pool = with_negatives(pool.with_split("train"))
        else:
            pool = with_negatives(pool)
            # a negative shares 8 of 20 parts with its positive (shuffle: every base): the
            # pair is related and goes to one split
            pairs = np.tile(np.arange(len(pool) // 2), 2) if scheme is not None else None
            split = split_by_identity(pool.sequences, pool.labels, fractions, seed, pairs)
            pool = _with_splits(pool, split)
            drawn = {"fractions": fractions, "seed": seed}
    else:
        pool = with_negatives(pool)
    parts.append(pool)
    for name, key in (("validation", "validation"), ("test", "test")):
        path = getattr(data, key)
        if path is not None:
            parts.append(with_negatives(read(path, key).with_split(name)))
    rows = concatenate(parts)
    if scheme is not None and data.negative_draws > 1:
        positive = rows.classes.index(data.label)
        # more draws for the training positives, each draw with its own copy of them
        training = rows.subset((rows.split == "train") & (rows.labels == positive))
        for draw in range(1, data.negative_draws):
            ids = [f"{name}|draw{draw}" for name in training.ids]
            copies = dataclasses.replace(training, ids=ids, source=train.source)
            rows = concatenate([rows, with_negatives(copies)])
    if data.reverse_complement:
        training = rows.subset(rows.split == "train")
        flipped = dataclasses.replace(
            training,
            ids=[f"{name}|reverse" for name in training.ids],
            sequences=reverse_complements(training.sequences),
            source=f"reverse complements of {train.source}",
        )
        rows = concatenate([rows, flipped])
    if scheme is not None:
        negatives = {"scheme": scheme, "seed": seed, "made": made, "draws": data.negative_draws}
    elif data.negatives_file is not None:
        negatives = {"file": data.negatives_file, "rows": len(file_negatives)}
    else:
        negatives = None
    splits = LabelledSplits(rows, negatives, drawn)
    _check_classes(splits, data)
    _warn_shared_sequences(splits)
    return splits


def fractions_to_draw(data: ClassificationDataConfig) -> list[float]:
    """``data.split`` with the share of each split given as a file (``data.validation``,
    ``data.test``) moved to training: the fractions to draw from ``data.train``."""
    fractions = list(data.split)
    for k, given in ((1, data.validation), (2, data.test)):
        if given is not None:
            fractions[0], fractions[k] = round(fractions[0] + fractions[k], 12), 0.0
    return fractions


def _declared_classes(data: ClassificationDataConfig) -> list[str] | None:
    """``data.classes``; with negatives and no classes, ``[negative, label]``."""
    if data.classes is not None:
        return list(data.classes)
    if data.negatives is not None:
        if data.label == NEGATIVE_CLASS:
            raise ConfigError(
                f"data.label={data.label}: is the negatives' default class name; name the "
                "positives otherwise, or give data.classes"
            )
        return [NEGATIVE_CLASS, data.label]
    return None


def _with_splits(rows: LabelledSequences, split: np.ndarray) -> LabelledSequences:
    return dataclasses.replace(rows, split=np.asarray(split, dtype=str))


def _check_classes(splits: LabelledSplits, data: ClassificationDataConfig) -> None:
    counts = splits.counts()
    for name in SPLITS:
        per_class = counts[name]
        if name != "train" and not sum(per_class.values()):
            continue
        missing = [c for c, n in per_class.items() if n == 0]
        if missing:
            what = "training" if name == "train" else name
            hint = (
                "add data.negatives or files with the other classes"
                if data.label is not None and data.negatives is None
                else "give more examples, or other data.split fractions / files"
            )
            raise InputError(
                f"{splits.rows.source}: the {what} split has no example of class "
                f"{', '.join(repr(c) for c in missing)} (split counts {per_class}); {hint}"
            )


def _warn_shared_sequences(splits: LabelledSplits) -> None:
    """Splits given with the data may share sequences (drawn ones never do): say how many."""
    seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    for sequence, name in zip(splits.rows.sequences, splits.rows.split, strict=True):
        seen[str(name)].add(sequence)
    for a, b in itertools.combinations(SPLITS, 2):
        shared = len(seen[a] & seen[b])
        if shared:
            log.warning(
                "%d distinct sequences are both in the %s and the %s split (as given by the "
                "data files)",
                shared,
                a,
                b,
            )


# ----------------------------------------------------------------------------- windows
def tokenize(tokenizer: DNATokenizer, sequences: Sequence[str]) -> list[list[int]]:
    """Token ids of each sequence, without special tokens."""
    return tokenizer.encode_batch(list(sequences))


def default_window(longest: int, block_size: int, max_positions: int) -> int:
    """The fixed window for sequences of at most ``longest`` tokens: ``longest + 2``
    (``[CLS]``, ``[SEP]``) rounded up to a multiple of ``block_size``, at most
    ``max_positions``."""
    return min(max_positions, math.ceil((longest + 2) / block_size) * block_size)


def pad_to_window(
    token_ids: Sequence[Sequence[int]],
    window: int,
    *,
    truncate: bool = False,
    names: Sequence[str] | None = None,
    source: str = "input",
) -> np.ndarray:
    """``[CLS] ids [SEP]`` of each sequence, padded with ``[PAD]`` to ``window`` tokens:
    int32 [N, window]. A sequence longer than the window keeps its first ``window - 2``
    tokens with ``truncate``; otherwise it is an InputError naming it (``names[i]`` in
    ``source``)."""
    windows = np.full((len(token_ids), window), PAD_ID, dtype=np.int32)
    room = window - 2
    for i, ids in enumerate(token_ids):
        if len(ids) > room:
            if not truncate:
                name = names[i] if names is not None else f"sequence {i}"
                raise InputError(
                    f"{source}: {name} has {len(ids) + 2} tokens, more than the window of "
                    f"{window}; use a larger window (data.max_length, at most the model's "
                    "max_position_embeddings) or truncate (data.truncate=true)"
                )
            ids = ids[:room]
        windows[i, 0] = CLS_ID
        windows[i, 1 : len(ids) + 1] = ids
        windows[i, len(ids) + 1] = SEP_ID
    return windows


def batch_tensors(
    windows: np.ndarray,
    labels: np.ndarray | None = None,
    bp: np.ndarray | None = None,
    reverse: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """A model batch from windows (int [B, L]): ``input_ids`` and ``attention_mask``
    (1 real, 0 padding) int64 [B, L]; when given, ``labels`` (class indices int64 [B], or
    0/1 per feature float32 [B, F]), ``bp`` int64 [B], and the reverse strand's windows as
    ``reverse_input_ids`` and ``reverse_attention_mask`` [B, L]."""
    input_ids = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.int64))
    batch = {"input_ids": input_ids, "attention_mask": (input_ids != PAD_ID).long()}
    if labels is not None:
        labels = np.asarray(labels)
        dtype = np.int64 if labels.ndim == 1 else np.float32
        batch["labels"] = torch.from_numpy(np.ascontiguousarray(labels, dtype=dtype))
    if bp is not None:
        batch["bp"] = torch.from_numpy(np.asarray(bp, dtype=np.int64))
    if reverse is not None:
        other = torch.from_numpy(np.ascontiguousarray(reverse, dtype=np.int64))
        batch["reverse_input_ids"] = other
        batch["reverse_attention_mask"] = (other != PAD_ID).long()
    return batch


@dataclass
class WindowedSplit:
    """One split, tokenized: ``windows`` int32 [N, L]; ``labels`` int64 [N] (class indices)
    or uint8 [N, F] (0/1 per feature); ``bp`` int64 [N] (sequence lengths, for
    throughput); ``reverse``: the windows of the reverse complements int32 [N, L] (tokenized
    on their own: tokens are not strand-symmetric), or None."""

    windows: np.ndarray
    labels: np.ndarray
    bp: np.ndarray
    reverse: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def window_split(
    rows: LabelledSequences,
    token_ids: Sequence[Sequence[int]],
    window: int,
    truncate: bool,
) -> WindowedSplit:
    """:class:`WindowedSplit` of ``rows`` (whose tokens are ``token_ids``)."""
    windows = pad_to_window(
        token_ids, window, truncate=truncate, names=rows.ids, source=rows.source
    )
    bp = np.fromiter((len(s) for s in rows.sequences), dtype=np.int64, count=len(rows))
    return WindowedSplit(windows, rows.labels.astype(np.int64), bp)


# ----------------------------------------------------------------------------- batches
def deal_batches(
    stream: Iterable[np.ndarray],
    batch_size: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    skip_batches: int = 0,
    worker: int = 0,
    workers: int = 1,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """One DataLoader worker's batches of one DDP rank, from a stream of items given as
    consecutive int64 arrays (any lengths).

    Rank ``rank`` takes the stream's items ``rank, rank + world_size, ...`` and groups them
    into batches of ``batch_size`` in order (the last one shorter unless ``drop_last``);
    its first ``skip_batches`` batches are skipped (resume); of the rest, worker ``worker``
    of ``workers`` takes every ``workers``-th, starting with the ``worker``-th (DataLoader
    hands out the workers' batches in that turn, so the batches and their order do not
    depend on the number of workers). Skipped and other workers' batches cost only the
    arithmetic on their items."""

    def ours(k: int) -> bool:
        """Whether this worker takes this rank's batch ``k`` (counted from 0)."""
        return k >= skip_batches and (k - skip_batches) % workers == worker

    seen = 0  # items of the stream so far
    pending = np.zeros(0, dtype=np.int64)  # this rank's items not yet in a batch
    k = 0  # batches of this rank so far
    for piece in stream:
        mine = piece[(rank - seen) % world_size :: world_size]
        seen += len(piece)
        pending = np.concatenate([pending, mine]) if len(pending) else mine
        full = len(pending) // batch_size
        for j in range(full):
            if ours(k):
                yield pending[j * batch_size : (j + 1) * batch_size]
            k += 1
        pending = pending[full * batch_size :]
    if len(pending) and not drop_last and ours(k):
        yield pending


def worker_batches(
    stream: Iterable[np.ndarray],
    batch_size: int,
    *,
    rank: int,
    world_size: int,
    skip_batches: int,
    train: bool,
) -> Iterator[np.ndarray]:
    """:func:`deal_batches` for the DataLoader worker this runs in (all of them in the
    main process), full batches only when ``train``."""
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return deal_batches(
        stream,
        batch_size,
        rank=rank,
        world_size=world_size,
        skip_batches=skip_batches,
        worker=worker,
        workers=workers,
        drop_last=train,
    )


@dataclass
class WindowBatches(IterableDataset):
    """Batches of one split (dicts of :func:`batch_tensors`).

    ``train``: an endless stream; epoch ``e`` visits every row once in the order of
    ``default_rng([seed, e]).permutation``, each row as one strand (the reverse one when
    ``data.reverse`` is given and ``default_rng([seed, e, 1])``'s coin for the row says
    so: reverse-complement augmentation); rank ``r`` of ``world_size`` takes every
    ``world_size``-th row of that stream, in full batches; the first ``skip_batches`` of
    this rank's batches are skipped (resume). Otherwise one pass in file order, rank ``r``
    taking rows ``r, r + world_size, ...`` (the last batch may be short), with both strands
    in each batch when ``data.reverse`` is given. DataLoader
    workers take batches in turn, so the batches and their order do not depend on the
    number of workers.
    """

    data: WindowedSplit
    batch_size: int
    train: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    skip_batches: int = 0

    def __post_init__(self) -> None:
        IterableDataset.__init__(self)

    def _stream(self) -> Iterator[np.ndarray]:
        """The rows in stream order, one int64 array per epoch (one pass when not
        training), each row coded ``2 * row + strand`` (strand 1: the reverse complement)."""
        n = len(self.data)
        if not self.train or not n:
            yield 2 * np.arange(n, dtype=np.int64)
            return
        augment = self.data.reverse is not None
        for e in itertools.count():
            order = np.random.default_rng([self.seed, e]).permutation(n)
            flips = np.random.default_rng([self.seed, e, 1]).integers(0, 2, n) if augment else 0
            yield 2 * order + (flips[order] if augment else 0)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        chunks = worker_batches(
            self._stream(),
            self.batch_size,
            rank=self.rank,
            world_size=self.world_size,
            skip_batches=self.skip_batches,
            train=self.train,
        )
        for chunk in chunks:
            index, reverse = chunk // 2, chunk % 2 == 1
            d = self.data
            windows = d.windows[index]
            if self.train and d.reverse is not None:
                windows[reverse] = d.reverse[index[reverse]]
            both = d.reverse[index] if not self.train and d.reverse is not None else None
            yield batch_tensors(windows, d.labels[index], d.bp[index], both)


def batch_loader(dataset: IterableDataset, num_workers: int, seed: int) -> DataLoader:
    """The DataLoader of a dataset that yields whole batches (:class:`WindowBatches`, the
    streamed ones): ``num_workers`` workers that ignore Ctrl-C (the main process handles
    it), pinned memory with CUDA, and a generator of its own seeded by ``seed``."""
    return DataLoader(
        dataset,
        batch_size=None,  # the dataset yields whole batches
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_ignore_interrupts,
        # its own generator: starting workers must not draw from the global generator
        # (dropout), or validation would break exact resume
        generator=torch.Generator().manual_seed(seed),
    )


class ClassificationDataModule(L.LightningDataModule):
    """Training and validation batches of tokenized splits (:class:`WindowedSplit`).

    The training loader resumes exactly: it skips ``trainer.global_step x
    accumulate_grad_batches`` batches of the stream, the number a restored run consumed.
    Validation is one pass over the whole validation split every validation.
    """

    def __init__(
        self,
        train: WindowedSplit,
        validation: WindowedSplit | None,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.train_split = train
        self.validation_split = validation if validation is not None and len(validation) else None
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    @property
    def val_batches(self) -> int:
        """Batches of one validation pass on one device (0: no validation)."""
        if self.validation_split is None:
            return 0
        return math.ceil(len(self.validation_split) / self.batch_size)

    def _loader(self, data: WindowedSplit, train: bool) -> DataLoader:
        trainer = self.trainer
        skip = trainer.global_step * trainer.accumulate_grad_batches if train else 0
        dataset = WindowBatches(
            data,
            self.batch_size,
            train=train,
            seed=self.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            skip_batches=skip,
        )
        return batch_loader(dataset, self.num_workers, self.seed)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.validation_split is None:
            return []
        return self._loader(self.validation_split, train=False)
