"""Tests of dnabird.data.peak_dataset on a small synthetic genome: windows against pyfaidx,
labels and kept bins against a per-base brute force, splits, sampling, determinism,
re-runs and reading back. The real chr2 excerpt is in test_real_dataset below."""

from __future__ import annotations

import gzip
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dnabird.data.peak_dataset import DatasetOptions, make_dataset, read_dataset
from dnabird.data.peaks import TrackSource
from dnabird.errors import ConfigError, InputError
from dnabird.manifest import read_manifest

LENGTHS = {"chr1": 30_000, "chr2": 9_000, "chr3": 150}
N_RUN = (12_000, 12_500)
OPTIONS = DatasetOptions(
    bin_size=100,
    flank=250,
    test=("chr2", "chr1:24000-30000"),
    validation=("chr1:15000-20000",),
    shard_size=40,
)


def _genome(folder: Path) -> tuple[Path, dict[str, str]]:
    """Random ACGT with soft-masked stretches, an IUPAC code and an N run (chr1)."""
    rng = np.random.default_rng(7)
    records = {name: "".join(rng.choice(list("ACGT"), size=n)) for name, n in LENGTHS.items()}
    chr1 = records["chr1"]
    chr1 = chr1[:3000] + chr1[3000:3400].lower() + chr1[3400:]
    chr1 = chr1[: N_RUN[0]] + "N" * (N_RUN[1] - N_RUN[0]) + chr1[N_RUN[1] :]
    records["chr1"] = chr1[:5000] + "R" + chr1[5001:]
    path = folder / "genome.fa"
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(
                f">{name}\n" + "".join(f"{seq[i : i + 70]}\n" for i in range(0, len(seq), 70))
            )
    return path, records


def _peaks(folder: Path) -> tuple[list[TrackSource], dict[str, list[tuple[str, int, int]]]]:
    """Five tracks in four formats; returns the sources and, per track, the raw peaks."""
    rng = np.random.default_rng(11)
    raw: dict[str, list[tuple[str, int, int]]] = {}
    for track in ("A", "B", "C", "D", "E"):
        peaks = []
        for chrom, length in LENGTHS.items():
            for _ in range(max(1, length // 1500)):
                start = int(rng.integers(0, length))
                peaks.append((chrom, start, start + int(rng.integers(20, 400))))
        raw[track] = peaks
    raw["A"] += [("chr1", 0, 100), ("chr1", 29_900, 30_000), ("chr3", 0, 100), ("chr1", 40, 90)]
    raw["A"] += [("chr1", N_RUN[0], N_RUN[1])]  # covers mostly-N bins: they stay skipped
    raw["B"] += [("chrUn", 0, 500), ("chr2", 9_000, 9_100)]  # other chromosome; beyond the end
    (folder / "a.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in raw["A"]))
    narrow = "".join(f"{c}\t{s}\t{e}\t.\t0\t.\t1.5\t-1\t-1\t-1\n" for c, s, e in raw["B"])
    (folder / "b.narrowPeak.gz").write_bytes(gzip.compress(narrow.encode()))
    half = len(raw["C"]) // 2
    for name, part in (("c1.csv", raw["C"][:half]), ("c2.csv.gz", raw["C"][half:])):
        text = "id,region,start,end,strand\n" + "".join(
            f"{i},{c},{s},{e},\n" for i, (c, s, e) in enumerate(part)
        )
        (folder / name).write_bytes(
            gzip.compress(text.encode()) if name.endswith(".gz") else text.encode()
        )
    both = sorted([(*p, "E") for p in raw["E"]] + [(*p, "D") for p in raw["D"]])
    (folder / "de.bed").write_text(
        "#chrom\tstart\tend\ttrack\n" + "".join(f"{c}\t{s}\t{e}\t{t}\n" for c, s, e, t in both)
    )
    sources = [
        TrackSource.parse(f"A={folder / 'a.bed'}"),
        TrackSource.parse(str(folder / "b.narrowPeak.gz")),
        TrackSource.parse(f"C={folder / 'c1.csv'},{folder / 'c2.csv.gz'}"),
        TrackSource.column(folder / "de.bed"),
    ]
    raw["b"] = raw.pop("B")
    return sources, raw


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("peak_dataset")
    genome, records = _genome(folder)
    sources, raw = _peaks(folder)
    manifest = make_dataset(genome, sources, folder / "out", OPTIONS)
    return {
        "folder": folder,
        "genome": genome,
        "records": records,
        "sources": sources,
        "raw": raw,
        "manifest": manifest,
        "data": read_dataset(folder / "out"),
    }


def _coverage(raw: list[tuple[str, int, int]], chrom: str) -> np.ndarray:
    """Per-base coverage of one track on one chromosome, peak by peak."""
    covered = np.zeros(LENGTHS[chrom], dtype=bool)
    for c, start, end in raw:
        if c == chrom:
            covered[start:end] = True  # slicing clips at the chromosome's end
    return covered


def _split_of_base(chrom: str) -> np.ndarray:
    base = np.full(LENGTHS[chrom], "train", dtype=object)
    if chrom == "chr2":
        base[:] = "test"
    if chrom == "chr1":
        base[15_000:20_000] = "validation"
        base[24_000:30_000] = "test"
    return base


def _brute_force_bins(records, raw, options=OPTIONS):
    """{(chrom, start): (split, labels tuple, usable, n_rich, near)} for every bin."""
    size, names = options.bin_size, ["A", "b", "C", "D", "E"]
    bins = {}
    for chrom, length in LENGTHS.items():
        coverage = {t: _coverage(raw[t], chrom) for t in names}
        base = _split_of_base(chrom)
        for start in range(0, length - size + 1, size):
            end = start + size
            labels = tuple(
                int(coverage[t][start:end].sum() >= options.min_overlap * size) for t in names
            )
            bases = records[chrom][start:end].upper()
            n_rich = sum(b not in "ACGT" for b in bases) > options.max_n * size
            reach = base[max(start - options.reach, 0) : min(end + options.reach, length)]
            near = bool(np.any(reach != base[start]))
            bins[chrom, start] = (base[start], labels, not n_rich and not near, n_rich, near)
    return bins


def _rows(data) -> dict[tuple[str, int], tuple[str, tuple[int, ...]]]:
    return {
        (str(c), int(s)): (split, tuple(int(x) for x in labels))
        for split, examples in data.items()
        for c, s, labels in zip(
            examples.columns["chrom"], examples.columns["start"], examples.labels, strict=True
        )
    }


def _pyfaidx_window(fasta, chrom: str, start: int, end: int) -> str:
    """The window read by pyfaidx, uppercased, non-ACGT as N, N-padded beyond the ends."""
    length = len(fasta[chrom])
    inside = str(fasta[chrom][max(start, 0) : min(end, length)]).upper()
    return "N" * max(0, -start) + re.sub("[^ACGT]", "N", inside) + "N" * max(0, end - length)


def test_windows_equal_the_genome_read_by_pyfaidx(built, tmp_path):
    import pyfaidx

    copy = Path(shutil.copy(built["genome"], tmp_path / "copy.fa"))
    padded = 0
    with pyfaidx.Fasta(str(copy)) as fasta:
        for examples in built["data"].values():
            cols = examples.columns
            for i, sequence in enumerate(examples.sequences):
                chrom, start, end = (
                    str(cols["chrom"][i]),
                    int(cols["start"][i]),
                    int(cols["end"][i]),
                )
                a, b = int(cols["window_start"][i]), int(cols["window_end"][i])
                assert (end - start, start - a, b - end) == (100, 250, 250)
                assert sequence == _pyfaidx_window(fasta, chrom, a, b), (chrom, start)
                padded += a < 0 or b > LENGTHS[chrom]
    assert padded >= 3  # chr1's first and last bins and chr3's only bin are N-padded


def test_labels_and_kept_bins_equal_a_brute_force(built):
    bins = _brute_force_bins(built["records"], built["raw"])
    rows = _rows(built["data"])
    assert built["data"]["train"].features.ids == ("A", "b", "C", "D", "E")
    for key, (split, labels) in rows.items():
        expected_split, expected_labels, usable, _, _ = bins[key]
        assert (split, labels) == (expected_split, expected_labels), key
        assert usable, key
    positive = {k for k, (_, labels, usable, _, _) in bins.items() if usable and any(labels)}
    kept_positive = {k for k, (_, labels) in rows.items() if any(labels)}
    assert kept_positive == positive and len(positive) > 20
    assert ("chr1", 0) in rows and ("chr3", 0) in rows and ("chr1", 29_900) in rows
    assert not any(bins[k][3] for k in rows)  # no mostly-N bin
    assert sum(bins[chr1_n][1][0] for chr1_n in [("chr1", 12_000), ("chr1", 12_400)]) == 2
    counts = built["manifest"]["counts"]["bins"]
    for split in ("train", "validation", "test"):
        mine = [v for v in bins.values() if v[0] == split]
        assert counts[split]["bins"] == len(mine)
        assert counts[split]["n_rich"] == sum(v[3] for v in mine)
        assert counts[split]["near_other_split"] == sum(v[4] and not v[3] for v in mine)
        assert counts[split]["positive"] == sum(v[2] and any(v[1]) for v in mine)
    assert sum(c["n_rich"] for c in counts.values()) == 5


def test_negatives_are_sampled_per_chromosome_and_split_at_the_ratio(built):
    bins = _brute_force_bins(built["records"], built["raw"])
    rows = _rows(built["data"])
    for key, (_, labels) in rows.items():
        assert any(labels) or not any(bins[key][1])
    by_group = Counter((c, split, any(labels)) for (c, _), (split, labels) in rows.items())
    available = Counter((c, v[0]) for (c, _), v in bins.items() if v[2] and not any(v[1]))
    for (chrom, split, is_positive), count in by_group.items():
        if is_positive:
            negatives = by_group.get((chrom, split, False), 0)
            assert negatives == min(count, available[chrom, split]), (chrom, split)
        else:
            assert by_group[chrom, split, True] > 0  # no positives there: no negatives
    manifest = built["manifest"]
    assert manifest["parameters"]["seed"] == 0 and manifest["parameters"]["negatives"] == 1.0


def test_splits_are_disjoint_and_windows_stay_in_their_split(built):
    data = built["data"]
    assert set(data) == {"train", "validation", "test"}
    assert set(data["test"].columns["split"]) == {"test"}
    chr2 = {split for (c, _), (split, _) in _rows(data).items() if c == "chr2"}
    assert chr2 == {"test"}  # chromosome holdout
    windows = []
    for split, examples in data.items():
        cols = examples.columns
        for c, a, b in zip(cols["chrom"], cols["window_start"], cols["window_end"], strict=True):
            base = _split_of_base(str(c))[max(a, 0) : min(b, LENGTHS[str(c)])]
            assert set(base) == {split}, (c, a, b)
            windows.append((str(c), int(a), int(b), split))
    windows.sort()
    for (c1, _, b1, s1), (c2, a2, _, s2) in zip(windows, windows[1:], strict=False):
        assert c1 != c2 or s1 == s2 or b1 <= a2  # windows of two splits never overlap


def test_shards_and_manifest(built):
    manifest, out = built["manifest"], built["folder"] / "out"
    shards = manifest["shards"]
    assert [s["file"] for s in shards if s["split"] == "train"][:2] == [
        "train-00000.parquet",
        "train-00001.parquet",
    ]
    assert all(s["rows"] <= 40 for s in shards)
    for split, examples in built["data"].items():
        assert manifest["counts"]["splits"][split]["rows"] == len(examples)
        positives = dict(
            zip(examples.features.ids, examples.labels.sum(axis=0).tolist(), strict=True)
        )
        assert manifest["counts"]["splits"][split]["positives"] == positives
    assert manifest["inputs"]["genome"]["sha256"] and len(manifest["inputs"]["tracks"]) == 4
    b = next(t for t in manifest["tracks"] if t["name"] == "b")
    assert b["peaks"]["other_chromosome"] == 1 and b["peaks"]["beyond_end"] == 1
    assert read_manifest(out, "make-dataset")["parameters"]["gap"] == 250
    train = built["data"]["train"]
    starts = list(zip(train.columns["chrom"], train.columns["start"], strict=True))
    assert starts == sorted(starts, key=lambda k: (list(LENGTHS).index(k[0]), k[1]))


def test_same_seed_same_bytes_other_seed_other_negatives(built, tmp_path):
    again = make_dataset(built["genome"], built["sources"], tmp_path / "again", OPTIONS)
    assert [s["sha256"] for s in again["shards"]] == [
        s["sha256"] for s in built["manifest"]["shards"]
    ]
    other = make_dataset(
        built["genome"], built["sources"], tmp_path / "seed1", replace(OPTIONS, seed=1)
    )
    rows, other_rows = _rows(built["data"]), _rows(read_dataset(tmp_path / "seed1"))
    positive = {k for k, (_, labels) in rows.items() if any(labels)}
    assert positive == {k for k, (_, labels) in other_rows.items() if any(labels)}
    assert set(rows) != set(other_rows) and len(rows) == len(other_rows)
    assert other["parameters"]["seed"] == 1


def test_same_gap_gives_the_same_bins_whatever_the_flank(built, tmp_path):
    short = replace(OPTIONS, flank=30, gap=250)
    make_dataset(built["genome"], built["sources"], tmp_path / "short", short)
    data = read_dataset(tmp_path / "short")
    assert _rows(data) == _rows(built["data"])
    assert {len(s) for e in data.values() for s in e.sequences} == {160}
    default_gap = replace(OPTIONS, flank=30)  # gap = flank = 30: fewer bins dropped
    manifest = make_dataset(built["genome"], built["sources"], tmp_path / "gap30", default_gap)
    near = sum(c["near_other_split"] for c in manifest["counts"]["bins"].values())
    assert near < sum(c["near_other_split"] for c in built["manifest"]["counts"]["bins"].values())


def test_negatives_all(built, tmp_path):
    options = replace(OPTIONS, negatives="all")
    manifest = make_dataset(built["genome"], built["sources"], tmp_path / "all", options)
    bins = _brute_force_bins(built["records"], built["raw"])
    assert set(_rows(read_dataset(tmp_path / "all"))) == {k for k, v in bins.items() if v[2]}
    assert all(c["negative_kept"] == c["negative"] for c in manifest["counts"]["bins"].values())


def test_rerun_reuses_refuses_or_overwrites(built, tmp_path):
    out = tmp_path / "rerun"
    first = make_dataset(built["genome"], built["sources"], out, OPTIONS)
    shard = out / first["shards"][0]["file"]
    mtime = shard.stat().st_mtime_ns
    assert make_dataset(built["genome"], built["sources"], out, OPTIONS) == first
    assert shard.stat().st_mtime_ns == mtime
    with pytest.raises(
        ConfigError, match=r"other inputs or parameters \(parameters.bin_size 100 -> 200"
    ):
        make_dataset(built["genome"], built["sources"], out, replace(OPTIONS, bin_size=200))
    redone = make_dataset(
        built["genome"], built["sources"], out, replace(OPTIONS, bin_size=200), overwrite=True
    )
    assert redone["parameters"]["bin_size"] == 200


def test_read_dataset_checks_the_folder(built, tmp_path):
    out = Path(shutil.copytree(built["folder"] / "out", tmp_path / "copy"))
    shard = out / "test-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(InputError, match="sha256 differs from the manifest"):
        read_dataset(out)
    (out / "manifest.json").unlink()
    with pytest.raises(InputError, match="no manifest.json"):
        read_dataset(out)


def test_empty_split_and_bad_options_leave_no_folder(built, tmp_path):
    out = tmp_path / "empty"
    options = replace(OPTIONS, validation=("chr1:12000-12500",))  # all mostly N
    with pytest.raises(
        ConfigError, match=r"the validation split has no examples \(5 bins: 5 mostly N"
    ):
        make_dataset(built["genome"], built["sources"], out, options)
    assert not out.exists()
    for bad, message in [
        (replace(OPTIONS, bin_size=0), "bin_size must be at least 1"),
        (replace(OPTIONS, min_overlap=0.0), r"min_overlap must be in \(0, 1\]"),
        (replace(OPTIONS, negatives=-1), "negatives must be a ratio"),
        (replace(OPTIONS, test=()), "no test regions"),
        (replace(OPTIONS, test=("chr7",)), "test chr7: no chromosome 'chr7'"),
        (replace(OPTIONS, test=("chr2:0-9001",)), "empty or outside chr2"),
        (replace(OPTIONS, chromosomes=("chr1", "chr9")), "no chromosome 'chr9'"),
    ]:
        with pytest.raises((ConfigError, InputError), match=message):
            make_dataset(built["genome"], built["sources"], out, bad)
        assert not out.exists()


def test_chromosomes_option_bins_only_those(built, tmp_path):
    options = replace(OPTIONS, chromosomes=("chr1",), test=("chr1:24000-30000",))
    manifest = make_dataset(built["genome"], built["sources"], tmp_path / "chr1", options)
    assert [c["name"] for c in manifest["chromosomes"]] == ["chr1"]
    data = read_dataset(tmp_path / "chr1")
    assert {str(c) for e in data.values() for c in e.columns["chrom"]} == {"chr1"}
    a = next(t for t in manifest["tracks"] if t["name"] == "A")
    assert a["peaks"]["other_chromosome"] == sum(c != "chr1" for c, _, _ in built["raw"]["A"])


@pytest.mark.realdata
def test_real_dataset(shared_data, tmp_path):
    """All 16 real tracks on the hg38 chr2 excerpt, every bin kept: windows against pyfaidx
    on a decompressed copy, labels against per-base coverage read from the files by hand."""
    import csv
    import io

    import pyfaidx

    chromatin = shared_data / "chromatin"
    ensembl = chromatin / "ensembl_regulatory_GRCh38"
    genome = shared_data / "genome" / "hg38_chr2_1-2333275.fa.gz"
    sources = [
        TrackSource.parse(f"CTCF={chromatin / 'ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz'}"),
        TrackSource.column(chromatin / "nott2019_brain_peaks_hg38_chr2_1-2333275.bed"),
        *(
            TrackSource.parse(
                f"{k}={ensembl / 'train' / f'{k}.csv.gz'},{ensembl / 'test' / f'{k}.csv.gz'}"
            )
            for k in ("enhancer", "ocr", "promoter")
        ),
    ]
    options = DatasetOptions(
        test=("chr2:1980000-2333275",), validation=("chr2:1747000-1980000",), negatives="all"
    )
    manifest = make_dataset(genome, sources, tmp_path / "out", options)
    data = read_dataset(tmp_path / "out")
    length = 2_333_275
    peaks: dict[str, list[tuple[int, int]]] = {}
    for line in (
        gzip.decompress((chromatin / "ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz").read_bytes())
        .decode()
        .splitlines()
    ):
        chrom, start, end = line.split("\t")[:3]
        if chrom == "chr2":
            peaks.setdefault("CTCF", []).append((int(start), int(end)))
    for line in (
        (chromatin / "nott2019_brain_peaks_hg38_chr2_1-2333275.bed").read_text().splitlines()[1:]
    ):
        chrom, start, end, track = line.split("\t")[:4]
        peaks.setdefault(track, []).append((int(start), int(end)))
    for kind in ("enhancer", "ocr", "promoter"):
        for split in ("train", "test"):
            text = gzip.decompress((ensembl / split / f"{kind}.csv.gz").read_bytes()).decode()
            for row in csv.DictReader(io.StringIO(text)):
                if row["region"] == "chr2":
                    peaks.setdefault(kind, []).append((int(row["start"]), int(row["end"])))
    features = data["train"].features.ids
    assert len(features) == 16 and sorted(features) == sorted(peaks)
    coverage = {}
    for track, intervals in peaks.items():
        covered = np.zeros(length, dtype=bool)
        for start, end in intervals:
            covered[start:end] = True
        coverage[track] = covered
    plain = tmp_path / "chr2.fa"
    plain.write_bytes(gzip.decompress(genome.read_bytes()))
    rows = 0
    with pyfaidx.Fasta(str(plain)) as fasta:
        for split, examples in data.items():
            cols = examples.columns
            for i, sequence in enumerate(examples.sequences):
                start, end = int(cols["start"][i]), int(cols["end"][i])
                a, b = int(cols["window_start"][i]), int(cols["window_end"][i])
                assert sequence == _pyfaidx_window(fasta, "chr2", a, b)
                expected = [int(coverage[t][start:end].sum() >= 100) for t in features]
                assert examples.labels[i].tolist() == expected, (start, split)
                rows += 1
    last = data["test"].columns["window_end"].max()
    assert last > length  # the last bins' windows are N-padded
    assert rows == 2_333_275 // 200 - 50 - sum(
        c["near_other_split"] for c in manifest["counts"]["bins"].values()
    )
    ctcf = next(t for t in manifest["tracks"] if t["name"] == "CTCF")["peaks"]
    assert ctcf["used"] == 56 and ctcf["peaks"] == 51_979


def test_an_interrupted_run_resumes_to_the_same_bytes(built, tmp_path, monkeypatch):
    import dnabird.data.peak_dataset as module

    written = []
    real_write = module.write_parquet

    def write_two_then_fail(path, examples):
        if len(written) == 2:
            raise RuntimeError("killed")
        written.append(Path(path).name)
        return real_write(path, examples)

    out = tmp_path / "resumed"
    monkeypatch.setattr(module, "write_parquet", write_two_then_fail)
    with pytest.raises(RuntimeError, match="killed"):
        make_dataset(built["genome"], built["sources"], out, OPTIONS)
    assert not (out / "manifest.json").exists() and (out / written[0]).exists()
    with pytest.raises(InputError, match="no manifest.json"):
        read_dataset(out)
    kept = {name: (out / name).stat().st_mtime_ns for name in written}
    monkeypatch.setattr(module, "write_parquet", real_write)
    manifest = make_dataset(built["genome"], built["sources"], out, OPTIONS)
    assert {name: (out / name).stat().st_mtime_ns for name in written} == kept  # not rewritten
    assert [s["sha256"] for s in manifest["shards"]] == [
        s["sha256"] for s in built["manifest"]["shards"]
    ]
