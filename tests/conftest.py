"""Shared fixtures and marker handling.

Markers: ``slow`` (excluded by ``make test``), ``gpu`` (skipped without CUDA) and
``realdata`` (reads the read-only real-data folder; skipped when it is absent).
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dnabird.testing import SHARED_DATA_ENV, shared_data_dir

_CACHE_ENV = "DNABIRD_CACHE_DIR"
_cache_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Point dnabird's cache (built kernels, FASTA indexes of read-only inputs) at a folder of
    this test session, so tests never write into the user's ``~/.cache/dnabird``."""
    global _cache_dir
    _cache_dir = tempfile.mkdtemp(prefix="dnabird-test-cache-")
    os.environ[_CACHE_ENV] = _cache_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cache_dir is not None:
        shutil.rmtree(_cache_dir, ignore_errors=True)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    no_data = pytest.mark.skip(
        reason=f"real data folder not found (set ${SHARED_DATA_ENV} or place it at ../shared/data)"
    )
    has_cuda = None
    has_data = shared_data_dir() is not None
    for item in items:
        if "gpu" in item.keywords:
            has_cuda = _cuda_available() if has_cuda is None else has_cuda
            if not has_cuda:
                item.add_marker(no_cuda)
        if "realdata" in item.keywords and not has_data:
            item.add_marker(no_data)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)``: the script ``benchmarks/<name>.py`` as a module, loaded once
    per session and registered in ``sys.modules`` while the session lasts (dataclasses look
    their module up)."""
    loaded: dict[str, object] = {}

    def load(name: str):
        if name not in loaded:
            path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
            spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    yield load
    for name in loaded:
        del sys.modules[f"{name}_benchmark"]


@pytest.fixture
def seed() -> int:
    """Seed Python, NumPy and (if installed) torch with 1234 and return the seed."""
    value = 1234
    random.seed(value)
    np.random.seed(value)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(value)
    return value


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real-data folder (see ../shared/data/README.md); skips when absent."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip(f"real data folder not found (set ${SHARED_DATA_ENV})")
    return folder


# Tiny pretraining inputs made by the real pipeline (task and integration tests).
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
