"""End-to-end: ``dnabird pretrain`` on a tiny token folder, then ``dnabird evaluate-mlm``."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnabird.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(token_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    args = [
        "--no-progress",
        "pretrain",
        "--config",
        "tiny",  # the packaged pipelines/pretrain_tiny.yaml
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


def _args(run: Path, tokens: Path, *extra: str) -> list[str]:
    """The ``trained`` run's command line, into ``run``, with ``extra`` arguments."""
    return [
        "--no-progress",
        "pretrain",
        "--config",
        "tiny",
        f"data.tokens={tokens}",
        f"out={run}",
        "data.max_length=128",
        "data.val_fraction=0.1",
        "data.val_batches=2",
        "model.overrides.max_position_embeddings=128",
        "trainer.max_steps=6",
        "trainer.val_every_steps=3",
        "trainer.log_every_steps=2",
        "trainer.checkpoint_every_steps=3",
        *extra,
    ]


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("dnabird: error: "), err
    return err[-1]


def test_a_finished_run_is_not_redone_and_other_settings_are_refused(
    trained: Path, token_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "model" / "manifest.json").read_bytes()
    assert main(_args(run, token_folder)) == 0  # same run, complete: nothing to do
    assert (run / "model" / "manifest.json").read_bytes() == before
    assert "Pretrained for 6 steps" in capsys.readouterr().out

    assert main(_args(run, token_folder, "optim.lr=0.002")) == 2
    line = _one_line_error(capsys)
    assert "optim.lr 0.001 -> 0.002" in line and "--accept-changes" in line
    assert main(_args(run, token_folder, "model.overrides.hidden_size=32", "--resume")) == 2
    assert "model.overrides.hidden_size null -> 32" in _one_line_error(capsys)
    # accepting a new model size cannot work: said before anything is touched
    extra = ("model.overrides.hidden_size=32", "trainer.max_steps=8")
    assert main(_args(run, token_folder, *extra, "--resume", "--accept-changes")) == 2
    line = _one_line_error(capsys)
    assert "last.ckpt: cannot continue this run" in line and "[100, 64] in the checkpoint" in line
    assert (run / "model" / "manifest.json").read_bytes() == before
    assert main(_args(tmp_path / "new", token_folder, "--resume")) == 2
    assert "no interrupted pretrain run to resume" in _one_line_error(capsys)


def test_resume_with_another_tokenizer_is_refused_in_one_line(
    trained: Path, token_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from dnabird.data.tokens import tokenize_corpus
    from dnabird.tokenizer import train_tokenizer

    corpus = token_folder.parent / "corpus"
    train_tokenizer(corpus, tmp_path / "tokenizer", vocab_size=120)
    tokenize_corpus(corpus, tmp_path / "tokenizer", tmp_path / "tokens")
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    args = _args(run, tmp_path / "tokens", "trainer.max_steps=8", "--resume")
    assert main(args) == 2
    line = _one_line_error(capsys)
    assert "tokenizer_sha256" in line and "--accept-changes" in line
    assert main([*args, "--accept-changes"]) == 2  # a size-mismatch traceback before
    assert "[100, 64] in the checkpoint but [120, 64] now" in _one_line_error(capsys)


def test_a_time_limit_stops_the_run_early_and_exports_it(
    token_folder: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = _args(run, token_folder, "trainer.max_steps=100000", "trainer.max_time_s=2")
    assert main(args) == 0
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert 1 <= manifest["steps"] < 100000
    assert manifest["parameters"]["trainer"]["max_time_s"] == 2


def test_a_missing_token_folder_names_the_key(tmp_path: Path, capsys) -> None:
    assert main(["pretrain", "--config", "tiny", f"out={tmp_path / 'run'}"]) == 2
    assert "data.tokens=tokens: folder not found" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the run folder was copied
def test_resume_extends_a_finished_run_and_continues_its_curve(
    trained: Path, token_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    args = _args(run, token_folder, "trainer.max_steps=8", "optim.lr=0.002", "--resume")
    assert main(args) == 2  # a longer run is fine; a new learning rate must be accepted
    assert "optim.lr 0.001 -> 0.002" in _one_line_error(capsys)
    assert main([*args, "--accept-changes"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["steps"] == 8 and manifest["accepted_changes"] == {
        "config.optim.lr": [0.001, 0.002]
    }
    assert json.loads((run / "model" / "manifest.json").read_text())["steps"] == 8
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["train/loss"]]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and min(steps) < 5 < max(steps)  # both parts, once
    # still warming up (optim.warmup_steps=50): the rate is peak x (step + 1) / 50, with the
    # accepted peak after the resume point
    lr = {int(r["step"]): float(r["train/lr"]) for r in rows}
    assert lr[min(steps)] == pytest.approx(0.001 * (min(steps) + 1) / 50, rel=1e-5)
    assert lr[max(steps)] == pytest.approx(0.002 * (max(steps) + 1) / 50, rel=1e-5)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(
    token_folder: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = _args(run, token_folder, "trainer.max_steps=1000", "trainer.log_every_steps=1")
    process = subprocess.Popen(
        [sys.executable, "-m", "dnabird.cli", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "pretrain step 2/1000" in line:  # a progress line, as piped output gets
            process.send_signal(signal.SIGINT)
            break
    lines += process.communicate(timeout=300)[1].splitlines()
    assert process.returncode == 130, lines[-5:]
    last = lines[-1]
    step = int(re.search(r"interrupted at step (\d+) of 1000", last)[1])
    assert f"checkpoint saved to {run / 'checkpoints' / 'last.ckpt'}" in last
    assert "dnabird pretrain --config tiny" in last and last.endswith("--resume` continues")
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert saved["global_step"] == step >= 2
    assert main(_args(run, token_folder, f"trainer.max_steps={step + 1}", "--resume")) == 0
    assert json.loads((run / "manifest.json").read_text())["steps"] == step + 1


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
    assert "in 10 of 10 passes" in out and "(SE " in out
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
