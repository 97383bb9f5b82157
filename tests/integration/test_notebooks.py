"""The notebooks stay valid and run end to end.

Each notebook's code cells are joined, in order, into one script that runs in a fresh
interpreter (what "Run all" does, without needing Jupyter), in the notebook's quick mode
(``DNABIRD_NOTEBOOK_QUICK=1``: every step shrunk to seconds), with its temporary files in the
test's folder. ``plt.show()`` saves the open figures there, so every plot is drawn too. The
files themselves must be nbformat 4 JSON with no stored outputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_quickstart",
    "02_genome_and_tokenizer",
    "03_pretraining",
    "04_finetune_promoters",
    "05_chromatin_and_variants",
    "06_attention",
]

# Run before the notebook's cells: a non-interactive backend, and plt.show() drawing each
# open figure into a PNG in the working folder (as Jupyter's inline backend draws it).
PROLOGUE = """\
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as _plt

_figures_shown = 0


def _save_figures(*args, **kwargs):
    global _figures_shown
    for number in _plt.get_fignums():
        _figures_shown += 1
        _plt.figure(number).savefig(f"figure-{_figures_shown:02d}.png", dpi=40, bbox_inches="tight")
    _plt.close("all")


_plt.show = _save_figures
"""


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def notebook_script(path: Path) -> str:
    """The code cells of a notebook joined into one script."""
    cells = read_notebook(path)["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    return "\n\n".join(code) + "\n"


def run_notebook(path: Path, folder: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``path``'s code cells as a script in ``folder``, in quick mode; temporary files
    (``tempfile.mkdtemp``) go into ``folder`` too."""
    script = folder / "notebook.py"
    script.write_text(PROLOGUE + "\n\n" + notebook_script(path))
    environment = {
        **os.environ,
        "DNABIRD_NOTEBOOK_QUICK": "1",
        "MPLBACKEND": "Agg",
        "TMPDIR": str(folder),
        **env,
    }
    environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the Makefile sets it
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment,
        timeout=600,
    )


def test_the_notebooks_are_the_six_walkthroughs():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_and_has_no_outputs(path):
    notebook = read_notebook(path)
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 4
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    cells = notebook["cells"]
    assert cells[0]["cell_type"] == "markdown"
    assert "".join(cells[0]["source"]).startswith(f"# {path.stem[:2]} ")  # "# 01 · Title"
    assert {cell["cell_type"] for cell in cells} == {"markdown", "code"}
    ids = [cell.get("id") for cell in cells]
    if notebook["nbformat_minor"] >= 5:
        assert all(ids) and len(set(ids)) == len(ids)
    for cell in cells:
        assert isinstance(cell["source"], list) and "".join(cell["source"]).strip()
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "stored outputs"
            source = "".join(cell["source"])
            assert not re.search(r"^\s*[%!]", source, re.M), "IPython magics do not run as a script"
        else:
            assert "outputs" not in cell and "attachments" not in cell
    compile(notebook_script(path), str(path), "exec")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    result = run_notebook(path, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert list(tmp_path.glob("figure-*.png")), "the notebook drew no figure"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_the_shared_data(path, tmp_path):
    """The built-in fallbacks (synthetic genome, planted motifs) of a fresh clone."""
    result = run_notebook(path, tmp_path, DNABIRD_SHARED_DATA=str(tmp_path / "absent"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert list(tmp_path.glob("figure-*.png")), "the notebook drew no figure"
