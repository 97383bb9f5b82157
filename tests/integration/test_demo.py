"""The demo pipeline, shrunk to under a minute on its synthetic data: every stage runs, the
report shows every picture, the printed summary names every output; and the planted
elements of the synthetic data are where their peaks say."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import pytest

from dnabird.demo import DemoOptions, run_demo
from dnabird.demo_data import (
    CTCF_MOTIF,
    GATA_MOTIF,
    INITIATOR,
    TATA_BOX,
    TSS_OFFSET,
    plant_elements,
    synthetic_genome,
    synthetic_promoters,
)
from dnabird.errors import ConfigError, InputError
from dnabird.genome.fasta import reverse_complement

PICTURES = (
    "lengths.png",
    "attention_pattern.png",
    "training_curve.png",
    "promoter/roc_pr.png",
    "promoter_metrics.png",
    "chromatin_tracks.png",
    "ism.png",
)
SMALL = DemoOptions(
    held_out_bp=40_000,
    passes=1,
    vocab_size=300,
    tokenizer_sample_bp=100_000,
    max_length=128,
    batch_size=4,
    steps=4,
    ngram_orders=(2, 4),
    promoters=200,
    promoter_steps=8,
    chromatin_steps=8,
    flank_bp=50,  # 300 bp windows: at most 128 tokens with 300 pieces
    synthetic_bp=200_000,
)


def test_synthetic_genome_is_seeded_dna_with_repeats():
    sequence = synthetic_genome(60_000, seed=3)
    assert len(sequence) == 60_000 and set(sequence) <= set("ACGT")
    assert sequence == synthetic_genome(60_000, seed=3)
    assert sequence != synthetic_genome(60_000, seed=4)
    # Interspersed repeat copies: some 40-mers occur more than once.
    kmers = [sequence[i : i + 40] for i in range(0, len(sequence) - 40, 10)]
    assert len(set(kmers)) < len(kmers)


def _either_strand(motif: str) -> tuple[str, str]:
    return motif, reverse_complement(motif.encode()).decode()


def test_planted_elements_are_where_their_peaks_say():
    background = synthetic_genome(120_000, seed=1)
    sequence, peaks = plant_elements(background, seed=1)
    assert len(sequence) == len(background) and sequence != background
    kinds = [track for _, _, track in peaks]
    assert {kinds.count(k) for k in set(kinds)} <= {len(peaks) // 4, len(peaks) // 4 + 1}
    starts = [start for start, _, _ in peaks]
    assert starts == sorted(starts)
    assert all(a[1] < b[0] for a, b in zip(peaks, peaks[1:], strict=False))  # no overlaps
    for start, end, track in peaks:
        centre, bases = (start + end) // 2, sequence[start:end]
        if track == "CTCF_like":
            site = sequence[centre - len(CTCF_MOTIF) // 2 :][: len(CTCF_MOTIF)]
            assert site in _either_strand(CTCF_MOTIF)
        elif track == "GATA_like":
            assert sum(bases.count(m) for m in _either_strand(GATA_MOTIF)) >= 3
        elif track == "promoter":
            tss = start + TSS_OFFSET
            assert sequence[tss - 31 :].startswith(TATA_BOX)
            assert sequence[tss - 2 :].startswith(INITIATOR)
        else:
            assert track == "CpG_island"
            assert (bases.count("G") + bases.count("C")) / len(bases) > 0.6
    promoters = synthetic_promoters(sequence, 20, seed=1)
    assert {len(p) for p in promoters} == {300}
    assert all(p[TSS_OFFSET - 31 :].startswith(TATA_BOX) for p in promoters)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The small demo on synthetic data, run once for the tests below."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DNABIRD_SHARED_DATA", str(root / "absent"))  # synthetic data
        patch.setenv("DNABIRD_CACHE_DIR", str(root / "cache"))
        summary = run_demo(root / "demo", options=SMALL)
    return root / "demo", summary


def test_every_stage_runs_on_synthetic_data(demo: tuple[Path, dict]) -> None:
    out, summary = demo
    assert summary["synthetic"] is True
    assert summary["genome"].startswith("SYNTHETIC genome (200,000 bp")
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert list(summary["seconds"]) == [
        "inputs",
        "preprocess",
        "train-tokenizer",
        "tokenize",
        "pretrain",
        "evaluate-mlm",
        "finetune promoter",
        "make-dataset",
        "finetune chromatin",
        "predict",
        "variant-effect",
        "ism",
        "pictures",
        "report",
    ]
    for name in summary["outputs"]:
        assert (out / name).exists(), name
    assert (out / "pretrain" / "model" / "model.safetensors").is_file()
    assert 0.5 < summary["held_out_bpc"] < 4.0
    assert set(summary["ngram_bpc"]) == {"2", "4"}
    assert set(summary["promoter"]) == {"dnabird", "kmer_logreg", "onehot_logreg"}
    assert summary["chromatin_data"]["tracks"] == [
        "CTCF_like",
        "CpG_island",
        "GATA_like",
        "promoter",
    ]
    assert summary["chromatin_data"]["test_region"].startswith("synth1:160000-200000")
    # the planted CpG islands are easy: even the k-mer baseline finds them in the test split
    assert summary["chromatin"]["kmer_logreg"]["CpG_island"] > 0.9


def test_predictions_variants_and_mutagenesis(demo: tuple[Path, dict]) -> None:
    out, summary = demo
    with open(out / "variant_effects.tsv", newline="") as handle:
        effects = list(csv.DictReader(handle, delimiter="\t"))
    assert [(r["name"], r["ref_match"]) for r in effects] == [
        ("ins_3bp", "True"),
        ("snv_focus", "True"),
        ("del_5bp", "True"),
        ("two_alts", "True"),
        ("two_alts", "True"),
        ("wrong_ref", "False"),
    ]
    assert summary["variants"]["alleles"] == 6 and summary["variants"]["ref_mismatches"] == 1
    windows = summary["predict"]["windows"]
    assert [w["name"] for w in windows][-1] == "test_negative" and windows[-1]["positives"] == []
    for window in windows[:-1]:  # the first test window positive for its track
        assert window["name"].removeprefix("test_") in window["positives"]
    with open(out / "predictions.tsv", newline="") as handle:
        predicted = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["name"] for r in predicted] == [w["name"] for w in windows]
    assert all(0 < float(r["CTCF_like"]) < 1 for r in predicted)
    import h5py
    import numpy as np

    from dnabird.genome.fasta import read_fasta

    chrom, start = summary["ism"]["region"].split()[0].replace("-", ":").split(":")[:2]
    genome = read_fasta(out / "genome.fa")[chrom]
    with h5py.File(out / "ism.h5", "r") as h5:
        effects, sequence = h5["effects"][:], h5["sequence"][()]
    sequence = sequence.decode() if isinstance(sequence, bytes) else str(sequence)
    assert sequence == genome[int(start) : int(start) + 60]
    assert effects.shape == (60, 4, 4)  # positions, bases, tracks
    reference = np.array(["ACGT".index(b) for b in sequence])
    assert (effects[np.arange(60), reference] == 0).all()  # the reference base: no change


def test_report_shows_every_picture_and_table(demo: tuple[Path, dict]) -> None:
    out, summary = demo
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert markdown.startswith("# dnabird demo report (SYNTHETIC data)")
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(sources) == len(PICTURES)
    for picture, source in zip(PICTURES, sources, strict=True):
        assert f"]({picture})" in markdown, picture
        assert base64.b64decode(source) == (out / picture).read_bytes(), picture
    for heading in (
        "Data",
        "Corpus, tokenizer and attention pattern",
        "Pretraining",
        "Promoters",
        "Chromatin profiles",
        "Predictions and variant effects",
        "In-silico mutagenesis",
        "Outputs and timings",
    ):
        assert f"\n## {heading}\n" in markdown and f"<h2>{heading}</h2>" in page
    assert re.search(r"\| wrong_ref synth1:\d+ [ACGT]>[ACGT] \| False \| 0\.5 \|", markdown)
    for name in summary["outputs"]:
        assert f"| {name} |" in markdown


def test_cli_summary_names_every_output(demo: tuple[Path, dict]) -> None:
    from dnabird.commands.demo import final_summary

    out, summary = demo
    text = final_summary(summary, str(out))
    assert text.startswith("Demo finished in ") and "SYNTHETIC data" in text
    assert f"{out}/report.html" in text
    promoter = json.loads((out / "promoter" / "report.json").read_text())["reports"]
    low, high = promoter["kmer_logreg"]["ci95"]["f1"]
    f1 = promoter["kmer_logreg"]["metrics"]["f1"]
    assert f"(k-mer baseline {f1:.3f} [{low:.3f}, {high:.3f}])" in text  # same test split
    chromatin = json.loads((out / "chromatin" / "report.json").read_text())["reports"]
    median = chromatin["kmer_logreg"]["summary"]["all"]["auroc_median"]
    assert f"(k-mer baseline {median:.3f} [" in text
    listed = [line.split()[0] for line in text.splitlines()[2:]]
    assert listed == list(summary["outputs"])


def test_a_finished_demo_is_reused_and_a_changed_one_refused(
    demo: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out, summary = demo
    monkeypatch.setenv("DNABIRD_SHARED_DATA", str(tmp_path / "absent"))
    assert run_demo(out, options=SMALL) == json.loads(json.dumps(summary))  # done: reused
    with pytest.raises(ConfigError, match=r"options\.steps 4 -> 5.*--overwrite"):
        run_demo(out, options=DemoOptions(**{**vars(SMALL), "steps": 5}))
    monkeypatch.setenv("DNABIRD_SHARED_DATA", str(tmp_path))  # a real data folder appears
    with pytest.raises(ConfigError, match=r"\(data synthetic -> .*--overwrite"):
        run_demo(out, options=SMALL)


def test_demo_into_an_unwritable_place_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write the output folder"):
        run_demo(blocker / "demo")
