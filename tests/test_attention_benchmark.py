"""The attention benchmark (``benchmarks/attention.py``) on a short length, so it cannot rot:
a contender that raises (as Hugging Face's block-sparse attention does in bfloat16 on CUDA
with transformers 5.17) is left out with its error, and the tables still print. No timing is
asserted."""

from __future__ import annotations

import argparse
import io

import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("attention")


def test_a_failing_contender_is_left_out_with_its_error(bench, monkeypatch):
    import torch

    real = bench.attention_contenders

    def with_a_broken_peer(*args):
        runs, tensors, pattern = real(*args)

        def broken():
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype\nmore")

        return {**runs, "hf-block-sparse": broken}, tensors, pattern

    monkeypatch.setattr(bench, "attention_contenders", with_a_broken_peer)
    args = argparse.Namespace(
        contenders=["ours-blocked", "hf-block-sparse", "dense-sdpa"],
        warmup=1,
        repeats=1,
        slow_call_s=20.0,
        memory=False,
    )
    cpu = torch.device("cpu")
    result = bench.measure(args, "attention", 512, 64, False, cpu, torch.float32)
    assert set(result["median_s"]) == {"ours-blocked", "dense-sdpa"}
    assert result["failed"] == {
        "hf-block-sparse": "RuntimeError: scatter(): Expected self.dtype to be equal to src.dtype"
    }
    healthy = {  # a made-up row at another length where the peer ran
        **result,
        "length": 1024,
        "median_s": {"ours-blocked": 1.0, "hf-block-sparse": 3.0, "dense-sdpa": 2.0},
        "failed": {},
    }
    out = io.StringIO()
    bench.report([result, healthy], out=out)
    table = out.getvalue()
    assert "| 512 |" in table and "| 1024 | 1000.0 | 3000.0 | 2000.0 | 3.00 | 2.00 |" in table
    row_512 = next(line for line in table.splitlines() if line.startswith("| 512 |"))
    assert row_512.split(" | ")[2] == "-"  # the peer's cell, and its ratio below
    assert "| - |" in row_512
    assert "left out at 512 tokens: hf-block-sparse (RuntimeError: scatter()" in table
    assert "left out at 1024" not in table
