"""The flex BlockMask benchmark (``benchmarks/flex_mask.py``) on tiny CPU sizes, so it cannot
rot: every variant is timed, the JSON holds them all and the table prints. No timing is
compared."""

from __future__ import annotations

import json
import warnings

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("flex_mask")


def test_tiny_cpu_run_writes_every_time(bench, tmp_path, capsys):
    out = tmp_path / "flex_mask.json"
    args = ["--device", "cpu", "--tokens", "512", "--batch", "2", "--repeats", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the CPU kernel's build message, if any
        bench.main([*args, "--warmup", "1", "--no-compile", "--json", str(out)])
    result = json.loads(out.read_text())
    assert set(result["median_ms"]) == {*bench.BUILDS, *bench.ATTENTION}
    assert all(ms > 0 for ms in result["median_ms"].values())
    assert result["lengths"] == [512, 461] and result["meta"]["tokens"] == 512
    assert result["max_abs_diff_flex_blocked"] < 1e-4
    table = capsys.readouterr().out
    assert "| BlockMask, cached pattern part |" in table and "share of flex" in table


def test_only_build_times_the_builds_alone(bench):
    result = bench.main(
        ["--device", "cpu", "--tokens", "256", "--batch", "3", "--repeats", "1", "--only-build"]
    )
    assert set(result["median_ms"]) == set(bench.BUILDS)
    assert result["syncs"] == {"build_uncached": None, "build_cached": None}
