"""End-to-end: ``dnabird make-dataset`` on a small generated genome; tracks in command-line
order; user mistakes (a malformed peak line, unknown chromosomes, bad values) exit 2 with one
line and leave no folder; a rerun with other parameters is refused unless --overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnabird.cli import main
from dnabird.data.peak_dataset import read_dataset


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("make_dataset_cli")
    rng = np.random.default_rng(3)
    with open(root / "genome.fa", "w") as handle:
        for name, length in (("chr1", 12_000), ("chr2", 4_000)):
            seq = "".join(rng.choice(list("ACGT"), size=length))
            handle.write(
                f">{name}\n" + "".join(f"{seq[i : i + 60]}\n" for i in range(0, length, 60))
            )
    peaks = {
        track: [("chr1", int(s), int(s) + 300) for s in rng.integers(0, 11_700, 10)]
        + [("chr2", int(s), int(s) + 300) for s in rng.integers(0, 3_700, 3)]
        for track in "ADE"
    }
    (root / "a.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in peaks["A"]))
    both = [(c, s, e, t) for t in "ED" for c, s, e in peaks[t]]
    (root / "de.bed").write_text("".join(f"{c}\t{s}\t{e}\t{t}\n" for c, s, e, t in both))
    (root / "c.csv").write_text("region,start,end\nchr1,100,700\nchr2,50,450\n")
    (root / "bad.bed").write_text("chr1\t0\t100\nchr1\t200\t300\nchr1\t500\tfive\n")
    (root / "empty.bed").write_text("# nothing here\n")
    return root


def _args(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--no-progress",
        "make-dataset",
        "--genome",
        str(inputs / "genome.fa"),
        "--peaks",
        f"A={inputs / 'a.bed'}",
        "--tracks-in",
        str(inputs / "de.bed"),
        "--peaks",
        str(inputs / "c.csv"),
        "--bin",
        "100",
        "--flank",
        "150",
        "--test",
        "chr2",
        "--validation",
        "chr1:9000-12000",
        "--shard-size",
        "30",
        "--out",
        str(out),
        *extra,
    ]


def _status(args: list[str]) -> int:
    """The exit status of ``dnabird ARGS`` (argparse exits by itself on a usage error)."""
    try:
        return main(args)
    except SystemExit as stop:
        return int(stop.code)


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnabird: error: "), err
    return err[0]


def test_make_dataset_writes_a_readable_dataset(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(inputs, out)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Made ") and f"-> {out}" in printed
    assert "Positives per track (train/validation/test): A " in printed
    data = read_dataset(out)
    assert set(data) == {"train", "validation", "test"}
    assert data["train"].features.ids == ("A", "D", "E", "c")  # command-line order
    assert {len(s) for e in data.values() for s in e.sequences} == {400}
    assert sorted(p.name for p in out.iterdir())[-1] == "validation-00000.parquet"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--test", "chr7"], "test chr7: no chromosome 'chr7'"),
        (["--test", "chr1:11000-12001"], "test chr1:11000-12001: empty or outside chr1"),
        (["--peaks", "A={c}"], "track name 'A' is given twice"),
        (["--peaks", "{empty}"], "empty.bed: no peaks"),
        (["--bin", "0"], "argument --bin: must be at least 1, got 0"),
        (["--min-overlap", "0"], r"min_overlap must be in (0, 1], got 0.0"),
        (["--min-overlap", "1.5"], "argument --min-overlap: must be between 0 and 1"),
        (["--negatives", "many"], "argument --negatives: expected a ratio or 'all'"),
        (["--validation", "chr1:0-20000"], "empty or outside chr1"),
    ],
)
def test_mistakes_exit_2_in_one_line_and_leave_no_folder(inputs, tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    values = {"c": inputs / "c.csv", "empty": inputs / "empty.bed"}
    assert _status(_args(inputs, out, *[e.format(**values) for e in extra])) == 2
    assert expected in _one_line_error(capsys)
    assert not out.exists()


def test_malformed_peak_line_names_file_and_line(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _status(_args(inputs, out, "--peaks", f"B={inputs / 'bad.bed'}")) == 2
    line = _one_line_error(capsys)
    assert f"{inputs / 'bad.bed'}:3: end 'five' is not an integer" in line
    assert not out.exists()


def test_rerun_with_other_parameters_is_refused(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(inputs, out)) == 0
    manifest = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert _status(_args(inputs, out, "--seed", "5")) == 2
    assert "other inputs or parameters (parameters.seed 0 -> 5)" in _one_line_error(capsys)
    assert (out / "manifest.json").read_bytes() == manifest
    assert main(_args(inputs, out, "--seed", "5", "--overwrite")) == 0
    assert b'"seed": 5' in (out / "manifest.json").read_bytes()
