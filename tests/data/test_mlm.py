"""Tests of dnabird.data.mlm: packing, framing, splitting across readers, shuffling, resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from dnabird.data.masking import IGNORE_INDEX, MaskingConfig, TokenMasker
from dnabird.data.mlm import (
    CLS_ID,
    PAD_ID,
    SEP_ID,
    DocumentSplit,
    InMemoryDocuments,
    PackedMLMDataset,
    pack_sentences,
)
from dnabird.data.tokens import TokenizedDocument
from dnabird.errors import ConfigError

VOCAB = 64
MASKER = TokenMasker(MaskingConfig(), VOCAB, range(12), mask_id=4)


def _corpus(shards: int = 3, docs_per_shard: int = 5, seed: int = 0) -> InMemoryDocuments:
    """Documents whose tokens encode (shard, doc) so any sequence can be traced back."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(shards):
        docs = []
        for d in range(docs_per_shard):
            lengths = rng.integers(1, 30, size=rng.integers(1, 8))
            sentences = [rng.integers(12, VOCAB, size=n) for n in lengths]
            docs.append(
                TokenizedDocument(f"s{s}d{d}", "chr1" if d % 4 else "chr2", sentence_ids=sentences)
            )
        out.append(docs)
    return InMemoryDocuments(out)


def _dataset(source, **kwargs) -> PackedMLMDataset:
    kwargs.setdefault("max_length", 24)
    return PackedMLMDataset(source=source, masker=MASKER, **kwargs)


def _keys(samples) -> list[tuple[int, ...]]:
    return [tuple(s["source"].tolist()) for s in samples]


def _all_keys(source, max_length: int = 24, split=None, train=True):
    """Independent enumeration of every (shard, row, chunk) a pass must produce."""
    keys = set()
    for shard in source.shards:
        for row, doc in enumerate(source.iter_shard(shard)):
            if split is not None and split.is_validation(doc) == train:
                continue
            for chunk, _ in enumerate(pack_sentences(doc.sentence_ids, max_length - 2)):
                keys.add((shard, row, chunk))
    return keys


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=0, max_size=20),
    st.integers(1, 16),
)
def test_pack_sentences_keeps_order_bounds_and_whole_sentences(lengths, capacity) -> None:
    sentences = [np.arange(n) + 100 * i for i, n in enumerate(lengths)]
    bodies = list(pack_sentences(sentences, capacity))
    joined = np.concatenate(bodies) if bodies else np.array([], dtype=np.int64)
    expected = np.concatenate(sentences) if sentences else np.array([], dtype=np.int64)
    assert np.array_equal(joined, expected)
    assert all(0 < b.size <= capacity for b in bodies)
    # a sentence that fits in one body is never cut
    for i, n in enumerate(lengths):
        if 0 < n <= capacity:
            assert any(np.array_equal(b[b // 100 == i], sentences[i]) for b in bodies)
    # greedy: a body and the first sentence of the next body would not fit together
    for a, b in itertools.pairwise(bodies):
        first = b[b // 100 == b[0] // 100]
        assert a.size + first.size > capacity or first.size > capacity


def test_samples_are_framed_padded_and_from_one_document() -> None:
    source = _corpus()
    ds = _dataset(source, train=False)
    docs = [list(source.iter_shard(s)) for s in source.shards]
    samples = list(ds)
    for sample in samples:
        epoch, shard, row, chunk = sample["source"].tolist()
        body = list(pack_sentences(docs[shard][row].sentence_ids, 22))[chunk]
        n = body.size
        ids = torch.where(sample["labels"] != IGNORE_INDEX, sample["labels"], sample["input_ids"])
        assert ids[0] == CLS_ID and ids[n + 1] == SEP_ID
        assert np.array_equal(ids[1 : n + 1].numpy(), body)
        assert (ids[n + 2 :] == PAD_ID).all()
        assert sample["attention_mask"].tolist() == [1] * (n + 2) + [0] * (24 - n - 2)
        assert (sample["labels"][sample["attention_mask"] == 0] == IGNORE_INDEX).all()
        assert sample["input_ids"].shape == (24,)


def test_mix_documents_packs_across_documents_with_separator() -> None:
    source = _corpus(shards=1, docs_per_shard=6)
    mixed = list(_dataset(source, train=False, mix_documents=True, max_length=64))
    single = list(_dataset(source, train=False, max_length=64))
    assert len(mixed) < len(single)
    inner = [s["input_ids"][1 : s["attention_mask"].sum() - 1] for s in mixed]
    labels = [s["labels"][1 : s["attention_mask"].sum() - 1] for s in mixed]
    tokens = torch.cat(
        [torch.where(lab != IGNORE_INDEX, lab, x) for x, lab in zip(inner, labels, strict=True)]
    )
    docs = list(source.iter_shard(0))
    # joined, the bodies are the documents' tokens with one [SEP] between documents
    expected = np.concatenate([np.concatenate([*d.sentence_ids, [SEP_ID]]) for d in docs])[:-1]
    assert np.array_equal(tokens[tokens != SEP_ID].numpy(), expected[expected != SEP_ID])
    assert (tokens == SEP_ID).sum() <= len(docs) - 1


def _epoch_keys(ds: PackedMLMDataset, epoch: int, limit: int = 2000) -> list[tuple[int, ...]]:
    keys = [k for k in _keys(itertools.islice(iter(ds), limit)) if k[0] == epoch]
    return [k[1:] for k in keys]


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_ranks_split_each_epoch_without_duplicates_or_gaps(world_size: int) -> None:
    source = _corpus(shards=3, docs_per_shard=6)
    expected = _all_keys(source)
    for epoch in (0, 1):
        seen: list[tuple[int, ...]] = []
        for rank in range(world_size):
            ds = _dataset(source, rank=rank, world_size=world_size, seed=3)
            seen += _epoch_keys(ds, epoch)
        assert len(seen) == len(set(seen)), "a sequence was seen twice in one epoch"
        assert set(seen) == expected


def test_workers_and_ranks_split_the_validation_pass() -> None:
    source = _corpus(shards=2, docs_per_shard=7)
    split = DocumentSplit(val_chromosomes=("chr2",))
    seen = []
    for rank in range(2):
        ds = _dataset(source, train=False, split=split, rank=rank, world_size=2)
        loader = DataLoader(ds, batch_size=2, num_workers=2)
        seen += [tuple(k[1:]) for batch in loader for k in batch["source"].tolist()]
    assert len(seen) == len(set(seen))
    assert set(seen) == _all_keys(source, split=split, train=False)


def test_split_train_and_validation_are_disjoint_and_complete() -> None:
    source = _corpus(shards=2, docs_per_shard=20)
    split = DocumentSplit(val_fraction=0.3, seed=1)
    train = _all_keys(source, split=split, train=True)
    val = _all_keys(source, split=split, train=False)
    assert train and val and not train & val
    assert train | val == _all_keys(source)
    # the fraction is about right over many documents
    docs = [TokenizedDocument(f"d{i}", "chr1") for i in range(4000)]
    share = np.mean([split.is_validation(d) for d in docs])
    assert abs(share - 0.3) < 0.03


def test_shuffling_is_deterministic_and_changes_with_epoch_and_seed() -> None:
    source = _corpus(shards=3, docs_per_shard=8)

    def epoch_order(seed: int, epoch: int) -> list:
        return _epoch_keys(_dataset(source, seed=seed), epoch)

    assert epoch_order(0, 0) == epoch_order(0, 0)
    assert epoch_order(0, 0) != epoch_order(0, 1)
    assert epoch_order(0, 0) != epoch_order(1, 0)
    a = [s["input_ids"] for s in itertools.islice(iter(_dataset(source, seed=5)), 30)]
    b = [s["input_ids"] for s in itertools.islice(iter(_dataset(source, seed=5)), 30)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_masking_does_not_depend_on_the_number_of_readers() -> None:
    source = _corpus()
    one = {
        tuple(s["source"].tolist()): s["input_ids"]
        for s in _dataset(source, train=False, world_size=1)
    }
    for rank in range(3):
        for s in _dataset(source, train=False, rank=rank, world_size=3):
            assert torch.equal(one[tuple(s["source"].tolist())], s["input_ids"])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_batches_resumes_the_same_stream(num_workers: int) -> None:
    source = _corpus(shards=3, docs_per_shard=8)

    def batches(skip: int, count: int) -> list[torch.Tensor]:
        ds = _dataset(source, seed=2, skip_batches=skip, batch_size=3)
        loader = DataLoader(ds, batch_size=3, num_workers=num_workers)
        return [b["input_ids"] for b in itertools.islice(loader, count)]

    straight = batches(0, 12)
    resumed = batches(5, 7)
    assert all(torch.equal(a, b) for a, b in zip(straight[5:], resumed, strict=True))


def test_too_few_documents_for_readers_is_config_error() -> None:
    source = InMemoryDocuments([[TokenizedDocument("a", "chr1", sentence_ids=[np.arange(12, 20)])]])
    ds = _dataset(source, rank=1, world_size=2)
    with pytest.raises(ConfigError, match="no training sequence"):
        next(iter(ds))


def test_tokenizer_masker_never_predicts_specials_or_n_runs() -> None:
    from dnabird.data.mlm import make_masker
    from dnabird.tokenizer import FIRST_LEARNED_ID, DNATokenizer

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(50)]
    tokenizer = DNATokenizer.train(sentences, vocab_size=40)
    masker = make_masker(MaskingConfig(rate=1.0), tokenizer)
    ids = np.array(tokenizer.encode("ACGTNNNNNNNNACGTACGGATTACA" * 20))
    assert (ids < FIRST_LEARNED_ID).any() and (ids >= FIRST_LEARNED_ID).any()
    inputs, labels = masker(ids, np.random.default_rng(1))
    fixed = ids < FIRST_LEARNED_ID
    assert (labels[fixed] == IGNORE_INDEX).all()  # N-run pieces and specials never predicted
    assert (labels[~fixed] == ids[~fixed]).all()  # rate 1.0: every learned piece predicted
    replaced = (inputs != ids) & (inputs != 4)
    assert (inputs[replaced] >= FIRST_LEARNED_ID).all()
