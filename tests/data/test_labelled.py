"""Tests of dnabird.data.labelled: every format of labelled sequences (plain and gzip),
labels and classes, the real GUE and promoter files, and one-line errors for each bad
input."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dnabird.data.labelled import FORMATS, LabelledSequences, concatenate, read_labelled
from dnabird.errors import ConfigError, DnabirdError, InputError


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, gzip-compressed when the name ends in .gz."""
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["pos.txt", "pos.seq.gz"])
def test_lines_one_label_for_the_file(tmp_path, name):
    path = write(tmp_path / name, "ACGTacgt\n\n  TTTTRYN \nGGG\r\n")
    data = read_labelled(path, label="promoter")
    assert data.ids == [f"{name}:1", f"{name}:3", f"{name}:4"]
    assert data.sequences == ["ACGTACGT", "TTTTNNN", "GGG"]
    assert data.labels.tolist() == [0, 0, 0]
    assert data.classes == ("promoter",)
    assert data.source == str(path)
    assert data.split is None
    assert len(data) == 3


@pytest.mark.parametrize("name", ["seqs.fa", "seqs.fasta.gz"])
def test_fasta_labels_from_the_header(tmp_path, name):
    text = ">a label=promoter x=1\nACGT\nAC\n>b other label=negative\nggnn\n>c label=promoter\nT\n"
    data = read_labelled(write(tmp_path / name, text), classes=["negative", "promoter"])
    assert data.ids == ["a", "b", "c"]
    assert data.sequences == ["ACGTAC", "GGNN", "T"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.classes == ("negative", "promoter")


def test_fasta_label_field_and_labels_file(tmp_path):
    fasta = write(tmp_path / "s.fna", ">a class=x\nAAAA\n>b class=y\nCCCC\n")
    assert read_labelled(fasta, label_field="class").labels.tolist() == [0, 1]
    plain = write(tmp_path / "p.fa", ">a\nAAAA\n>b\nCCCC\n")
    for header in ("", "id\tlabel\n"):
        labels = write(tmp_path / "labels.tsv", f"{header}b\t1\na\t0\n")
        data = read_labelled(plain, labels_file=labels)
        assert data.labels.tolist() == [0, 1] and data.classes == ("0", "1")
    assert read_labelled(plain, label="neg").classes == ("neg",)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_csv_with_id_and_split_columns(tmp_path, name):
    text = "ID,Sequence,label,split,note\nx1,ACGT,1,train,a\nx2,NNRA,0,dev,b\n\nx3,tt,1,test,c\n"
    data = read_labelled(write(tmp_path / name, text))
    assert data.ids == ["x1", "x2", "x3"]
    assert data.sequences == ["ACGT", "NNNA", "TT"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.split.tolist() == ["train", "validation", "test"]


def test_tsv_without_ids_and_numeric_class_order(tmp_path):
    path = write(tmp_path / "t.tsv.gz", "sequence\tlabel\nAC\t10\nGT\t2\nCC\t1\n")
    data = read_labelled(path)
    assert data.ids == ["t.tsv.gz:2", "t.tsv.gz:3", "t.tsv.gz:4"]
    assert data.classes == ("1", "2", "10")
    assert data.labels.tolist() == [2, 1, 0]


def test_parquet(tmp_path):
    table = pa.table(
        {
            "id": ["r1", "r2"],
            "sequence": ["acgt", "GGYY"],
            "label": [1, 0],
            "split": ["val", "test"],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    data = read_labelled(tmp_path / "t.parquet")
    assert data.ids == ["r1", "r2"]
    assert data.sequences == ["ACGT", "GGNN"]
    assert data.classes == ("0", "1") and data.labels.tolist() == [1, 0]
    assert data.split.tolist() == ["validation", "test"]


def test_explicit_format_and_declared_classes(tmp_path):
    path = write(tmp_path / "data.dat", "sequence,label\nAC,b\nGT,a\n")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_labelled(path)
    data = read_labelled(path, format="csv", classes=("b", "a", "c"))
    assert data.classes == ("b", "a", "c") and data.labels.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="unknown format"):
        read_labelled(path, format="xlsx")
    assert set(FORMATS) == {"lines", "fasta", "csv", "tsv", "parquet"}


def test_subset_with_split_and_concatenate(tmp_path):
    pos = read_labelled(
        write(tmp_path / "p.txt", "AAAA\nCCCC\nGGGG\n"), label="1", classes=("0", "1")
    )
    neg = read_labelled(write(tmp_path / "n.txt", "TTTT\n"), label="0", classes=("0", "1"))
    picked = pos.subset(np.array([2, 0]))
    assert picked.ids == ["p.txt:3", "p.txt:1"] and picked.sequences == ["GGGG", "AAAA"]
    assert pos.subset(np.array([False, True, False])).sequences == ["CCCC"]
    both = concatenate([pos, neg])
    assert both.sequences == ["AAAA", "CCCC", "GGGG", "TTTT"]
    assert both.labels.tolist() == [1, 1, 1, 0]
    assert both.source == f"{tmp_path / 'p.txt'} + {tmp_path / 'n.txt'}"
    split = concatenate([pos.with_split("train"), neg.with_split("test")]).split
    assert split.tolist() == ["train"] * 3 + ["test"]
    with pytest.raises(InputError, match="some files carry splits"):
        concatenate([pos.with_split("train"), neg])
    with pytest.raises(InputError, match="occurs in more than one"):
        concatenate([pos, pos])
    other = read_labelled(tmp_path / "n.txt", label="0")
    with pytest.raises(InputError, match="classes"):
        concatenate([pos, other])
    with pytest.raises(ValueError):
        LabelledSequences(["a"], ["A", "C"], np.zeros(1, dtype=np.int64), ("x",), "s")


# Each bad input: (file name, content, read_labelled options, what the message says).
BAD_INPUTS = [
    ("bad.txt", "ACGT\n\nACXT\n", {"label": "p"}, r"bad.txt: line 3: sequence has 'X'"),
    ("bad.csv", "sequence,label\nAC,0\nA-C,1\n", {}, r"bad.csv: line 3: sequence has '-'"),
    ("bad.fa", ">a label=1\nACGT\n>b label=0\nAC\nAJ\n", {}, r"record 'b', line 5: .*'J'"),
    (
        "bad.tsv",
        "sequence\tlabel\nAC\t0\nAG\t2\n",
        {"classes": ["0", "1"]},
        r"bad.tsv: line 3: label '2' is not one of the declared classes \(0, 1\)",
    ),
    ("bad.fa", ">a label=x\nAC\n", {"classes": ["y"]}, r"record 'a', line 1: label 'x'"),
    (
        "bad.csv",
        "id,sequence,label\nq,AC,0\nr,AG,0\nq,TT,1\n",
        {},
        r"bad.csv: line 4: duplicate id 'q' \(first at .*bad.csv: line 2\)",
    ),
    ("bad.fa", ">a label=1\nAC\n>a label=0\nGG\n", {}, r"line 3: duplicate record name 'a'"),
    ("bad.txt", "", {"label": "p"}, r"bad.txt: empty file"),
    ("bad.txt", "\n  \n", {"label": "p"}, r"bad.txt: empty file"),
    ("bad.csv", "sequence,label\n", {}, r"bad.csv: empty file"),
    ("bad.csv", "", {}, r"bad.csv: empty file"),
    ("bad.fa", "", {}, r"empty FASTA file"),
    ("bad.csv", "seq,label\nAC,1\n", {}, r"bad.csv: line 1: no 'sequence' column"),
    ("bad.csv", "sequence,name\nAC,1\n", {}, r"no labels in the file \(no 'label' column\)"),
    ("bad.txt", "ACGT\n", {}, r"bad.txt: no labels in the file"),
    ("bad.fa", ">a label=1\nAC\n>b\nGG\n", {}, r"line 3: record 'b' has no 'label='"),
    ("bad.csv", "sequence,label\n,1\n", {}, r"bad.csv: line 2: empty sequence"),
    ("bad.csv", "sequence,label\nAC,\n", {}, r"bad.csv: line 2: empty label"),
    ("bad.csv", "sequence,label\nAC,1,3\n", {}, r"bad.csv: line 2: 3 fields, the header has 2"),
    ("bad.csv", "sequence,label,split\nAC,1,holdout\n", {}, r"line 2: split 'holdout'"),
    ("bad.csv", "sequence,label\nAC,1\n", {"label": "1"}, r"carries labels .* and label="),
    ("bad.csv.gz", "sequence,label\nAC,1\n", {}, r"unreadable gzip data"),
    ("bad.txt", "AC\xe9\n", {"label": "p"}, r"not UTF-8 text"),
]


@pytest.mark.parametrize("name, content, options, message", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_file(tmp_path, name, content, options, message):
    path = tmp_path / name
    if name == "bad.csv.gz":
        path.write_bytes(gzip.compress(content.encode())[:-10])  # truncated
    elif "\xe9" in content:
        path.write_bytes(content.encode("latin-1"))
    else:
        path.write_text(content)
    with pytest.raises(DnabirdError, match=message) as err:
        read_labelled(path, **options)
    text = str(err.value)
    assert "\n" not in text and str(path) in text


def test_bad_labels_files(tmp_path):
    fasta = write(tmp_path / "p.fa", ">a\nAAAA\n>b\nCCCC\n")
    cases = [
        ("a\t0\n", r"p.fa: record 'b', line 3: id 'b' has no label in .*labels.tsv"),
        ("a\t0\nb\t1\nc\t1\n", r"labels.tsv: line 3: id 'c' is not in the sequence file"),
        ("a\t0\na\t1\nb\t1\n", r"labels.tsv: line 2: id 'a' listed twice"),
        ("a 0\nb\t1\n", r"labels.tsv: line 1: expected 'id<TAB>label'"),
        ("a\tx\nb\t1\n", r"labels.tsv: line 1: label 'x' is not one of the declared"),
    ]
    for content, message in cases:
        labels = write(tmp_path / "labels.tsv", content)
        with pytest.raises(InputError, match=message) as err:
            read_labelled(fasta, labels_file=labels, classes=("0", "1"))
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="either label="):
        read_labelled(fasta, label="0", labels_file=labels)
    with pytest.raises(InputError, match="labels file not found"):
        read_labelled(fasta, labels_file=tmp_path / "missing.tsv")


def test_bad_parquet(tmp_path):
    pq.write_table(
        pa.table({"sequence": ["AC", "AZ"], "label": ["0", "1"]}), tmp_path / "a.parquet"
    )
    with pytest.raises(InputError, match=r"a.parquet: row 2: sequence has 'Z'"):
        read_labelled(tmp_path / "a.parquet")
    pq.write_table(pa.table({"seq": ["AC"], "label": ["0"]}), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b.parquet: schema: no 'sequence' column"):
        read_labelled(tmp_path / "b.parquet")
    pq.write_table(pa.table({"sequence": pa.array([], pa.string())}), tmp_path / "c.parquet")
    with pytest.raises(InputError, match="c.parquet: empty file"):
        read_labelled(tmp_path / "c.parquet", label="x")
    write(tmp_path / "d.parquet", "sequence,label\n")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_labelled(tmp_path / "d.parquet")


@pytest.mark.realdata
def test_real_gue_csv(shared_data):
    data = read_labelled(shared_data / "gue_tf" / "0" / "dev.csv.gz")
    assert len(data) == 1000
    assert data.classes == ("0", "1")
    assert {len(s) for s in data.sequences} == {101}
    assert set("".join(data.sequences)) <= set("ACGTN")
    assert 300 < data.labels.sum() < 700  # about half positive
    assert data.ids[0] == "dev.csv.gz:2"


@pytest.mark.realdata
def test_real_gue_train_reads_fast(shared_data):
    start = time.perf_counter()
    data = read_labelled(shared_data / "gue_tf" / "0" / "train.csv.gz")
    assert len(data) == 32_378
    assert time.perf_counter() - start < 3  # about 0.1 s; a loose bound for busy machines


@pytest.mark.realdata
def test_real_promoters(shared_data):
    path = shared_data / "promoters" / "human_TATA_EPDnew_300bp.txt"
    data = read_labelled(path, label="promoter", classes=("negative", "promoter"))
    assert len(data) == 2929
    assert {len(s) for s in data.sequences} == {300}
    assert data.labels.tolist() == [1] * 2929
    first = path.read_text().split("\n", 1)[0].strip()
    assert data.sequences[0] == first.upper()
    assert data.ids[-1] == "human_TATA_EPDnew_300bp.txt:2929"
