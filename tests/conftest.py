"""Shared fixtures and marker handling.

Markers: ``slow`` (excluded by ``make test``), ``gpu`` (skipped without CUDA) and
``realdata`` (reads the read-only real-data folder; skipped when it is absent).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from dnabird.testing import SHARED_DATA_ENV, shared_data_dir


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
