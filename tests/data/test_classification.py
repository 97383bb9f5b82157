"""Sequence-classification data: splits with negatives, fixed windows, batch streams."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dnabird.data.classification import (
    WindowBatches,
    WindowedSplit,
    default_window,
    load_splits,
    pad_to_window,
)
from dnabird.errors import ConfigError, InputError
from dnabird.tasks.finetune_config import ClassificationDataConfig
from dnabird.testing import planted_motif_sequences
from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID


def _positives(path: Path, count: int = 60, length: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return lines


def _csv(path: Path, sequences: list[str], labels: list) -> None:
    rows = [f"{s},{label}" for s, label in zip(sequences, labels, strict=True)]
    path.write_text("sequence,label\n" + "\n".join(rows) + "\n")


def _data(**values) -> ClassificationDataConfig:
    data = ClassificationDataConfig(**values)
    data.validate("data")
    return data


# ----------------------------------------------------------------------------- windows
def test_pad_to_window_lays_out_cls_tokens_sep_and_padding() -> None:
    windows = pad_to_window([[20, 21, 22], [30]], 8)
    assert windows.dtype == np.int32 and windows.shape == (2, 8)
    assert windows[0].tolist() == [CLS_ID, 20, 21, 22, SEP_ID, PAD_ID, PAD_ID, PAD_ID]
    assert windows[1].tolist() == [CLS_ID, 30, SEP_ID, *[PAD_ID] * 5]
    # exactly full: no padding; one more token: an error naming the sequence and source
    assert pad_to_window([list(range(20, 26))], 8)[0].tolist()[-1] == SEP_ID
    with pytest.raises(InputError, match=r"^f\.csv: rec2 has 9 tokens, more than the window of 8"):
        pad_to_window([[20], list(range(20, 27))], 8, names=["rec1", "rec2"], source="f.csv")
    cut = pad_to_window([list(range(20, 30))], 8, truncate=True)
    assert cut[0].tolist() == [CLS_ID, 20, 21, 22, 23, 24, 25, SEP_ID]


@pytest.mark.parametrize(
    ("longest", "block", "positions", "expected"),
    [
        (10, 16, 512, 16),
        (14, 16, 512, 16),
        (15, 16, 512, 32),
        (62, 64, 4096, 64),
        (700, 64, 512, 512),
    ],
)
def test_default_window_is_the_longest_plus_specials_in_blocks(longest, block, positions, expected):
    assert default_window(longest, block, positions) == expected


# ----------------------------------------------------------------------------- splits
def test_negatives_are_made_per_positive_and_join_its_split(tmp_path: Path) -> None:
    positives = _positives(tmp_path / "pos.txt", count=60)
    data = _data(train=str(tmp_path / "pos.txt"), label="promoter", negatives="substitute")
    splits = load_splits(data, seed=3)
    rows = splits.rows
    assert splits.classes == ("negative", "promoter")
    assert len(rows) == 120 and rows.labels.tolist().count(0) == 60
    assert splits.negatives == {"scheme": "substitute", "seed": 3, "made": 60, "draws": 1}
    split_of = dict(zip(rows.ids, rows.split, strict=True))
    sequence_of = dict(zip(rows.ids, rows.sequences, strict=True))
    for i, positive in enumerate(positives):
        name = f"pos.txt:{i + 1}"
        assert sequence_of[name] == positive
        negative = sequence_of[f"{name}|substitute"]
        assert negative != positive and len(negative) == len(positive)
        assert split_of[f"{name}|substitute"] == split_of[name]  # no half-leak across splits
    counts = splits.counts()
    assert counts == {
        "train": {"negative": 48, "promoter": 48},
        "validation": {"negative": 6, "promoter": 6},
        "test": {"negative": 6, "promoter": 6},
    }
    again = load_splits(data, seed=3)
    assert again.rows.sequences == rows.sequences and (again.rows.split == rows.split).all()
    other = load_splits(data, seed=4)
    assert other.rows.sequences != rows.sequences


@pytest.mark.parametrize("scheme", ["substitute", "shuffle"])
def test_more_negative_draws_enlarge_training_alone_and_keep_it_balanced(
    tmp_path: Path, scheme: str
) -> None:
    _positives(tmp_path / "pos.txt", count=60)
    one = load_splits(_data(train=str(tmp_path / "pos.txt"), label="p", negatives=scheme), seed=3)
    data = _data(train=str(tmp_path / "pos.txt"), label="p", negatives=scheme, negative_draws=3)
    three = load_splits(data, seed=3)
    assert three.negatives == {"scheme": scheme, "seed": 3, "made": 60 + 2 * 48, "draws": 3}
    assert three.counts() == {
        "train": {"negative": 144, "p": 144},
        "validation": {"negative": 6, "p": 6},
        "test": {"negative": 6, "p": 6},
    }
    first = len(one.rows)  # the one-draw rows come first, unchanged
    assert three.rows.ids[:first] == one.rows.ids
    assert three.rows.sequences[:first] == one.rows.sequences
    sequence_of = dict(zip(three.rows.ids, three.rows.sequences, strict=True))
    split_of = dict(zip(three.rows.ids, three.rows.split, strict=True))
    training = [i for i in one.rows.ids if split_of[i] == "train" and "|" not in i]
    assert len(training) == 48
    for name in training:
        draws = [sequence_of[f"{name}|{scheme}"]]
        for k in (1, 2):
            assert sequence_of[f"{name}|draw{k}"] == sequence_of[name]  # the positive again
            assert split_of[f"{name}|draw{k}"] == split_of[f"{name}|draw{k}|{scheme}"] == "train"
            draws.append(sequence_of[f"{name}|draw{k}|{scheme}"])
        assert len(set(draws)) == 3 and sequence_of[name] not in draws  # independent draws
        if scheme == "shuffle":
            assert all(sorted(d) == sorted(sequence_of[name]) for d in draws)
    again = load_splits(data, seed=3)
    assert again.rows.sequences == three.rows.sequences


def test_splits_are_disjoint_by_identity_and_stratified(tmp_path: Path) -> None:
    sequences, labels = planted_motif_sequences(100, length=30, seed=1)
    sequences += sequences[:20]  # duplicates (with their labels) must share a split
    labels += labels[:20]
    _csv(tmp_path / "d.csv", sequences, labels)
    splits = load_splits(_data(train=str(tmp_path / "d.csv")), seed=0)
    assert splits.classes == ("0", "1") and splits.drawn == {
        "fractions": [0.8, 0.1, 0.1],
        "seed": 0,
    }
    seen = {
        name: set(np.asarray(splits.rows.sequences)[splits.rows.split == name])
        for name in ("train", "validation", "test")
    }
    for a, b in itertools.combinations(seen, 2):
        assert not seen[a] & seen[b]
    counts = splits.counts()
    assert counts["train"]["0"] == counts["train"]["1"] == 48


def test_given_files_keep_their_splits_and_their_share_goes_to_training(tmp_path: Path) -> None:
    sequences, labels = planted_motif_sequences(120, length=30, seed=2)
    _csv(tmp_path / "train.csv", sequences[:100], labels[:100])
    _csv(tmp_path / "dev.csv", sequences[100:], labels[100:])
    data = _data(train=str(tmp_path / "train.csv"), validation=str(tmp_path / "dev.csv"))
    splits = load_splits(data, seed=0)
    counts = {name: sum(c.values()) for name, c in splits.counts().items()}
    assert counts == {"train": 90, "validation": 20, "test": 10}  # 10% test, 90% train
    assert splits.drawn["fractions"] == [0.9, 0.0, 0.1]
    assert splits.part("validation").sequences == sequences[100:]
    # GUE: every split given: nothing drawn
    _csv(tmp_path / "test.csv", sequences[:10], labels[:10])
    given = _data(
        train=str(tmp_path / "train.csv"),
        validation=str(tmp_path / "dev.csv"),
        test=str(tmp_path / "test.csv"),
    )
    splits = load_splits(given, seed=0)
    assert splits.drawn is None and splits.part("train").sequences == sequences[:100]


def test_reverse_complements_double_the_training_split_alone(tmp_path: Path) -> None:
    sequences, labels = planted_motif_sequences(120, length=30, seed=2)
    sequences[0] = "AACGTNNGGT" + sequences[0][10:]  # an N stays an N
    _csv(tmp_path / "train.csv", sequences[:100], labels[:100])
    _csv(tmp_path / "dev.csv", sequences[100:], labels[100:])
    files = {"train": str(tmp_path / "train.csv"), "validation": str(tmp_path / "dev.csv")}
    plain = load_splits(_data(**files), seed=0)
    doubled = load_splits(_data(**files, reverse_complement=True), seed=0)
    first = len(plain.rows)  # the plain rows come first, unchanged
    assert doubled.rows.ids[:first] == plain.rows.ids
    assert doubled.rows.sequences[:first] == plain.rows.sequences
    for name in ("validation", "test"):
        assert doubled.part(name).sequences == plain.part(name).sequences
    training = plain.part("train")
    added = doubled.rows.subset(np.arange(len(doubled.rows)) >= first)
    assert added.ids == [f"{name}|reverse" for name in training.ids]
    assert set(added.split) == {"train"}
    np.testing.assert_array_equal(added.labels, training.labels)
    complement = str.maketrans("ACGTN", "TGCAN")  # by hand
    assert added.sequences == [s.translate(complement)[::-1] for s in training.sequences]
    assert added.sequences[0].endswith("ACCNNACGTT")  # the first row, reversed
    counts = doubled.counts()["train"]
    assert counts == {k: 2 * v for k, v in plain.counts()["train"].items()}


def test_a_split_without_a_class_is_a_one_line_error(tmp_path: Path) -> None:
    sequences, labels = planted_motif_sequences(40, length=30, seed=2)
    _csv(tmp_path / "train.csv", sequences, labels)
    _csv(tmp_path / "dev.csv", sequences[:3], [1, 1, 1])
    data = _data(train=str(tmp_path / "train.csv"), validation=str(tmp_path / "dev.csv"))
    with pytest.raises(InputError, match=r"the validation split has no example of class '0'"):
        load_splits(data, seed=0)
    _positives(tmp_path / "pos.txt")
    with pytest.raises(
        InputError, match=r"training split has no example of class 'negative'.*add data.negatives"
    ):
        load_splits(
            _data(
                train=str(tmp_path / "pos.txt"), label="promoter", classes=["negative", "promoter"]
            ),
            seed=0,
        )
    _csv(tmp_path / "other.csv", sequences[:4], ["0", "1", "2", "1"])
    bad = _data(train=str(tmp_path / "train.csv"), validation=str(tmp_path / "other.csv"))
    with pytest.raises(
        InputError, match=r"other\.csv: line 4: label '2' is not one of the declared classes"
    ):
        load_splits(bad, seed=0)


def test_negatives_from_a_file_join_the_pool_before_splitting(tmp_path: Path) -> None:
    _positives(tmp_path / "pos.txt", count=30, seed=0)
    _positives(tmp_path / "neg.txt", count=50, seed=1)
    data = _data(
        train=str(tmp_path / "pos.txt"),
        label="promoter",
        negatives=str(tmp_path / "neg.txt"),
        classes=["background", "promoter"],
    )
    splits = load_splits(data, seed=0)
    assert splits.negatives == {"file": str(tmp_path / "neg.txt"), "rows": 50}
    assert splits.counts()["train"] == {"background": 40, "promoter": 24}


# ----------------------------------------------------------------------------- batches
def _split(n: int = 10) -> WindowedSplit:
    windows = np.tile(np.arange(n, dtype=np.int32)[:, None] + 20, (1, 4))  # row i holds i + 20
    return WindowedSplit(windows, np.arange(n) % 2, np.full(n, 7))


def _rows(batches) -> list[list[int]]:
    return [(b["input_ids"][:, 0] - 20).tolist() for b in batches]


def test_training_stream_visits_every_row_once_per_epoch_and_resumes_exactly() -> None:
    data = _split(10)
    stream = WindowBatches(data, batch_size=4, train=True, seed=5)
    batches = list(itertools.islice(iter(stream), 10))  # 40 rows = 4 epochs
    rows = [r for batch in _rows(batches) for r in batch]
    for epoch in range(4):
        assert sorted(rows[10 * epoch : 10 * epoch + 10]) == list(range(10))
    assert rows[:10] != rows[10:20]  # each epoch its own order
    first = batches[0]
    assert (
        first["input_ids"].dtype == torch.int64
        and first["attention_mask"].tolist() == [[1] * 4] * 4
    )
    assert (
        first["labels"].tolist() == [r % 2 for r in _rows(batches)[0]]
        and first["bp"].tolist() == [7] * 4
    )
    resumed = WindowBatches(data, batch_size=4, train=True, seed=5, skip_batches=6)
    assert _rows(itertools.islice(iter(resumed), 4)) == _rows(batches[6:])
    other_seed = WindowBatches(data, batch_size=4, train=True, seed=6)
    assert _rows(itertools.islice(iter(other_seed), 10)) != _rows(batches)


def test_ranks_share_the_stream_and_workers_do_not_change_it() -> None:
    data = _split(12)
    single = _rows(itertools.islice(iter(WindowBatches(data, 3, train=True, seed=1)), 8))
    ranks = [
        _rows(
            itertools.islice(
                iter(WindowBatches(data, 3, train=True, seed=1, rank=r, world_size=2)), 2
            )
        )
        for r in (0, 1)
    ]
    epoch = [row for r in (0, 1) for batch in ranks[r] for row in batch]
    assert sorted(epoch) == list(range(12))  # the two ranks' first batches: one epoch, disjoint
    loader = DataLoader(
        WindowBatches(data, 3, train=True, seed=1, skip_batches=2), batch_size=None, num_workers=2
    )
    assert _rows(itertools.islice(iter(loader), 6)) == single[2:8]
    evaluation = WindowBatches(data, 5)
    assert _rows(evaluation) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    halves = [_rows(WindowBatches(data, 5, rank=r, world_size=2)) for r in (0, 1)]
    assert halves == [[[0, 2, 4, 6, 8], [10]], [[1, 3, 5, 7, 9], [11]]]


def test_config_mistakes_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.negatives=shuffle: .*set data.label"):
        _data(train="x.txt", negatives="shuffle")
    with pytest.raises(ConfigError, match=r"data.negative_draws=0: must be a positive integer"):
        _data(train="x.txt", label="a", negatives="shuffle", negative_draws=0)
    with pytest.raises(ConfigError, match=r"data.negative_draws=2: .*data.negatives=substitute"):
        _data(train="x.txt", negative_draws=2)
    with pytest.raises(ConfigError, match=r"data.split=\[0.5, 0.5\]"):
        _data(train="x.txt", split=[0.5, 0.5])
    with pytest.raises(ConfigError, match=r"data.classes=\['a', 'b', 'c'\]: with data.negatives"):
        _data(train="x.txt", label="a", negatives="shuffle", classes=["a", "b", "c"])
    data = _data(train=str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match=r"^data.train=.*missing.csv: file not found"):
        data.check()
    _positives(tmp_path / "p.txt")
    with pytest.raises(
        ConfigError,
        match=r"data.negatives=subsitute: file not found.*\(or one of the schemes substitute",
    ):
        _data(train=str(tmp_path / "p.txt"), label="p", negatives="subsitute").check()
    with pytest.raises(ConfigError, match=r"data.format='xml': must be one of auto, lines"):
        _data(train=str(tmp_path / "p.txt"), format="xml").check()
