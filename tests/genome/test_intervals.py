"""Tests of dnabird.genome.intervals: BED3..BED6+, narrowPeak, and one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dnabird.errors import InputError
from dnabird.genome.intervals import Interval, iter_bed, read_bed

GOOD = (
    "track name=peaks description='test'\n"
    "browser position chr1:1-1000\n"
    "# a comment\n"
    "\n"
    "chr1\t0\t100\n"
    "chr1\t150\t200\tpeak2\n"
    "chr2\t10\t20\tpeak3\t7.5\n"
    "chrX\t5\t5\tinsertion\t.\t-\n"
    "chr3 300 400 spaced 0 +\r\n"
    "chr4\t1\t9\tbed12\t1000\t.\t1\t9\t0\t2\t3,3\t0,5\n"
)


def _write(tmp_path: Path, text: str, name: str = "regions.bed") -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["regions.bed", "regions.bed.gz"])
def test_reads_bed3_to_bed12_skipping_headers(tmp_path, name):
    intervals = read_bed(_write(tmp_path, GOOD, name))
    assert intervals == [
        Interval("chr1", 0, 100, line=5),
        Interval("chr1", 150, 200, "peak2", line=6),
        Interval("chr2", 10, 20, "peak3", 7.5, line=7),
        Interval("chrX", 5, 5, "insertion", None, "-", line=8),
        Interval("chr3", 300, 400, "spaced", 0.0, "+", line=9),
        Interval("chr4", 1, 9, "bed12", 1000.0, ".", ("1", "9", "0", "2", "3,3", "0,5"), 10),
    ]
    assert intervals[0].length == 100 and intervals[1].label == "chr1:150-200"


def test_fewer_bed_columns_keep_the_rest_raw(tmp_path):
    path = _write(
        tmp_path, "#chrom\tstart\tend\ttrack\thg19_start\thg19_end\nchr2\t5\t9\tA\t1\t5\n"
    )
    with pytest.raises(InputError, match=r"regions.bed:2: strand '5' in column 6"):
        read_bed(path)
    (record,) = read_bed(path, bed_columns=4)
    assert (record.name, record.score, record.strand, record.extra) == ("A", None, ".", ("1", "5"))


def test_narrow_peak_columns_are_checked(tmp_path):
    line = "chr1\t100\t300\t.\t500\t.\t4.8\t-1\t0.03\t98\n"
    (peak,) = read_bed(_write(tmp_path, line, "peaks.narrowPeak.gz"))
    assert peak.extra == ("4.8", "-1", "0.03", "98") and peak.score == 500.0
    bad = _write(tmp_path, line.replace("\t98", "\tsummit"), "bad.narrowPeak")
    with pytest.raises(InputError, match=r"bad.narrowPeak:1: summit offset 'summit'"):
        read_bed(bad)
    short = _write(tmp_path, "chr1\t100\t300\t.\t500\t.\n", "short.narrowPeak")
    with pytest.raises(InputError, match=r"short.narrowPeak:1: a narrowPeak line has 10"):
        read_bed(short)
    assert len(read_bed(short, narrow_peak=False)) == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("chr1\t100", "expected at least 3 columns (chrom, start, end), found 2"),
        ("chr1", "found 1"),
        ("chr1\tabc\t200", "start 'abc' is not an integer"),
        ("chr1\t100\t2e5", "end '2e5' is not an integer"),
        ("chr1\t1.5\t200", "start '1.5' is not an integer"),
        ("chr1\t-5\t200", "start -5 is negative"),
        ("chr1\t100\t-1", "end -1 is negative"),
        ("chr1\t200\t100", "end 100 is before start 200"),
        ("chr1\t100\t200\tname\t0\tplus", "strand 'plus' in column 6"),
        ("chr1\t100\t200\tname\thigh", "score 'high' is not a number"),
        ("chr1\t100\t200\tname\tnan", "score 'nan' is not a number"),
        ("\t100\t200", "empty chromosome name"),
    ],
)
def test_malformed_line_is_one_error_naming_file_and_line(tmp_path, line, expected):
    path = _write(tmp_path, "track name=x\nchr1\t0\t10\n\n" + line + "\nchr1\t0\t5\n")
    with pytest.raises(InputError) as info:
        read_bed(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: ") and expected in message, message
    assert "\n" not in message


def test_iter_bed_yields_the_lines_before_an_error(tmp_path):
    records = iter_bed(_write(tmp_path, "chr1\t0\t10\nchr1\t20\n"))
    assert next(records).end == 10
    with pytest.raises(InputError, match=r"regions.bed:2: "):
        next(records)


def test_binary_empty_and_missing_files(tmp_path):
    binary = tmp_path / "image.bed"
    binary.write_bytes(b"chr1\t0\t10\n\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    with pytest.raises(InputError, match=r"image.bed:2: not text"):
        read_bed(binary)
    corrupt = tmp_path / "corrupt.bed.gz"
    corrupt.write_bytes(gzip.compress(b"chr1\t0\t10\n" * 100)[:30])
    with pytest.raises(InputError, match="unreadable gzip data"):
        read_bed(corrupt)
    empty = _write(tmp_path, "track name=none\n# nothing\n")
    with pytest.raises(InputError, match="no intervals"):
        read_bed(empty)
    assert read_bed(empty, allow_empty=True) == []
    with pytest.raises(InputError, match="BED file not found"):
        read_bed(tmp_path / "absent.bed")


@pytest.mark.realdata
def test_real_peak_files(shared_data):
    chromatin = shared_data / "chromatin"
    peaks = read_bed(chromatin / "ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz")
    assert len(peaks) == 51_979
    in_excerpt = [p for p in peaks if p.chrom == "chr2" and p.end <= 2_333_275]
    assert len(in_excerpt) == 56
    brain = read_bed(chromatin / "nott2019_brain_peaks_hg38_chr2_1-2333275.bed", bed_columns=4)
    assert len(brain) == 451 and sum(p.name == "H3K27ac_NeuN" for p in brain) == 222
    assert all(int(p.extra[0]) < int(p.extra[1]) for p in brain)  # hg19 start, end kept raw


# ----------------------------------------------------------------------------- interval CSV
def test_interval_csv_reads_genomic_benchmarks_style(tmp_path):
    from dnabird.genome.intervals import iter_interval_csv

    text = "id,Region,start,end,strand\n0,chr2,10,20,\n\n1,chr1,5,9,-\n2,chrX,0,0,+\n"
    for name in ("peaks.csv", "peaks.csv.gz"):
        records = list(iter_interval_csv(_write(tmp_path, text, name)))
        assert records == [
            Interval("chr2", 10, 20, "0", None, ".", (), 2),
            Interval("chr1", 5, 9, "1", None, "-", (), 4),
            Interval("chrX", 0, 0, "2", None, "+", (), 5),
        ]
    minimal = _write(tmp_path, "end,chrom,start,extra\n30,chr3,25,x\n", "min.csv")
    assert list(iter_interval_csv(minimal)) == [Interval("chr3", 25, 30, line=2)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chr,begin,end\nchr1,1,2\n", ":1: no 'start' column"),
        ("region,start,end\nchr1,1,2\nchr1,x,2\n", ":3: start 'x' is not an integer"),
        ("region,start,end\nchr1,1,2\nchr1,-4,2\n", ":3: start -4 is negative"),
        ("region,start,end\nchr1,1,2\nchr1,9,2\n", ":3: end 2 is before start 9"),
        ("region,start,end\nchr1,1,2\nchr1,9\n", ":3: 2 field(s)"),
        ("region,start,end\nchr1,1,2\n,1,2\n", ":3: empty chromosome name"),
        ("region,start,end,strand\nchr1,1,2,+\nchr1,1,2,*\n", ":3: strand '*'"),
        ('region,start,end\nchr1,1,2\n"chr1,1,2\n', ":3: malformed CSV"),
        ("", ": empty file"),
    ],
)
def test_interval_csv_errors_name_file_and_line(tmp_path, text, expected):
    from dnabird.genome.intervals import iter_interval_csv

    path = _write(tmp_path, text, "peaks.csv")
    with pytest.raises(InputError) as info:
        list(iter_interval_csv(path))
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message, message
    assert "\n" not in message


@pytest.mark.realdata
def test_real_interval_csv(shared_data):
    from dnabird.genome.intervals import iter_interval_csv

    folder = shared_data / "chromatin" / "ensembl_regulatory_GRCh38"
    counts = {}
    for kind in ("enhancer", "ocr", "promoter"):
        records, rows = [], 0
        for split in ("train", "test"):
            path = folder / split / f"{kind}.csv.gz"
            records += iter_interval_csv(path)
            rows += len(gzip.decompress(path.read_bytes()).splitlines()) - 1  # less the header
        assert len(records) == rows
        assert all(r.strand == "." and 71 <= r.length <= 802 for r in records)
        counts[kind] = sum(r.chrom == "chr2" and r.end <= 2_333_275 for r in records)
    assert counts == {"enhancer": 110, "ocr": 92, "promoter": 58}
