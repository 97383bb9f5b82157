"""The [CLS]-only benchmark (``benchmarks/cls_only.py``) in quick mode, so it cannot rot: both
calls agree (logits and gradients) and the table prints. No timing is asserted."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("cls_only")


def test_quick_run_agrees_and_prints_the_table(bench, capsys):
    results = bench.main(["--quick", "--repeats", "1"])
    assert set(results) == set(bench.QUICK)
    for r in results.values():
        assert r["logits_diff"] < 1e-5 and r["full_s"] > 0 and r["cls_only_s"] > 0
    assert results["train tiny, 512 tokens x 2"]["grads_diff"] < 1e-5
    table = capsys.readouterr().out
    assert "| predict tiny, 512 tokens x 2 |" in table and "speed-up" in table
