"""End-to-end: ``dnabird pretrain`` on a tiny token folder, then ``dnabird evaluate-mlm``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnabird.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(token_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    args = [
        "--no-progress",
        "pretrain",
        "--config",
        str(REPO / "pipelines" / "pretrain_tiny.yaml"),
        f"data.tokens={token_folder}",
        f"out={out}",
        "data.max_length=128",
        "data.val_fraction=0.1",
        "data.val_batches=2",
        "model.overrides.max_position_embeddings=128",
        "trainer.max_steps=6",
        "trainer.val_every_steps=3",
        "trainer.log_every_steps=2",
        "trainer.checkpoint_every_steps=3",
    ]
    assert main(args) == 0
    return out


def test_pretrain_exports_a_self_describing_model(trained: Path) -> None:
    model = trained / "model"
    for name in ("model.safetensors", "config.json", "manifest.json", "tokenizer/tokenizer.json"):
        assert (model / name).is_file(), name
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["steps"] == 6
    assert manifest["parameters"]["masking"]["rate"] == 0.1
    assert manifest["parameters"]["data"]["val_fraction"] == 0.1
    assert "val/bpc" in manifest["final_metrics"]
    assert json.loads((model / "config.json").read_text())["vocab_size"] == 100
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    header = (trained / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in (
        "train/loss",
        "train/bpc",
        "train/accuracy",
        "throughput/tokens_per_s",
        "throughput/bp_per_s",
        "val/bpc",
        "val/perplexity",
    ):
        assert column in header


def test_rerun_without_resume_and_resume_without_checkpoint_exit_2(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["pretrain", f"out={trained}", f"data.tokens={trained}"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["pretrain", f"out={tmp_path / 'new'}", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint to resume from" in err and len(err.strip().splitlines()) == 1


def test_evaluate_mlm_with_baseline(
    trained: Path, tmp_path: Path, random_fasta, capsys: pytest.CaptureFixture
) -> None:
    random_fasta(tmp_path / "held.fa", {"chrT": 3000}, seed=9)
    random_fasta(tmp_path / "train.fa", {"chrS": 20000}, seed=10)
    (tmp_path / "r.bed").write_text("chrT\t0\t1000\nchrT\t2000\t3000\n")
    base = ["evaluate-mlm", "--model", str(trained / "model"), "--fasta", str(tmp_path / "held.fa")]
    opts = ["--max-length", "128", "--baseline-fasta", str(tmp_path / "train.fa")]
    assert main([*base, *opts, "--baseline-order", "3", "-o", str(tmp_path / "a.json")]) == 0
    assert main([*base, *opts, "--baseline-order", "3", "-o", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "10 pass(es)" in out and "(SE " in out
    assert (
        main([*base, *opts, "--bed", str(tmp_path / "r.bed"), "-o", str(tmp_path / "c.json")]) == 0
    )
    a, b, c = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "abc")
    assert a == b  # same seed, same masks, same numbers
    # 10 passes predict each of ~1000 tokens of ~3 bp once; random DNA costs ~2 bits per bp
    assert a["passes"] == 10 and 600 < a["predicted_tokens"] < 1500
    assert 1.8 < a["bpc"] < 3.5 and 0 < a["bpc_se"] < 0.5
    assert a["ngram"]["bases"] == 3000 and 1.95 < a["ngram"]["bpc"] < 2.1
    assert c["sequences"] == 2 and (a["bp"], c["bp"]) == (3000, 2000)  # every base once


def test_evaluate_mlm_scores_every_maskable_token_once(
    trained: Path, tmp_path: Path, random_fasta
) -> None:
    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import make_masker
    from dnabird.errors import ConfigError
    from dnabird.tasks.evaluate_mlm import evaluate_mlm
    from dnabird.tokenizer import DNATokenizer

    model = trained / "model"
    (sequence,) = random_fasta(tmp_path / "held.fa", {"chrT": 2000}, seed=11).values()
    tokenizer = DNATokenizer.from_pretrained(model / "tokenizer")
    masker = make_masker(MaskingConfig(), tokenizer)
    sentences = [sequence[i : i + 1000] for i in range(0, len(sequence), 1000)]
    maskable = sum(masker.maskable_positions(tokenizer.encode(s)).size for s in sentences)

    full = evaluate_mlm(model, [("chrT", sequence)], max_length=128, passes=10)
    assert full["passes"] == 10 and full["predicted_tokens"] == maskable
    assert full["packed_sequences"] >= 2 and 0 < full["bpc_se"] < 0.5
    assert evaluate_mlm(model, [("chrT", sequence)], max_length=128) == full  # default: 1/rate
    single = evaluate_mlm(model, [("chrT", sequence)], max_length=128, passes=1)
    assert single["passes"] == 1 and 0 < single["predicted_tokens"] < maskable / 5
    short = evaluate_mlm(model, [("chrT:0-150", sequence[:150])], max_length=128)
    assert short["packed_sequences"] == 1 and short["bpc_se"] is None
    with pytest.raises(ConfigError, match="passes"):
        evaluate_mlm(model, [("chrT", sequence)], passes=0)


def test_evaluate_mlm_bad_bed_is_one_line_error(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, random_fasta
) -> None:
    random_fasta(tmp_path / "held.fa", {"chrT": 500})
    (tmp_path / "r.bed").write_text("chrT\t100\t900\n")
    args = ["evaluate-mlm", "--model", str(trained / "model"), "--fasta", str(tmp_path / "held.fa")]
    assert main([*args, "--bed", str(tmp_path / "r.bed")]) == 2
    err = capsys.readouterr().err.strip()
    assert "r.bed:1" in err and "outside chrT" in err and len(err.splitlines()) == 1


def test_plot_training_curve_writes_a_png(trained: Path, tmp_path: Path) -> None:
    from dnabird.plots import plot_training_curve

    csv = trained / "logs" / "metrics.csv"
    out = plot_training_curve({"tiny": csv}, tmp_path / "curve.png", baselines={"n-gram": 1.9})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError):
        plot_training_curve({"missing": tmp_path / "none.csv"}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
