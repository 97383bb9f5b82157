"""``evaluate_mlm`` / ``dnabird evaluate-mlm``: what is masked is what is reported, and every
user mistake or broken model is a one-line error (exit 2), never a number."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dnabird.cli import main
from dnabird.errors import ConfigError, InputError
from dnabird.model import BigBirdConfig, BigBirdForMaskedLM, BigBirdForSequenceClassification
from dnabird.model.pretrained import write_model_folder
from dnabird.tasks.evaluate_mlm import evaluate_mlm

MAX_LENGTH = 128


def tiny_config(vocab_size: int) -> BigBirdConfig:
    return BigBirdConfig.preset(
        "tiny",
        vocab_size=vocab_size,
        max_position_embeddings=256,
        attention_type="original_full",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """FASTA indexes for --bed go to a temporary cache, not the user's."""
    monkeypatch.setenv("DNABIRD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tokenizer():
    from dnabird.tokenizer import DNATokenizer

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(200)]
    return DNATokenizer.train(sentences, vocab_size=100, model_type="bpe")


@pytest.fixture(scope="module")
def model_dir(tokenizer, tmp_path_factory) -> Path:
    """An exported, untrained masked LM with its tokenizer (random weights, seed 0)."""
    torch.manual_seed(0)
    model = BigBirdForMaskedLM(tiny_config(tokenizer.vocab_size))
    folder = tmp_path_factory.mktemp("mlm") / "model"
    return write_model_folder(folder, model, {"stage": "test"}, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> tuple[Path, str]:
    """A FASTA with one record ``chrT`` of 2,500 random bp, and that sequence."""
    sequence = "".join(np.random.default_rng(7).choice(list("ACGT"), size=2500))
    path = tmp_path_factory.mktemp("fasta") / "held.fa"
    lines = [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    path.write_text(">chrT\n" + "\n".join(lines) + "\n")
    return path, sequence


def packed_maskable(tokenizer, sequence: str) -> list[int]:
    """Maskable tokens of each packed sequence, counted independently of evaluate_mlm:
    1000-bp sentences, packed greedily (whole sentences) into bodies of MAX_LENGTH - 2."""
    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import make_masker, pack_sentences

    masker = make_masker(MaskingConfig(), tokenizer)
    sentences = [tokenizer.encode(sequence[i : i + 1000]) for i in range(0, len(sequence), 1000)]
    bodies = pack_sentences(sentences, MAX_LENGTH - 2)
    return [masker.maskable_positions(body).size for body in bodies]


def evaluate(model_dir, held_out, **options):
    path, sequence = held_out
    return evaluate_mlm(model_dir, [("chrT", sequence)], max_length=MAX_LENGTH, **options)


def cli(model_dir, fasta, *options) -> list[str]:
    return ["evaluate-mlm", "--model", str(model_dir), "--fasta", str(fasta), *options]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("dnabird: error:"), err
    return err


# ------------------------------------------------------------------ what is masked


def test_passes_score_disjoint_mask_rate_groups(model_dir, held_out, tokenizer):
    per_sequence = packed_maskable(tokenizer, held_out[1])
    maskable = sum(per_sequence)
    assert len(per_sequence) >= 3  # several packed sequences

    full = evaluate(model_dir, held_out)
    assert (full["mask_groups"], full["passes"]) == (10, 10)
    assert full["maskable_tokens"] == full["predicted_tokens"] == maskable  # each token once
    assert full["packed_sequences"] == len(per_sequence)

    # --passes 2 scores two groups of 10% (the first two of np.array_split's ten), not 50%
    two = evaluate(model_dir, held_out, passes=2)
    expected = sum(sum(len(g) for g in np.array_split(np.arange(n), 10)[:2]) for n in per_sequence)
    assert (two["passes"], two["mask_rate"]) == (2, 0.1)
    assert two["predicted_tokens"] == expected
    assert abs(two["predicted_tokens"] / maskable - 0.2) < 0.02

    quarter = evaluate(model_dir, held_out, mask_rate=0.25, passes=1)
    assert quarter["mask_groups"] == 4 and abs(quarter["predicted_tokens"] / maskable - 0.25) < 0.02
    assert evaluate(model_dir, held_out, mask_rate=0.15)["mask_groups"] == 7  # ceil(1 / 0.15)


def test_reported_counts_are_the_tokens_the_model_was_asked_to_predict(
    model_dir, held_out, monkeypatch
):
    seen = {"labelled": 0, "passes": 0}
    forward = BigBirdForMaskedLM.forward

    def counting(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        seen["labelled"] += int((labels != -100).sum())
        seen["passes"] += labels.shape[0]
        assert bool(((labels != -100) <= attention_mask.bool()).all())  # never padding
        return forward(self, input_ids, attention_mask, token_type_ids, labels)

    monkeypatch.setattr(BigBirdForMaskedLM, "forward", counting)
    result = evaluate(model_dir, held_out, passes=3, batch_size=5)
    assert result["predicted_tokens"] == seen["labelled"]
    assert seen["passes"] == 3 * result["packed_sequences"]


def test_metrics_equal_a_direct_computation(model_dir, held_out, tokenizer):
    """loss, accuracy, bpc from one cross-entropy equal the model's own loss per pass."""
    from dnabird.data.masking import MaskingConfig, sequence_rng
    from dnabird.data.mlm import make_masker, pack_sentences

    result = evaluate(model_dir, held_out, passes=1, seed=3)
    model = BigBirdForMaskedLM.from_pretrained(model_dir).eval()
    masker = make_masker(MaskingConfig(), tokenizer)
    sequence = held_out[1]
    sentences = [tokenizer.encode(sequence[i : i + 1000]) for i in range(0, len(sequence), 1000)]
    nats = correct = tokens = bp = 0.0
    for chunk, body in enumerate(pack_sentences(sentences, MAX_LENGTH - 2)):
        ids = np.concatenate([[2], body, [3]])
        (inputs, labels), *_ = masker.coverage(ids, 10, sequence_rng(3, 4, 0, 0, 0, chunk))
        with torch.no_grad():
            out = model(torch.tensor(inputs)[None], labels=torch.tensor(labels)[None])
        picked = labels != -100
        count = int(picked.sum())
        nats += float(out.loss) * count
        tokens += count
        correct += int((out.logits[0].argmax(-1).numpy()[picked] == labels[picked]).sum())
        bp += int(tokenizer.bp_per_id[labels[picked]].sum())
    assert result["predicted_tokens"] == tokens
    assert result["loss"] == pytest.approx(nats / tokens, rel=1e-5)
    assert result["accuracy"] == pytest.approx(correct / tokens)
    assert result["bpc"] == pytest.approx(nats / math.log(2) / bp, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(nats / tokens), rel=1e-5)


def test_summary_states_what_was_masked(model_dir, held_out, tmp_path, capsys):
    out_json = tmp_path / "two.json"
    assert (
        main(
            cli(model_dir, held_out[0], "--max-length", "128", "--passes", "2", "-o", str(out_json))
        )
        == 0
    )
    result = json.loads(out_json.read_text())
    printed = capsys.readouterr().out
    share = result["predicted_tokens"] / result["maskable_tokens"]
    assert (
        f"{result['predicted_tokens']:,} of {result['maskable_tokens']:,} maskable tokens "
        f"predicted ({share:.1%})"
    ) in printed
    assert "in 2 of 10 passes that each mask a disjoint 10.0% of them (mask rate 0.1" in printed
    assert 0.18 < share < 0.22


def test_progress_bar_counts_packed_sequences(model_dir, held_out, capsys):
    from dnabird.progress import set_enabled

    set_enabled(True)
    try:
        result = evaluate(model_dir, held_out, passes=1)
    finally:
        set_enabled(None)
    err = capsys.readouterr().err
    packed = result["packed_sequences"]
    assert "evaluate-mlm" in err and f"{packed}/{packed}" in err


# ------------------------------------------------------------------ broken models


def test_non_finite_model_outputs_are_an_error(tokenizer, held_out, tmp_path, capsys):
    model = BigBirdForMaskedLM(tiny_config(tokenizer.vocab_size))
    with torch.no_grad():
        model.head.bias[7] = float("nan")  # a model that outputs NaN (e.g. diverged)
    folder = write_model_folder(tmp_path / "nan", model, {}, tokenizer=tokenizer)
    with pytest.raises(InputError, match="non-finite"):
        evaluate(folder, held_out)
    assert main(cli(folder, held_out[0])) == 2
    assert "nan: the model produced non-finite values" in one_line_error(capsys)


def test_garbage_weights_are_named_not_scored(model_dir, held_out, tmp_path, capsys):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(model_dir, folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8192:] = np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    weights.write_bytes(bytes(data))
    assert main(cli(folder, held_out[0])) == 2
    err = one_line_error(capsys)
    assert str(weights) in err and "sha256 differs" in err


def test_a_classifier_folder_is_not_scored_as_a_masked_lm(tokenizer, held_out, tmp_path, capsys):
    classifier = BigBirdForSequenceClassification(tiny_config(tokenizer.vocab_size), 2)
    folder = write_model_folder(tmp_path / "cls", classifier, {}, tokenizer=tokenizer)
    assert main(cli(folder, held_out[0])) == 2
    err = one_line_error(capsys)
    assert "holds a BigBirdForSequenceClassification, not a BigBirdForMaskedLM" in err


def test_missing_model_folder_says_so(held_out, tmp_path, capsys):
    assert main(cli(tmp_path / "nomodel", held_out[0])) == 2
    assert "nomodel: model folder not found" in one_line_error(capsys)


# ------------------------------------------------------------------ user mistakes


def test_nothing_to_score_is_an_error(model_dir, tmp_path, capsys):
    fasta = tmp_path / "n.fa"
    fasta.write_text(">chrN\n" + "N" * 3000 + "\n>gap\nNNNN\n")
    assert main(cli(model_dir, fasta)) == 2
    err = one_line_error(capsys)
    assert "nothing to score in chrN, gap" in err and "all N" in err
    with pytest.raises(InputError, match="nothing to score in an empty list"):
        evaluate_mlm(model_dir, [])


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--batch-size", "0", "must be at least 1, got 0"),
        ("--batch-size", "two", "expected a whole number"),
        ("--mask-rate", "0", "must be between 0 and 1"),
        ("--mask-rate", "1", "must be between 0 and 1"),
        ("--mask-rate", "nan", "must be between 0 and 1"),
        ("--passes", "0", "must be at least 1"),
        ("--max-length", "2", "must be at least 3"),
        ("--sentence-bp", "0", "must be at least 1"),
        ("--seed", "-1", "must be at least 0"),
        ("--device", "foo", "expected cpu, cuda or cuda:N"),
        ("--baseline-order", "40", "must be at most"),
    ],
)
def test_option_ranges_are_checked_when_parsing(
    model_dir, held_out, capsys, option, value, expected
):
    with pytest.raises(SystemExit) as info:
        main(cli(model_dir, held_out[0], option, value))
    assert info.value.code == 2
    err = one_line_error(capsys)
    assert f"argument {option}" in err and expected in err


def test_ranges_only_known_at_run_time_are_one_line_errors(model_dir, held_out, capsys):
    assert main(cli(model_dir, held_out[0], "--passes", "11")) == 2
    assert "passes must be between 1 and 10" in one_line_error(capsys)
    assert main(cli(model_dir, held_out[0], "--max-length", "512")) == 2
    assert "max_position_embeddings (256), got 512" in one_line_error(capsys)
    for bad in ({"batch_size": 0}, {"mask_rate": 0.0}, {"passes": 0}, {"sentence_bp": 0}):
        with pytest.raises(ConfigError):
            evaluate(model_dir, held_out, **bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(model_dir, held_out, capsys):
    assert main(cli(model_dir, held_out[0], "--device", "cuda")) == 2
    assert "CUDA is not available on this machine; use cpu" in one_line_error(capsys)


def test_unwritable_output_fails_before_the_work(held_out, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    # the model folder does not exist either: the -o check must come first
    args = cli(tmp_path / "nomodel", held_out[0], "-o", str(tmp_path / "file" / "out.json"))
    assert main(args) == 2
    assert "out.json: cannot write here" in one_line_error(capsys)


def test_malformed_fasta_names_file_and_record(model_dir, tmp_path, capsys):
    fasta = tmp_path / "bad.fa"
    good = "ACGT" * 15
    fasta.write_text(f">chrA\n{good}\n>chrB\n{good}\n{good}\n{good[:-1]}X\n")
    assert main(cli(model_dir, fasta)) == 2
    err = one_line_error(capsys)
    assert str(fasta) in err and "chrB" in err
    (tmp_path / "notes.txt").write_text("hello, this is not a FASTA file\n")
    assert main(cli(model_dir, tmp_path / "notes.txt")) == 2
    assert "notes.txt" in one_line_error(capsys)


# ------------------------------------------------------------------ BED regions


def test_bed_regions_are_fetched_and_scored(model_dir, held_out, tmp_path):
    from dnabird.tasks.evaluate_mlm import read_bed_regions

    fasta, sequence = held_out
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchrT\t0\t1000\nchrT\t2000\t2500\tr2\t0\t-\n")
    regions = read_bed_regions(bed, fasta)
    reverse = sequence[2000:2500][::-1].translate(str.maketrans("ACGT", "TGCA"))
    assert regions == [("chrT:0-1000", sequence[:1000]), ("chrT:2000-2500", reverse)]
    result = evaluate_mlm(model_dir, regions, max_length=MAX_LENGTH)
    assert result["sequences"] == 2 and result["bp"] == 1500  # every base of both, once


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("chrT\t100\t2600", "r.bed:2: region 100-2600 is empty or outside chrT (length 2500)"),
        ("chrT\t100\t100", "r.bed:2: region 100-100 is empty"),
        ("chrX\t0\t10", "r.bed:2: chromosome 'chrX' is not in"),
        ("chrT\t5", "r.bed:2: expected at least 3 columns"),
    ],
)
def test_bad_bed_line_is_one_line_error_with_its_number(
    model_dir, held_out, tmp_path, capsys, line, expected
):
    bed = tmp_path / "r.bed"
    bed.write_text(f"chrT\t0\t10\n{line}\n")
    assert main(cli(model_dir, held_out[0], "--bed", str(bed))) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.gpu
def test_cuda_scores_what_the_cpu_scores(model_dir, held_out):
    cpu = evaluate(model_dir, held_out, device="cpu")
    gpu = evaluate(model_dir, held_out, device="cuda")  # bfloat16 autocast
    assert gpu["predicted_tokens"] == cpu["predicted_tokens"]
    assert gpu["bpc"] == pytest.approx(cpu["bpc"], rel=2e-2)


def test_a_sequence_scores_the_same_alone_and_beside_a_longer_one(model_dir):
    """Block-sparse patterns depend on the padded length: evaluation pads every packed
    sequence to max_length, so a sequence's score does not depend on its batch mates."""
    rng = np.random.default_rng(5)
    short = ("short", "".join(rng.choice(list("ACGT"), 700)))
    long = ("long", "".join(rng.choice(list("ACGT"), 6000)))
    alone = evaluate_mlm(model_dir, [short], batch_size=4, max_length=128)
    beside = evaluate_mlm(model_dir, [short, long], batch_size=4, max_length=128)
    first, mate = beside["per_sequence"]
    (single,) = alone["per_sequence"]
    assert {**first, "bpc": None} == {**single, "bpc": None} and first["predicted_tokens"] > 0
    assert first["bpc"] == pytest.approx(single["bpc"], rel=1e-6)  # float summation order only
    assert (mate["name"], mate["bp"] > first["bp"]) == ("long", True)
    total_bits = sum(s["bpc"] * s["bp"] for s in beside["per_sequence"])
    assert total_bits / beside["bp"] == pytest.approx(beside["bpc"], rel=1e-9)
