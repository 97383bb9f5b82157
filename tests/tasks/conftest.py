"""Fixtures of the task tests: a tiny token folder made by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_random_fasta(path: Path, lengths: dict[str, int], seed: int = 0) -> dict[str, str]:
    """Write uniformly random DNA records to ``path``; return {name: sequence}."""
    rng = np.random.default_rng(seed)
    records = {name: "".join(rng.choice(list("ACGT"), size=n)) for name, n in lengths.items()}
    with open(path, "w") as handle:
        for name, seq in records.items():
            lines = "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
            handle.write(f">{name}\n{lines}\n")
    return records


@pytest.fixture
def random_fasta():
    """:func:`write_random_fasta`, for tests that need FASTA files of random DNA."""
    return write_random_fasta


@pytest.fixture(scope="session")
def token_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """preprocess -> train-tokenizer (100 ids) -> tokenize on 52 kbp of random DNA;
    2 passes, 93 documents in 8 shards (chr1 and chr2)."""
    from dnabird.data.tokens import tokenize_corpus
    from dnabird.genome.cutting import CuttingParams
    from dnabird.genome.preprocess import preprocess
    from dnabird.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tokens")
    write_random_fasta(root / "genome.fa", {"chr1": 40000, "chr2": 12000})
    cutting = CuttingParams(min_sentence=100, max_sentence=200, min_doc=5, max_doc=10)
    preprocess(root / "genome.fa", root / "corpus", passes=2, max_shard_bp=15000, cutting=cutting)
    train_tokenizer(root / "corpus", root / "tokenizer", vocab_size=100)
    tokenize_corpus(root / "corpus", root / "tokenizer", root / "tokens")
    return root / "tokens"
