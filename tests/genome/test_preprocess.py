"""Tests of dnabird.genome.preprocess and the ``preprocess`` CLI on hand-made FASTA files."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest
from Bio import bgzf
from Bio.Seq import Seq

from dnabird.cli import main
from dnabird.errors import ConfigError
from dnabird.genome import Corpus, CuttingParams, preprocess

from .conftest import SMALL, read_plain_fasta

CUT = CuttingParams(**SMALL)
IUPAC = "RYKMSWBDHVrykmswbdhv"


def _expected_upper(sequence: str) -> str:
    return "".join("N" if c in IUPAC else c.upper() for c in sequence)


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}


def test_documents_equal_the_fasta_at_their_coordinates(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    records = read_plain_fasta(fasta)
    manifest = preprocess(fasta, tmp_path / "out", passes=3, cutting=CUT, both_strands=True)
    corpus = Corpus(tmp_path / "out")
    docs = list(corpus)
    assert {d.chrom for d in docs} == {"chr1", "chr2"}
    assert set(manifest["skipped"]) == {"chrM", "chr1_random"}
    assert [c["ambiguous_to_n"] for c in manifest["chromosomes"]] == [2, 0]
    assert len({d.doc_id for d in docs}) == len(docs) == manifest["counts"]["total"]["documents"]
    for doc in docs:
        forward = _expected_upper(records[doc.chrom][doc.start : doc.end])
        if doc.strand == "+":
            assert doc.sequence == forward
        else:
            assert doc.sequence == str(Seq(forward).reverse_complement())
        assert all(CUT.min_sentence <= len(s) <= CUT.max_sentence for s in doc.sentences)
        assert "N" * CUT.max_n_run not in doc.sequence
    for chrom in ("chr1", "chr2"):
        for p in range(3):  # per chromosome and pass: forward documents never overlap
            spans = sorted(
                (d.start, d.end)
                for d in docs
                if d.chrom == chrom and d.pass_index == p and d.strand == "+"
            )
            assert spans and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_keep_case_keeps_soft_masking(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    records = read_plain_fasta(fasta)
    preprocess(fasta, tmp_path / "out", passes=1, cutting=CUT, keep_case=True)
    docs = list(Corpus(tmp_path / "out"))
    assert any(c.islower() for d in docs for c in d.sequence)
    for doc in docs:
        raw = records[doc.chrom][doc.start : doc.end]
        expected = "".join(("n" if c.islower() else "N") if c in IUPAC else c for c in raw)
        assert doc.sequence == expected


def test_same_result_from_gzip_bgzip_plain_and_any_worker_count(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    gz = fasta.with_name("tiny.fa.gz")
    gz.write_bytes(gzip.compress(fasta.read_bytes()))
    one = tmp_path / "one"
    preprocess(fasta, one, passes=2, cutting=CUT)
    preprocess(gz, tmp_path / "gz", passes=2, cutting=CUT, workers=2)
    assert _shard_bytes(one) == _shard_bytes(tmp_path / "gz") != {}
    bgz = fasta.with_name("tiny.fa.bgz")
    with bgzf.BgzfWriter(str(bgz), "wb") as handle:
        handle.write(fasta.read_bytes())
    preprocess(bgz, tmp_path / "bgz", passes=2, cutting=CUT)
    assert _shard_bytes(one) == _shard_bytes(tmp_path / "bgz")
    assert sorted(p.name for p in (tmp_path / "gz").iterdir())[0] == "manifest.json"  # no cache
    preprocess(fasta, tmp_path / "seed1", passes=2, cutting=CUT, seed=1)
    assert _shard_bytes(one) != _shard_bytes(tmp_path / "seed1")


def test_interrupted_run_resumes_to_the_same_bytes(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    preprocess(fasta, tmp_path / "clean", passes=3, cutting=CUT)

    class Interrupt(Exception):
        pass

    done = []

    def stop_after_two(record):
        done.append((record["chrom"], record["pass"]))
        if len(done) == 2:
            raise Interrupt

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        preprocess(fasta, out, passes=3, cutting=CUT, on_unit_done=stop_after_two)
    assert not (out / "manifest.json").exists() and not list(out.glob("shard-*"))
    half = out / ".units" / "0001-p000"  # a unit killed while writing: piece, no record
    half.mkdir(parents=True)
    (half / "part-00000.parquet").write_bytes(b"half-written")
    redone = []
    preprocess(fasta, out, passes=3, cutting=CUT, on_unit_done=lambda r: redone.append(r))
    assert len(redone) == 6 - 2 and ("chr2", 0) in {(r["chrom"], r["pass"]) for r in redone}
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "clean")
    assert not (out / ".units").exists()
    Corpus(out)


def test_rerun_is_a_no_op_and_other_parameters_need_overwrite(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    out = tmp_path / "out"
    first = preprocess(fasta, out, passes=1, cutting=CUT)
    calls = []
    again = preprocess(fasta, out, passes=1, cutting=CUT, on_unit_done=calls.append)
    assert calls == [] and again["shards"] == first["shards"]
    with pytest.raises(ConfigError, match="--overwrite"):
        preprocess(fasta, out, passes=2, cutting=CUT)
    redone = preprocess(fasta, out, passes=2, cutting=CUT, overwrite=True)
    assert len(redone["shards"]) == 2 * len(first["shards"])
    assert len(list(out.glob("shard-*.parquet"))) == len(redone["shards"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds other files"):
        preprocess(fasta, tmp_path / "busy", passes=1, cutting=CUT)


def test_shards_are_bounded_in_bp(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    manifest = preprocess(fasta, tmp_path / "out", passes=1, cutting=CUT, max_shard_bp=60)
    assert len(manifest["shards"]) > 2
    for shard in manifest["shards"]:
        docs = list(Corpus(tmp_path / "out").iter_shard(tmp_path / "out" / shard["file"]))
        assert sum(d.end - d.start for d in docs) <= 60 or len(docs) == 1


def test_assembly_check_warns_about_other_lengths(data_file, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = preprocess(
            data_file("tiny.fa"), tmp_path / "out", passes=1, cutting=CUT, assembly="grch37"
        )
    assert manifest["assembly_check"]["mismatched"]["chr1"] == [238, 249_250_621]
    assert "differ from GRCh37" in caplog.text


def _cli(args, capsys):
    code = main(["--no-progress", "preprocess", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_a_corpus_and_prints_a_summary(data_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _cli(
        [data_file("tiny.fa"), "--out", out, "--passes", "2", "--min-sentence", "5",
         "--max-sentence", "12", "--min-doc", "2", "--max-doc", "4", "--max-n-run", "5",
         "--chromosomes", "1", "chrM"],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert "Cut 2 chromosome(s)" in stdout and "Skipped 2 record(s)" in stdout
    assert {d.chrom for d in Corpus(out)} == {"chr1", "chrM"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_char.fa", "invalid sequence character"),
        ("duplicate.fa", "duplicate record name"),
        ("no_sequence.fa", "has no sequence"),
        ("empty.fa", "empty FASTA file"),
        ("not_fasta.txt", "not a FASTA file"),
        ("truncated.fa.gz", "truncated gzip"),
        ("binary.fa", "not a FASTA file"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    data_file, tmp_path, capsys, name, expected
):
    if name == "truncated.fa.gz":
        whole = gzip.compress(data_file("tiny.fa").read_bytes())
        path = tmp_path / "input" / name
        path.write_bytes(whole[: len(whole) - 30])
    elif name == "binary.fa":
        path = tmp_path / name
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    else:
        path = data_file(name)
    out = tmp_path / "out"
    code, stdout, stderr = _cli([path, "--out", out], capsys)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("dnabird: error: ")
    assert str(path) in stderr and expected in stderr
    assert not out.exists()
    assert not list(tmp_path.rglob("shard-*")) and not list(tmp_path.rglob("*.parquet"))


def test_cli_bad_parameters_exit_2(data_file, tmp_path, capsys):
    code, _, stderr = _cli([data_file("tiny.fa"), "--out", tmp_path / "o", "--passes", "0"], capsys)
    assert code == 2 and "--passes must be >= 1" in stderr and not (tmp_path / "o").exists()
    code, _, stderr = _cli(
        [data_file("tiny.fa"), "--out", tmp_path / "o", "--chromosomes", "9"], capsys
    )
    assert code == 2 and "'9' is not a record" in stderr


def test_chromosome_without_usable_sequence_gives_no_documents(tmp_path):
    fasta = tmp_path / "gappy.fa"
    fasta.write_text(
        ">chr1\n" + "N" * 60 + "ACGT" + "N" * 60 + "\n>chr2\n" + "ACGTACGTAC" * 5 + "\n"
    )
    manifest = preprocess(fasta, tmp_path / "out", passes=2, cutting=CUT)
    counts = manifest["counts"]["per_chromosome"]
    assert counts["chr1"]["documents"] == 0 and counts["chr1"]["gap_bp"] == 2 * 120
    assert counts["chr1"]["short_segment_bp"] == 2 * 4
    assert {s["chrom"] for s in manifest["shards"]} == {"chr2"}
    assert {d.chrom for d in Corpus(tmp_path / "out")} == {"chr2"}
