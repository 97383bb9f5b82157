"""Tests of dnabird.genome.preprocess and the ``preprocess`` CLI on hand-made FASTA files."""

from __future__ import annotations

import gzip
import importlib
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyfaidx
import pytest
from Bio import bgzf
from Bio.Seq import Seq

from dnabird.cli import main
from dnabird.errors import ConfigError
from dnabird.genome import Corpus, CuttingParams, PreprocessOptions, preprocess

from .conftest import SMALL, read_plain_fasta

preprocess_module = importlib.import_module("dnabird.genome.preprocess")  # not the function

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


class Interrupt(Exception):
    pass


def _stop_after(units: int, seen: list):
    def hook(record):
        seen.append(record)
        if len(seen) == units:
            raise Interrupt

    return hook


def test_interrupted_run_resumes_to_the_same_bytes(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    # chr1 (238 bp) is a unit per pass, chr2 (90 bp) one unit for its 3 passes
    small_units = {"passes": 3, "cutting": CUT, "max_shard_bp": 300}
    preprocess(fasta, tmp_path / "clean", **small_units)
    out = tmp_path / "resumed"
    done: list = []
    with pytest.raises(Interrupt):
        preprocess(fasta, out, **small_units, on_unit_done=_stop_after(2, done))
    assert [r["items"] for r in done] == [[["chr1", 0]], [["chr1", 1]]]
    assert not (out / "manifest.json").exists() and not list(out.glob("shard-*"))
    half = out / ".units" / "000003"  # a unit killed while writing: piece, no record
    half.mkdir(parents=True)
    (half / "part-00000.parquet").write_bytes(b"half-written")
    redone = []
    preprocess(fasta, out, **small_units, on_unit_done=redone.append)
    assert [r["unit"] for r in redone] == [2, 3]
    assert redone[1]["items"] == [["chr2", 0], ["chr2", 1], ["chr2", 2]]
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "clean")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", *_shard_bytes(out)]
    )  # no units, cache, run record or lock left
    Corpus(out)


def test_rerun_is_a_no_op_and_other_parameters_need_overwrite(data_file, tmp_path):
    fasta = data_file("tiny.fa")
    out = tmp_path / "out"
    first = preprocess(fasta, out, passes=1, cutting=CUT)
    calls = []
    again = preprocess(fasta, out, passes=1, cutting=CUT, on_unit_done=calls.append)
    assert calls == [] and again["shards"] == first["shards"]
    with pytest.raises(ConfigError, match=r"parameters.passes 1 -> 2.*--overwrite"):
        preprocess(fasta, out, passes=2, cutting=CUT)
    redone = preprocess(fasta, out, passes=2, cutting=CUT, overwrite=True)
    assert redone["counts"]["total"]["documents"] > first["counts"]["total"]["documents"]
    assert len(list(out.glob("shard-*.parquet"))) == len(redone["shards"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files dnabird did not write"):
        preprocess(fasta, tmp_path / "busy", passes=1, cutting=CUT, overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


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
    try:
        code = main(["--no-progress", "preprocess", *map(str, args)])
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
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


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--passes", "0"], "--passes must be >= 1, got 0"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--max-shard-bp", "0"], "--max-shard-bp must be >= 1, got 0"),
        (["--min-length", "-1"], "--min-length must be >= 0, got -1"),
        (["--seed", "-3"], "--seed must be >= 0, got -3"),
        (["--min-sentence", "0"], "sentence lengths must satisfy 1 <= min <= max"),
        (["--min-doc", "9", "--max-doc", "4"], "document sizes must satisfy"),
        (["--max-n-run", "0"], "--max-n-run must be >= 1"),
        (["--max-n-fraction", "1.5"], "--max-n-fraction must be in [0, 1]"),
        (["--max-n-fraction", "nan"], "--max-n-fraction must be in [0, 1]"),
        (["--passes", "two"], "invalid int value: 'two'"),
        (["--chromosomes", "9"], "'9' is not a record"),
    ],
)
def test_cli_bad_parameters_exit_2_with_one_line(data_file, tmp_path, capsys, option, expected):
    """Before: ``--seed -3`` ended in a ValueError traceback and ``--min-length -1`` passed."""
    out = tmp_path / "o"
    code, stdout, stderr = _cli([data_file("tiny.fa"), "--out", out, *option], capsys)
    assert code == 2 and stdout == "" and expected in stderr, stderr
    assert stderr.count("\n") == 1 and not out.exists()


def test_unwritable_output_is_refused_before_the_fasta_is_read(
    data_file, tmp_path, capsys, monkeypatch
):
    """Before: a PermissionError / NotADirectoryError traceback after the scan."""
    fasta = data_file("tiny.fa")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    monkeypatch.setattr(preprocess_module, "scan_fasta", _not_scanned)
    code, _, stderr = _cli([fasta, "--out", blocker / "corpus"], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "is under the file" in stderr
    code, _, stderr = _cli([fasta, "--out", blocker], capsys)
    assert code == 2 and "exists and is not a folder" in stderr
    monkeypatch.undo()
    code, _, stderr = _cli([fasta, "--out", tmp_path / "o", "--cache-dir", blocker], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "cannot write the index cache" in stderr
    monkeypatch.setattr(preprocess_module, "scan_fasta", _not_scanned)
    # root ignores permission bits: let os.access report a read-only parent instead
    monkeypatch.setattr(preprocess_module.os, "access", lambda path, mode: False)
    code, _, stderr = _cli([fasta, "--out", tmp_path / "read-only" / "corpus"], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert "cannot write the output folder (no write permission in" in stderr
    assert not (tmp_path / "read-only").exists()


def _not_scanned(path):
    raise AssertionError(f"{path} was read before the output folder was checked")


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dnabird.genome import preprocess

    def hold(record):  # a long first run: signal, then keep the folder
        Path(sys.argv[3]).touch()
        time.sleep(120)

    preprocess(sys.argv[1], sys.argv[2], passes=1, on_unit_done=hold)
    """
)


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(
    data_file, tmp_path, capsys
):
    """Before: no lock; the second run raced the first (FileNotFoundError traceback)."""
    fasta, out, flag = data_file("tiny.fa"), tmp_path / "out", tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(fasta), str(out), str(flag)])
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert holder.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)
        code, stdout, stderr = _cli([fasta, "--out", out, "--passes", "1"], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "in use by another dnabird run" in stderr and f"pid {holder.pid}" in stderr
    manifest = preprocess(fasta, out, passes=1)  # the holder died: the folder is free again
    assert manifest["parameters"]["passes"] == 1


def _many_records(path: Path, count: int) -> Path:
    """``count`` short contigs (20-119 bp, soft-masked, a few N), 60 bp lines."""
    rng = np.random.default_rng(7)
    with open(path, "w") as out:
        for i in range(count):
            sequence = "".join(rng.choice(list("ACGTACGTacgtN"), int(rng.integers(20, 120))))
            out.write(f">contig{i}\n")
            out.writelines(sequence[j : j + 60] + "\n" for j in range(0, len(sequence), 60))
    return path


def test_many_short_records_share_units_shards_and_one_reader(tmp_path, monkeypatch):
    """Before: pyfaidx was opened (and its .fai re-read) once per record, and every record
    and pass got its own shard (3,870 files for 5,000 contigs)."""
    fasta = _many_records(tmp_path / "contigs.fa", 400)
    records = read_plain_fasta(fasta)
    opened = []
    real = pyfaidx.Faidx
    monkeypatch.setattr(pyfaidx, "Faidx", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    manifest = preprocess(fasta, tmp_path / "one", passes=2, cutting=CUT, min_length=0)
    assert len(opened) == 1
    assert manifest["units"] == 1 and len(manifest["shards"]) == 1
    assert manifest["shards"][0]["first"] == ["contig0", 0]
    assert manifest["shards"][0]["last"][1] == 1
    docs = list(Corpus(tmp_path / "one"))
    assert len({d.chrom for d in docs}) > 300
    for doc in docs:
        assert doc.sequence == _expected_upper(records[doc.chrom][doc.start : doc.end])


def test_many_records_fill_bounded_shards_identically_for_any_workers_and_resume(tmp_path):
    fasta = _many_records(tmp_path / "contigs.fa", 400)
    bounded = {"passes": 2, "cutting": CUT, "min_length": 0, "max_shard_bp": 3000}
    clean = preprocess(fasta, tmp_path / "clean", **bounded)
    assert 5 < len(clean["shards"]) < 60  # filled up to the bound, not one per record
    corpus = Corpus(tmp_path / "clean")
    for shard in corpus.shards:
        docs = list(corpus.iter_shard(shard))
        assert sum(d.end - d.start for d in docs) <= 3000 and len({d.chrom for d in docs}) > 1
    seen: list = []
    with pytest.raises(Interrupt):
        preprocess(fasta, tmp_path / "resumed", **bounded, on_unit_done=_stop_after(3, seen))
    resumed: list = []
    preprocess(fasta, tmp_path / "resumed", **bounded, workers=2, on_unit_done=resumed.append)
    assert len(seen) + len(resumed) == clean["units"]
    assert _shard_bytes(tmp_path / "resumed") == _shard_bytes(tmp_path / "clean")


def test_chromosome_without_usable_sequence_gives_no_documents(tmp_path):
    fasta = tmp_path / "gappy.fa"
    fasta.write_text(
        ">chr1\n" + "N" * 60 + "ACGT" + "N" * 60 + "\n>chr2\n" + "ACGTACGTAC" * 5 + "\n"
    )
    manifest = preprocess(fasta, tmp_path / "out", passes=2, cutting=CUT)
    counts = manifest["counts"]["per_chromosome"]
    assert counts["chr1"]["documents"] == 0 and counts["chr1"]["gap_bp"] == 2 * 120
    assert counts["chr1"]["short_segment_bp"] == 2 * 4
    assert [(s["first"], s["last"]) for s in manifest["shards"]] == [(["chr2", 0], ["chr2", 1])]
    assert {d.chrom for d in Corpus(tmp_path / "out")} == {"chr2"}


def test_units_group_consecutive_items_up_to_the_shard_bound(monkeypatch):
    lengths = {"big": 500, "a": 100, "b": 150, "c": 40}
    plan = preprocess_module.plan_units
    options = PreprocessOptions(passes=2, max_shard_bp=300)
    assert plan(list(lengths), lengths, options) == [
        [("big", 500, 0)],
        [("big", 500, 1)],
        [("a", 100, 0), ("a", 100, 1)],
        [("b", 150, 0), ("b", 150, 1)],
        [("c", 40, 0), ("c", 40, 1)],
    ]
    both = PreprocessOptions(passes=2, max_shard_bp=300, both_strands=True)  # bp x 2
    assert [len(u) for u in plan(["a", "b", "c"], lengths, both)] == [1, 1, 1, 1, 2]
    monkeypatch.setattr(preprocess_module, "MAX_TABLE_BP", 60)  # one Arrow table's limit
    assert [len(u) for u in plan(["c"], lengths, options)] == [1, 1]
