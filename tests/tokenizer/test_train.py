"""Training: SentencePiece fit (determinism, parameter checks, status, Ctrl-C), sampling,
and the ``train-tokenizer`` stage and command (output folder discipline, errors)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dnabird.cli import main
from dnabird.errors import ConfigError, InputError
from dnabird.outputs import LOCK_NAME, RUN_NAME
from dnabird.tokenizer import (
    MIN_VOCAB_SIZE,
    DNATokenizer,
    sample_sentences,
    train_tokenizer,
    training_sample,
)
from dnabird.tokenizer import train as train_module
from dnabird.tokenizer.trainer_process import _latest_status

from .conftest import VOCAB, synthetic_genome, write_fasta


# ----------------------------------------------------------------------------- fitting
def test_training_is_deterministic(training_sentences):
    first = DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="unigram")
    again = DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="unigram")
    assert first.model_proto == again.model_proto
    fewer = DNATokenizer.train(training_sentences[:10], vocab_size=60, model_type="unigram")
    assert fewer.model_proto != first.model_proto


def test_training_in_a_child_gives_the_in_process_model(training_sentences, monkeypatch):
    """The child process changes nothing: same bytes as SentencePiece run here."""
    import io

    import sentencepiece as spm

    from dnabird.tokenizer import trainer_process

    captured = {}
    real = trainer_process.run_trainer

    def keep(sentences, options, seed, desc):
        captured.update(sentences=list(sentences), options=options, seed=seed)
        return real(sentences, options, seed, desc)

    monkeypatch.setattr(trainer_process, "run_trainer", keep)
    ours = DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="bpe")
    writer = io.BytesIO()
    spm.set_random_generator_seed(captured["seed"])
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(captured["sentences"]),
        model_writer=writer,
        minloglevel=2,
        **captured["options"],
    )
    assert ours.model_proto == writer.getvalue()


def test_training_uses_uppercase_acgt_runs(training_sentences):
    """Case is ignored and N runs split sentences: same model as on the ACGT runs."""
    runs = [r for s in training_sentences for r in re.findall("[ACGT]+", s.upper())]
    assert len(runs) > len(training_sentences)  # the fixture has an N run and lowercase
    raw = DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="bpe")
    clean = DNATokenizer.train(runs, vocab_size=VOCAB, model_type="bpe")
    assert raw.model_proto == clean.model_proto


def test_training_errors(training_sentences):
    with pytest.raises(ConfigError, match="model_type"):
        DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="wordpiece")
    with pytest.raises(InputError, match="no A, C, G or T"):
        DNATokenizer.train(["NNNN", ""], vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="max_piece_length=0"):
        DNATokenizer.train(training_sentences, vocab_size=VOCAB, max_piece_length=0)
    with pytest.raises(ConfigError, match="threads=0"):
        DNATokenizer.train(training_sentences, vocab_size=VOCAB, threads=0)


def test_vocabulary_minimum_is_the_fixed_pieces_plus_the_bases(training_sentences):
    """Issue 12: too small a vocabulary must ask for a LARGER one (SentencePiece's own
    message was turned into "lower the vocabulary size")."""
    with pytest.raises(ConfigError, match=r"vocab_size=10 is too small: it must be at least 16 "):
        DNATokenizer.train(training_sentences, vocab_size=10)
    with pytest.raises(ConfigError, match="at least 16") as error:
        DNATokenizer.train(training_sentences, vocab_size=MIN_VOCAB_SIZE - 1, model_type="bpe")
    assert "lower" not in str(error.value)
    for model_type in ("unigram", "bpe"):  # the minimum itself trains: specials, N, A C G T
        smallest = DNATokenizer.train(
            training_sentences, vocab_size=MIN_VOCAB_SIZE, model_type=model_type
        )
        assert sorted(smallest.pieces[12:]) == ["A", "C", "G", "T"]


def test_too_large_a_vocabulary_says_how_large_it_can_be():
    with pytest.raises(ConfigError, match=r"vocab_size=5000 is too large .* at most \d+ pieces"):
        DNATokenizer.train(["ACGTACGT"], vocab_size=5000, model_type="unigram")
    with pytest.raises(ConfigError, match="lower the vocabulary size"):
        DNATokenizer.train(["ACGTTGCAAGT"] * 3, vocab_size=400, model_type="bpe")


def test_status_line_follows_sentencepiece_log(tmp_path):
    """The status shown while SentencePiece trains, read from its log lines."""
    log = tmp_path / "log.txt"
    log.write_text(
        "I0000 trainer_interface.cc:466] Normalizing sentences...\n"
        "I0000 unigram_model_trainer.cc:327] Extracting seed sentencepieces (1 threads)\n"
    )
    with open(log) as tail:
        assert _latest_status(tail, 2000) == "extracting seed pieces"
        assert _latest_status(tail, 2000) is None  # nothing new
        with open(log, "a") as more:
            more.write(
                "I0000 unigram_model_trainer.cc:903] EM sub_iter=0 size=45547 obj=922.6\n"
                "I0000 unigram_model_trainer.cc:903] EM sub_iter=1 size=33684 obj=919.3\n"
            )
        assert _latest_status(tail, 2000) == "unigram EM: 33,684 pieces, pruning to 2,000"
        with open(log, "a") as more:
            more.write("I0000 bpe_model_trainer.cc:421] Merged: freq=42 merges=1100 piece=GTT\n")
        assert _latest_status(tail, 2000) == "BPE: 1,100 merges"


def test_training_shows_a_status_line(training_sentences, capsys):
    from dnabird import progress

    progress.set_enabled(True)
    try:
        DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type="unigram")
    finally:
        progress.set_enabled(None)
    err = capsys.readouterr().err
    assert "train unigram [00:0" in err


def test_a_killed_training_process_is_one_line(training_sentences, monkeypatch):
    """SentencePiece killed under it (the kernel's out-of-memory killer): a ConfigError
    saying so, not a traceback."""
    from dnabird.tokenizer import trainer_process

    def killed_child(work, log):
        code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)

    monkeypatch.setattr(trainer_process, "_start_child", killed_child)
    with pytest.raises(ConfigError, match=r"killed \(SIGKILL; out of memory\?\); train on a"):
        DNATokenizer.train(training_sentences, vocab_size=VOCAB)


def test_ctrl_c_stops_training_at_once(tmp_path):
    """Issue 12: Ctrl-C during SentencePiece training took 48 s. A SIGINT to the command's
    process group (as a terminal sends it) now ends it within seconds, exit 130, no folder
    that looks complete, the lock released, no training process or temporary files left."""
    rng = np.random.default_rng(0)
    fasta = write_fasta(
        tmp_path / "random.fa", {"chr1": "".join(rng.choice(list("ACGT"), 600_000))}
    )
    out, scratch = tmp_path / "tok", tmp_path / "scratch"
    scratch.mkdir()
    command = [
        sys.executable,
        "-c",
        # Ctrl-C raises KeyboardInterrupt, as in a terminal's foreground job, also when this
        # test runs in a background job (whose children inherit SIGINT ignored)
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from dnabird.cli import main; sys.exit(main(sys.argv[1:]))",
        "train-tokenizer",
        str(fasta),
        "--out",
        str(out),
        "--vocab-size",
        "2000",  # unigram on 600 kbp of random DNA: about half a minute of training
        "--sample-bp",
        "600000",
    ]
    env = {**os.environ, "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    lines: list[str] = []
    training = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if "training a 2000-piece unigram vocabulary" in line:
                training.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert training.wait(timeout=120), "".join(lines)
        time.sleep(1.0)  # SentencePiece is busy in C++ now
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        try:  # the old code needed about 50 s; a loaded CI machine gets some slack
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after Ctrl-C; its stderr: {''.join(lines)[-2000:]}")
        stopped = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=5)
    assert returncode == 130, "".join(lines)
    assert stopped < 30
    assert lines[-1] == "dnabird: interrupted\n"
    assert not (out / "manifest.json").exists() and not (out / "sentencepiece.model").exists()
    # nothing was written, so no claim is left that would refuse a rerun
    assert not (out / LOCK_NAME).exists() and not (out / RUN_NAME).exists()
    assert list(scratch.iterdir()) == []  # temporary corpus and training files removed
    time.sleep(0.5)
    survivors = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(scratch).encode() in cmdline.read_bytes():
                survivors.append(cmdline.parent.name)
        except OSError:
            continue
    assert survivors == []


# ----------------------------------------------------------------------------- sampling
def test_sample_sentences_is_seeded_and_bounded():
    sentences = [f"{'ACGT' * (i % 50 + 1)}" for i in range(2000)]
    total = sum(map(len, sentences))
    first = sample_sentences(iter(sentences), total, 20_000, seed=1)
    assert first == sample_sentences(iter(sentences), total, 20_000, seed=1)
    assert first != sample_sentences(iter(sentences), total, 20_000, seed=2)
    kept = sum(map(len, first))
    assert 15_000 < kept < 20_000 + 200
    assert sample_sentences(sentences, total, 10 * total) == sentences
    with pytest.raises(ConfigError, match="sample_bp=0"):
        sample_sentences(sentences, total, 0)


def test_training_sample_from_fasta_tiles_the_records(tmp_path):
    genome = synthetic_genome(12_000, seed=2)
    fasta = write_fasta(tmp_path / "g.fa.gz", {"chrA": genome[:7000], "chrB": genome[7000:]})
    sentences = training_sample(fasta, sample_bp=10**6, seed=0)
    assert all(500 <= len(s) <= 1000 for s in sentences)
    # With room for everything, the sentences tile each record outside the 300 bp N gap.
    assert "".join(sentences) == genome.upper().replace("N", "")
    assert training_sample(fasta, sample_bp=10**6, seed=0) == sentences
    part = training_sample(fasta, sample_bp=5000, seed=0)
    assert 2000 < sum(map(len, part)) < 6000 and set(part) <= set(sentences)
    assert part != training_sample(fasta, sample_bp=5000, seed=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from dnabird.genome import preprocess

    root = tmp_path_factory.mktemp("corpus")
    fasta = write_fasta(root / "g.fa.gz", {"chrA": synthetic_genome(12_000, seed=4)})
    preprocess(fasta, root / "corpus", passes=2, seed=3, min_length=1)
    return root / "corpus"


def test_training_sample_from_corpus(corpus):
    from dnabird.genome import Corpus

    everything = [s for doc in Corpus(corpus) for s in doc.sentences]
    assert training_sample(corpus, sample_bp=10**6) == everything
    half = training_sample(corpus, sample_bp=12_000, seed=5)
    assert 6_000 < sum(map(len, half)) < 13_000
    assert set(half) <= set(everything)


# ----------------------------------------------------------------------------- the stage
def test_tokenizer_folder_has_normal_permissions(corpus, tmp_path):
    """Issue 12: the folder was made by mkdtemp (0700) while every other output is 0755."""
    previous = os.umask(0o022)
    try:
        train_tokenizer(corpus, tmp_path / "tok", vocab_size=60, model_type="bpe")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "tok").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "tok" / "sentencepiece.model").stat().st_mode) == 0o644


def test_stage_reuses_refuses_and_overwrites(corpus, tmp_path, monkeypatch):
    out = tmp_path / "tok"
    manifest = train_tokenizer(corpus, out, vocab_size=60, model_type="bpe", sample_bp=8000)
    assert manifest["run"]["vocab_size"] == 60
    corpus_manifest = (corpus / "manifest.json").read_bytes()
    assert manifest["run"]["input_sha256"] == hashlib.sha256(corpus_manifest).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "sentencepiece.model",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    model = (out / "sentencepiece.model").read_bytes()

    def no_work(*args, **kwargs):
        raise AssertionError("sampled again")

    monkeypatch.setattr(train_module, "training_sample", no_work)
    again = train_tokenizer(corpus, out, vocab_size=60, model_type="bpe", sample_bp=8000)
    assert again == manifest  # the same training: nothing to do
    with pytest.raises(ConfigError, match=r"vocab_size 60 -> 70.*--overwrite"):
        train_tokenizer(corpus, out, vocab_size=70, model_type="bpe", sample_bp=8000)
    monkeypatch.undo()
    redone = train_tokenizer(
        corpus, out, vocab_size=70, model_type="bpe", sample_bp=8000, overwrite=True
    )
    assert redone["run"]["vocab_size"] == 70
    assert DNATokenizer.from_pretrained(out).vocab_size == 70
    assert (out / "sentencepiece.model").read_bytes() != model


def test_parameters_and_output_are_checked_before_any_work(corpus, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(train_module, "training_sample", no_work)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the output folder"):
        train_tokenizer(corpus, blocker / "tok", vocab_size=60)
    with pytest.raises(ConfigError, match="at least 16"):
        train_tokenizer(corpus, tmp_path / "a", vocab_size=15)
    with pytest.raises(ConfigError, match="sample_bp=0"):
        train_tokenizer(corpus, tmp_path / "b", sample_bp=0)
    with pytest.raises(InputError, match="not a corpus folder"):
        train_tokenizer(tmp_path, tmp_path / "c", vocab_size=60)
    with pytest.raises(InputError, match="nothing.fa: corpus folder or FASTA file not found"):
        train_tokenizer(tmp_path / "nothing.fa", tmp_path / "d", vocab_size=60)
    assert not any((tmp_path / name).exists() for name in "abcd")
    from dnabird.outputs import OutputFolder

    with (
        OutputFolder(tmp_path / "e", "train-tokenizer", {}),  # another run holds the folder
        pytest.raises(ConfigError, match="in use by another dnabird run"),
    ):
        train_tokenizer(corpus, tmp_path / "e", vocab_size=60)


# ----------------------------------------------------------------------------- command
def test_train_tokenizer_command_from_fasta(tmp_path, capsys):
    genome = synthetic_genome(40_000, seed=5)
    fasta = write_fasta(tmp_path / "g.fa.gz", {"chr1": genome})
    out = tmp_path / "tok"
    args = ["--no-progress", "train-tokenizer", str(fasta), "--out", str(out)]
    options = ["--vocab-size", "100", "--model-type", "bpe", "--sample-bp", "20000"]
    assert main([*args, *options]) == 0
    assert "100-piece bpe tokenizer" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "train-tokenizer"
    assert 10_000 < manifest["counts"]["sample_bp"] < 21_000  # about 20,000 (Bernoulli)
    tokenizer = DNATokenizer.from_pretrained(out)
    assert tokenizer.vocab_size == 100 and tokenizer.model_type == "bpe"
    assert manifest["model_sha256"] == hashlib.sha256(tokenizer.model_proto).hexdigest()
    assert manifest["input"]["sha256"] == hashlib.sha256(fasta.read_bytes()).hexdigest()
    # Other parameters into the same folder are refused, naming what differs.
    assert main([*args, *options[:-1], "30000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample_bp 20000 -> 30000" in err
    # A new folder gives the same model.
    args[4] = str(tmp_path / "tok2")
    assert main([*args, *options]) == 0
    again = DNATokenizer.from_pretrained(tmp_path / "tok2")
    assert again.model_proto == tokenizer.model_proto


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--vocab-size", "10", "argument --vocab-size: must be at least 16 (5 special tokens"),
        ("--vocab-size", "ten", "argument --vocab-size: expected a whole number, got 'ten'"),
        ("--sample-bp", "0", "argument --sample-bp: must be at least 1, got 0"),
        ("--max-piece-length", "0", "argument --max-piece-length: must be at least 1, got 0"),
        ("--threads", "0", "argument --threads: must be at least 1, got 0"),
    ],
)
def test_option_ranges_are_checked_when_parsing(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_:
        main(["train-tokenizer", str(tmp_path), "--out", str(tmp_path / "t"), option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "t").exists()


def test_train_tokenizer_command_errors(tmp_path, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_text(">chr1\nACGTXX\n")
    assert main(["train-tokenizer", str(bad), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.fa" in err
    assert not (tmp_path / "t" / "manifest.json").exists()
    missing = tmp_path / "missing.fa"
    assert main(["train-tokenizer", str(missing), "--out", str(tmp_path / "u")]) == 2
    assert "missing.fa" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train-tokenizer", str(bad), "--out", str(blocker / "tok")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the output folder" in err
