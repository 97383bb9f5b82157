"""Shared pieces of the tokenizer tests: seeded synthetic DNA, a trained tokenizer of each
model type, a FASTA writer and the Hugging Face parity check."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dnabird.tokenizer import CLS_ID, SEP_ID, DNATokenizer

VOCAB = 150


def synthetic_genome(length: int, seed: int) -> str:
    """Seeded DNA with recurring motifs (so multi-bp pieces exist), soft-masked stretches
    and an N run."""
    rng = np.random.default_rng(seed)
    motifs = ["".join(rng.choice(list("ACGT"), rng.integers(6, 20))) for _ in range(40)]
    parts, total = [], 0
    while total < length:
        if rng.random() < 0.5:
            part = motifs[rng.integers(len(motifs))]
        else:
            part = "".join(rng.choice(list("ACGT"), rng.integers(1, 30)))
        if rng.random() < 0.2:
            part = part.lower()
        parts.append(part)
        total += len(part)
    sequence = "".join(parts)[:length]
    return sequence[: length // 3] + "N" * 300 + sequence[length // 3 + 300 :]


def sentences_of(sequence: str, size: int = 700) -> list[str]:
    return [sequence[i : i + size] for i in range(0, len(sequence), size)]


def write_fasta(path: Path, records: dict[str, str]) -> Path:
    """A FASTA (gzip when the name ends in .gz) with 60 bp lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        for name, seq in records.items():
            handle.write(f">{name}\n")
            handle.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    return path


def assert_hf_matches(tokenizer: DNATokenizer, hf, seqs: list[str]) -> int:
    """Check the Hugging Face tokenizer against ours on ``seqs``; return the near-tie count.

    BPE must match exactly. Unigram may differ only on near-ties of the Viterbi search:
    another segmentation of the same sequence whose total log-probability equals ours
    within float32 rounding (sentencepiece sums scores in float32, HF in float64).
    """
    ties = 0
    for seq in seqs:
        ours = tokenizer.encode(seq)
        theirs = hf(seq, add_special_tokens=False)["input_ids"]
        if theirs != ours:
            assert tokenizer.model_type == "unigram"
            assert tokenizer.decode(theirs) == seq.upper().replace("R", "N").replace("Y", "N")
            score_ours = sum(tokenizer.score(i) for i in ours)
            score_theirs = sum(tokenizer.score(i) for i in theirs)
            assert score_theirs == pytest.approx(score_ours, rel=1e-6)
            ties += 1
        assert hf(seq)["input_ids"] == [CLS_ID, *theirs, SEP_ID]
        assert hf.decode(ours) == tokenizer.decode(ours)
    return ties


@pytest.fixture(scope="package")
def training_sentences() -> list[str]:
    return sentences_of(synthetic_genome(30_000, seed=7))


@pytest.fixture(scope="package", params=["unigram", "bpe"])
def tokenizer(request, training_sentences) -> DNATokenizer:
    return DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type=request.param)
