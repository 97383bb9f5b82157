"""The built wheel carries everything an installed dnabird reads at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Files a normal ``pip install dnabird`` must find inside the package.
REQUIRED_IN_WHEEL = (
    "dnabird/data_manifests/grch37.json",  # fetch-genome, preprocess --assembly
    "dnabird/model/attention/sparse_rows_cpu.cpp",  # the CPU kernel, built on first use
    "dnabird/pipelines/pretrain_tiny.yaml",  # pretrain --config tiny
    "dnabird/pipelines/pretrain_grch37.yaml",
    "dnabird/pipelines/promoter.yaml",  # finetune --config promoter
    "dnabird/pipelines/promoter_gpu.yaml",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the source tree (the checkout stays untouched)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know the tracked files")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    source = tmp_path_factory.mktemp("source")
    for name in filter(None, tracked):
        if not name.startswith(("dnabird/", "pyproject.toml", "README", "LICENSE")):
            continue
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("dnabird-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_the_data_the_package_reads(wheel):
    names = set(wheel.namelist())
    missing = [name for name in REQUIRED_IN_WHEEL if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    shipped = wheel.read("dnabird/data_manifests/grch37.json")
    assert shipped == (REPO / "data_manifests" / "grch37.json").read_bytes()  # one source


@pytest.mark.parametrize("folder", ["data_manifests", "pipelines"])
def test_top_level_folders_are_the_packaged_ones(folder):
    assert (REPO / folder).resolve() == (REPO / "dnabird" / folder).resolve()


def test_assemblies_are_found_from_the_package():
    from dnabird.genome.assemblies import MANIFEST_DIR, load_assembly

    assert MANIFEST_DIR.parent == Path(__import__("dnabird").__file__).parent
    assert load_assembly("hg19")["name"].lower() == "grch37"
