"""Tests of dnabird.data.tokens: corpus -> token shards (content, determinism across
worker counts, resume, the output folder discipline: refusal of other inputs, overwrite,
one run at a time) and the TokenShards reader."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dnabird.cli import main
from dnabird.data import tokens
from dnabird.data.tokens import TokenShards, id_type, token_schema, tokenize_corpus
from dnabird.errors import ConfigError, InputError
from dnabird.genome import Corpus, preprocess
from dnabird.genome.cutting import CuttingParams
from dnabird.outputs import LOCK_NAME, RUN_NAME
from dnabird.tokenizer import DNATokenizer


def synthetic_fasta(path: Path, seed: int = 0) -> Path:
    """Two soft-masked records of seeded DNA with recurring motifs and an N gap."""
    rng = np.random.default_rng(seed)
    motifs = ["".join(rng.choice(list("ACGT"), rng.integers(5, 15))) for _ in range(30)]
    records = {}
    for name, length in (("chrA", 30_000), ("chrB", 20_000)):
        parts, total = [], 0
        while total < length:
            part = (
                motifs[rng.integers(30)]
                if rng.random() < 0.5
                else "".join(rng.choice(list("ACGT"), rng.integers(1, 20)))
            )
            parts.append(part.lower() if rng.random() < 0.2 else part)
            total += len(part)
        seq = "".join(parts)[:length]
        records[name] = seq[:9000] + "N" * 200 + seq[9200:]
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name}\n")
            handle.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    return path


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    fasta = synthetic_fasta(folder / "genome.fa")
    preprocess(
        fasta,
        folder / "corpus",
        passes=2,
        seed=0,
        min_length=1000,
        max_shard_bp=15_000,
        cutting=CuttingParams(min_doc=3, max_doc=6),
    )
    return folder / "corpus"


@pytest.fixture(scope="module")
def tokenizer_dir(corpus_dir, tmp_path_factory) -> Path:
    sentences = [s for doc in Corpus(corpus_dir) for s in doc.sentences]
    folder = tmp_path_factory.mktemp("tok")
    DNATokenizer.train(sentences, vocab_size=200, model_type="bpe").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def token_dir(corpus_dir, tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "out"
    tokenize_corpus(corpus_dir, tokenizer_dir, out)
    return out


def test_shards_hold_the_corpus_tokens(corpus_dir, tokenizer_dir, token_dir):
    corpus = Corpus(corpus_dir)
    shards = TokenShards(token_dir)
    tokenizer = DNATokenizer.from_pretrained(tokenizer_dir)
    assert len(corpus.shards) > 2
    assert [p.name for p in shards.shards] == [p.name for p in corpus.shards]
    assert len(shards) == len(corpus)
    pairs = list(zip(corpus, shards, strict=True))
    for doc, tokenized in pairs:
        assert (tokenized.doc_id, tokenized.chrom, tokenized.pass_index) == (
            doc.doc_id,
            doc.chrom,
            doc.pass_index,
        )
        assert (tokenized.strand, tokenized.start, tokenized.end) == (
            doc.strand,
            doc.start,
            doc.end,
        )
        assert len(tokenized.sentence_ids) == len(doc.sentences)
        for ids, sentence in zip(tokenized.sentence_ids, doc.sentences, strict=True):
            assert ids.dtype == np.uint16
            assert ids.tolist() == tokenizer.encode(sentence)
            assert tokenizer.decode(ids) == sentence.upper()
        assert tokenized.sentence_bp.tolist() == [len(s) for s in doc.sentences]


def test_manifest_counts_and_checksums(corpus_dir, tokenizer_dir, token_dir):
    manifest = json.loads((token_dir / "manifest.json").read_text())
    assert manifest["stage"] == "tokenize"
    corpus_manifest = (corpus_dir / "manifest.json").read_bytes()
    assert manifest["corpus_manifest_sha256"] == hashlib.sha256(corpus_manifest).hexdigest()
    model = (tokenizer_dir / "sentencepiece.model").read_bytes()
    assert manifest["tokenizer_sha256"] == hashlib.sha256(model).hexdigest()
    docs = list(TokenShards(token_dir))
    counts = manifest["counts"]
    assert counts["documents"] == len(docs)
    assert counts["sentences"] == sum(len(d.sentence_ids) for d in docs)
    assert counts["tokens"] == sum(len(ids) for d in docs for ids in d.sentence_ids)
    corpus_bp = sum(len(s) for d in Corpus(corpus_dir) for s in d.sentences)
    assert counts["bp"] == corpus_bp
    assert manifest["bp_per_token"] == pytest.approx(corpus_bp / counts["tokens"], abs=1e-4)
    assert manifest["id_dtype"] == "uint16"
    assert manifest["run"] == {
        "corpus_manifest_sha256": manifest["corpus_manifest_sha256"],
        "tokenizer_sha256": manifest["tokenizer_sha256"],
    }
    assert not (token_dir / RUN_NAME).exists() and not (token_dir / LOCK_NAME).exists()


def test_token_folder_carries_its_tokenizer(tokenizer_dir, token_dir):
    shards = TokenShards(token_dir)
    assert shards.tokenizer_dir == token_dir / "tokenizer"
    copy = DNATokenizer.from_pretrained(shards.tokenizer_dir)
    assert copy.model_proto == (tokenizer_dir / "sentencepiece.model").read_bytes()
    assert (shards.tokenizer_dir / "tokenizer.json").is_file()


def test_same_bytes_for_any_worker_count(corpus_dir, tokenizer_dir, token_dir, tmp_path):
    tokenize_corpus(corpus_dir, tokenizer_dir, tmp_path / "two", workers=2)
    for shard in TokenShards(token_dir).shards:
        assert (tmp_path / "two" / shard.name).read_bytes() == shard.read_bytes()


def test_interrupted_run_resumes(corpus_dir, tokenizer_dir, token_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_write = tokens._write_token_shard
    calls = []

    def failing_write(corpus, tokenizer, source, target):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(target)
        return real_write(corpus, tokenizer, source, target)

    monkeypatch.setattr(tokens, "_write_token_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        tokenize_corpus(corpus_dir, tokenizer_dir, out)
    assert not (out / "manifest.json").exists()
    written = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert written == [p.name for p in calls]
    assert not list(out.glob(".shard-*"))  # the interrupted shard left no temporary file
    stamps = {p: p.stat().st_mtime_ns for p in calls}

    monkeypatch.setattr(tokens, "_write_token_shard", real_write)
    tokenize_corpus(corpus_dir, tokenizer_dir, out)
    assert {p: p.stat().st_mtime_ns for p in calls} == stamps  # kept, not rewritten
    for shard in TokenShards(token_dir).shards:
        assert (out / shard.name).read_bytes() == shard.read_bytes()
    # A finished folder is returned as it is.
    manifest_bytes = (out / "manifest.json").read_bytes()
    tokenize_corpus(corpus_dir, tokenizer_dir, out)
    assert (out / "manifest.json").read_bytes() == manifest_bytes


@pytest.fixture(scope="module")
def other_tokenizer_dir(corpus_dir, tmp_path_factory) -> Path:
    sentences = [s for doc in Corpus(corpus_dir) for s in doc.sentences]
    folder = tmp_path_factory.mktemp("other")
    DNATokenizer.train(sentences[:40], vocab_size=100, model_type="bpe").save_pretrained(folder)
    return folder


def test_refuses_a_folder_of_other_inputs(corpus_dir, other_tokenizer_dir, token_dir, tmp_path):
    before = (token_dir / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match=r"other inputs .*tokenizer_sha256 .*--overwrite"):
        tokenize_corpus(corpus_dir, other_tokenizer_dir, token_dir)
    assert (token_dir / "manifest.json").read_bytes() == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="files dnabird did not write"):
        tokenize_corpus(corpus_dir, other_tokenizer_dir, tmp_path / "busy", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_interrupted_run_of_another_tokenizer_is_refused(
    corpus_dir, tokenizer_dir, other_tokenizer_dir, tmp_path, monkeypatch
):
    out = tmp_path / "out"

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokens, "_write_token_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tokenize_corpus(corpus_dir, tokenizer_dir, out)
    with pytest.raises(ConfigError, match="interrupted tokenize run made from other inputs"):
        tokenize_corpus(corpus_dir, other_tokenizer_dir, out)


def test_overwrite_replaces_tokens_of_another_tokenizer(
    corpus_dir, tokenizer_dir, other_tokenizer_dir, token_dir, tmp_path
):
    import shutil

    out = Path(shutil.copytree(token_dir, tmp_path / "copy"))
    manifest = tokenize_corpus(corpus_dir, other_tokenizer_dir, out, overwrite=True)
    other = (other_tokenizer_dir / "sentencepiece.model").read_bytes()
    assert manifest["tokenizer_sha256"] == hashlib.sha256(other).hexdigest()
    assert TokenShards(out).manifest == manifest
    assert (out / "tokenizer" / "sentencepiece.model").read_bytes() == other
    assert manifest["counts"]["tokens"] != TokenShards(token_dir).manifest["counts"]["tokens"]


def test_a_second_run_into_the_same_folder_is_refused(corpus_dir, tokenizer_dir, tmp_path):
    from dnabird.outputs import OutputFolder

    with (
        OutputFolder(tmp_path / "out", "tokenize", {}),  # another run holds the folder
        pytest.raises(ConfigError, match="in use by another dnabird run"),
    ):
        tokenize_corpus(corpus_dir, tokenizer_dir, tmp_path / "out")


def test_reader_detects_damage(token_dir, tmp_path):
    import shutil

    copy = Path(shutil.copytree(token_dir, tmp_path / "copy"))
    shard = TokenShards(copy).shards[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 differs"):
        TokenShards(copy)
    assert len(TokenShards(copy, verify=False)) == len(TokenShards(token_dir))
    shard.write_bytes(bytes(data[:100]))
    with pytest.raises(InputError, match="size differs"):
        TokenShards(copy, verify=False)
    shard.unlink()
    with pytest.raises(InputError, match="missing"):
        TokenShards(copy)
    with pytest.raises(InputError, match="manifest.json"):
        TokenShards(tmp_path)


def test_id_type_follows_vocabulary_size():
    assert id_type(32000) == pa.uint16() and id_type(65536) == pa.uint16()
    assert id_type(65537) == pa.int32()
    field = token_schema(100_000).field("sentence_ids")
    assert field.type == pa.list_(pa.list_(pa.int32()))


def test_tokenize_command(corpus_dir, tokenizer_dir, token_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--no-progress", "tokenize", str(corpus_dir), "--tokenizer", str(tokenizer_dir)]
    assert main([*args, "--out", str(out), "--workers", "2"]) == 0
    summary = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{manifest['counts']['tokens']:,} tokens" in summary
    assert [e["sha256"] for e in manifest["shards"]] == [
        e["sha256"] for e in json.loads((token_dir / "manifest.json").read_text())["shards"]
    ]
    assert main(["tokenize", str(tmp_path), "--tokenizer", str(tokenizer_dir), "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json" in err


@pytest.mark.parametrize(
    ("corpus", "tokenizer", "out", "message"),
    [
        ("{corpus}", "{tmp}/nosuchdir", "{tmp}/o", "nosuchdir: folder not found; give a tokenizer"),
        ("{tmp}/none", "{tok}", "{tmp}/o", "none: corpus folder not found"),
        ("{corpus}", "{tok}", "{tmp}/file/sub", "sub: cannot write the output folder"),
    ],
)
def test_tokenize_command_names_what_is_wrong(
    corpus_dir, tokenizer_dir, tmp_path, capsys, monkeypatch, corpus, tokenizer, out, message
):
    """One line naming the folder, before any work (issue 12)."""
    monkeypatch.setattr(tokens, "_write_shards", None)  # any work would fail with a TypeError
    (tmp_path / "file").write_text("x")
    values = {"tmp": tmp_path, "tok": tokenizer_dir, "corpus": corpus_dir}
    argv = [corpus, "--tokenizer", tokenizer, "--out", out]
    assert main(["tokenize", *(a.format(**values) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_workers_are_checked_when_parsing(corpus_dir, tokenizer_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "tokenize",
                str(corpus_dir),
                "--tokenizer",
                str(tokenizer_dir),
                "--out",
                str(tmp_path / "o"),
                "--workers",
                "0",
            ]
        )
    assert exit_.value.code == 2
    assert "argument --workers: must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
