"""Tests of dnabird.genome.fasta: validation, compression, indexing and record reading."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from Bio import bgzf

from dnabird.errors import InputError
from dnabird.genome import fasta as fasta_module
from dnabird.genome.fasta import normalise, prepare_source, read_record, scan_fasta

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
def test_scan_and_read_agree_with_a_plain_parse(data_file, compress, tmp_path):
    plain = data_file("tiny.fa")
    expected = read_plain_fasta(plain)
    path = compress(plain) if compress else plain
    scan = scan_fasta(path)
    assert scan.compression == {None: "plain", _gzip: "gzip", _bgzip: "bgzip"}[compress]
    assert scan.lengths == {n: len(s) for n, s in expected.items()}
    assert scan.records[0].ambiguous == 2  # one 'R' and one 'y' in chr1
    assert scan.regular_lines
    source = prepare_source(scan, tmp_path / "cache")
    for name, sequence in expected.items():
        assert read_record(source, name).decode() == sequence


@pytest.mark.parametrize("compress", [None, _gzip])
def test_ragged_lines_are_read_through_a_normalised_copy(data_file, tmp_path, compress):
    plain = data_file("ragged.fa")
    path = compress(plain) if compress else plain
    scan = scan_fasta(path)
    assert not scan.regular_lines
    source = prepare_source(scan, tmp_path / "cache")
    assert Path(source.fasta).parent == tmp_path / "cache"
    for name, sequence in read_plain_fasta(plain).items():
        assert read_record(source, name).decode() == sequence


def test_read_only_folder_puts_the_index_in_the_cache(data_file, tmp_path, monkeypatch):
    path = _bgzip(data_file("tiny.fa"))
    real_access = fasta_module.os.access

    def access(folder, mode):  # the FASTA's folder reads as not writable (even for root)
        return False if Path(folder) == path.parent else real_access(folder, mode)

    monkeypatch.setattr(fasta_module.os, "access", access)
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert Path(source.fai).parent == tmp_path / "cache" and source.gzi
    assert not Path(f"{path}.fai").exists()
    assert read_record(source, "chr2").decode() == read_plain_fasta(data_file("tiny.fa"))["chr2"]


def test_stale_index_beside_the_fasta_is_replaced(data_file, tmp_path):
    path = data_file("tiny.fa")
    Path(f"{path}.fai").write_text("chr1\t5\t6\t10\t11\n")  # wrong length
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert read_record(source, "chr1").decode() == read_plain_fasta(path)["chr1"]


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
