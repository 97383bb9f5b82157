"""Fixtures of the genome tests: copies of the hand-made FASTA files in a temporary folder
(preprocessing writes indexes beside its input, so tests never use tests/fixtures in place)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "genome"

#: Small cutting parameters that suit the ~240 bp hand-made chromosomes.
SMALL = {
    "min_sentence": 5,
    "max_sentence": 12,
    "min_doc": 2,
    "max_doc": 4,
    "max_n_run": 5,
    "max_n_fraction": 0.3,
}


def read_plain_fasta(path: Path) -> dict[str, str]:
    """Independent reference parser: {first word of header: sequence} of a plain FASTA."""
    records: dict[str, list[str]] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = []
        elif line.strip():
            records[name].append(line.strip())
    return {n: "".join(parts) for n, parts in records.items()}


@pytest.fixture
def data_file(tmp_path: Path):
    """Return a function copying tests/fixtures/genome/<name> into a fresh temporary folder."""

    def copy(name: str) -> Path:
        folder = tmp_path / "input"
        folder.mkdir(exist_ok=True)
        return Path(shutil.copy(DATA / name, folder / name))

    return copy
