"""Fixtures of the prediction tests: a small multi-label model folder (random weights with
a spread-out head, so predictions differ between sequences), a pretrained-only masked-LM
folder, and the real hg38 chr2 excerpt (read in place: its .fai/.gzi sit beside it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

WINDOW_BP = 300
TOKEN_WINDOW = 256
FEATURES = {
    "ids": ["ctcf", "atac", "k27ac"],
    "names": ["CTCF", "ATAC", "H3K27ac"],
    "categories": ["TF", "DHS", "HM"],
}


def _tokenizer():
    from dnabird.tokenizer import DNATokenizer

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(300)]
    return DNATokenizer.train(sentences, vocab_size=60)


def _config(vocab_size: int):
    from dnabird.model.config import BigBirdConfig

    return BigBirdConfig.preset(
        "tiny",
        vocab_size=vocab_size,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        block_size=16,
        max_position_embeddings=TOKEN_WINDOW,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        random_seed=1,
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-feature multi-label model folder as ``dnabird finetune`` exports one: window
    256 tokens / 300 bp, strand-averaging."""
    from dnabird.model import BigBirdForMultiLabelClassification
    from dnabird.model.pretrained import write_model_folder

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    model = BigBirdForMultiLabelClassification(_config(tokenizer.vocab_size), 3)
    with torch.no_grad():  # large random weights: probabilities spread over (0, 1)
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    folder = tmp_path_factory.mktemp("predict") / "model"
    manifest = {
        "stage": "finetune",
        "task": "multilabel",
        "classes": FEATURES["ids"],
        "max_length": TOKEN_WINDOW,
        "window_bp": WINDOW_BP,
        "truncate": False,
        "average_strands": True,
        "data": {"features": FEATURES},
    }
    return write_model_folder(folder, model, manifest, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained-only masked-LM folder (no classes, no window)."""
    from dnabird.model import BigBirdForMaskedLM
    from dnabird.model.pretrained import write_model_folder

    torch.manual_seed(1)
    tokenizer = _tokenizer()
    model = BigBirdForMaskedLM(_config(tokenizer.vocab_size), labelled_logits_only=True)
    folder = tmp_path_factory.mktemp("predict") / "mlm"
    return write_model_folder(folder, model, {"stage": "pretrain"}, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def chr2(shared_data: Path) -> Path:
    """The soft-masked hg38 chr2 excerpt (bgzip, one record ``chr2``, 2,333,275 bp)."""
    return shared_data / "genome" / "hg38_chr2_1-2333275.fa.gz"


def cli(*args: object) -> int:
    """``dnabird ARGS --device cpu`` in this process; its exit status."""
    from dnabird.cli import main

    return main([str(a) for a in args] + ["--device", "cpu"])


def cli_process(*args: object) -> subprocess.CompletedProcess:
    """``python -m dnabird ARGS --device cpu`` in a new process (one thread per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dnabird", *map(str, args), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def assert_failed_cleanly(result: subprocess.CompletedProcess, message: str, out: Path) -> None:
    """Exit status 2, one line of error naming ``message``, and nothing of ``out``
    (``out``, its ``.NA``, its manifest or a temporary file) left behind."""
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().split("\n")
    assert len(error) == 1 and error[0].startswith("dnabird: error:"), error
    assert message in error[0], error[0]
    assert not [p for p in out.parent.iterdir() if p.name.lstrip(".").startswith(out.stem)]
