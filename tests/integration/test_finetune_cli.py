"""End-to-end: ``dnabird finetune`` on tiny generated data, then ``dnabird evaluate`` and
``dnabird predict`` on its model; bad inputs exit 2 in one line; a run killed and resumed
equals the straight run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dnabird.cli import main
from dnabird.testing import planted_motif_sequences

MODEL = (
    "model.overrides={hidden_size: 32, intermediate_size: 64, max_position_embeddings: 64, "
    "block_size: 4}"
)


def _write_csv(path: Path, count: int, seed: int) -> None:
    sequences, labels = planted_motif_sequences(count, length=60, seed=seed)
    rows = "\n".join(
        f"{s},{'motif' if y else 'random'}" for s, y in zip(sequences, labels, strict=True)
    )
    path.write_text("sequence,label\n" + rows + "\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dnabird.tokenizer import DNATokenizer

    root = tmp_path_factory.mktemp("finetune_cli")
    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(200)]
    DNATokenizer.train(sentences, vocab_size=40).save_pretrained(root / "tok")
    _write_csv(root / "train.csv", 400, seed=0)
    _write_csv(root / "held_out.csv", 100, seed=1)
    return root


def _args(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--no-progress",
        "finetune",
        f"out={out}",
        "model.preset=tiny",
        f"model.tokenizer={inputs / 'tok'}",
        MODEL,
        f"data.train={inputs / 'train.csv'}",
        "data.batch_size=16",
        "optim.lr=3e-3",
        "optim.warmup_steps=5",
        "trainer.max_steps=100",
        "trainer.val_every_steps=20",
        "trainer.checkpoint_every_steps=20",
        "trainer.log_every_steps=5",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        *extra,
    ]


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("dnabird: error: "), err
    assert not any("Traceback" in line for line in err), err
    return err[-1]


def _status(args: list[str]) -> int:
    """The exit status of ``dnabird ARGS`` (argparse exits by itself on a usage error)."""
    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code)


@pytest.fixture(scope="module")
def trained(inputs: Path) -> Path:
    out = inputs / "run"
    assert main(_args(inputs, out)) == 0
    return out


def test_finetune_prints_the_test_table_and_a_rerun_does_nothing(
    trained: Path, inputs: Path, capsys: pytest.CaptureFixture
) -> None:
    before = (trained / "manifest.json").read_bytes()
    assert main(_args(inputs, trained)) == 0  # the same run, complete: nothing to do
    assert (trained / "manifest.json").read_bytes() == before
    out = capsys.readouterr().out
    assert "Fine-tuned for 100 steps" in out and "best val/auroc" in out
    assert "| dnabird |" in out and "| kmer_logreg |" in out and "AUROC (95% CI)" in out


def test_the_summary_says_whether_patience_or_the_time_limit_stopped_the_run(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    timed = ["trainer.max_steps=100000", "trainer.max_time_s=3", "early_stopping.patience=0"]
    assert main(_args(inputs, tmp_path / "timed", *timed)) == 0
    manifest = json.loads((tmp_path / "timed" / "model" / "manifest.json").read_text())
    assert manifest["steps"] < 100000 and manifest["stopped_early"] is False
    assert "(stopped at the time limit, trainer.max_time_s=3)" in capsys.readouterr().out
    patient = ["trainer.max_steps=2000", "trainer.val_every_steps=5", "early_stopping.patience=1"]
    assert main(_args(inputs, tmp_path / "patient", *patient)) == 0
    manifest = json.loads((tmp_path / "patient" / "model" / "manifest.json").read_text())
    assert manifest["steps"] < 2000 and manifest["stopped_early"] is True
    assert "(stopped early: no better val/auroc in 1 validations)" in capsys.readouterr().out


def test_evaluate_scores_held_out_data_with_intervals(
    trained: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report_path = tmp_path / "report.json"
    args = ["evaluate", "--model", str(trained / "model"), "--data", str(inputs / "held_out.csv")]
    assert main([*args, "--resamples", "200", "-o", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "Evaluated 100 sequences" in out and "motif 50, random 50" in out
    report = json.loads(report_path.read_text())
    assert report["n"] == 100 and report["classes"] == ["motif", "random"]
    assert report["metrics"]["auroc"] > 0.9 and report["resamples"] == 200
    low, high = report["ci95"]["f1"]
    assert low <= report["metrics"]["f1"] <= high
    # the same numbers through Python
    from dnabird.data.labelled import read_labelled
    from dnabird.tasks.classify import Classifier, evaluate_classifier

    classifier = Classifier.load(trained / "model", "cpu")
    rows = read_labelled(inputs / "held_out.csv", classes=classifier.classes)
    again, _ = evaluate_classifier(classifier, rows, resamples=200)
    assert again["metrics"] == pytest.approx(report["metrics"])
    # --rc mean: both strands averaged (the model was trained without)
    assert main([*args, "--resamples", "200", "--rc", "mean", "-o", str(report_path)]) == 0
    both, _ = evaluate_classifier(classifier, rows, resamples=200, rc="mean")
    assert json.loads(report_path.read_text())["metrics"] == pytest.approx(both["metrics"])
    assert both["metrics"]["auroc"] != report["metrics"]["auroc"]


def test_predict_writes_one_row_per_record(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sequences, _ = planted_motif_sequences(70, length=60, seed=5)
    fasta = tmp_path / "in.fa"
    fasta.write_text(
        "".join(f">seq{i} some description\n{s[:30]}\n{s[30:]}\n" for i, s in enumerate(sequences))
    )
    out = tmp_path / "deep" / "preds.tsv"
    args = ["predict", "--model", str(trained / "model"), "--fasta", str(fasta), "-o", str(out)]
    assert main([*args, "--batch-size", "16"]) == 0
    assert "Scored 70 windows" in capsys.readouterr().out
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["index", "name", "start", "end", "motif", "random"]
    # the model records its 60 bp training window: each 60 bp record is one window
    assert [r[:4] for r in rows[1:]] == [[str(i), f"seq{i}", "0", "60"] for i in range(70)]
    probabilities = np.array([[float(v) for v in r[4:]] for r in rows[1:]])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    from dnabird.tasks.classify import Classifier

    expected = Classifier.load(trained / "model", "cpu").probabilities(sequences)
    assert np.allclose(probabilities, expected, atol=1e-6)  # 6 decimals; batches of 16 or 64
    assert not list(out.parent.glob(".*tmp"))


def test_every_bad_input_is_one_line_and_exit_2(
    trained: Path, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = str(trained / "model")
    fasta = tmp_path / "ok.fa"
    fasta.write_text(">a\nACGTACGT\n")
    cases = [
        (
            ["predict", "--model", model, "--fasta", str(fasta), "-o", "/proc/x/p.tsv"],
            "cannot write",
        ),
        (
            [
                "predict",
                "--model",
                str(tmp_path / "nomodel"),
                "--fasta",
                str(fasta),
                "-o",
                str(tmp_path / "p.tsv"),
            ],
            "model folder not found",
        ),
        (
            [
                "predict",
                "--model",
                str(inputs / "tok"),
                "--fasta",
                str(fasta),
                "-o",
                str(tmp_path / "p.tsv"),
            ],
            "model weights not found",
        ),
        (
            [
                "predict",
                "--model",
                model,
                "--fasta",
                str(tmp_path / "none.fa"),
                "-o",
                str(tmp_path / "p.tsv"),
            ],
            "none.fa",
        ),
        (
            [
                "predict",
                "--model",
                model,
                "--fasta",
                str(fasta),
                "-o",
                str(tmp_path / "p.tsv"),
                "--batch-size",
                "0",
            ],
            "--batch-size",
        ),
        (
            [
                "predict",
                "--model",
                model,
                "--fasta",
                str(fasta),
                "-o",
                str(tmp_path / "p.tsv"),
                "--device",
                "tpu",
            ],
            "--device",
        ),
        (
            ["evaluate", "--model", model, "--data", str(inputs / "train.csv"), "--label", "x"],
            "carries labels",
        ),
        (
            ["evaluate", "--model", model, "--data", str(fasta), "--format", "xml"],
            "unknown format 'xml'",
        ),
        (["finetune", "--config", "nosuch"], "--config nosuch: no such file"),
        (
            ["finetune", "--config", "promoter", "trainer.max_steps=-5"],
            "trainer.max_steps=-5: must be a positive integer",
        ),
    ]
    for args, expected in cases:
        assert _status(args) == 2, args
        assert expected in _one_line_error(capsys), args
    assert not (tmp_path / "p.tsv").exists()
    # a record longer than the model's 60 bp window is scored in sliding windows
    (tmp_path / "long.fa").write_text(">ok\nACGT\n>long\n" + "ACGT" * 40 + "\n")
    long_args = ["predict", "--model", model, "--fasta", str(tmp_path / "long.fa")]
    assert main([*long_args, "-o", str(tmp_path / "long.tsv")]) == 0
    starts = [line.split("\t")[2] for line in (tmp_path / "long.tsv").read_text().split("\n")[1:-1]]
    assert starts == ["-28", "0", "60", "120"]
    capsys.readouterr()
    # labels that are not the model's classes
    (tmp_path / "other.csv").write_text("sequence,label\nACGTACGT,motif\nACGTAAAA,other\n")
    assert main(["evaluate", "--model", model, "--data", str(tmp_path / "other.csv")]) == 2
    assert "other.csv: line 3: label 'other' is not one of the declared classes" in _one_line_error(
        capsys
    )
    # a pretrained masked LM is not a classifier
    from dnabird.model import BigBirdConfig, BigBirdForMaskedLM
    from dnabird.model.pretrained import write_model_folder

    config = BigBirdConfig.preset("tiny", vocab_size=40, max_position_embeddings=64, block_size=8)
    write_model_folder(tmp_path / "mlm", BigBirdForMaskedLM(config), {"stage": "pretrain"})
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "mlm"),
                "--fasta",
                str(fasta),
                "-o",
                str(tmp_path / "p.tsv"),
            ]
        )
        == 2
    )
    assert "not a fine-tuned classifier (it holds a BigBirdForMaskedLM" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("sequence,label\nACGT,motif\nACXT,random\n", "line 3: sequence has 'X' at position 2"),
        ("sequence,label\n", "empty file"),
        ("seq,label\nACGT,motif\n", "no 'sequence' column"),
    ],
)
def test_bad_training_data_leaves_no_run_folder(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture, content: str, expected: str
) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(content)
    out = tmp_path / "run"
    assert main(_args(inputs, out, f"data.train={data}")) == 2
    assert expected in _one_line_error(capsys)
    assert not out.exists()


class _Die(L.Callback):
    """Ends training with an error when step ``at`` is about to start, as a killed job."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


def test_killed_and_resumed_run_equals_straight_run(inputs: Path, tmp_path: Path) -> None:
    from dnabird.tasks.config import load_config
    from dnabird.tasks.finetune_config import FinetuneConfig
    from dnabird.tasks.finetune_run import run_finetune

    def config(out: Path) -> FinetuneConfig:
        args = _args(inputs, out, "trainer.max_steps=30", "trainer.val_every_steps=5")
        args += ["trainer.checkpoint_every_steps=10", "early_stopping.patience=2"]
        args += ["model.dropout=0.2", "trainer.accumulate_grad_batches=2"]
        return load_config(FinetuneConfig, None, args[2:])

    straight = run_finetune(config(tmp_path / "straight"))
    with pytest.raises(RuntimeError, match="killed"):  # after the checkpoint of step 10
        run_finetune(config(tmp_path / "halves"), callbacks=[_Die(at=14)])
    assert not (tmp_path / "halves" / "model").exists()
    resumed = run_finetune(config(tmp_path / "halves"), resume=True)

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    one, two = (json.loads((m / "manifest.json").read_text()) for m in (straight, resumed))
    assert one["best"] == two["best"] and one["steps"] == two["steps"]
    assert one["test"]["reports"]["dnabird"]["metrics"] == pytest.approx(
        two["test"]["reports"]["dnabird"]["metrics"]
    )
    assert _curve(tmp_path / "halves") == [
        pytest.approx(r, rel=1e-5) for r in _curve(tmp_path / "straight")
    ]


def _curve(run: Path) -> list[dict[str, float]]:
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: float(v) for k, v in row.items() if v and not k.startswith("throughput/")}
        for row in rows
    ]


def test_ddp_validation_scores_the_whole_split(inputs: Path, tmp_path: Path) -> None:
    """Two CPU processes: each validates its share and the metrics are those of the whole
    validation split (checked against the exported last weights)."""
    import subprocess
    import sys

    from dnabird.data.classification import load_splits
    from dnabird.tasks.classify import Classifier
    from dnabird.tasks.config import load_config
    from dnabird.tasks.finetune import validation_metrics
    from dnabird.tasks.finetune_config import FinetuneConfig

    out = tmp_path / "ddp"
    extra = ["trainer.max_steps=12", "trainer.val_every_steps=12", "early_stopping.metric=null"]
    extra += ["trainer.strategy=ddp", "trainer.devices=2", "data.split=[0.8, 0.15, 0.05]"]
    args = _args(inputs, out, *extra)
    result = subprocess.run(
        [sys.executable, "-m", "dnabird.cli", *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Fine-tuned for 12 steps") == 1  # one summary, from rank 0
    (logged,) = [r for r in _curve(out) if "val/auroc" in r]
    config = load_config(FinetuneConfig, None, args[2:])
    validation = load_splits(config.data, config.seed).part("validation")
    assert len(validation) == 60  # 30 per rank
    classifier = Classifier.load(out / "model", "cpu")
    probabilities = classifier.probabilities(validation.sequences)
    expected = validation_metrics(
        torch.tensor(probabilities).log(), torch.tensor(validation.labels)
    )
    for name in ("loss", "auroc", "accuracy", "mcc"):
        assert logged[f"val/{name}"] == pytest.approx(expected[name], abs=1e-5), name
