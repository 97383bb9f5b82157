"""A fine-tuning run on CPU: it learns a planted motif, exports a self-describing classifier,
predicts the same for a sequence alone or in any batch, starts from a pretrained folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dnabird.errors import InputError
from dnabird.tasks.config import load_config
from dnabird.tasks.finetune_config import FinetuneConfig
from dnabird.tasks.finetune_run import run_finetune
from dnabird.testing import planted_motif_sequences

SMALL_MODEL = (
    "model.overrides={hidden_size: 32, intermediate_size: 64, max_position_embeddings: 64, "
    "block_size: 4}"
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-piece tokenizer (tok/) and 400 labelled 60 bp sequences (motif.csv)."""
    from dnabird.tokenizer import DNATokenizer

    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(200)]
    DNATokenizer.train(sentences, vocab_size=40).save_pretrained(root / "tok")
    sequences, labels = planted_motif_sequences(400, length=60, seed=0)
    rows = "\n".join(
        f"{s},{'motif' if y else 'random'}" for s, y in zip(sequences, labels, strict=True)
    )
    (root / "motif.csv").write_text("sequence,label\n" + rows + "\n")
    return root


def _config(inputs: Path, out: Path, *extra: str) -> FinetuneConfig:
    return load_config(
        FinetuneConfig,
        None,
        [
            f"out={out}",
            "model.preset=tiny",
            f"model.tokenizer={inputs / 'tok'}",
            SMALL_MODEL,
            f"data.train={inputs / 'motif.csv'}",
            "data.batch_size=16",
            "optim.lr=3e-3",
            "optim.warmup_steps=5",
            "trainer.max_steps=100",
            "trainer.val_every_steps=20",
            "trainer.checkpoint_every_steps=50",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def trained(inputs: Path) -> Path:
    return run_finetune(_config(inputs, inputs / "run"))


def test_smoke_run_learns_the_motif(trained: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    model = manifest["test"]["reports"]["dnabird"]
    assert model["n"] == 40 and model["metrics"]["auroc"] > 0.9  # chance is 0.5
    low, high = model["ci95"]["auroc"]
    assert low <= model["metrics"]["auroc"] <= high


def test_the_exported_folder_describes_itself(trained: Path, inputs: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["stage"] == "finetune" and manifest["task"] == "sequence"
    assert manifest["classes"] == ["motif", "random"]  # sorted labels of the file
    # the longest sequence + 2, in blocks of 4, within the 64 positions
    assert manifest["max_length"] % 4 == 0 and manifest["max_length"] <= 64
    assert manifest["truncate"] is False
    assert manifest["data"]["splits"]["test"] == {"motif": 20, "random": 20}
    assert manifest["data"]["negatives"] is None
    assert manifest["data"]["drawn_splits"] == {"fractions": [0.8, 0.1, 0.1], "seed": 0}
    data = manifest["inputs"]["data"]["train"]
    assert data["path"] == str(inputs / "motif.csv") and len(data["sha256"]) == 64
    assert manifest["parameters"]["data"]["batch_size"] == 16
    best = manifest["best"]
    assert best["metric"] == "val/auroc" and best["step"] % 20 == 0 and 0 < best["step"] <= 100
    assert set(manifest["files"]) >= {
        "model.safetensors",
        "config.json",
        "tokenizer/sentencepiece.model",
    }
    # the exported weights are the best validation's, not the last step's
    best_ckpt = torch.load(trained.parent / "checkpoints" / "best.ckpt", weights_only=True)
    exported = load_file(trained / "model.safetensors")
    for name, tensor in exported.items():
        torch.testing.assert_close(tensor, best_ckpt["state_dict"][f"model.{name}"], rtol=0, atol=0)
    assert best_ckpt["global_step"] == best["step"]
    report = json.loads((trained.parent / "report.json").read_text())
    assert set(report["reports"]) == {"dnabird", "kmer_logreg", "onehot_logreg"}
    assert report["reports"]["dnabird"] == manifest["test"]["reports"]["dnabird"]
    for name in ("roc_pr.png", "confusion.png"):
        assert (trained.parent / name).read_bytes()[:4] == b"\x89PNG", name
    run_manifest = json.loads((trained.parent / "manifest.json").read_text())
    assert run_manifest["model"] == "model" and run_manifest["best"] == best


def test_a_prediction_does_not_depend_on_the_other_sequences_of_its_batch(trained: Path) -> None:
    from dnabird.tasks.classify import Classifier

    classifier = Classifier.load(trained, "cpu")
    sequences, _ = planted_motif_sequences(12, length=60, seed=7)
    short, long = "ACGTTGCA" * 2, "TATAAAAGGCGC" + "ACGT" * 10  # 16 and 52 bp
    alone = classifier.probabilities([short], batch_size=1)
    for batch in ([short, long], [long, short, *sequences], [*sequences, short]):
        together = classifier.probabilities(batch, batch_size=len(batch))
        position = batch.index(short)
        torch.testing.assert_close(together[position], alone[0], rtol=0, atol=1e-6)
    whole = classifier.probabilities(sequences, batch_size=12)
    one_by_one = np.concatenate([classifier.probabilities([s], batch_size=1) for s in sequences])
    torch.testing.assert_close(whole, one_by_one, rtol=0, atol=1e-6)
    assert whole.shape == (12, 2) and np.allclose(whole.sum(1), 1)
    # what the fixed window prevents: the same sequence padded to another length (as
    # padding to the longest of its batch would) scores differently, block-sparse patterns
    # depending on the number of blocks
    from dnabird.data.classification import tokenize

    widest = classifier.model.config.max_position_embeddings
    assert classifier.window < widest
    with torch.no_grad():
        changes = [
            (
                model_logits(classifier, ids, classifier.window)
                - model_logits(classifier, ids, widest)
            )
            .abs()
            .max()
            for ids in ([ids] for ids in tokenize(classifier.tokenizer, sequences))
        ]
    assert max(changes) > 1e-3


def model_logits(classifier, ids: list[list[int]], width: int) -> torch.Tensor:
    from dnabird.data.classification import batch_tensors, pad_to_window

    return classifier.model(**batch_tensors(pad_to_window(ids, width))).logits


def _pretrained(inputs: Path, folder: Path) -> Path:
    """A (random) masked-LM model folder of the small shape with the test tokenizer."""
    from dnabird.model import BigBirdConfig, BigBirdForMaskedLM
    from dnabird.model.pretrained import write_model_folder
    from dnabird.tokenizer import DNATokenizer

    tokenizer = DNATokenizer.from_pretrained(inputs / "tok")
    config = BigBirdConfig.preset(
        "tiny",
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=64,
        block_size=4,
    )
    return write_model_folder(
        folder, BigBirdForMaskedLM(config), {"stage": "pretrain"}, tokenizer=tokenizer
    )


def _from_pretrained(inputs: Path, tmp_path: Path, *extra: str) -> tuple[Path, FinetuneConfig]:
    """A pretrained folder in ``tmp_path`` and a run config starting from it."""
    pretrained = _pretrained(inputs, tmp_path / "pretrained")
    start = ("model.preset=null", "model.tokenizer=null", "model.overrides={}")
    return pretrained, _config(inputs, tmp_path / "run", *start, f"model.init={pretrained}", *extra)


def test_start_from_a_pretrained_folder_with_a_frozen_encoder(inputs: Path, tmp_path: Path) -> None:
    pretrained, run = _from_pretrained(
        inputs,
        tmp_path,
        "model.freeze_encoder=true",
        "model.base_channels=4",  # new weights outside the encoder: they still train
        "model.dropout=0.0",
        "trainer.max_steps=10",
        "early_stopping.metric=null",
        "data.split=[0.9, 0.0, 0.1]",
    )
    exported = run_finetune(run)
    before, after = (
        load_file(pretrained / "model.safetensors"),
        load_file(exported / "model.safetensors"),
    )
    encoder = [name for name in after if name.startswith("encoder.")]
    assert encoder and all(torch.equal(after[n], before[n]) for n in encoder)  # frozen
    assert after["bases.projection.weight"].abs().sum() > 0  # trained away from zero
    assert json.loads((exported / "config.json").read_text())["hidden_dropout_prob"] == 0.0
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["best"] is None and manifest["steps"] == 10
    assert manifest["data"]["splits"]["validation"] == {"motif": 0, "random": 0}


def test_bad_input_is_found_before_the_run_folder_is_claimed(inputs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sequence,label\nACGT,motif\nACXT,random\n")
    with pytest.raises(InputError, match=r"bad\.csv: line 3: .*'X'"):
        run_finetune(_config(inputs, tmp_path / "run", f"data.train={bad}"))
    assert not (tmp_path / "run").exists()


def test_an_empty_validation_split_cannot_select_weights(inputs: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.csv"
    tiny.write_text(
        "sequence,label\nACGTACGT,motif\nTTGACCAA,motif\nGGGCCCAA,random\nCATCATCA,random\n"
    )
    with pytest.raises(
        InputError, match=r"the validation split is empty .*early_stopping.metric=null"
    ):
        run_finetune(_config(inputs, tmp_path / "run", f"data.train={tiny}"))
    assert not (tmp_path / "run").exists()


def test_base_features_and_max_pooling_on_a_pretrained_encoder(
    inputs: Path, tmp_path: Path
) -> None:
    """``model.base_channels``: new base features on a pretrained encoder train, are
    exported with the tokenizer's pieces; with ``model.pooling=max`` and
    ``model.base_pooling=true`` over 4 segments (recorded in the folder) predictions stay
    independent of the batch, whose rows differ in length and so in segments."""
    from dnabird.model.pretrained import load_tokenizer
    from dnabird.tasks.classify import Classifier

    _, run = _from_pretrained(
        inputs,
        tmp_path,
        "model.base_channels=8",
        "model.pooling=max",
        "model.base_pooling=true",
        "model.base_pooling_bins=4",
        "trainer.max_steps=20",
    )
    exported = run_finetune(run)
    weights = load_file(exported / "model.safetensors")
    assert weights["bases.projection.weight"].abs().sum() > 0  # trained away from zero
    assert weights["head.classifier.weight"].shape == (2, 32 + 16 * 4)  # [pooled, summary]
    tokenizer = load_tokenizer(exported)
    np.testing.assert_array_equal(weights["bases.piece_lengths"].numpy(), tokenizer.bp_per_id)
    classifier = Classifier.load(exported, "cpu")
    assert classifier.model.head_args()["base_channels"] == 8
    assert classifier.model.head_args()["pooling"] == "max"
    assert classifier.model.head_args()["base_pooling"] is True
    assert classifier.model.head_args()["base_pooling_bins"] == 4
    short, long = "ACGTTGCA" * 2, "TATAAAAGGCGC" + "ACGT" * 10
    alone = classifier.probabilities([short], batch_size=1)
    together = classifier.probabilities([long, short], batch_size=2)
    torch.testing.assert_close(together[1], alone[0], rtol=0, atol=1e-6)


def test_a_threshold_chosen_on_the_validation_split(inputs: Path, tmp_path: Path) -> None:
    """``early_stopping.threshold=validation``: the best-F1 threshold of the exported weights
    on the validation split (recomputed here through the loaded model), recorded in the
    folder, used by the test report and by ``evaluate``; each baseline gets its own."""
    from dnabird.data.classification import load_splits
    from dnabird.tasks.classification_metrics import best_f1_threshold
    from dnabird.tasks.classify import Classifier, evaluate_classifier

    config = _config(
        inputs, tmp_path / "run", "early_stopping.threshold=validation", "trainer.max_steps=20"
    )
    exported = run_finetune(config)
    manifest = json.loads((exported / "manifest.json").read_text())
    classifier = Classifier.load(exported, "cpu")
    splits = load_splits(config.data, config.seed)
    validation, test = splits.part("validation"), splits.part("test")
    probabilities = classifier.probabilities(validation.sequences)
    expected = best_f1_threshold(validation.labels, probabilities[:, 1])
    assert manifest["threshold"] == pytest.approx(expected, abs=1e-9)
    assert classifier.threshold == manifest["threshold"]
    reports = manifest["test"]["reports"]
    assert reports["dnabird"]["threshold"] == manifest["threshold"]
    again, _ = evaluate_classifier(classifier, test)
    assert again["threshold"] == manifest["threshold"]
    assert again["metrics"]["f1"] == pytest.approx(reports["dnabird"]["metrics"]["f1"])
    for name in ("kmer_logreg", "onehot_logreg"):
        assert 0 <= reports[name]["threshold"] <= 1


def _by_hand_reverse_complement(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def test_strand_averaging_of_a_sequence_classifier(inputs: Path, tmp_path: Path) -> None:
    """``data.average_strands``: recorded in the folder; the validation metric (the
    checkpoint choice), the test report, the validation threshold and later predictions
    average the probabilities of each sequence and of its reverse complement (computed here
    window by window from a by-hand reverse complement), and so do the baselines;
    ``rc="none"`` gives the forward strand's alone."""
    from sklearn.metrics import roc_auc_score

    from dnabird.baselines import KmerLogisticRegression
    from dnabird.data.classification import load_splits
    from dnabird.tasks.classification_metrics import best_f1_threshold
    from dnabird.tasks.classify import Classifier, evaluate_classifier

    config = _config(
        inputs,
        tmp_path / "run",
        "data.average_strands=true",
        "early_stopping.threshold=validation",
        "trainer.max_steps=20",
    )
    exported = run_finetune(config)
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["average_strands"] is True
    classifier = Classifier.load(exported, "cpu")
    assert classifier.average_strands

    def by_hand(sequences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        forward = classifier.window_probabilities(classifier.windows(sequences))
        reverse = [_by_hand_reverse_complement(s) for s in sequences]
        return forward, (forward + classifier.window_probabilities(classifier.windows(reverse))) / 2

    splits = load_splits(config.data, config.seed)
    train, validation, test = (splits.part(name) for name in ("train", "validation", "test"))
    forward, averaged = by_hand(list(validation.sequences))
    expected = best_f1_threshold(validation.labels, averaged[:, 1])
    assert manifest["threshold"] == pytest.approx(expected, abs=1e-9)
    # the checkpoint was chosen on the validation AUROC of both strands averaged
    on_validation = np.asarray(validation.labels) == 1
    chosen = manifest["best"]
    assert chosen["metric"] == "val/auroc"
    assert chosen["value"] == pytest.approx(roc_auc_score(on_validation, averaged[:, 1]), abs=1e-6)
    assert chosen["value"] != pytest.approx(roc_auc_score(on_validation, forward[:, 1]), abs=1e-6)
    forward, averaged = by_hand(list(test.sequences))
    assert not np.allclose(forward, averaged)  # the reverse strand changes something
    np.testing.assert_allclose(classifier.probabilities(test.sequences), averaged, atol=1e-12)
    report = manifest["test"]["reports"]["dnabird"]
    positive = np.asarray(test.labels) == 1
    assert report["metrics"]["auroc"] == pytest.approx(roc_auc_score(positive, averaged[:, 1]))
    alone, _ = evaluate_classifier(classifier, test, rc="none")
    assert alone["metrics"]["auroc"] == pytest.approx(roc_auc_score(positive, forward[:, 1]))
    # the baselines average too (trained on one strand here, so the two strands differ)
    kmer = KmerLogisticRegression(seed=config.seed).fit(train.sequences, train.labels)
    flipped = [_by_hand_reverse_complement(s) for s in test.sequences]
    kmer_forward = kmer.predict_proba(test.sequences)[:, 1]
    both = (kmer_forward + kmer.predict_proba(flipped)[:, 1]) / 2
    assert not np.allclose(kmer_forward, both)
    baseline = manifest["test"]["reports"]["kmer_logreg"]["metrics"]["auroc"]
    assert baseline == pytest.approx(roc_auc_score(positive, both))
