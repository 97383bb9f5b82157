"""Tests of dnabird.data.multilabel: the shared Features / MultiLabelExamples types and
their Parquet layout (round trip, the layout itself, files without metadata, and one-line
errors for ragged or non-0/1 labels, missing columns and unreadable files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dnabird.data.multilabel import (
    FEATURES_KEY,
    Features,
    MultiLabelExamples,
    read_parquet,
    write_parquet,
)
from dnabird.errors import InputError


def assert_one_line(err: pytest.ExceptionInfo, path: Path, *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    for part in parts:
        assert part in message, message


def write_table(path: Path, columns: dict, metadata: dict | None = None) -> Path:
    """A Parquet file written with pyarrow directly (not through write_parquet)."""
    table = pa.table(columns)
    if metadata is not None:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


@pytest.fixture
def examples() -> MultiLabelExamples:
    """5 sequences, 4 features (one name repeated), two extra columns."""
    rng = np.random.default_rng(0)
    features = Features.from_names(
        ["K562|CTCF|None", "NA|NA|NA", "K562|CTCF|None", "HeLa |H3K4me3|None"],
        ["TF", None, "TF", "HM"],
    )
    return MultiLabelExamples(
        sequences=["ACGT", "NNACG", "T", "GGGGCCCC", "ACNNA"],
        labels=(rng.random((5, 4)) < 0.5).astype(np.uint8),
        features=features,
        source="memory",
        columns={
            "chrom": np.array(["chr1", "chr1", "chr2", "chr2", "chrX"], dtype=object),
            "start": np.array([0, 200, 400, 600, 800], dtype=np.int64),
        },
    )


def test_repeated_names_get_unique_ids():
    features = Features.from_names(["a", "b", "a", "a", "b"])
    assert features.ids == ("a", "b", "a#2", "a#3", "b#2")
    assert features.names == ("a", "b", "a", "a", "b")
    assert features.categories == (None,) * 5
    assert len(features) == 5


def test_features_check_lengths_and_unique_ids():
    with pytest.raises(ValueError, match="one entry per feature"):
        Features(("a", "b"), ("a",), (None, None))
    with pytest.raises(ValueError, match="repeated"):
        Features(("a", "a"), ("a", "a"), (None, None))
    assert Features.numbered(3).ids == ("feature_0", "feature_1", "feature_2")


def test_features_subset_and_json(examples):
    features = examples.features
    part = features.subset([3, 0])
    assert part.ids == ("HeLa |H3K4me3|None", "K562|CTCF|None")
    assert part.categories == ("HM", "TF")
    assert Features.from_json(json.loads(json.dumps(features.to_json()))) == features


def test_examples_check_shapes_and_select_rows_and_columns(examples):
    with pytest.raises(ValueError, match=r"labels must be \[N=5, F=4\]"):
        MultiLabelExamples(examples.sequences, examples.labels[:, :3], examples.features)
    with pytest.raises(ValueError, match="column 'start' has 2 rows"):
        MultiLabelExamples(
            examples.sequences, examples.labels, examples.features, columns={"start": [1, 2]}
        )
    rows = examples.subset([4, 1])
    assert rows.sequences == ["ACNNA", "NNACG"]
    np.testing.assert_array_equal(rows.labels, examples.labels[[4, 1]])
    assert rows.columns["chrom"].tolist() == ["chrX", "chr1"]
    mask = np.array([True, False, True, False, False])
    assert examples.subset(mask).sequences == ["ACGT", "T"]
    cols = examples.select_features([2, 1])
    assert cols.features.ids == ("K562|CTCF|None#2", "NA|NA|NA")
    np.testing.assert_array_equal(cols.labels, examples.labels[:, [2, 1]])
    assert cols.sequences == examples.sequences


def test_parquet_round_trip(tmp_path, examples):
    path = write_parquet(tmp_path / "out" / "data.parquet", examples)
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]  # no temp left
    back = read_parquet(path)
    assert back.sequences == examples.sequences
    np.testing.assert_array_equal(back.labels, examples.labels)
    assert back.labels.dtype == np.uint8
    assert back.features == examples.features  # ids, names (trailing space) and categories
    assert back.source == str(path)
    assert sorted(back.columns) == ["chrom", "start"]
    assert back.columns["chrom"].tolist() == examples.columns["chrom"].tolist()
    assert back.columns["start"].tolist() == examples.columns["start"].tolist()


def test_parquet_layout(tmp_path, examples):
    path = write_parquet(tmp_path / "data.parquet", examples)
    table = pq.read_table(path)
    assert table.schema.names == ["sequence", "labels", "chrom", "start"]
    assert table.schema.field("labels").type == pa.list_(pa.uint8(), 4)
    assert table.column("labels").to_pylist() == examples.labels.tolist()
    meta = json.loads(table.schema.metadata[FEATURES_KEY])
    assert meta == {
        "ids": list(examples.features.ids),
        "names": list(examples.features.names),
        "categories": ["TF", None, "TF", "HM"],
    }


def test_without_metadata_features_are_numbered(tmp_path):
    path = write_table(
        tmp_path / "plain.parquet",
        {"sequence": ["ACGT", "GG"], "labels": [[0, 1, 1], [1, 0, 0]], "name": ["a", "b"]},
    )
    back = read_parquet(path)
    assert back.features == Features.numbered(3)
    assert back.labels.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert back.columns["name"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("columns", "metadata", "message"),
    [
        (
            {"sequence": ["A", "C", "G"], "labels": [[0, 1], [1, 0], [1]]},
            None,
            "row 3: 1 labels, but row 1 has 2",
        ),
        ({"sequence": ["A", "C"], "labels": [[0, 1], None]}, None, "row 2: none labels"),
        (
            {"sequence": ["A", "C"], "labels": [[0, 1], [1, 2]]},
            None,
            "row 2: label 1 is 2, not 0 or 1",
        ),
        (
            {"sequence": ["A"], "y": [[0, 1]]},
            None,
            "no 'labels' column (columns: sequence, y)",
        ),
        ({"seq": ["A"], "labels": [[0, 1]]}, None, "no 'sequence' column"),
        ({"sequence": ["A", ""], "labels": [[0], [1]]}, None, "row 2: empty sequence"),
        (
            {"sequence": pa.array([], pa.string()), "labels": pa.array([], pa.list_(pa.uint8()))},
            None,
            "no rows",
        ),
        ({"sequence": ["A"], "labels": [[]]}, None, "rows hold no labels"),
        (
            {"sequence": ["A"], "labels": [[0, 1]]},
            {FEATURES_KEY: json.dumps(Features.numbered(3).to_json()).encode()},
            "the metadata names 3 features but rows hold 2 labels",
        ),
        (
            {"sequence": ["A"], "labels": [[0, 1]]},
            {FEATURES_KEY: b"{not json"},
            "unreadable feature metadata",
        ),
    ],
    ids=[
        "ragged",
        "null-row",
        "not-0/1",
        "no-labels",
        "no-sequence",
        "empty-sequence",
        "no-rows",
        "no-labels-in-rows",
        "metadata-count",
        "metadata-json",
    ],
)
def test_bad_files_give_one_line(tmp_path, columns, metadata, message):
    path = write_table(tmp_path / "bad.parquet", columns, metadata)
    with pytest.raises(InputError) as err:
        read_parquet(path)
    assert_one_line(err, path, message)


def test_unreadable_and_missing_files(tmp_path, examples):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"sequence,labels\nACGT,0\n")
    with pytest.raises(InputError) as err:
        read_parquet(garbage)
    assert_one_line(err, garbage, "not a readable Parquet file")
    whole = write_parquet(tmp_path / "whole.parquet", examples).read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError) as err:
        read_parquet(cut)
    assert_one_line(err, cut, "not a readable Parquet file")
    with pytest.raises(InputError) as err:
        read_parquet(tmp_path / "absent.parquet")
    assert_one_line(err, tmp_path / "absent.parquet", "not found")


def test_concatenate_keeps_row_order_and_refuses_other_features():
    from dnabird.data.multilabel import concatenate

    features = Features.from_names(["a", "b"])
    one = MultiLabelExamples(["AC"], np.array([[1, 0]]), features, "x", {"n": np.array([1])})
    two = MultiLabelExamples(
        ["GT", "NN"], np.array([[0, 1], [1, 1]]), features, "y", {"n": np.array([2, 3])}
    )
    both = concatenate([one, two], "xy")
    assert both.sequences == ["AC", "GT", "NN"] and both.source == "xy"
    assert both.labels.tolist() == [[1, 0], [0, 1], [1, 1]] and both.columns["n"].tolist() == [
        1,
        2,
        3,
    ]
    other = MultiLabelExamples(["AC"], np.array([[1]]), Features.from_names(["a"]), "z")
    with pytest.raises(ValueError, match="z: other features or columns than x"):
        concatenate([one, other], "xz")
