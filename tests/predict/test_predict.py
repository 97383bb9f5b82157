"""``dnabird predict``: strand modes against independent passes, the three output formats
agreeing, feature selection, the .NA file and manifest, and bad input failing cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from dnabird.errors import ConfigError
from dnabird.genome.fasta import reverse_complements
from dnabird.predict import Predictor, predict, read_table

from .conftest import assert_failed_cleanly, cli, cli_process

RNG = np.random.default_rng(7)
SEQUENCES = {
    f"seq{i}": "".join(RNG.choice(list("ACGT"), size=n)) for i, n in enumerate([120, 300, 700, 40])
}


@pytest.fixture
def fasta(tmp_path: Path) -> Path:
    path = tmp_path / "seqs.fa"
    path.write_text("".join(f">{name} description\n{seq}\n" for name, seq in SEQUENCES.items()))
    return path


def _values(table, columns=("ctcf", "atac", "k27ac")) -> np.ndarray:
    return np.stack([table.column(c).to_numpy() for c in columns], axis=1).astype(np.float64)


def test_strand_modes_combine_two_independent_passes(model_dir: Path) -> None:
    sequences = list(SEQUENCES.values())[:2]
    forward, _ = Predictor.load(model_dir, device="cpu", rc="none").predict(sequences)
    backward, _ = Predictor.load(model_dir, device="cpu", rc="none").predict(
        reverse_complements(sequences)
    )
    assert not np.allclose(forward, backward)  # the model is not strand-symmetric by itself
    mean, _ = Predictor.load(model_dir, device="cpu").predict(sequences)  # the model's default
    np.testing.assert_allclose(mean, (forward + backward) / 2, atol=1e-6)
    top, _ = Predictor.load(model_dir, device="cpu", rc="max").predict(sequences)
    np.testing.assert_allclose(top, np.maximum(forward, backward), atol=1e-6)


def test_the_three_formats_hold_the_same_rows(model_dir: Path, fasta: Path, tmp_path: Path) -> None:
    tables = {}
    for suffix in ("tsv", "h5", "parquet"):
        out = tmp_path / f"preds.{suffix}"
        assert (
            cli("predict", "--model", model_dir, "--fasta", fasta, "-o", out, "--batch-size", "3")
            == 0
        )
        tables[suffix] = read_table(out)
    header = (tmp_path / "preds.tsv").read_text().split("\n")[0].split("\t")
    assert header == ["index", "name", "start", "end", "ctcf", "atac", "k27ac"]
    reference = tables["parquet"]
    # 300 bp windows: 120 -> 1 centred, 300 -> 1, 700 -> 0, 300, 600 (last padded), 40 -> 1
    assert reference.column("index").to_pylist() == [0, 1, 2, 2, 2, 3]
    assert reference.column("start").to_pylist() == [-90, 0, 0, 300, 600, -130]
    assert reference.column("name").to_pylist()[:2] == ["seq0", "seq1"]
    for other in ("tsv", "h5"):
        for column in ("index", "name", "start", "end"):
            assert tables[other].column(column).to_pylist() == reference.column(column).to_pylist()
        np.testing.assert_allclose(_values(tables[other]), _values(reference), rtol=1e-5, atol=1e-6)
    with h5py.File(tmp_path / "preds.h5") as h5:
        assert h5["data"].dtype == np.float32 and h5["data"].shape == (6, 3)
        assert [f.decode() for f in h5["features"][:]] == ["ctcf", "atac", "k27ac"]
    # the API gives the same numbers as the files, and equals Predictor.predict (other batch
    # sizes than the files' 3: float32 rounding of the batched matmuls differs, ~1e-7)
    api = predict(model_dir, fasta=fasta, device="cpu")
    np.testing.assert_allclose(_values(api), _values(reference), atol=1e-6)
    direct, _ = Predictor.load(model_dir, device="cpu").predict(
        ["N" * 90 + SEQUENCES["seq0"] + "N" * 90]
    )
    np.testing.assert_allclose(_values(reference)[0], direct[0], atol=1e-6)
    manifest = json.loads((tmp_path / "preds.manifest.json").read_text())
    assert manifest["rows"] == 6 and manifest["not_scored"] == 0
    assert manifest["parameters"]["rc"] == "mean" and manifest["parameters"]["window_bp"] == 300


def test_features_and_windows_that_do_not_fit_go_to_na(
    model_dir: Path, fasta: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.tsv"
    # 2,000 bp windows: more sequence than the model was trained on
    options = ["--window-bp", 2000, "--features", "DHS,CTCF"]
    assert cli("predict", "--model", model_dir, "--fasta", fasta, "-o", out, *options) == 0
    lines = [line.split("\t") for line in out.read_text().strip().split("\n")]
    assert lines[0] == ["index", "name", "start", "end", "ctcf", "atac"]  # file order
    # N padding costs few tokens (64 bp per piece), so the short records still fit;
    # 700 bp of sequence is about 290 tokens and does not
    assert [row[1] for row in lines[1:]] == ["seq0", "seq1", "seq3"]
    na = [line.split("\t") for line in (tmp_path / "p.NA").read_text().strip().split("\n")]
    assert na[0] == ["index", "name", "start", "end", "reason"]
    assert na[1][:4] == ["2", "seq2", "-650", "1350"]
    assert "do not fit the model's window of 256 tokens" in na[1][4]


def test_bed_prediction_lists_the_unscorable_intervals(
    model_dir: Path, chr2: Path, tmp_path: Path
) -> None:
    bed = tmp_path / "peaks.bed"
    bed.write_text("chr2\t100000\t100500\tp1\t0\t-\nchr3\t5\t10\tp2\t0\t+\nchr2\t150000\t150200\n")
    out = tmp_path / "b.parquet"
    assert cli("predict", "--model", model_dir, "--bed", bed, "--genome", chr2, "-o", out) == 0
    table = pq.read_table(out)
    assert table.column_names[:6] == ["index", "chrom", "start", "end", "strand", "contains_unk"]
    assert table.column("index").to_pylist() == [0, 2]
    assert table.column("strand").to_pylist() == ["-", "."]
    na = (tmp_path / "b.NA").read_text().strip().split("\n")
    assert na[1].startswith("1\tchr3\t5\t10\t+\tchromosome chr3 is not in")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.fa", ">a\nACGT\n>b\nAC#GT\n", "bad.fa: record 'b', line 4"),
        ("bad.bed", "chr2\t100\t200\nchr2\tten\t300\n", "bad.bed:2"),
        ("bad2.bed", "chr2\t300\t200\n", "bad2.bed:1"),
    ],
)
def test_malformed_input_exits_2_naming_the_line_and_leaves_no_output(
    model_dir: Path, chr2: Path, tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    source = (
        ["--fasta", str(path)]
        if name.endswith(".fa")
        else ["--bed", str(path), "--genome", str(chr2)]
    )
    out = tmp_path / "out.tsv"
    result = cli_process("predict", "--model", model_dir, *source, "-o", out, "--batch-size", 1)
    assert_failed_cleanly(result, message, out)


def test_an_unknown_format_or_feature_is_refused_before_any_work(
    model_dir: Path, fasta: Path, tmp_path: Path, capsys
) -> None:
    assert cli("predict", "--model", model_dir, "--fasta", fasta, "-o", tmp_path / "p.csv") == 2
    out = tmp_path / "p.tsv"
    assert "unknown output format '.csv'" in capsys.readouterr().err
    misspelt = ["--features", "CTFC"]
    assert cli("predict", "--model", model_dir, "--fasta", fasta, "-o", out, *misspelt) == 2
    assert "did you mean 'CTCF'" in capsys.readouterr().err
    assert not list(tmp_path.glob("p.*"))


def test_an_input_without_records_is_an_error(model_dir: Path, chr2: Path, tmp_path: Path) -> None:
    bed = tmp_path / "empty.bed"
    bed.write_text("# no intervals\ntrack name=x\n")
    out = tmp_path / "profiles.tsv"
    result = cli_process("predict", "--model", model_dir, "--bed", bed, "--genome", chr2, "-o", out)
    assert_failed_cleanly(result, "empty.bed: no records to score", out)


def test_bf16_mixed_precision_is_recorded_and_stays_near_float32(
    model_dir: Path, fasta: Path, tmp_path: Path
) -> None:
    """``--precision bf16-mixed`` (bfloat16 matrix products under autocast): recorded in the
    manifest; the probabilities move (the setting takes effect) but stay near float32's."""
    values = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / f"{precision}.parquet"
        command = ("predict", "--model", model_dir, "--fasta", fasta, "-o", out, "--device", "cpu")
        assert cli(*command, "--precision", precision) == 0
        values[precision] = _values(read_table(out))
        manifest = json.loads((tmp_path / f"{precision}.manifest.json").read_text())
        assert manifest["parameters"]["precision"] == precision
    difference = np.abs(values["bf16-mixed"] - values["32-true"]).max()
    assert 0 < difference < 0.05, difference
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; choose from 32-true, bf16"):
        Predictor.load(model_dir, device="cpu", precision="fp8")
