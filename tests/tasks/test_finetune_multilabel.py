"""A multi-label (chromatin-style) fine-tuning run on CPU: two planted motifs are two
labels, a third label never occurs; the run learns the first two, reports the third as
undefined (never 0.5), writes Selene's per-feature table, and its predictions average both
strands (so a sequence and its reverse complement get the same probabilities)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dnabird.data.multilabel import Features, MultiLabelExamples, write_parquet
from dnabird.errors import ConfigError
from dnabird.genome.fasta import reverse_complements
from dnabird.tasks.config import load_config
from dnabird.tasks.finetune_config import FinetuneConfig
from dnabird.tasks.finetune_run import run_finetune

MOTIFS = ("TATAAAAGGCGC", "CCGGAATTCCGG")
SMALL_MODEL = (
    "model.overrides={hidden_size: 32, intermediate_size: 64, max_position_embeddings: 64, "
    "block_size: 4}"
)


def _examples(count: int, length: int = 60, seed: int = 0) -> MultiLabelExamples:
    """Random sequences; label j is 1 when motif j was planted (each with probability 1/2,
    at random positions that do not overlap); label 2 is never 1."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], np.zeros((count, 3), dtype=np.uint8)
    for i in range(count):
        bases = rng.choice(list("ACGT"), size=length)
        for j, motif in enumerate(MOTIFS):
            if rng.random() < 0.5:
                start = int(rng.integers(0, length // 2 - len(motif))) + j * (length // 2)
                bases[start : start + len(motif)] = list(motif)
                labels[i, j] = 1
        sequences.append("".join(bases))
    features = Features.from_names(["motif_a", "motif_b", "never"], ["A", "B", "B"])
    return MultiLabelExamples(sequences, labels, features)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-piece tokenizer (tok/) and 500 multi-label 60 bp sequences (profiles.parquet)."""
    from dnabird.tokenizer import DNATokenizer

    root = tmp_path_factory.mktemp("multilabel")
    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(200)]
    DNATokenizer.train(sentences, vocab_size=40).save_pretrained(root / "tok")
    write_parquet(root / "profiles.parquet", _examples(500))
    return root


def _config(inputs: Path, out: Path, *extra: str) -> FinetuneConfig:
    return load_config(
        FinetuneConfig,
        None,
        [
            f"out={out}",
            "task=multilabel",
            "model.preset=tiny",
            f"model.tokenizer={inputs / 'tok'}",
            SMALL_MODEL,
            f"data.train={inputs / 'profiles.parquet'}",
            "data.batch_size=16",
            "optim.lr=1e-3",
            "optim.warmup_steps=5",
            "trainer.max_steps=240",
            "trainer.val_every_steps=40",
            "trainer.checkpoint_every_steps=80",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "multilabel.pos_weight=2",
            "multilabel.baseline_bp=null",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def trained(inputs: Path) -> Path:
    return run_finetune(_config(inputs, inputs / "run"))


def test_learns_both_motifs_and_leaves_the_empty_label_undefined(trained: Path) -> None:
    report = json.loads((trained.parent / "report.json").read_text())
    model = report["reports"]["dnabird"]
    rows = {row["id"]: row for row in model["features"]}
    assert model["n"] == 50
    for name in ("motif_a", "motif_b"):
        assert rows[name]["auroc"] > 0.75, rows[name]  # chance is 0.5
        low, high = rows[name]["auroc_ci"]
        assert low <= rows[name]["auroc"] <= high
    never = rows["never"]
    assert never["positives"] == 0 and never["auroc"] is None and never["auroc_ci"] is None
    # medians leave the undefined feature out: category B holds motif_b only
    summary = model["summary"]
    assert summary["B"]["features"] == 2 and summary["B"]["defined"] == 1
    assert summary["B"]["auroc_median"] == pytest.approx(rows["motif_b"]["auroc"])
    # the baseline is trained on the same split and reported the same way
    kmer = report["reports"]["kmer_logreg"]
    assert [r["id"] for r in kmer["features"]] == ["motif_a", "motif_b", "never"]
    assert kmer["baseline"]["C"][2] is None  # nothing to fit: a constant score
    assert kmer["features"][2]["auroc"] is None


def test_selene_table_and_plots(trained: Path) -> None:
    with open(trained.parent / "test_performance.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["id"] for r in rows] == ["motif_a", "motif_b", "never"]
    assert [r["category"] for r in rows] == ["A", "B", "B"]
    report = json.loads((trained.parent / "report.json").read_text())
    for row, expected in zip(rows, report["reports"]["dnabird"]["features"], strict=True):
        if expected["auroc"] is None:
            assert row["auroc"] == row["auroc_low"] == "NA"
        else:
            assert float(row["auroc"]) == pytest.approx(expected["auroc"], abs=1e-6)
    for name in ("auroc_by_category.png", "roc_pr.png"):
        assert (trained.parent / name).read_bytes()[:4] == b"\x89PNG", name


def test_the_exported_folder_describes_the_features(trained: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["task"] == "multilabel"
    assert manifest["classes"] == ["motif_a", "motif_b", "never"]
    assert manifest["average_strands"] is True
    assert manifest["data"]["features"]["categories"] == ["A", "B", "B"]
    positives = manifest["data"]["positives"]
    assert positives["test"]["never"] == 0
    assert manifest["data"]["splits"]["test"] == {"examples": 50}
    assert manifest["data"]["drawn_splits"] == {"fractions": [0.8, 0.1, 0.1], "seed": 0}


def test_predictions_average_the_strands_and_ignore_the_batch(trained: Path) -> None:
    from dnabird.tasks.classify import Classifier

    classifier = Classifier.load(trained, device="cpu")
    assert classifier.multilabel and classifier.average_strands
    sequences = _examples(6, seed=1).sequences
    together = classifier.probabilities(sequences, batch_size=4)
    alone = np.concatenate([classifier.probabilities([s]) for s in sequences])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    flipped = classifier.probabilities(reverse_complements(sequences))
    np.testing.assert_allclose(together, flipped, rtol=0, atol=1e-6)
    assert together.shape == (6, 3) and ((together > 0) & (together < 1)).all()
    assert not np.allclose(together.sum(axis=1), 1)  # independent labels, not a softmax
    # the average of the two single-strand predictions, which differ
    classifier.average_strands = False
    forward = classifier.probabilities(sequences, batch_size=4)
    backward = classifier.probabilities(reverse_complements(sequences), batch_size=4)
    assert not np.array_equal(forward, backward)
    np.testing.assert_allclose(together, (forward + backward) / 2, rtol=0, atol=1e-12)


def test_a_sequence_task_key_is_refused_with_the_key_named(inputs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.label=promoter: task multilabel reads its"):
        _config(inputs, tmp_path / "run", "data.label=promoter")


def test_a_make_dataset_folder_trains_with_its_own_splits(inputs: Path, tmp_path: Path) -> None:
    from dnabird.data.peak_dataset import DatasetOptions, make_dataset, read_dataset
    from dnabird.data.peaks import TrackSource

    rng = np.random.default_rng(3)
    genome = "".join(rng.choice(list("ACGT"), size=20_000))
    (tmp_path / "genome.fa").write_text(">chr1\n" + genome + "\n")
    peaks = "".join(f"chr1\t{s}\t{s + 150}\n" for s in range(500, 20_000, 1_300))
    (tmp_path / "peaks.bed").write_text(peaks)
    options = DatasetOptions(
        bin_size=40, flank=10, test=("chr1:15000-20000",), validation=("chr1:11000-15000",)
    )
    make_dataset(
        tmp_path / "genome.fa",
        [TrackSource.parse(f"P={tmp_path / 'peaks.bed'}")],
        tmp_path / "dataset",
        options,
        cache_dir=tmp_path / "cache",
    )
    parts = read_dataset(tmp_path / "dataset")
    export = run_finetune(
        _config(
            inputs,
            tmp_path / "run",
            f"data.train={tmp_path / 'dataset'}",
            "trainer.max_steps=20",
            "trainer.val_every_steps=10",
            "multilabel.baseline_bp=40",
        )
    )
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["classes"] == ["P"] and manifest["data"]["drawn_splits"] is None
    assert manifest["data"]["splits"] == {n: {"examples": len(p)} for n, p in parts.items()}
    assert manifest["data"]["positives"]["test"]["P"] == int(parts["test"].labels.sum())
    assert manifest["inputs"]["data"]["train"]["folder"] == str(tmp_path / "dataset")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["reports"]["kmer_logreg"]["baseline"]["central_bp"] == 40


def test_a_deepsea_mat_training_file_is_streamed(inputs: Path, tmp_path: Path) -> None:
    from tests.data.test_deepsea import one_hot, write_v5, write_v73

    train, held_out = _examples(300, seed=4), _examples(60, seed=5)
    write_v73(tmp_path / "train.mat", one_hot(train.sequences), train.labels)
    write_v5(tmp_path / "valid.mat", one_hot(held_out.sequences), held_out.labels)
    (tmp_path / "names.tsv").write_text("0\tAuto-select\n1\ta\n2\tb\n3\tnever\n")
    overrides = [
        f"data.train={tmp_path / 'train.mat'}",
        f"data.validation={tmp_path / 'valid.mat'}",
        f"data.test={tmp_path / 'valid.mat'}",
        f"multilabel.names={tmp_path / 'names.tsv'}",
        "multilabel.baseline_bp=0",
        "trainer.max_steps=40",
        "trainer.val_every_steps=20",
    ]
    with pytest.raises(ConfigError, match=r"data.max_length: required with data.train="):
        _config(inputs, tmp_path / "run", *overrides)
    export = run_finetune(_config(inputs, tmp_path / "run", *overrides, "data.max_length=40"))
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["classes"] == ["a", "b", "never"] and manifest["steps"] == 40
    assert manifest["data"]["splits"]["train"] == {"examples": 300}
    assert "train" not in manifest["data"]["positives"]  # not counted: that would read it all
    assert manifest["test"]["reports"]["dnabird"]["n"] == 60
    assert set(manifest["test"]["reports"]) == {"dnabird"}  # no baseline on a streamed set


def test_evaluate_command_scores_a_multilabel_model(
    trained: Path, inputs: Path, tmp_path: Path, capsys
) -> None:
    from dnabird.cli import main

    out = tmp_path / "eval.json"
    data = inputs / "profiles.parquet"
    args = ["evaluate", "--model", str(trained), "--data", str(data), "--resamples", "50"]
    assert main([*args, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Evaluated 500 sequences" in printed and "on 3 features" in printed
    report = json.loads(out.read_text())
    assert [row["id"] for row in report["features"]] == ["motif_a", "motif_b", "never"]
    assert report["features"][2]["auroc"] is None and report["features"][0]["auroc"] > 0.7
    other = MultiLabelExamples(["ACGT" * 10], np.zeros((1, 1)), Features.from_names(["x"]))
    write_parquet(tmp_path / "other.parquet", other)
    assert (
        main(["evaluate", "--model", str(trained), "--data", str(tmp_path / "other.parquet")]) == 2
    )
    assert (
        "no label column for the model's feature(s) motif_a, motif_b, never"
        in capsys.readouterr().err
    )
