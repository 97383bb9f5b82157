"""``dnabird variant-effect`` and ``dnabird ism`` on the real chr2 excerpt: the window rule
checked against pyfaidx, every score against independent Predictor passes, REF mismatches
flagged (or skipped), malformed VCF lines, and ISM at a base equal to the SNV's effect."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dnabird.errors import ConfigError
from dnabird.predict import Predictor, ism, read_table, variant_effect

from .conftest import WINDOW_BP, assert_failed_cleanly, cli, cli_process

FEATURES = ["ctcf", "atac", "k27ac"]
HALF = WINDOW_BP // 2


@pytest.fixture(scope="module")
def genome_bases(chr2: Path):
    import pyfaidx

    fasta = pyfaidx.Fasta(str(chr2), as_raw=True, rebuild=False, build_index=False)
    return lambda start, end: fasta["chr2"][start:end].upper()  # 0-based, half-open


@pytest.fixture(scope="module")
def vcf(tmp_path_factory: pytest.TempPathFactory, genome_bases) -> Path:
    """An SNV, an insertion, a deletion, a two-ALT record, a wrong REF and an edge variant."""
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    snv = genome_bases(150000, 150001)
    ins = genome_bases(150100, 150101)
    deletion = genome_bases(150200, 150204)
    multi = genome_bases(150300, 150301)
    wrong = other[genome_bases(150400, 150401)]
    rows = [
        ("150001", "snv", snv, other[snv], "AF=0.1"),
        ("150101", "ins", ins, ins + "GGT", "AF=0.2"),
        ("150201", "del", deletion, deletion[0], "AF=0.3"),
        ("150301", "multi", multi, f"{other[multi]},{other[other[multi]]}", "AF=0.4,0.5"),
        ("150401", "badref", wrong, other[wrong], "AF=0.6"),
        ("50", "edge", "N", "A", "AF=0.7"),
    ]
    path = tmp_path_factory.mktemp("vcf") / "vars.vcf"
    path.write_text(
        '##fileformat=VCFv4.2\n##INFO=<ID=AF,Number=A,Type=Float,Description="freq">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(f"chr2\t{pos}\t{i}\t{r}\t{a}\t.\tPASS\t{info}\n" for pos, i, r, a, info in rows)
    )
    return path


def _values(table) -> np.ndarray:
    return np.stack([table.column(f).to_numpy() for f in FEATURES], axis=1).astype(np.float64)


def _windows(genome_bases, pos: int, ref: str, alt: str) -> tuple[str, str]:
    """The documented rule, computed independently: both windows start W // 2 bp before the
    variant; the allele, then the genome after REF, cut to W bp."""
    start = pos - 1
    left = genome_bases(start - HALF, start)
    right = genome_bases(start + len(ref), start + len(ref) + WINDOW_BP)
    return (left + ref + right)[:WINDOW_BP], (left + alt + right)[:WINDOW_BP]


def test_scores_equal_independent_predictions_of_the_two_windows(
    model_dir: Path, chr2: Path, vcf: Path, genome_bases, tmp_path: Path
) -> None:
    out = tmp_path / "effects.h5"
    scores = ["ref", "alt", "diff", "abs_diff", "logit_diff"]
    table = variant_effect(
        model_dir, vcf=vcf, genome=chr2, out=out, scores=scores, info_fields=["AF"], device="cpu"
    )
    assert table.column_names[:9] == [
        "chrom",
        "pos",
        "name",
        "ref",
        "alt",
        "strand",
        "ref_match",
        "contains_unk",
        "info_AF",
    ]
    assert table.column("name").to_pylist() == ["snv", "ins", "del", "multi", "multi", "badref"]
    multi_ref, multi_alts = table.column("ref")[3].as_py(), table.column("alt").to_pylist()[3:5]
    assert len(set(multi_alts)) == 2 and multi_ref not in multi_alts  # one row per ALT
    assert table.column("info_AF").to_pylist() == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6"]
    assert table.column("ref_match").to_pylist() == [True] * 5 + [False]
    predictor = Predictor.load(model_dir, device="cpu")
    pairs = [
        _windows(genome_bases, pos, ref, alt)
        for pos, ref, alt in zip(
            table.column("pos").to_pylist(),
            table.column("ref").to_pylist(),
            table.column("alt").to_pylist(),
            strict=True,
        )
    ]
    assert all(len(r) == len(a) == WINDOW_BP for r, a in pairs)
    assert sum(x != y for x, y in zip(*pairs[0], strict=True)) == 1  # an SNV: one base differs
    ref_p, _ = predictor.predict([r for r, _ in pairs])
    alt_p, _ = predictor.predict([a for _, a in pairs])
    with h5py.File(out) as h5:
        got = {name: h5[name][:].astype(np.float64) for name in scores}
        assert [f.decode() for f in h5["features"][:]] == FEATURES
    np.testing.assert_allclose(got["ref"], ref_p, atol=1e-6)
    np.testing.assert_allclose(got["alt"], alt_p, atol=1e-6)
    np.testing.assert_allclose(got["diff"], alt_p - ref_p, atol=1e-6)
    np.testing.assert_allclose(got["abs_diff"], np.abs(alt_p - ref_p), atol=1e-6)
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    np.testing.assert_allclose(got["logit_diff"], logit(alt_p) - logit(ref_p), atol=1e-4)
    assert np.abs(got["diff"]).max() > 1e-3  # the variants do change the predictions
    na = (tmp_path / "effects.NA").read_text().strip().split("\n")
    assert len(na) == 2 and na[1].startswith("chr2\t50\tedge\tN\tA\twindow chr2:-101-")


def test_ref_mismatches_can_be_skipped_and_are_reported(
    model_dir: Path, chr2: Path, vcf: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "e.tsv"
    vcf_args = ["--vcf", vcf, "--genome", chr2, "-o", out, "--skip-ref-mismatch"]
    assert cli("variant-effect", "--model", model_dir, *vcf_args) == 0
    printed = capsys.readouterr().out
    assert "1 allele(s) have a REF that differs" in printed and "sent to the .NA file" in printed
    names = [line.split("\t")[2] for line in out.read_text().strip().split("\n")[1:]]
    assert "badref" not in names and len(names) == 5
    na = (tmp_path / "e.NA").read_text()
    assert "badref" in na and "REF does not match the genome" in na


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("chr2\tten\t.\tA\tC\t.\t.\t.\n", 4),
        ("chr2\t100\t.\tA\n", 4),
        ("chr2\t100\t.\tA\tC\t.\t.\t.\nchr2\t0\t.\tA\tC\t.\t.\t.\n", 5),
    ],
)
def test_a_malformed_vcf_exits_2_with_its_line(
    model_dir: Path, chr2: Path, tmp_path: Path, body: str, line: int
) -> None:
    path = tmp_path / "bad.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n##source=test\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + body
    )
    out = tmp_path / "e.tsv"
    result = cli_process(
        "variant-effect", "--model", model_dir, "--vcf", path, "--genome", chr2, "-o", out
    )
    assert_failed_cleanly(result, f"bad.vcf:{line}:", out)


def test_ism_at_one_base_equals_the_snv_effect(
    model_dir: Path, chr2: Path, vcf: Path, genome_bases, tmp_path: Path
) -> None:
    effects = read_table(_variant_file(model_dir, chr2, vcf, tmp_path))
    snv = effects.slice(0, 1)
    alt = snv.column("alt")[0].as_py()
    out, plot = tmp_path / "ism.h5", tmp_path / "ism.png"
    result = ism(
        model_dir, region="chr2:150000-150001", genome=chr2, out=out, plot=plot, device="cpu"
    )
    assert result.effects.shape == (1, 4, 3)
    assert result.sequence == genome_bases(150000, 150001)
    np.testing.assert_allclose(result.effects[0, "ACGT".index(alt)], _values(snv)[0], atol=1e-6)
    assert np.all(result.effects[0, "ACGT".index(result.sequence)] == 0)
    with h5py.File(out) as h5:
        np.testing.assert_array_equal(h5["effects"][:], result.effects)
        assert h5.attrs["window_start"] == 150000 - HALF
        assert h5.attrs["precision"] == "32-true"
    assert plot.stat().st_size > 5000


def test_ism_of_a_region_scores_every_substitution_in_one_window(
    model_dir: Path, chr2: Path, genome_bases, tmp_path: Path
) -> None:
    out = tmp_path / "r.h5"
    assert (
        cli(
            "ism",
            "--model",
            model_dir,
            "--region",
            "chr2:150000-150030",
            "--genome",
            chr2,
            "-o",
            out,
            "--batch-size",
            "16",
        )
        == 0
    )
    assert (tmp_path / "r.png").stat().st_size > 5000
    with h5py.File(out) as h5:
        effects = h5["effects"][:]
        sequence = h5["sequence"][()].decode()
        window_start = int(h5.attrs["window_start"])
    assert effects.shape == (30, 4, 3) and sequence == genome_bases(150000, 150030)
    assert window_start == 150015 - HALF
    # one position checked independently: the mutant window scored through the API
    predictor = Predictor.load(model_dir, device="cpu")
    window = genome_bases(window_start, window_start + WINDOW_BP)
    offset = 150007 - window_start
    base = "ACGT".index(sequence[7]) ^ 1  # some other base
    mutant = window[:offset] + "ACGT"[base] + window[offset + 1 :]
    (ref_p, alt_p), _ = predictor.predict([window, mutant])
    np.testing.assert_allclose(effects[7, base], alt_p - ref_p, atol=1e-6)


def _variant_file(model_dir: Path, chr2: Path, vcf: Path, tmp_path: Path) -> Path:
    out = tmp_path / "snv.parquet"
    variant_effect(model_dir, vcf=vcf, genome=chr2, out=out, device="cpu")
    return out


def test_ism_of_a_fasta_record_centres_it_in_the_window(model_dir: Path, tmp_path: Path) -> None:
    fasta = tmp_path / "one.fa"
    fasta.write_text(">only\nACGTTGCAACGGATCC\n")
    result = ism(model_dir, fasta=fasta, device="cpu")
    assert result.effects.shape == (16, 4, 3) and result.sequence == "ACGTTGCAACGGATCC"
    assert result.window_start == -((WINDOW_BP - 16) // 2)  # padded with N on both sides
    window = "N" * 142 + "ACGTTGCAACGGATCC" + "N" * 142
    mutant = window[:142] + "T" + window[143:]
    (ref_p, alt_p), _ = Predictor.load(model_dir, device="cpu").predict([window, mutant])
    np.testing.assert_allclose(result.effects[0, 3], alt_p - ref_p, atol=1e-6)
    fasta.write_text(">a\nACGT\n>b\nACGT\n")
    with pytest.raises(ConfigError, match="several records; choose one with --record"):
        ism(model_dir, fasta=fasta, device="cpu")
    assert ism(model_dir, fasta=fasta, record="b", device="cpu").name == "b"
