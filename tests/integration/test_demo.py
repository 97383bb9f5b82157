"""The demo pipeline, shrunk to seconds on a synthetic genome."""

from __future__ import annotations

import json

import pytest

from dnabird.demo import DemoOptions, run_demo, synthetic_genome
from dnabird.errors import ConfigError, InputError


def test_synthetic_genome_is_seeded_dna_with_repeats():
    sequence = synthetic_genome(60_000, seed=3)
    assert len(sequence) == 60_000 and set(sequence) <= set("ACGT")
    assert sequence == synthetic_genome(60_000, seed=3)
    assert sequence != synthetic_genome(60_000, seed=4)
    # Interspersed repeat copies: some 40-mers occur more than once.
    kmers = [sequence[i : i + 40] for i in range(0, len(sequence) - 40, 10)]
    assert len(set(kmers)) < len(kmers)


def test_small_demo_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("DNABIRD_SHARED_DATA", str(tmp_path / "absent"))  # synthetic genome
    options = DemoOptions(
        held_out_bp=40_000,
        passes=1,
        vocab_size=300,
        tokenizer_sample_bp=100_000,
        max_length=128,
        batch_size=4,
        steps=4,
        ngram_orders=(2, 4),
        synthetic_bp=200_000,
    )
    summary = run_demo(tmp_path / "demo", options=options)
    out = tmp_path / "demo"
    assert summary["genome"].startswith("synthetic genome (200,000 bp")
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for name in ("attention_pattern.png", "training_curve.png", "train.fa"):
        assert (out / name).stat().st_size > 0
    assert (out / "pretrain" / "model" / "model.safetensors").is_file()
    assert 0.5 < summary["held_out_bpc"] < 4.0
    assert set(summary["ngram_bpc"]) == {"2", "4"}
    assert run_demo(out, options=options) == json.loads(json.dumps(summary))  # done: reused
    with pytest.raises(ConfigError, match=r"options\.steps 4 -> 5.*--overwrite"):
        run_demo(out, options=DemoOptions(**{**vars(options), "steps": 5}))


def test_demo_into_an_unwritable_place_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write the output folder"):
        run_demo(blocker / "demo")
