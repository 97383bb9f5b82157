"""Tests of dnabird.genome.fasta: validation, compression, indexing and record reading."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from Bio import bgzf

from dnabird.cli import main
from dnabird.errors import InputError
from dnabird.genome import fasta as fasta_module
from dnabird.genome.fasta import iter_fasta, normalise, read_fasta, reverse_complement, scan_fasta

from .conftest import read_plain_fasta


def _gzip(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    return target


def _bgzip(path: Path) -> Path:
    target = path.with_name(path.name + ".bgz")
    with bgzf.BgzfWriter(str(target), "wb") as out:
        out.write(path.read_bytes())
    return target


@pytest.mark.parametrize("compress", [None, _gzip, _bgzip])
def test_scan_agrees_with_a_plain_parse(data_file, compress):
    plain = data_file("tiny.fa")
    expected = read_plain_fasta(plain)
    path = compress(plain) if compress else plain
    scan = scan_fasta(path)
    assert scan.compression == {None: "plain", _gzip: "gzip", _bgzip: "bgzip"}[compress]
    assert scan.lengths == {n: len(s) for n, s in expected.items()}
    assert scan.records[0].ambiguous == 2  # one 'R' and one 'y' in chr1
    assert scan.regular_lines


def test_normalise_uppercases_and_maps_ambiguity_codes():
    assert normalise(b"acgtnRYkmswbdhvACGTN") == b"ACGTNNNNNNNNNNNACGTN"
    assert normalise(b"acgtnRYkmACGTN", keep_case=True) == b"acgtnNNnnACGTN"


def _message(path: Path) -> str:
    with pytest.raises(InputError) as info:
        scan_fasta(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_inputs_raise_one_line_errors_naming_file_record_and_line(data_file, tmp_path):
    assert "record 'chr2', line 6: invalid sequence character b'X'" in _message(
        data_file("bad_char.fa")
    )
    assert "line 5: duplicate record name 'chr2'" in _message(data_file("duplicate.fa"))
    assert "record 'chr2' (line 3) has no sequence" in _message(data_file("no_sequence.fa"))
    assert "empty FASTA file" in _message(data_file("empty.fa"))
    assert "not a FASTA file" in _message(data_file("not_fasta.txt"))
    binary = tmp_path / "image.fa"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    assert "not a FASTA file" in _message(binary)
    headless = tmp_path / "headless.fa"
    headless.write_text(">\nACGT\n")
    assert "header without a record name" in _message(headless)


def test_truncated_and_corrupt_gzip_are_reported(data_file, tmp_path):
    whole = _gzip(data_file("tiny.fa")).read_bytes()
    truncated = tmp_path / "truncated.fa.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    assert "truncated gzip" in _message(truncated)
    corrupt = tmp_path / "corrupt.fa.gz"
    corrupt.write_bytes(whole[:20] + bytes(40) + whole[60:])
    assert "gzip" in _message(corrupt)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_scan_is_independent_of_chunk_boundaries(data_file, monkeypatch, chunk):
    paths = [data_file(n) for n in ("tiny.fa", "ragged.fa", "bad_char.fa", "duplicate.fa")]
    whole = [scan_fasta(p) for p in paths[:2]]
    messages = [_message(p) for p in paths[2:]]
    monkeypatch.setattr(fasta_module, "_CHUNK_BYTES", chunk)
    assert [scan_fasta(p) for p in paths[:2]] == whole
    assert [_message(p) for p in paths[2:]] == messages


def test_line_width_rules(tmp_path):
    cases = {
        ">a\nACGT\nACGT\nAC\n\n\n>b\nACG\n": True,  # blank lines after the last line
        ">a\nACGT\nAC\nACGT\n": False,  # a full line after a short one
        ">a\nACGT\nACGTA\n": False,  # a longer line
        ">a\nACGT\n\nACGT\n": False,  # a blank line inside the record
        ">a\nACGT\r\nACGT\r\nA\r\n": True,  # Windows line ends
    }
    for i, (text, regular) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.fa"
        path.write_bytes(text.encode())
        assert scan_fasta(path).regular_lines is regular, text


def _upper(sequence: str) -> str:
    """Independent normalisation: IUPAC codes -> N, uppercase."""
    return "".join("N" if c in "RYKMSWBDHVrykmswbdhv" else c.upper() for c in sequence)


@pytest.mark.parametrize("compress", [None, _gzip, _bgzip])
def test_read_fasta_returns_every_record_normalised(data_file, compress):
    plain = data_file("ragged.fa")  # any line width is fine for whole-record reading
    expected = read_plain_fasta(plain)
    path = compress(plain) if compress else plain
    records = read_fasta(path)
    assert list(records) == list(expected)
    assert records == {name: _upper(seq) for name, seq in expected.items()}
    kept = read_fasta(path, keep_case=True)
    assert any(c.islower() for c in "".join(kept.values()))
    assert {n: s.upper() for n, s in kept.items()} == records


def _read_error(path: Path, reader=read_fasta) -> str:
    with pytest.raises(InputError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_read_fasta_names_file_record_and_line_like_preprocess(data_file, tmp_path):
    """Before: biopython accepted 'X' (and evaluate-mlm later said "sequence has 'X' at
    position 0"), and non-FASTA input gave a many-line biopython message."""
    assert "record 'chr2', line 6: invalid sequence character b'X'" in _read_error(
        data_file("bad_char.fa")
    )
    far = tmp_path / "far.fa.gz"  # the bad character deep in a compressed record
    lines = [">chr1"] + ["ACGT" * 15] * 3000 + [">chr7"] + ["ACGT" * 15] * 1666 + ["ACGTX"]
    far.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert "record 'chr7', line 4669: invalid sequence character b'X'" in _read_error(far)
    assert "not a FASTA file" in _read_error(data_file("not_fasta.txt"))
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    assert "not a FASTA file" in _read_error(binary)
    assert "empty FASTA file" in _read_error(data_file("empty.fa"))
    assert "duplicate record name 'chr2'" in _read_error(data_file("duplicate.fa"))
    assert "FASTA file not found" in _read_error(tmp_path / "missing.fa")


def test_iter_fasta_streams_one_record_at_a_time(tmp_path, monkeypatch):
    path = tmp_path / "two.fa"
    long_line = "ACGT" * 50  # one line spanning many read chunks
    path.write_text(f">one\n{long_line}\n>two\n{long_line}Q\n")
    monkeypatch.setattr(fasta_module, "_CHUNK_BYTES", 7)
    records = iter_fasta(path)
    assert next(records) == ("one", long_line)  # yielded before the bad record is read
    with pytest.raises(InputError, match="record 'two', line 4"):
        next(records)


def test_reverse_complement_keeps_case():
    assert reverse_complement(b"AACGTn") == b"nACGTT"
    assert reverse_complement(b"acgN") == b"Ncgt"


def test_cli_commands_reading_fasta_report_one_line(data_file, capsys):
    """The reader's errors reach the CLI as one line with exit status 2."""
    code = main(["--no-progress", "preprocess", str(data_file("bad_char.fa")), "--out", "x"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "record 'chr2', line 6" in err


def test_write_fasta_round_trips_with_fixed_line_width(tmp_path):
    from dnabird.genome.fasta import read_fasta, write_fasta

    records = [("a", "ACGT" * 40), ("b", "N")]
    write_fasta(tmp_path / "x.fa", records, line_bp=50)
    lines = (tmp_path / "x.fa").read_text().splitlines()
    assert lines[:5] == [
        ">a",
        "ACGT" * 12 + "AC",
        "GT" + "ACGT" * 12,
        "ACGT" * 12 + "AC",
        "GTACGTACGT",
    ]
    assert read_fasta(tmp_path / "x.fa") == dict(records)
    assert not list(tmp_path.glob(".*"))  # no temporary left
