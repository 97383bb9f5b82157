"""``benchmarks/gpu_check.sh`` on the CPU (``CHECK_DEVICE=cpu``): its stage handling, so the
script a GPU session gets once cannot rot between sessions. Only cheap stages run here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _check(out: Path, *stages: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "CHECK_DEVICE": "cpu",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), *stages],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_unknown_stage_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = _check(tmp_path / "out", "tests", "atention")
    assert done.returncode == 2
    assert "unknown stage 'atention'" in done.stderr and "flex_mask" in done.stderr
    assert not (tmp_path / "out").exists()


def test_named_stages_run_in_order_and_write_their_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _check(out, "flex_mask", "promoter", PROMOTER_TOKENS="", PROMOTER_FILE="")
    assert done.returncode == 0, done.stdout + done.stderr
    log = (out / "gpu_check.log").read_text()
    assert "stages: flex_mask promoter" in log
    assert log.index("stage flex_mask") < log.index("stage promoter")
    assert "promoter stage skipped: set PROMOTER_FILE" in log  # no inputs: skipped, not failed
    result = json.loads((out / "flex_mask.json").read_text())
    assert result["meta"]["device"] == "cpu" and result["median_ms"]["flex"] > 0
