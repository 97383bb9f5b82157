"""Tests of dnabird.data.streaming: batches streamed from small MATLAB v7.3 files written as
DeepSEA's train.mat is (tests/data/test_deepsea.py's writers). Each example's labels are
the bits of its row number, so a batch tells which rows it holds without the reader's
help; windows are checked against the tokenizer run here on each sequence."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dnabird.data.classification import WindowBatches, WindowedSplit, deal_batches
from dnabird.data.streaming import StreamingDataModule, StreamingWindowBatches
from dnabird.errors import InputError
from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID

from . import test_deepsea
from .test_deepsea import one_hot, write_big_v73, write_v73

N, LENGTH, BITS, WINDOW, CHUNK = 50, 30, 8, 40, 8  # 7 chunks: six of 8 rows, one of 2
COMPLEMENT = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def tokenizer():
    from dnabird.tokenizer import DNATokenizer

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(200)]
    return DNATokenizer.train(sentences, vocab_size=40)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, list[str]]:
    """A v7.3 train.mat of N random ACGT sequences; labels [N, BITS]: row i's bits."""
    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACGT"), size=LENGTH)) for _ in range(N)]
    labels = (np.arange(N)[:, None] >> np.arange(BITS)[None, :]) & 1
    path = tmp_path_factory.mktemp("streaming") / "train.mat"
    return write_v73(path, one_hot(sequences), labels.astype(np.uint8)), sequences


def expected_window(tokenizer, sequence: str) -> list[int]:
    """[CLS] tokens [SEP] then padding to WINDOW, computed here."""
    ids = tokenizer.encode(sequence)  # one sequence at a time, not the batch call
    return [CLS_ID, *ids, SEP_ID] + [PAD_ID] * (WINDOW - len(ids) - 2)


def reverse_complement(sequence: str) -> str:
    return sequence.translate(COMPLEMENT)[::-1]


def rows_of(batch: dict) -> list[int]:
    """The rows of a batch, read from its labels (row i's label j is bit j of i)."""
    return (batch["labels"].long() << torch.arange(BITS)).sum(dim=1).tolist()


def strands_of(batch: dict, tokenizer, sequences: list[str]) -> list[int]:
    """0 where a row's window is its sequence's, 1 where it is its reverse complement's."""
    out = []
    for row, ids in zip(rows_of(batch), batch["input_ids"].tolist(), strict=True):
        forward = expected_window(tokenizer, sequences[row])
        backward = expected_window(tokenizer, reverse_complement(sequences[row]))
        assert forward != backward
        assert ids in (forward, backward)
        out.append(int(ids == backward))
    return out


def stream(small, tokenizer, count: int, **options) -> list[dict]:
    options = {"window": WINDOW, "batch_size": 5, "chunk_size": CHUNK, **options}
    dataset = StreamingWindowBatches(path=small[0], tokenizer=tokenizer, **options)
    return list(itertools.islice(iter(dataset), count))


def same_batches(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


# ----------------------------------------------------------------------------- training
def test_each_epoch_visits_every_example_once_chunk_by_chunk_in_a_new_order(small, tokenizer):
    sequences = small[1]
    batches = stream(small, tokenizer, 30, train=True, seed=3)  # 3 epochs of 10 batches
    rows = [row for batch in batches for row in rows_of(batch)]
    epochs = [rows[e * N : (e + 1) * N] for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(N))
        chunk_ids = [row // CHUNK for row in order]
        runs = [(chunk, list(group)) for chunk, group in itertools.groupby(chunk_ids)]
        assert sorted(chunk for chunk, _ in runs) == list(range(7))  # each chunk in one run
        assert [chunk for chunk, _ in runs] != list(range(7))  # chunks in a permuted order
        start = 0
        for _, group in runs:
            inside = order[start : start + len(group)]
            start += len(group)
            if len(inside) == CHUNK:
                assert inside != sorted(inside)  # rows within a chunk permuted
    assert len({tuple(order) for order in epochs}) == 3
    first = batches[0]
    assert {k: (v.dtype, tuple(v.shape)) for k, v in first.items()} == {
        "input_ids": (torch.int64, (5, WINDOW)),
        "attention_mask": (torch.int64, (5, WINDOW)),
        "labels": (torch.float32, (5, BITS)),
        "bp": (torch.int64, (5,)),
    }
    for batch in batches[:10]:
        expected = [expected_window(tokenizer, sequences[row]) for row in rows_of(batch)]
        assert batch["input_ids"].tolist() == expected  # no reverse: forward strands
        assert batch["attention_mask"].tolist() == [[int(t != PAD_ID) for t in w] for w in expected]
        assert batch["bp"].tolist() == [LENGTH] * 5
    assert same_batches(stream(small, tokenizer, 30, train=True, seed=3), batches)
    other = stream(small, tokenizer, 10, train=True, seed=4)
    assert [rows_of(b) for b in other] != [rows_of(b) for b in batches[:10]]


def test_reverse_complement_coin_per_row_and_epoch(small, tokenizer):
    sequences = small[1]
    batches = stream(small, tokenizer, 30, train=True, seed=3, reverse=True)
    plain = stream(small, tokenizer, 30, train=True, seed=3)
    assert [rows_of(b) for b in batches] == [rows_of(b) for b in plain]  # coins: strands only
    strands = [s for batch in batches for s in strands_of(batch, tokenizer, sequences)]
    rows = [row for batch in batches for row in rows_of(batch)]
    per_epoch = [
        dict(zip(rows[e * N : (e + 1) * N], strands[e * N : (e + 1) * N], strict=True))
        for e in range(3)
    ]
    for coins in per_epoch:
        assert 10 < sum(coins.values()) < 40  # both strands, about half each
    assert per_epoch[0] != per_epoch[1] != per_epoch[2]  # a new coin per epoch


def test_resume_by_skipping_batches_continues_the_stream_exactly(small, tokenizer):
    whole = stream(small, tokenizer, 25, train=True, seed=3, reverse=True)
    resumed = stream(small, tokenizer, 18, train=True, seed=3, reverse=True, skip_batches=7)
    assert same_batches(resumed, whole[7:])


def test_ranks_partition_the_stream(small, tokenizer):
    options = {"train": True, "seed": 3, "reverse": True}
    single = stream(small, tokenizer, 2 * N, batch_size=1, **options)  # two epochs, row by row
    reference = [(rows_of(b)[0], b["input_ids"][0].tolist()) for b in single]
    for rank in (0, 1):
        batches = stream(small, tokenizer, 10, rank=rank, world_size=2, **options)
        got = [
            (row, ids)
            for batch in batches
            for row, ids in zip(rows_of(batch), batch["input_ids"].tolist(), strict=True)
        ]
        assert got == reference[rank::2]  # rows AND strands: the coin is the row's
    # the first epoch split between the ranks: every row once
    firsts = [stream(small, tokenizer, 5, rank=r, world_size=2, **options) for r in (0, 1)]
    assert sorted(row for part in firsts for b in part for row in rows_of(b)) == list(range(N))


@pytest.mark.parametrize("train", [True, False], ids=["train", "evaluation"])
def test_one_or_two_workers_give_the_same_batches(small, tokenizer, train):
    options = {"train": train, "seed": 3, "reverse": True, "skip_batches": 3 * train}
    dataset = StreamingWindowBatches(
        path=small[0], tokenizer=tokenizer, window=WINDOW, batch_size=4, chunk_size=CHUNK, **options
    )
    pickle.loads(pickle.dumps(dataset))  # a spawned worker gets a copy

    def load(workers: int) -> list[dict]:
        loader = DataLoader(dataset, batch_size=None, num_workers=workers)
        return list(itertools.islice(iter(loader), 15))

    one, two = load(1), load(2)
    assert same_batches(one, two) and same_batches(one, load(0))
    assert len(one) == (15 if train else 13)  # evaluation: 50 rows in batches of 4


def test_labels_keep_the_selected_features(small, tokenizer):
    picked = np.array([6, 0, 3])
    batches = stream(small, tokenizer, 10, train=True, seed=3, features=picked)
    reference = stream(small, tokenizer, 10, train=True, seed=3)
    for got, full in zip(batches, reference, strict=True):
        rows = np.array(rows_of(full))
        assert got["labels"].tolist() == ((rows[:, None] >> picked[None, :]) & 1).tolist()
        assert torch.equal(got["input_ids"], full["input_ids"])


# ----------------------------------------------------------------------------- evaluation
def test_evaluation_is_one_pass_in_file_order_with_both_strands(small, tokenizer):
    sequences = small[1]
    batches = stream(small, tokenizer, 100, batch_size=7, reverse=True)
    assert [rows_of(b) for b in batches] == [
        list(range(s, min(s + 7, N))) for s in range(0, N, 7)
    ]  # 8 batches, the last of 1 row
    for batch in batches:
        rows = rows_of(batch)
        assert batch["input_ids"].tolist() == [
            expected_window(tokenizer, sequences[r]) for r in rows
        ]
        assert batch["reverse_input_ids"].tolist() == [
            expected_window(tokenizer, reverse_complement(sequences[r])) for r in rows
        ]
        assert torch.equal(
            batch["reverse_attention_mask"], (batch["reverse_input_ids"] != 0).long()
        )
    forward_only = stream(small, tokenizer, 100, batch_size=7)
    assert "reverse_input_ids" not in forward_only[0]
    halves = [stream(small, tokenizer, 100, batch_size=20, rank=r, world_size=2) for r in (0, 1)]
    assert [[rows_of(b) for b in half] for half in halves] == [
        [list(range(0, 40, 2)), list(range(40, 50, 2))],
        [list(range(1, 40, 2)), list(range(41, 50, 2))],
    ]


# ----------------------------------------------------------------------------- dealing
@pytest.mark.parametrize(
    ("rank", "world_size", "skip", "worker", "workers", "drop_last"),
    [(0, 1, 0, 0, 1, False), (1, 3, 2, 1, 2, False), (2, 3, 1, 0, 3, True), (0, 2, 9, 0, 1, False)],
)
def test_deal_batches_matches_slicing_the_whole_stream(
    rank, world_size, skip, worker, workers, drop_last
):
    pieces = [np.arange(a, b) for a, b in [(0, 3), (3, 3), (3, 8), (8, 9), (9, 16), (16, 30)]]
    mine = list(range(30))[rank::world_size]
    batches = [mine[i : i + 3] for i in range(0, len(mine), 3)]
    if drop_last:
        batches = [b for b in batches if len(b) == 3]
    expected = batches[skip:][worker::workers]
    got = deal_batches(
        pieces,
        3,
        rank=rank,
        world_size=world_size,
        skip_batches=skip,
        worker=worker,
        workers=workers,
        drop_last=drop_last,
    )
    assert [b.tolist() for b in got] == expected


# ----------------------------------------------------------------------------- data module
def test_data_module_skips_the_consumed_batches_and_validates_in_memory(small, tokenizer):
    rng = np.random.default_rng(2)
    validation = WindowedSplit(
        rng.integers(5, 30, (9, WINDOW)).astype(np.int32),
        rng.integers(0, 2, (9, BITS)).astype(np.uint8),
        np.full(9, LENGTH),
    )
    module = StreamingDataModule(
        small[0], validation, tokenizer, WINDOW, 5, seed=3, reverse=True, chunk_size=CHUNK
    )
    module.trainer = SimpleNamespace(
        global_step=3, accumulate_grad_batches=2, global_rank=0, world_size=1
    )
    train = list(itertools.islice(iter(module.train_dataloader()), 4))
    whole = stream(small, tokenizer, 10, train=True, seed=3, reverse=True)
    assert same_batches(train, whole[6:10])  # 3 steps x 2 accumulated batches consumed
    assert module.val_batches == 2
    assert same_batches(list(module.val_dataloader()), list(WindowBatches(validation, 5)))
    none = StreamingDataModule(small[0], None, tokenizer, WINDOW, 5, seed=3)
    assert none.val_batches == 0 and none.val_dataloader() == []


# ----------------------------------------------------------------------------- mistakes
def test_mistakes(small, tokenizer, tmp_path):
    with pytest.raises(InputError, match="not found"):
        StreamingWindowBatches(path=tmp_path / "x.mat", tokenizer=tokenizer, window=8, batch_size=2)
    short = StreamingWindowBatches(path=small[0], tokenizer=tokenizer, window=6, batch_size=4)
    with pytest.raises(InputError) as err:
        next(iter(short))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{small[0]}: example 0 (0-based) has ")
    assert "more than the window of 6" in message
    cut = StreamingWindowBatches(
        path=small[0], tokenizer=tokenizer, window=6, batch_size=4, truncate=True
    )
    assert next(iter(cut))["input_ids"].shape == (4, 6)
    with pytest.raises(ValueError, match=r"column indices in \[0, 8\)"):
        StreamingWindowBatches(
            path=small[0], tokenizer=tokenizer, window=8, batch_size=2, features=np.array([8])
        )


# ----------------------------------------------------------------------------- memory
BIG_PATTERN = test_deepsea.big_pattern


def acgt_pattern(length: int, features: int):
    """test_deepsea.big_pattern with A/C/G/T only (runs of N make tokenizing ~10x slower)."""
    sequences, labels = BIG_PATTERN(length, features)
    return [s.replace("N", "A") for s in sequences], labels


def peak_kib() -> int:
    """Peak RSS (VmHWM) of this process. A forked child starts from its current RSS, not
    its parent's peak (getrusage's ru_maxrss would carry the parent's)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def one_epoch_in_child(path: Path, warm_up: Path, tokenizer, connection) -> None:
    """One training epoch of ``path`` in chunks of 500 examples; sends the peak RSS growth
    and the sum of the labels. A few batches of the small file ``warm_up`` first: a forked
    child maps the libraries' pages (h5py, tokenizer, torch) as it first runs them."""
    try:
        options = {"tokenizer": tokenizer, "batch_size": 50, "train": True, "reverse": True}
        warm = StreamingWindowBatches(path=warm_up, window=WINDOW, chunk_size=CHUNK, **options)
        list(itertools.islice(iter(warm), 3))
        dataset = StreamingWindowBatches(path=path, window=1024, chunk_size=500, **options)
        before = peak_kib()
        batches = iter(dataset)
        labels = sum(next(batches)["labels"].sum(dim=0).long() for _ in range(20_000 // 50))
        connection.send({"growth_kib": peak_kib() - before, "labels": labels.tolist()})
    except BaseException as err:  # the test reports it
        connection.send({"error": repr(err)})


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_streaming_a_large_file_keeps_memory_bounded(tmp_path, small, tokenizer, monkeypatch):
    n, features, limit_mib = 20_000, 919, 20
    monkeypatch.setattr(test_deepsea, "big_pattern", acgt_pattern)
    path = write_big_v73(tmp_path / "train.mat", n, features=features)
    # the arrays (one-hot and labels, 94 MiB) are over four times the limit; holding every
    # decoded example (sequences and labels, ~38 MiB) would pass it too. Chunks of 500
    # examples take about 10 MiB (one-hot slab, decoding, sequences, labels).
    assert n * (4 * 1000 + features) > 4 * limit_mib * 2**20
    context = multiprocessing.get_context("fork")  # a child process with the imports done
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=one_epoch_in_child, args=(path, small[0], tokenizer, sender))
    child.start()
    try:
        assert receiver.poll(300), "the child sent nothing"
        found = receiver.recv()
    finally:
        child.join(10)
    assert "error" not in found, found.get("error")
    _, labels = acgt_pattern(1000, features)
    expected = labels[np.arange(n) % len(labels)].sum(axis=0)  # every example once
    assert found["labels"] == expected.tolist()
    assert found["growth_kib"] < limit_mib * 1024
