"""Tests of dnabird.data.deepsea: small files written in DeepSEA's exact formats (MATLAB
v7.3 = HDF5 with a MATLAB userblock and reversed axes, MATLAB v5 via scipy, header-less
CSV), chunked and shuffled reading, bounded memory on a large v7.3 file, the feature names
and selections, one-line errors, and the real 100-example sample and names file."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from dnabird.data import deepsea
from dnabird.data.deepsea import (
    DEEPSEA_CATEGORIES,
    ONE_HOT_ORDER,
    DeepSEAFile,
    decode_one_hot,
    read_feature_names,
    read_multilabel,
    read_multilabel_csv,
    select_features,
)
from dnabird.data.multilabel import Features, MultiLabelExamples, write_parquet
from dnabird.errors import ConfigError, InputError

# The 128-byte header MATLAB writes into the 512-byte userblock of a v7.3 file: text padded
# with spaces to 116 bytes, 8 bytes of subsystem offset, version 0x0200, endian "IM".
MAT73_HEADER = (
    (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  6 12:00:00 2014 "
        b"HDF5 schema 1.00 ."
    ).ljust(116, b" ")
    + b"\x00" * 8
    + b"\x00\x02IM"
)


def one_hot(sequences: list[str]) -> np.ndarray:
    """[n, 4, L] uint8, rows A, G, C, T (DeepSEA's order), N all zero (test's own encoder)."""
    codes = np.array([list(s.encode()) for s in sequences], dtype=np.uint8)  # [n, L]
    return np.stack([codes == ord(base) for base in "AGCT"], axis=1).astype(np.uint8)


def random_examples(n: int, length: int, features: int, seed: int = 0):
    """``n`` random sequences over ACGTN (~5% N) and random 0/1 labels [n, F]."""
    rng = np.random.default_rng(seed)
    bases = rng.choice(list("ACGTN"), size=(n, length), p=[0.24, 0.24, 0.24, 0.23, 0.05])
    sequences = ["".join(row) for row in bases]
    labels = (rng.random((n, features)) < 0.2).astype(np.uint8)
    return sequences, labels


def write_v73(
    path: Path,
    x: np.ndarray,
    labels: np.ndarray,
    split: str = "train",
    userblock: bool = True,
    extra: dict | None = None,
) -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 after a 512-byte userblock holding the
    MAT header, each N x ... array stored with its axes reversed, ``MATLAB_class`` set."""
    arrays = {f"{split}xdata": x.transpose(2, 1, 0), f"{split}data": labels.T, **(extra or {})}
    with h5py.File(path, "w", userblock_size=512 if userblock else 0) as handle:
        for name, array in arrays.items():
            dataset = handle.create_dataset(name, data=array)
            dataset.attrs["MATLAB_class"] = np.bytes_(str(array.dtype))
    if userblock:
        with open(path, "r+b") as handle:
            handle.write(MAT73_HEADER)
    return path


def write_v5(
    path: Path, x: np.ndarray, labels: np.ndarray, split: str = "valid", compress: bool = True
) -> Path:
    scipy.io.savemat(
        path, {f"{split}xdata": x, f"{split}data": labels}, format="5", do_compression=compress
    )
    return path


def write_csv(path: Path, sequences: list[str], labels: np.ndarray, sep: str = ",") -> Path:
    text = "".join(
        sep.join([seq, *map(str, row)]) + "\n" for seq, row in zip(sequences, labels, strict=True)
    )
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def assert_one_line(err: pytest.ExceptionInfo, path: Path, *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for part in parts:
        assert part in message, message


@pytest.fixture
def small():
    """10 examples of 20 bp with 7 labels."""
    return random_examples(10, 20, 7, seed=3)


# --- one-hot decoding --------------------------------------------------------------------


def test_decode_one_hot_uses_agct_rows_and_reads_empty_columns_as_n():
    # example 0: "AGCTN", example 1: "TTNAC"; rows are A, G, C, T
    x = np.zeros((2, 4, 5), dtype=np.uint8)
    for j, row in enumerate([0, 1, 2, 3]):
        x[0, row, j] = 1
    x[1, 3, 0] = x[1, 3, 1] = x[1, 0, 3] = x[1, 2, 4] = 1
    assert ONE_HOT_ORDER == "AGCT"
    assert decode_one_hot(x) == ["AGCTN", "TTNAC"]
    assert decode_one_hot(x.astype(bool)) == ["AGCTN", "TTNAC"]
    assert decode_one_hot(x.astype(np.float64)) == ["AGCTN", "TTNAC"]


def test_decode_one_hot_inverts_an_independent_encoder():
    sequences, _ = random_examples(30, 57, 1, seed=1)
    assert decode_one_hot(one_hot(sequences)) == sequences


def test_decode_one_hot_errors_name_example_and_position():
    x = one_hot(["ACGT", "ACGT"])
    x[1, 0, 2] = 1  # position 2 is G and A at once
    with pytest.raises(InputError, match=r"example 1, position 2: more than one base set \(AG\)"):
        decode_one_hot(x)
    x = one_hot(["ACGT", "ACGT"])
    x[0, 3, 3] = 2
    with pytest.raises(InputError, match=r"example 0, position 3: one-hot value 2 for T"):
        decode_one_hot(x)
    with pytest.raises(InputError, match=r"expected \[n, 4, L\]"):
        decode_one_hot(np.zeros((2, 5, 4), dtype=np.uint8))


# --- DeepSEAFile: formats and values -----------------------------------------------------


@pytest.mark.parametrize("userblock", [True, False])
def test_v73_file_decodes_known_sequences_and_labels(tmp_path, small, userblock):
    sequences, labels = small
    path = write_v73(tmp_path / "train.mat", one_hot(sequences), labels, userblock=userblock)
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") == userblock
    with h5py.File(path) as handle:  # stored as MATLAB stores it: axes reversed
        assert handle["trainxdata"].shape == (20, 4, 10)
        assert handle["traindata"].shape == (7, 10)
    with DeepSEAFile(path) as data:
        assert (data.format, data.split, len(data)) == ("v7.3", "train", 10)
        assert (data.sequence_length, data.num_features) == (20, 7)
        examples = data.read()
        assert examples.sequences == sequences
        np.testing.assert_array_equal(examples.labels, labels)
        assert examples.labels.dtype == np.uint8
        assert examples.columns["index"].tolist() == list(range(10))
        assert examples.source == str(path)
        part = data.read(3, 7)
        assert part.sequences == sequences[3:7]
        np.testing.assert_array_equal(part.labels, labels[3:7])
        assert part.columns["index"].tolist() == [3, 4, 5, 6]
        assert len(data.read(4, 4)) == 0
        with pytest.raises(ValueError):
            data.read(5, 11)


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("compress", [True, False])
def test_v5_file_decodes_known_sequences_and_labels(tmp_path, small, split, compress):
    sequences, labels = small
    path = write_v5(tmp_path / f"{split}.mat", one_hot(sequences), labels, split, compress)
    assert path.read_bytes().startswith(b"MATLAB 5.0 MAT-file")
    with DeepSEAFile(path) as data:
        assert (data.format, data.split, len(data)) == ("v5", split, 10)
        assert (data.sequence_length, data.num_features) == (20, 7)
        assert data.read().sequences == sequences
        np.testing.assert_array_equal(data.read(2, 9).labels, labels[2:9])


def test_features_name_the_label_columns(tmp_path, small):
    sequences, labels = small
    path = write_v73(tmp_path / "train.mat", one_hot(sequences), labels)
    features = Features.from_names([f"f{i}" for i in range(7)])
    with DeepSEAFile(path, features) as data:
        assert data.read(0, 2).features is features
    with DeepSEAFile(path) as data:
        assert data.features.ids == tuple(f"feature_{i}" for i in range(7))
        assert data.features.categories == (None,) * 7
    with pytest.raises(InputError) as err:
        DeepSEAFile(path, Features.numbered(6))
    assert_one_line(err, path, "7 labels per example", "6 feature names")


def test_919_columns_get_deepsea_categories_by_default(tmp_path):
    sequences, labels = random_examples(3, 10, 919)
    path = write_v5(tmp_path / "valid.mat", one_hot(sequences), labels)
    with DeepSEAFile(path) as data:
        categories = data.features.categories
    for name, (lo, hi) in DEEPSEA_CATEGORIES.items():
        assert set(categories[lo:hi]) == {name}
    assert len(categories) == 919


# --- chunks and shuffling ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk_size", "lengths"),
    [(4, [4, 4, 2]), (5, [5, 5]), (1, [1] * 10), (10, [10]), (25, [10])],
)
def test_chunks_cover_the_file_in_order(tmp_path, small, chunk_size, lengths):
    sequences, labels = small
    path = write_v73(tmp_path / "train.mat", one_hot(sequences), labels)
    with DeepSEAFile(path) as data:
        chunks = list(data.iter_chunks(chunk_size))
    assert [len(chunk) for chunk in chunks] == lengths
    index = np.concatenate([chunk.columns["index"] for chunk in chunks])
    assert index.tolist() == list(range(10))
    assert [s for chunk in chunks for s in chunk.sequences] == sequences
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), labels)


def test_chunk_size_must_be_positive(tmp_path, small):
    path = write_v73(tmp_path / "train.mat", one_hot(small[0]), small[1])
    with DeepSEAFile(path) as data, pytest.raises(ValueError):
        next(data.iter_chunks(0))


@pytest.mark.parametrize("writer", [write_v73, write_v5])
def test_shuffle_permutes_chunks_and_rows_within_them(tmp_path, writer):
    sequences, labels = random_examples(103, 12, 5, seed=7)
    path = writer(tmp_path / "data.mat", one_hot(sequences), labels)

    def order(seed: int) -> list[np.ndarray]:
        with DeepSEAFile(path) as data:
            chunks = list(data.iter_chunks(10, shuffle=True, seed=seed))
        for chunk in chunks:  # every row is the example its index names
            assert chunk.sequences == [sequences[i] for i in chunk.columns["index"]]
            np.testing.assert_array_equal(chunk.labels, labels[chunk.columns["index"]])
        return [chunk.columns["index"] for chunk in chunks]

    chunks = order(seed=1)
    everything = np.concatenate(chunks)
    assert sorted(everything.tolist()) == list(range(103))  # each example exactly once
    firsts = [int(index.min()) for index in chunks]
    for index in chunks:  # each chunk is one contiguous block of the file
        lo = int(index.min())
        assert lo % 10 == 0
        assert sorted(index.tolist()) == list(range(lo, min(lo + 10, 103)))
    assert sorted(firsts) == list(range(0, 103, 10))
    assert firsts != sorted(firsts)  # chunk order permuted
    unsorted = sum(index.tolist() != sorted(index.tolist()) for index in chunks)
    assert unsorted >= 9  # rows within chunks permuted (the 3-row chunk may stay sorted)
    again = order(seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(chunks, again, strict=True))
    other = np.concatenate(order(seed=2))
    assert not np.array_equal(everything, other)


# --- bounded memory ----------------------------------------------------------------------

_PERIOD = 40  # the big file repeats every 40 examples (sequences every 5, labels every 40)
# Peak RSS is read as VmHWM from /proc: getrusage's ru_maxrss survives exec on Linux, so a
# child would start with its parent's (the test's) peak and hide any growth.
_MEMORY_SCRIPT = r"""
import json, sys
import numpy as np
from dnabird.data.deepsea import DeepSEAFile

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

path, chunk_size = sys.argv[1], int(sys.argv[2])
expected = json.load(sys.stdin)
labels = np.array(expected["labels"], dtype=np.uint8)
with DeepSEAFile(path) as data:
    data.read(0, 1)  # imports and HDF5 set-up happen before the baseline
    before = peak_kib()
    seen = np.zeros(len(data), dtype=np.int64)
    wrong = 0
    for chunk in data.iter_chunks(chunk_size, shuffle=True, seed=0):
        index = chunk.columns["index"]
        seen[index] += 1
        wrong += sum(s != expected["sequences"][i % 5] for s, i in zip(chunk.sequences, index))
        wrong += int((chunk.labels != labels[index % len(labels)]).any(axis=1).sum())
    after = peak_kib()
print(json.dumps({"growth_kib": after - before, "n": len(data), "once": bool((seen == 1).all()),
                  "wrong": int(wrong)}))
"""


def big_pattern(length: int, features: int):
    """Expected content of the big file: example i has sequence ``sequences[i % 5]`` and
    labels ``labels[i % 40]`` (computed here, not by the reader)."""
    bases = "AGCTN"  # base at (i, j) is bases[(7 i + j) % 5]: A, G, C, T, or N
    sequences = ["".join(bases[(7 * i + j) % 5] for j in range(length)) for i in range(5)]
    i = np.arange(_PERIOD)[:, None]
    labels = ((i + np.arange(features)[None, :]) % _PERIOD == 0).astype(np.uint8)
    return sequences, labels


def write_big_v73(path: Path, n: int, length: int = 1000, features: int = 919) -> Path:
    """An ``n``-example v7.3 file written in slabs (chunked, lzf-compressed datasets)."""
    slab = 10_000  # a multiple of the pattern's period: every slab is the same
    sequences, labels = big_pattern(length, features)
    x = one_hot([sequences[i % 5] for i in range(slab)])  # [slab, 4, L]
    y = labels[np.arange(slab) % _PERIOD]  # [slab, F]
    x_stored, y_stored = np.ascontiguousarray(x.transpose(2, 1, 0)), np.ascontiguousarray(y.T)
    with h5py.File(path, "w", userblock_size=512) as handle:
        xs = handle.create_dataset(
            "trainxdata", (length, 4, n), np.uint8, chunks=(length, 4, 250), compression="lzf"
        )
        ys = handle.create_dataset(
            "traindata", (features, n), np.uint8, chunks=(features, 250), compression="lzf"
        )
        for start in range(0, n, slab):
            stop = min(start + slab, n)
            xs[:, :, start:stop] = x_stored[:, :, : stop - start]
            ys[:, start:stop] = y_stored[:, : stop - start]
    with open(path, "r+b") as handle:
        handle.write(MAT73_HEADER)
    return path


def iterate_in_subprocess(path: Path, chunk_size: int) -> dict:
    sequences, labels = big_pattern(1000, 919)
    expected = json.dumps({"sequences": sequences, "labels": labels.tolist()})
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(path), str(chunk_size)],
        input=expected,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("n", "chunk_size", "limit_mib"),
    [
        # 80 MB of sequence arrays; reading them whole would exceed the limit
        (20_000, 500, 40),
        # 800 MB of sequence arrays (the scale)
        (200_000, 4096, 500),  # ~10 s on 2 busy cores: under the 20 s of a slow test
    ],
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_iterating_a_large_v73_file_keeps_memory_bounded(tmp_path, n, chunk_size, limit_mib):
    started = time.perf_counter()
    path = write_big_v73(tmp_path / "train.mat", n)
    assert time.perf_counter() - started < 60
    assert n * 4 * 1000 > limit_mib * 2**20  # reading the x data whole would pass the limit
    result = iterate_in_subprocess(path, chunk_size)
    assert result == {"growth_kib": result["growth_kib"], "n": n, "once": True, "wrong": 0}
    assert result["growth_kib"] < limit_mib * 1024


# --- DeepSEAFile: errors -----------------------------------------------------------------


def test_missing_sequence_array_names_the_keys_there(tmp_path, small):
    sequences, labels = small
    path = tmp_path / "train.mat"
    with h5py.File(path, "w") as handle:
        handle["xdata"] = one_hot(sequences).transpose(2, 1, 0)
        handle["traindata"] = labels.T
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "trainxdata", "its arrays: traindata, xdata")


def test_missing_labels_array(tmp_path, small):
    path = tmp_path / "valid.mat"
    scipy.io.savemat(path, {"validxdata": one_hot(small[0]), "other": small[1]})
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "without its labels validdata", "other, validxdata")


def test_two_splits_in_one_file_are_refused(tmp_path, small):
    x, y = one_hot(small[0]), small[1]
    path = write_v73(tmp_path / "mixed.mat", x, y, extra={"testxdata": x, "testdata": y})
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "more than one split")


def test_wrong_sequence_shape(tmp_path, small):
    sequences, labels = small
    path = tmp_path / "train.mat"
    with h5py.File(path, "w") as handle:
        handle["trainxdata"] = one_hot(sequences).transpose(2, 0, 1)  # (L, N, 4)
        handle["traindata"] = labels.T
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "trainxdata has shape (20, 10, 4)", "(L, 4, N)")
    path = tmp_path / "valid.mat"
    scipy.io.savemat(path, {"validxdata": one_hot(sequences)[:, :3], "validdata": labels})
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "validxdata has shape (10, 3, 20)", "(N, 4, L)")


def test_arrays_in_numpy_order_in_a_v73_file_are_refused(tmp_path, small):
    sequences, labels = small
    path = tmp_path / "train.mat"
    with h5py.File(path, "w") as handle:  # axes not reversed: labels do not match
        handle["trainxdata"] = one_hot(sequences)
        handle["traindata"] = labels
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "traindata has shape (10, 7), expected (features, 20)")


def test_label_count_must_match_the_examples(tmp_path, small):
    sequences, labels = small
    path = tmp_path / "train.mat"
    with h5py.File(path, "w") as handle:
        handle["trainxdata"] = one_hot(sequences).transpose(2, 1, 0)
        handle["traindata"] = labels[:9].T
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "traindata has shape (7, 9)", "(10 examples)")


@pytest.mark.parametrize("writer", [write_v73, write_v5])
def test_non_binary_labels_are_found_in_the_chunk_that_holds_them(tmp_path, small, writer):
    sequences, labels = small
    labels = labels.copy()
    labels[7, 2] = 3
    path = writer(tmp_path / "data.mat", one_hot(sequences), labels)
    with DeepSEAFile(path) as data:
        chunks = data.iter_chunks(4)
        assert len(next(chunks)) == 4  # examples 0-3 are fine
        with pytest.raises(InputError) as err:
            next(chunks)
    assert_one_line(err, path, "example 7 (0-based): label 2 (feature_2) is 3, not 0 or 1")


def test_bad_one_hot_values_name_the_file_and_example(tmp_path, small):
    sequences, labels = small
    x = one_hot(sequences)
    x[6, :, 4] = 1
    path = write_v73(tmp_path / "train.mat", x, labels)
    with DeepSEAFile(path) as data, pytest.raises(InputError) as err:
        data.read(4, 8)
    assert_one_line(err, path, "trainxdata: example 6, position 4: more than one base set (AGCT)")


@pytest.mark.parametrize(
    "writer",
    [
        write_v73,
        lambda p, x, y: write_v5(p, x, y, compress=True),
        lambda p, x, y: write_v5(p, x, y, compress=False),
    ],
    ids=["v7.3", "v5-compressed", "v5"],
)
def test_truncated_files_give_one_line(tmp_path, writer):
    sequences, labels = random_examples(200, 100, 30)
    whole = writer(tmp_path / "whole.mat", one_hot(sequences), labels)
    path = tmp_path / "cut.mat"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err, DeepSEAFile(path) as opened:
        opened.read()
    assert_one_line(err, path, "truncated")


@pytest.mark.parametrize(
    "content",
    [b"", b"GAGT,0,1\n", gzip.compress(b"not a mat file"), b"MATLAB 5.0 MAT-file" + b" " * 200],
    ids=["empty", "csv", "gzip", "v5-header-text-only"],
)
def test_files_that_are_no_mat_files(tmp_path, content):
    path = tmp_path / "train.mat"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        DeepSEAFile(path)
    assert_one_line(err, path, "neither a MATLAB v7.3 (HDF5) nor a MATLAB v5 MAT-file")


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        DeepSEAFile(tmp_path / "train.mat")
    assert_one_line(err, tmp_path / "train.mat", "not found")


# --- feature names and selections --------------------------------------------------------


def write_names(path: Path, names: list[str], header: bool = True) -> Path:
    lines = (["0\tAuto-select"] if header else []) + [
        f"{i}\t{name}" for i, name in enumerate(names, 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_feature_names_keep_order_quirks_and_give_unique_ids(tmp_path, header):
    names = ["A|DNase|None", "NA|NA|NA", "B |CTCF|None", "A|DNase|None", "A|DNase|None"]
    features = read_feature_names(write_names(tmp_path / "names.tsv", names, header))
    assert features.names == tuple(names)
    assert features.ids == (
        "A|DNase|None",
        "NA|NA|NA",
        "B |CTCF|None",
        "A|DNase|None#2",
        "A|DNase|None#3",
    )
    assert features.categories == (None,) * 5  # not 919 features


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0\tAuto-select\n1\tA\n3\tB\n", "line 3: index 3, expected 2"),
        ("1\tA\n2 B\n", "line 2: expected 'index<TAB>name'"),
        ("x\tA\n", "line 1: expected 'index<TAB>name'"),
        ("1\tA\n0\tAuto-select\n", "line 2: index 0, expected 2"),
        ("0\tAuto-select\n\n", "no feature names"),
    ],
)
def test_feature_names_errors(tmp_path, text, message):
    path = tmp_path / "names.tsv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_feature_names(path)
    assert_one_line(err, path, message)


@pytest.fixture
def deepsea_like() -> Features:
    """919 features: DeepSEA's categories, names with one repeated name."""
    names = [f"cell{i}|T{i % 300}|None" for i in range(919)]
    names[500] = names[200]
    categories = ["DHS"] * 125 + ["TF"] * 690 + ["HM"] * 104
    return Features.from_names(names, categories)


def test_select_features(deepsea_like, tmp_path):
    features = deepsea_like
    np.testing.assert_array_equal(select_features(features, None), np.arange(919))
    np.testing.assert_array_equal(select_features(features, "TF"), np.arange(125, 815))
    np.testing.assert_array_equal(
        select_features(features, ["HM", "DHS"]), [*range(0, 125), *range(815, 919)]
    )
    # a name selects all its replicates, an id only its column; results in file order
    assert select_features(features, [features.names[200]]).tolist() == [200, 500]
    assert select_features(features, [features.ids[500]]).tolist() == [500]
    picked = select_features(features, [features.ids[900], features.ids[3]])
    assert picked.tolist() == [3, 900]
    assert picked.dtype == np.int64
    path = tmp_path / "wanted.txt"
    path.write_text(f"# my features\n{features.ids[7]}\n\n  {features.ids[2]}  \nHM\n")
    expected = [2, 7, *range(815, 919)]
    assert select_features(features, str(path)).tolist() == expected
    assert select_features(features, path).tolist() == expected


def test_unknown_features_suggest_the_closest(deepsea_like, tmp_path):
    with pytest.raises(ConfigError, match=r"'cell7\|T7' .* did you mean 'cell7\|T7\|None'\?$"):
        select_features(deepsea_like, ["cell7|T7"])
    with pytest.raises(ConfigError, match=r"'tf' .* did you mean 'TF'\?$"):
        select_features(deepsea_like, "tf")
    path = tmp_path / "wanted.txt"
    path.write_text("cell1|T1|None\nHMM\n")
    with pytest.raises(InputError) as err:
        select_features(deepsea_like, path)
    assert_one_line(err, path, "line 2: unknown feature or category 'HMM'; did you mean 'HM'?")
    with pytest.raises(ConfigError, match="empty"):
        select_features(deepsea_like, [])


# --- CSV and dispatch --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "data.tsv", "data.tsv.gz"])
def test_csv_reads_sequences_and_labels(tmp_path, small, name):
    sequences, labels = small
    sep = "\t" if ".tsv" in name else ","
    path = write_csv(tmp_path / name, sequences, labels, sep)
    for examples in (read_multilabel_csv(path), read_multilabel(path)):
        assert examples.sequences == sequences
        np.testing.assert_array_equal(examples.labels, labels)
        assert examples.features.ids == tuple(f"feature_{i}" for i in range(7))
        assert examples.source == str(path)


def test_csv_normalises_sequences_and_takes_feature_names(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("acgtRYn,1,0\r\n\nNNAC,0,1\r\n")
    features = Features.from_names(["x", "y"])
    examples = read_multilabel_csv(path, features)
    assert examples.sequences == ["ACGTNNN", "NNAC"]
    assert examples.labels.tolist() == [[1, 0], [0, 1]]
    assert examples.features is features


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ACGT,0,1\nACGT,1\n", "line 2: 1 labels, but line 1 has 2"),
        ("ACGT,0,1\n\nACGT,1,2\n", "line 3: label 1 (field 3) is '2', not 0 or 1"),
        ("sequence,f1,f2\nACGT,0,1\n", "line 1: label 0 (field 2) is 'f1', not 0 or 1"),
        ("ACGT,0,1\nAC-T,1,1\n", "line 2: sequence has '-' at position 2"),
        ("ACGT,0,1\n,1,1\n", "line 2: empty sequence"),
        ("ACGT\n", "line 1: no labels after the sequence"),
        ("\n\n", "empty file"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_multilabel_csv(path)
    assert_one_line(err, path, message)


def test_csv_feature_count_and_corrupt_gzip(tmp_path, small):
    path = write_csv(tmp_path / "data.csv.gz", *small)
    with pytest.raises(InputError) as err:
        read_multilabel_csv(path, Features.numbered(8))
    assert_one_line(err, path, "7 labels per line, but 8 feature names")
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError) as err:
        read_multilabel_csv(cut)
    assert_one_line(err, cut, "unreadable gzip data")


def test_read_multilabel_dispatches_by_extension(tmp_path, small, monkeypatch):
    sequences, labels = small
    x = one_hot(sequences)
    for path in (
        write_v73(tmp_path / "train.mat", x, labels),
        write_v5(tmp_path / "valid.mat", x, labels),
    ):
        examples = read_multilabel(path)
        assert examples.sequences == sequences
        np.testing.assert_array_equal(examples.labels, labels)
    stored = MultiLabelExamples(sequences, labels, Features.numbered(7), "x")
    parquet = write_parquet(tmp_path / "data.parquet", stored)
    assert read_multilabel(parquet).features == Features.numbered(7)
    renamed = Features.from_names(list("abcdefg"))
    again = read_multilabel(parquet, renamed)
    assert again.features == renamed
    assert again.sequences == sequences
    with pytest.raises(InputError) as err:
        read_multilabel(parquet, Features.numbered(3))
    assert_one_line(err, parquet, "7 labels per row, but 3 feature names")
    other = tmp_path / "data.fa"
    other.write_text(">a\nACGT\n")
    with pytest.raises(ConfigError) as err:
        read_multilabel(other)
    assert_one_line(err, other, "cannot tell the format")
    monkeypatch.setattr(deepsea, "MAX_IN_MEMORY", 9)
    with pytest.raises(InputError) as err:
        read_multilabel(tmp_path / "train.mat")
    assert_one_line(err, tmp_path / "train.mat", "10 examples are too many", "iter_chunks")


# --- the real DeepSEA sample and names ---------------------------------------------------


@pytest.fixture(scope="module")
def real_files(shared_data):
    folder = shared_data / "deepsea"
    return folder / "deepsea_test_sample_100.csv.gz", folder / "deepsea_919_feature_names.tsv"


@pytest.mark.realdata
def test_real_feature_names(real_files):
    path = real_files[1]
    features = read_feature_names(path)
    raw = [line.split("\t", 1) for line in path.read_text().splitlines()]
    assert raw[0] == ["0", "Auto-select"]
    assert features.names == tuple(name for _, name in raw[1:])  # order and quirks kept
    assert len(features) == 919
    assert features.names[576] == "NA|NA|NA"  # index 577 in the file
    assert features.names[854].startswith("Monocytes-CD14+RO01746\xa0|")  # kept as given
    assert len(set(features.ids)) == 919
    repeated = [i for i, name in enumerate(features.names) if name == "K562|CTCF|None"]
    assert len(repeated) == 5
    assert [features.ids[i] for i in repeated] == [
        "K562|CTCF|None",
        *(f"K562|CTCF|None#{k}" for k in range(2, 6)),
    ]
    assert select_features(features, "K562|CTCF|None").tolist() == repeated
    counts = {name: features.categories.count(name) for name in DEEPSEA_CATEGORIES}
    assert counts == {"DHS": 125, "TF": 690, "HM": 104}
    assert features.names[124] == "WI-38|DNase|None" and features.categories[124] == "DHS"
    assert features.names[125] == "Dnd41|CTCF|None" and features.categories[125] == "TF"


@pytest.mark.realdata
def test_real_sample_matches_the_readme(real_files):
    csv_path, names_path = real_files
    examples = read_multilabel(csv_path, read_feature_names(names_path))
    with gzip.open(csv_path, "rt", newline="") as handle:  # independent parse
        rows = list(csv.reader(handle))
    assert examples.sequences == [row[0] for row in rows]
    np.testing.assert_array_equal(examples.labels, np.array([row[1:] for row in rows], dtype=int))
    assert len(examples) == 100
    assert {len(s) for s in examples.sequences} == {8000}
    labels = examples.labels
    assert int((labels.sum(axis=0) > 0).sum()) == 483  # README: 483 of 919 features
    per_example = labels.sum(axis=1)
    assert (per_example.min(), per_example.max()) == (0, 231)  # README: 0-231
    assert round(float(per_example.mean()), 1) == 15.7  # README: mean 15.7
    with_positive = {
        name: int((labels[:, select_features(examples.features, name)].sum(axis=0) > 0).sum())
        for name in DEEPSEA_CATEGORIES
    }
    assert with_positive == {"DHS": 125, "TF": 281, "HM": 77}  # sums to 483
    assert examples.features.ids[0] == "8988T|DNase|None"


@pytest.mark.realdata
@pytest.mark.parametrize("writer", [write_v73, write_v5])
def test_real_sample_round_trips_through_mat_files(tmp_path, real_files, writer):
    examples = read_multilabel_csv(real_files[0])
    path = writer(tmp_path / "data.mat", one_hot(examples.sequences), examples.labels)
    with DeepSEAFile(path) as data:
        assert (len(data), data.sequence_length, data.num_features) == (100, 8000, 919)
        chunks = list(data.iter_chunks(32))
    assert [s for chunk in chunks for s in chunk.sequences] == examples.sequences
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), examples.labels)
