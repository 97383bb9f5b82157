"""Masked-LM training data: token shards -> packed ``[CLS] ... [SEP]`` sequences -> batches.

Data path::

    documents (TokenShards, or any DocumentSource)
      -> units: each shard split into ``parts`` row-interleaved units so that every reader
         (DDP rank x DataLoader worker) gets at least one
      -> per epoch: units shuffled by (seed, epoch) and dealt round-robin to readers;
         documents shuffled by (seed, epoch, unit)
      -> packing: a document's sentences, whole, greedily into bodies of at most
         ``max_length - 2`` tokens (a sentence longer than that is cut); documents are never
         mixed unless ``mix_documents`` (then ``[SEP]`` separates them)
      -> shuffle buffer seeded by (seed, epoch, reader)
      -> masking seeded by the sequence's identity (seed, epoch, shard, row, chunk)
      -> samples of fixed length ``max_length``: ``input_ids``, ``attention_mask``,
         ``labels`` (-100 = not predicted) and ``source`` = (epoch, shard, row, chunk)
         (with ``mix_documents``, row is the unit's part and chunk counts within the unit).

Readers see disjoint units covering each epoch (no duplicates, no gaps). Training streams
are endless (epoch after epoch, each reader at its own pace) so DDP ranks never run dry;
validation streams are one unshuffled pass. The stream is a pure function of the seed, so a
position is just "batches consumed": a resumed run rebuilds the stream and skips them
(:class:`MLMDataModule` takes the count from the restored trainer step).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dnabird.data.masking import MaskingConfig, TokenMasker, sequence_rng
from dnabird.errors import ConfigError
from dnabird.model.config import IGNORE_INDEX
from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID

if TYPE_CHECKING:
    from dnabird.data.tokens import TokenShards
    from dnabird.tasks.pretrain_config import MLMDataConfig
    from dnabird.tokenizer import DNATokenizer

log = logging.getLogger(__name__)


class DocumentLike(Protocol):
    """What packing needs from a document (e.g. ``TokenizedDocument``)."""

    doc_id: str
    chrom: str
    sentence_ids: Sequence[np.ndarray]


class DocumentSource(Protocol):
    """Shards of documents in a fixed order (e.g. ``TokenShards``)."""

    shards: Sequence[Any]

    def iter_shard(self, shard: Any) -> Iterable[DocumentLike]: ...


class InMemoryDocuments:
    """A :class:`DocumentSource` over lists of documents (e.g.
    :class:`~dnabird.data.tokens.TokenizedDocument`), one list per shard."""

    def __init__(self, shards: Sequence[Sequence[DocumentLike]]) -> None:
        self._documents = [list(shard) for shard in shards]
        self.shards = list(range(len(self._documents)))

    def iter_shard(self, shard: int) -> Iterator[DocumentLike]:
        return iter(self._documents[shard])


@dataclass(frozen=True)
class DocumentSplit:
    """Which documents are held out for validation (recorded in the run manifest)."""

    val_chromosomes: tuple[str, ...] = ()
    """Every document on these chromosomes is validation."""
    val_fraction: float = 0.0
    """Also this fraction of the other documents, chosen by a seeded hash of ``doc_id``.
    Documents of different preprocessing passes overlap in sequence, so prefer
    ``val_chromosomes`` (or a held-out FASTA and ``dnabird evaluate-mlm``) for claims."""
    seed: int = 0
    """Seed of the hash behind ``val_fraction``."""

    @property
    def enabled(self) -> bool:
        """Whether any document can be validation."""
        return bool(self.val_chromosomes) or self.val_fraction > 0

    def is_validation(self, doc: DocumentLike) -> bool:
        return self.holds(doc.doc_id, doc.chrom)

    def holds(self, doc_id: str, chrom: str) -> bool:
        """Whether the document ``doc_id`` on ``chrom`` is validation."""
        if chrom in self.val_chromosomes:
            return True
        if self.val_fraction <= 0:
            return False
        digest = hashlib.blake2b(f"{self.seed}:{doc_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64 < self.val_fraction


def pack_sentences(sentences: Iterable[np.ndarray], capacity: int) -> Iterator[np.ndarray]:
    """Greedily pack whole sentences into bodies of at most ``capacity`` tokens.

    A sentence that does not fit in the current body starts a new one; a sentence longer
    than ``capacity`` is cut into ``capacity``-token pieces (its last piece starts a body).
    Concatenating the bodies gives back the concatenated sentences.
    """
    body: list[np.ndarray] = []
    used = 0
    for sentence in sentences:
        sentence = np.asarray(sentence, dtype=np.int64)
        if used + sentence.size > capacity and body:
            yield np.concatenate(body)
            body, used = [], 0
        while sentence.size > capacity:
            yield sentence[:capacity]
            sentence = sentence[capacity:]
        if sentence.size:
            body.append(sentence)
            used += sentence.size
    if body:
        yield np.concatenate(body)


def _with_separators(documents: Iterable[tuple[Any, DocumentLike]]) -> Iterator[np.ndarray]:
    """Sentences of consecutive documents, a ``[SEP]`` sentence between documents."""
    for i, (_, doc) in enumerate(documents):
        if i:
            yield np.array([SEP_ID], dtype=np.int64)
        yield from doc.sentence_ids


@dataclass
class PackedMLMDataset(IterableDataset):
    """Packed, masked MLM samples from a :class:`DocumentSource` (see module docstring).

    Each sample is a dict of int64 tensors: ``input_ids``, ``attention_mask`` (1 real,
    0 pad), ``labels`` (all ``[max_length]``) and ``source`` ``[4]`` = (epoch, shard index,
    row in shard, chunk index within the document).
    """

    source: DocumentSource
    masker: TokenMasker
    max_length: int = 4096
    """Tokens per sequence, ``[CLS]`` and ``[SEP]`` included."""
    seed: int = 0
    """Seed of shuffling and masking."""
    train: bool = True
    """Endless shuffled stream (True) or one unshuffled pass (False)."""
    split: DocumentSplit | None = None
    """If given, training keeps the documents that are not validation and a one-pass
    dataset keeps the validation ones; if None, every document is kept."""
    mix_documents: bool = False
    """Pack documents back to back (``[SEP]`` between) instead of one document per sequence."""
    shuffle_buffer: int = 256
    """Sequences held in the shuffle buffer (training only; 0 or 1 disables it)."""
    rank: int = 0
    world_size: int = 1
    skip_batches: int = 0
    """Batches already consumed from this rank's DataLoader (resume)."""
    batch_size: int = 1
    """Batch size of the DataLoader, to turn ``skip_batches`` into samples per worker."""

    def __post_init__(self) -> None:
        IterableDataset.__init__(self)
        if self.max_length < 3:
            raise ConfigError(f"max_length must be at least 3, got {self.max_length}")
        if not self.source.shards:
            raise ConfigError("the token folder has no shards")

    # -- reading units ---------------------------------------------------------------
    def _reader(self) -> tuple[int, int, int, int]:
        """(slot, readers, workers, batches this reader already made) of the calling worker.

        DataLoader workers hand out whole batches round-robin starting with worker 0, so
        after ``skip_batches`` the next batch is due from logical worker ``skip % workers``:
        worker ``w`` plays logical worker ``(w + skip) % workers`` of the original run.
        """
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        logical = (worker + self.skip_batches) % workers
        made = len(range(logical, self.skip_batches, workers))
        return self.rank * workers + logical, self.world_size * workers, workers, made

    def _units(self, readers: int) -> list[tuple[int, int, int]]:
        """(shard index, part, parts): enough row-interleaved parts for every reader."""
        shards = len(self.source.shards)
        parts = -(-readers // shards)
        return [(s, p, parts) for s in range(shards) for p in range(parts)]

    def _documents(
        self, epoch: int, unit: tuple[int, int, int]
    ) -> list[tuple[tuple[int, int], DocumentLike]]:
        shard, part, parts = unit
        docs = [
            ((shard, row), doc)
            for row, doc in enumerate(self.source.iter_shard(self.source.shards[shard]))
            if row % parts == part
            and (self.split is None or self.split.is_validation(doc) != self.train)
        ]
        if self.train:
            order = sequence_rng(self.seed, 1, epoch, shard, part).permutation(len(docs))
            docs = [docs[i] for i in order]
        return docs

    # -- packing -----------------------------------------------------------------------
    def _bodies(self, epoch: int, slot: int, readers: int) -> Iterator[tuple[tuple, np.ndarray]]:
        """(key, body) of one epoch for one reader; key = (epoch, shard, row, chunk)."""
        units = self._units(readers)
        if self.train:
            units = [units[i] for i in sequence_rng(self.seed, 0, epoch).permutation(len(units))]
        capacity = self.max_length - 2
        for unit in units[slot::readers]:
            docs = self._documents(epoch, unit)
            if self.mix_documents:
                for chunk, body in enumerate(pack_sentences(_with_separators(docs), capacity)):
                    shard, _, _ = unit
                    yield (epoch, shard, unit[1], chunk), body
                continue
            for (shard, row), doc in docs:
                for chunk, body in enumerate(pack_sentences(doc.sentence_ids, capacity)):
                    yield (epoch, shard, row, chunk), body

    def _shuffled(self, items: Iterator, epoch: int, slot: int) -> Iterator:
        if not self.train or self.shuffle_buffer <= 1:
            yield from items
            return
        rng = sequence_rng(self.seed, 2, epoch, slot)
        buffer: list = []
        for item in items:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            i = int(rng.integers(len(buffer)))
            yield buffer[i]
            buffer[i] = item
        order = rng.permutation(len(buffer))
        yield from (buffer[i] for i in order)

    def _stream(self, slot: int, readers: int) -> Iterator[tuple[tuple, np.ndarray]]:
        epochs = itertools.count() if self.train else range(1)
        for epoch in epochs:
            produced = False
            for item in self._shuffled(self._bodies(epoch, slot, readers), epoch, slot):
                produced = True
                yield item
            if not produced and self.train:
                split = self.split is not None and self.split.enabled
                raise ConfigError(
                    f"reader {slot} of {readers} got no training sequence in epoch {epoch}; "
                    "the data has too few training documents for this many ranks x workers"
                    + (" (or the validation split takes them)" if split else "")
                )

    def sample(self, key: tuple, body: np.ndarray) -> dict[str, torch.Tensor]:
        """Frame ``body`` as ``[CLS] body [SEP]``, pad to ``max_length`` and mask it."""
        ids = np.full(self.max_length, PAD_ID, dtype=np.int64)
        ids[0] = CLS_ID
        ids[1 : body.size + 1] = body
        ids[body.size + 1] = SEP_ID
        inputs, labels = self.masker(ids, sequence_rng(self.seed, 3, *key))
        mask = np.zeros(self.max_length, dtype=np.int64)
        mask[: body.size + 2] = 1
        labels[mask == 0] = IGNORE_INDEX
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(labels),
            "source": torch.tensor(key, dtype=torch.int64),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        slot, readers, _, made = self._reader()
        skip = made * self.batch_size
        for key, body in itertools.islice(self._stream(slot, readers), skip, None):
            yield self.sample(key, body)


def make_masker(masking: MaskingConfig, tokenizer) -> TokenMasker:
    """The masker of a :class:`~dnabird.tokenizer.DNATokenizer`: special tokens and the
    fixed N-run pieces are never predicted nor drawn as random replacements (bits per
    character then measures A/C/G/T only, like the n-gram baseline)."""
    from dnabird.tokenizer import FIRST_LEARNED_ID

    fixed = set(tokenizer.special_ids) | set(range(FIRST_LEARNED_ID))
    return TokenMasker(masking, tokenizer.vocab_size, fixed, tokenizer.mask_token_id)


def _ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers ignore Ctrl-C: the main process stops training at a step boundary
    (:mod:`dnabird.tasks.callbacks`) and needs its workers until then."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def open_token_folder(tokens: str | os.PathLike, verify: bool = True) -> TokenShards:
    """The token folder of ``data.tokens`` (checked against its manifest), or a ConfigError
    naming the key when it is not set or not there."""
    from dnabird.data.tokens import TokenShards

    if not str(tokens):
        raise ConfigError(
            "data.tokens: not set; give the token folder written by `dnabird tokenize` "
            "(data.tokens=PATH)"
        )
    if not Path(tokens).is_dir():
        raise ConfigError(
            f"data.tokens={tokens}: folder not found; give the token folder written by "
            "`dnabird tokenize`"
        )
    return TokenShards(tokens, verify=verify)


class MLMDataModule(L.LightningDataModule):
    """Train/validation DataLoaders over a token folder.

    ``config``: the run's ``data`` section
    (:class:`~dnabird.tasks.pretrain_config.MLMDataConfig`); ``tokenizer``: the
    :class:`~dnabird.tokenizer.DNATokenizer` the tokens were made with (checked against the
    token folder's manifest). Building it checks the validation split: ConfigError when it
    takes every document or names chromosomes the tokens do not have.

    The training loader resumes exactly: it skips ``trainer.global_step x
    accumulate_grad_batches`` batches of the (deterministic) stream, the number a restored
    run has consumed.
    """

    def __init__(
        self, config: MLMDataConfig, masking: MaskingConfig, seed: int, tokenizer: DNATokenizer
    ) -> None:
        super().__init__()
        self.config = config
        self.seed = seed
        self.shards = open_token_folder(config.tokens)
        made_by = self.shards.manifest.get("tokenizer_sha256")
        if made_by and made_by != hashlib.sha256(tokenizer.model_proto).hexdigest():
            raise ConfigError(
                f"data.tokens={config.tokens}: these tokens were made by another tokenizer "
                "than the one given; tokenize the corpus with it, or use the token folder's"
            )
        self.tokenizer = tokenizer
        self.masker = make_masker(masking, tokenizer)
        self.split = DocumentSplit(tuple(config.val_chromosomes), config.val_fraction, seed)
        self.train_documents, self.val_documents = self._count_split()

    def _count_split(self) -> tuple[int, int]:
        """(training, validation) documents; ConfigError when training would get none or
        ``val_chromosomes`` names a chromosome the tokens lack."""
        import pyarrow.parquet as pq

        total = len(self.shards)
        if not self.split.enabled:
            return total, 0
        chromosomes: set[str] = set()
        held = 0
        for path in self.shards.shards:
            table = pq.read_table(path, columns=["doc_id", "chrom"])
            chroms = table.column("chrom").to_pylist()
            chromosomes.update(chroms)
            ids = table.column("doc_id").to_pylist()
            held += sum(self.split.holds(i, c) for i, c in zip(ids, chroms, strict=True))
        chosen = f"data.val_chromosomes={list(self.split.val_chromosomes)}"
        missing = [c for c in self.split.val_chromosomes if c not in chromosomes]
        if missing:
            present = sorted(chromosomes)
            shown = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
            raise ConfigError(
                f"{chosen}: no document on {', '.join(missing)} in {self.config.tokens} "
                f"(its chromosomes: {shown}); use the names of the FASTA"
            )
        if held == total:
            raise ConfigError(
                f"{chosen} and data.val_fraction={self.split.val_fraction}: the validation "
                f"split takes every document ({total}) of {self.config.tokens}; leave some "
                "for training"
            )
        if held == 0 and self.config.val_batches > 0:
            log.warning(
                "data.val_fraction=%s selects none of the %d documents: no validation "
                "(raise it or hold out data.val_chromosomes)",
                self.split.val_fraction,
                total,
            )
        else:
            log.info("validation split: %d of %d documents", held, total)
        return total - held, held

    def dataset(self, train: bool) -> PackedMLMDataset:
        """The dataset of this rank; for training, positioned after the consumed batches."""
        trainer = self.trainer
        skip = trainer.global_step * trainer.accumulate_grad_batches if train else 0
        return PackedMLMDataset(
            source=self.shards,
            masker=self.masker,
            max_length=self.config.max_length,
            seed=self.seed,
            train=train,
            split=self.split,
            mix_documents=self.config.mix_documents,
            shuffle_buffer=self.config.shuffle_buffer,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            skip_batches=skip,
            batch_size=self.config.batch_size,
        )

    def _loader(self, train: bool) -> DataLoader:
        return DataLoader(
            self.dataset(train),
            batch_size=self.config.batch_size,
            num_workers=self.config.num_workers,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=_ignore_interrupts,
            # its own generator: starting an iterator must not draw from the global torch
            # generator, or validation would shift dropout and break exact resume
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(train=True)

    @property
    def validates(self) -> bool:
        """Whether there are validation documents and validation batches to run."""
        return self.val_documents > 0 and self.config.val_batches > 0

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(train=False) if self.validates else []
