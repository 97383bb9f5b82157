"""The prediction benchmark (``benchmarks/predict.py``) on a tiny model, so it cannot rot:
windows and token batches, the three contenders and their agreement, timing, the layer
profile, the memory child and the printed tables. No timing is asserted."""

from __future__ import annotations

import argparse
import io

import pytest
import torch

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("predict")


@pytest.fixture(scope="module")
def sequence():
    import numpy as np

    rng = np.random.default_rng(0)
    bases = "".join(rng.choice(list("ACGT"), size=60_000))
    return "N" * 500 + bases  # a gap at the start, like the excerpt


@pytest.fixture(scope="module")
def tokenizer(sequence):
    from dnabird.tokenizer import DNATokenizer

    return DNATokenizer.train(sequence_pieces(sequence), 128, "bpe")


def sequence_pieces(sequence):
    pieces = [sequence[i : i + 500] for i in range(0, 40_000, 500)]
    return [piece for piece in pieces if "N" not in piece]


def test_sentences_and_windows_avoid_gaps(bench, sequence):
    sentences = bench.training_sentences(sequence, 10_000, 1_000)
    assert len(sentences) == 9 and all(len(s) == 1_000 and "N" not in s for s in sentences)
    windows = bench.sample_windows(sequence, 0, 700, 5, seed=1)
    assert len(windows) == 5 and all(len(w) == 700 and "N" not in w for w in windows)
    assert bench.sample_windows(sequence, 0, 700, 5, seed=1) == windows  # seeded


def test_contenders_agree_and_run(bench, tokenizer, sequence):
    config = bench.model_config("tiny", tokenizer.vocab_size, 1024, seed=0)
    models = bench.build_models(config, seed=0)
    assert set(models) == set(bench.CONTENDERS)
    for bp, attention in ((150, "full"), (1_200, "block_sparse")):
        windows = bench.sample_windows(sequence, 40_000, bp, 2, seed=0)
        ids, mask, counts = bench.token_batch(tokenizer, windows, config.block_size, 1024)
        assert ids.shape == mask.shape and ids.shape[1] % config.block_size == 0
        assert ids.shape[1] >= max(counts) + 2 and int(mask.sum()) == sum(counts) + 4
        diffs = bench.differences(models, ids, mask)
        assert diffs["ours-hf-mode"] < 1e-4  # exactly HF's attention
        times, parts = bench.time_contenders(models, ids, mask, repeats=2, warmup=1)
        assert {name: len(t) for name, t in times.items()} == dict.fromkeys(bench.CONTENDERS, 2)
        for name in bench.CONTENDERS:
            p = parts[name]
            assert p["total"] >= p["layers"] >= p["attention"] > p["projections"] > 0
            assert p["feed_forward"] > 0 and p["kernel"] > 0
            assert p["other"] == pytest.approx(p["layers"] - p["attention"] - p["feed_forward"])
        assert bench.hf_attention_used(models["hf"]) == attention
        assert models["hf"].attention_type == "block_sparse"  # switched back


def test_bf16_mixed_runs_ours_under_autocast_and_the_peer_in_bfloat16(bench, tokenizer, sequence):
    config = bench.model_config("tiny", tokenizer.vocab_size, 1024, seed=0)
    models = bench.build_models(config, seed=0, precision="bf16-mixed")
    assert next(models["hf"].parameters()).dtype == torch.bfloat16
    assert models["ours"].encoder.embeddings.word_embeddings.weight.dtype == torch.float32
    assert models["ours"].encoder.layers[0].attention.query.weight.dtype == torch.bfloat16
    windows = bench.sample_windows(sequence, 40_000, 1_200, 2, seed=0)
    ids, mask, _ = bench.token_batch(tokenizer, windows, config.block_size, 1024)
    with torch.inference_mode():
        logits = bench.forward(models["ours"], ids, mask, "bf16-mixed")
        exact = bench.forward(bench.build_model(config, "ours", seed=0), ids, mask)
    assert 0 < (logits.float() - exact).abs().max() < 0.1  # bfloat16 rounding, not float32's
    error = bench.precision_error(
        bench.build_model(config, "ours", seed=0), models["ours"], ids, mask, "bf16-mixed"
    )
    assert error["logits"] == pytest.approx(float((logits.float() - exact).abs().max()))
    assert 0 < error["probabilities"] <= error["logits"] / 4 + 1e-6  # sigmoid' <= 1/4
    diffs = bench.differences(models, ids, mask, "bf16-mixed")
    assert diffs["ours-hf-mode"] < 0.2  # the same attention, each side rounding to bfloat16
    times, _ = bench.time_contenders(models, ids, mask, 1, 0, "bf16-mixed")
    assert all(len(t) == 1 for t in times.values())


def test_memory_child_reports_peaks(bench, tokenizer, sequence, tmp_path):
    config = bench.model_config("tiny", tokenizer.vocab_size, 1024, seed=0)
    windows = bench.sample_windows(sequence, 40_000, 1_200, 2, seed=0)
    ids, mask, _ = bench.token_batch(tokenizer, windows, config.block_size, 1024)
    memory = bench.measure_memory(config, "hf", ids, mask, 0, 1, tmp_path)
    assert memory["peak_mib"] >= memory["loaded_mib"] > 0
    assert memory["rise_mib"] == pytest.approx(memory["peak_mib"] - memory["loaded_mib"])


def test_streaming_runs_the_predict_command(bench, tokenizer, sequence, tmp_path):
    args = bench.parse_args(["--quick"])
    args.stream_records, args.stream_bp = [3, 6], 200
    stream = bench.streaming_memory(args, tokenizer, sequence, tmp_path, threads=1)
    assert [run["records"] for run in stream["runs"]] == [3, 6]
    assert [run["lines"] for run in stream["runs"]] == [4, 7]  # header + one line per record
    assert all(run["peak_rss_mib"] > 0 for run in stream["runs"])
    assert stream["command"].startswith("dnabird --no-progress predict --model stream_model")


def test_report_prints_every_table(bench):
    row = {
        "bp": 8000,
        "tokens": [1200, 1250],
        "padded_tokens": 1280,
        "hf_attention": "block_sparse",
        "max_abs_diff": {"ours-hf-mode": 1e-6, "ours": 0.5},
        "windows_per_s": {"ours": 2.0, "ours-hf-mode": 2.5, "hf": 1.0},
        "ratio": {"ours": 2.0, "ours-hf-mode": 2.5, "hf": 1.0},
        "vs_float32": {"logits": 0.03, "probabilities": 0.005},
        "memory": dict.fromkeys(bench.CONTENDERS, {"peak_mib": 900.0, "rise_mib": 100.0}),
        "profile": dict.fromkeys(
            bench.CONTENDERS,
            {
                "total": 1.0,
                "layers": 0.9,
                "projections": 0.2,
                "kernel": 0.3,
                "feed_forward": 0.3,
                "other": 0.1,
            },
        ),
    }
    results = {
        "meta": {
            "command": "benchmarks/predict.py",
            "platform": "linux",
            "nproc": 2,
            "load_average": [0.1],
            "load_average_end": [0.2],
            "torch": torch.__version__,
            "torch_threads": 2,
            "transformers": "x",
            "preset": "base",
            "batch_size": 2,
            "repeats": 3,
            "precision": "bf16-mixed",
        },
        "tokenizer": {"bp_per_token": 6.5},
        "windows": [row],
        "streaming": {
            "command": "dnabird predict",
            "preset": "tiny",
            "record_bp": 1000,
            "window_tokens": 192,
            "runs": [
                {"records": 50, "peak_rss_mib": 400.0, "seconds": 1.0},
                {"records": 500, "peak_rss_mib": 410.0, "seconds": 5.0},
            ],
            "peak_ratio": 1.025,
        },
    }
    out = io.StringIO()
    bench.report(results, out)
    text = out.getvalue()
    assert "| 8 kbp | 1200-1250 -> 1280 | block_sparse | 2.000 |" in text
    assert "| 8 kbp | 3.00e-02 | 5.00e-03 |" in text
    assert "2.00x" in text and "900 (+100)" in text and "| 500 | 410 |" in text
    assert "peak ratio 10x records: 1.025" in text and "batch 2, bf16-mixed," in text


def test_quick_arguments(bench):
    args = bench.parse_args(["--quick"])
    assert isinstance(args, argparse.Namespace)
    assert args.preset == "tiny" and args.windows == [300, 1500] and args.stream_records == [4, 40]
    assert bench.parse_args(["--windows", ""]).windows == []
