"""Training a DNA tokenizer: sample sentences, fit SentencePiece, write the tokenizer folder.

Data path of ``dnabird train-tokenizer`` (:func:`train_tokenizer`)::

    corpus folder, or FASTA (cut like ``dnabird preprocess``, one pass, into a temporary corpus)
      -> seeded sample of about ``sample_bp`` bp of sentences (:func:`training_sample`)
      -> ACGT runs (sentences normalised and split at N runs; N runs are never learned)
      -> SentencePiece in a child process (:func:`fit_sentencepiece`; DNA settings: no
         whitespace logic, full character coverage, no byte fallback, fixed specials)
      -> tokenizer folder: ``sentencepiece.model``, the Hugging Face export, ``manifest.json``

Same sample, parameters, seed and threads give the same bytes. The output folder is claimed
through :class:`dnabird.outputs.OutputFolder` (lock, refusal of a folder made from other
inputs, ``overwrite``, manifest last).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import require_file
from dnabird.tokenizer.dna import DNATokenizer
from dnabird.tokenizer.vocab import (
    CLS_ID,
    MIN_VOCAB_SIZE,
    MODEL_TYPES,
    N_PIECE_LENGTHS,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    normalize_sequence,
    split_runs,
)

STAGE = "train-tokenizer"
log = logging.getLogger(__name__)
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def check_training_parameters(
    vocab_size: int, model_type: str, max_piece_length: int, threads: int
) -> None:
    """Raise ConfigError (one line) for a parameter SentencePiece cannot use."""
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type={model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(
            f"vocab_size={vocab_size} is too small: it must be at least {MIN_VOCAB_SIZE} "
            f"({len(SPECIAL_TOKENS)} special tokens, {len(N_PIECE_LENGTHS)} N pieces and the 4 "
            "bases A, C, G, T); raise it (typical: 4,000 to 32,000)"
        )
    if max_piece_length < 1:
        raise ConfigError(f"max_piece_length={max_piece_length}; it must be at least 1 bp")
    if threads < 1:
        raise ConfigError(f"threads={threads}; it must be at least 1")


def fit_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int = 32000,
    model_type: str = "unigram",
    max_piece_length: int = 16,
    seed: int = 0,
    threads: int = 1,
) -> bytes:
    """Train SentencePiece on ``sentences`` (DNA strings, any case); return the model.

    Sentences are normalised like :meth:`DNATokenizer.encode` and split at N runs; the ACGT
    runs are the SentencePiece training sentences. The vocabulary (``vocab_size`` ids,
    at least :data:`~dnabird.tokenizer.vocab.MIN_VOCAB_SIZE`) starts with the fixed
    specials and N pieces. Runs in a child process (Ctrl-C stops it at once, a status line
    shows its progress). Deterministic: the same sentences, parameters, seed and thread
    count give a byte-identical model.
    """
    from dnabird.tokenizer.trainer_process import SentencePieceError, run_trainer

    check_training_parameters(vocab_size, model_type, max_piece_length, threads)
    runs = [
        run for s in sentences for run in split_runs(normalize_sequence(s)) if run and run[0] != "N"
    ]
    if not runs:
        raise InputError("no A, C, G or T in the training sentences")
    options = {
        "model_type": model_type,
        "vocab_size": vocab_size,
        "character_coverage": 1.0,
        "required_chars": "ACGT",
        "add_dummy_prefix": False,
        "split_by_whitespace": False,
        "remove_extra_whitespaces": False,
        "split_by_unicode_script": False,
        "split_by_number": False,
        "normalization_rule_name": "identity",
        "max_sentence_length": max(10, max(map(len, runs)) + 1),  # SentencePiece: >= 10
        "max_sentencepiece_length": max_piece_length,
        "byte_fallback": False,
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "bos_id": -1,
        "eos_id": -1,
        "pad_piece": SPECIAL_TOKENS[PAD_ID],
        "unk_piece": SPECIAL_TOKENS[UNK_ID],
        "control_symbols": list(SPECIAL_TOKENS[CLS_ID:]),
        "user_defined_symbols": ["N" * n for n in N_PIECE_LENGTHS],
        "input_sentence_size": 0,
        "shuffle_input_sentence": False,
        "num_threads": threads,
    }
    bp = sum(map(len, runs))
    log.info(
        "training a %d-piece %s vocabulary on %s ACGT runs (%s bp)",
        vocab_size,
        model_type,
        f"{len(runs):,}",
        f"{bp:,}",
    )
    try:
        return run_trainer(runs, options, seed, desc=f"train {model_type}")
    except SentencePieceError as err:
        too_high = _TOO_HIGH.search(str(err))
        if too_high:
            raise ConfigError(
                f"vocab_size={vocab_size} is too large for {bp:,} bp of training sequence: "
                f"SentencePiece can make at most {too_high[2]} pieces from it; lower the "
                "vocabulary size or train on more sequence (--sample-bp)"
            ) from None
        raise ConfigError(
            f"SentencePiece could not train a {vocab_size}-piece {model_type} vocabulary "
            f"from {bp:,} bp: {err}"
        ) from None


def sample_sentences(
    sentences: Iterable[str], total_bp: int, sample_bp: int, seed: int = 0
) -> list[str]:
    """A seeded sample of about ``sample_bp`` bp of ``sentences`` (in their order).

    Each sentence is kept with probability ``min(1, sample_bp / total_bp)`` (``total_bp``:
    the bp of all sentences) from a generator seeded by ``seed``; the sample stops once it
    holds ``sample_bp`` bp. Same input, sizes and seed give the same sample.
    """
    if sample_bp < 1:
        raise ConfigError(f"sample_bp={sample_bp}; the sample must be at least 1 bp")
    keep = min(1.0, sample_bp / max(total_bp, 1))
    rng = np.random.default_rng(seed)
    sample, kept_bp = [], 0
    for sentence in sentences:
        if kept_bp >= sample_bp:
            break
        if rng.random() < keep:
            sample.append(sentence)
            kept_bp += len(sentence)
    return sample


def training_sample(source: str | os.PathLike, sample_bp: int, seed: int = 0) -> list[str]:
    """A seeded sample of about ``sample_bp`` bp of sentences from a corpus or a FASTA.

    A folder is read as a :class:`~dnabird.genome.Corpus` (its documents' sentences in
    corpus order). A FASTA file is first cut like ``dnabird preprocess`` (one pass, seed
    ``seed``, every record, default sentence lengths and N rules) into a temporary corpus.
    See :func:`sample_sentences` for the sampling; a progress bar counts the documents read.
    """
    import tempfile

    from dnabird.genome import Corpus, preprocess

    path = Path(source)
    if path.is_dir():
        return _sample_corpus(Corpus(path), sample_bp, seed)
    require_file(path, "FASTA file")
    with tempfile.TemporaryDirectory(prefix="dnabird-train-tokenizer-") as folder:
        preprocess(path, Path(folder) / "corpus", passes=1, seed=seed, min_length=1)
        return _sample_corpus(Corpus(Path(folder) / "corpus"), sample_bp, seed)


def _sample_corpus(corpus: Any, sample_bp: int, seed: int) -> list[str]:
    from dnabird.progress import progress

    total = corpus.manifest.get("counts", {}).get("total", {}).get("bp")
    if total is None:
        total = sum(len(s) for doc in corpus for s in doc.sentences)
    with progress(corpus, total=len(corpus), unit="doc", desc="sample") as documents:
        sentences = (s for doc in documents for s in doc.sentences)
        return sample_sentences(sentences, int(total), sample_bp, seed)


def train_tokenizer(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vocab_size: int = 32000,
    model_type: str = "unigram",
    max_piece_length: int = 16,
    sample_bp: int = 20_000_000,
    seed: int = 0,
    threads: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train on a seeded sample of a corpus folder or FASTA; write the folder ``out``.

    ``out`` receives the tokenizer files (:meth:`DNATokenizer.save_pretrained`) and a
    ``manifest.json`` (stage ``train-tokenizer``), written last. A folder that already holds
    this training (same input checksum and parameters) is returned as it is; one made from
    other inputs or parameters is refused unless ``overwrite``. Parameters are checked, the
    input found and ``out`` claimed before any work. Returns the manifest.
    """
    from dnabird.manifest import new_manifest
    from dnabird.outputs import OutputFolder

    check_training_parameters(vocab_size, model_type, max_piece_length, threads)
    if sample_bp < 1:
        raise ConfigError(f"sample_bp={sample_bp}; the sample must be at least 1 bp")
    described = _describe_source(Path(source))
    parameters = {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "max_piece_length": max_piece_length,
        "sample_bp": sample_bp,
        "seed": seed,
        "threads": threads,
    }
    run = {"input_sha256": _input_sha256(described), **parameters}
    with OutputFolder(out, STAGE, run, overwrite=overwrite) as folder:
        if folder.complete:
            log.info("%s already holds this tokenizer (same input and parameters)", out)
            return folder.manifest
        started = time.perf_counter()
        sample = training_sample(source, sample_bp, seed)
        if not sample:
            raise InputError(f"{source}: no sentences to train on (is the corpus empty?)")
        tokenizer = DNATokenizer.train(
            sample, vocab_size, model_type, max_piece_length, seed, threads
        )
        sample_tokens = sum(map(len, tokenizer.encode_batch(sample, num_threads=threads)))
        tokenizer.save_pretrained(folder.path)
        manifest = new_manifest(
            STAGE,
            parameters,
            input=described,
            counts={
                "sample_sentences": len(sample),
                "sample_bp": sum(map(len, sample)),
                "sample_tokens": sample_tokens,
            },
            bp_per_token_sample=round(sum(map(len, sample)) / max(sample_tokens, 1), 4),
            model_sha256=hashlib.sha256(tokenizer.model_proto).hexdigest(),
            seconds=round(time.perf_counter() - started, 3),
        )
        folder.finish(manifest)
        return folder.manifest


def _describe_source(source: Path) -> dict[str, Any]:
    """Path and checksum of the training input: a FASTA file, or a corpus folder's manifest."""
    from dnabird.manifest import MANIFEST_NAME, describe_file

    if source.is_dir():
        if not (source / MANIFEST_NAME).is_file():
            raise InputError(
                f"{source}: not a corpus folder (no {MANIFEST_NAME}); give a folder made by "
                "dnabird preprocess or a FASTA file"
            )
        return {"path": str(source), "corpus_manifest": describe_file(source / MANIFEST_NAME)}
    if not source.exists():
        raise InputError(f"{source}: corpus folder or FASTA file not found")
    return describe_file(require_file(source, "FASTA file"))


def _input_sha256(described: dict[str, Any]) -> str:
    return described.get("corpus_manifest", described)["sha256"]
