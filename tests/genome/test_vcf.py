"""Tests of dnabird.genome.vcf: kinds and coordinates, multi-allelic splitting, INFO fields,
unsupported alleles, gzip/bgzip, BCF refusal and one-line errors naming FILE:LINE."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dnabird.errors import InputError
from dnabird.genome.vcf import Variant, iter_vcf, read_vcf

HEADER = (
    "##fileformat=VCFv4.2\n"
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency, per ALT">\n'
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP member">\n'
    '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequences">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tsample1\n"
)
RECORDS = (
    "chr1\t10\trs1\tA\tG\t50\tPASS\tAF=0.1;DP=30;DB\tGT\t0/1\n"
    "chr1\t20\t.\tc\tcTT\t.\t.\tDP=12\n"
    "\n"
    "chr2\t5\t.\tACGT\tA\t.\t.\t.\n"
    "chr2\t100\tmnv1\tAC\tGT\t.\t.\tAF=0.5\n"
    "chr3\t7\tmulti\tG\tA,TT\t.\t.\tAF=0.2,0.3;DP=40;CSQ=x,y\n"
)
GOOD = HEADER + RECORDS  # records on lines 7, 8, 10, 11, 12


def _write(tmp_path: Path, text: str, name: str = "calls.vcf") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def test_kinds_and_coordinates(tmp_path):
    variants = read_vcf(_write(tmp_path, GOOD))
    summary = [(v.chrom, v.pos, v.id, v.ref, v.alt, v.kind, v.start, v.end) for v in variants]
    assert summary == [
        ("chr1", 10, "rs1", "A", "G", "snv", 9, 10),
        ("chr1", 20, ".", "C", "CTT", "insertion", 19, 20),
        ("chr2", 5, ".", "ACGT", "A", "deletion", 4, 8),
        ("chr2", 100, "mnv1", "AC", "GT", "mnv", 99, 101),
        ("chr3", 7, "multi", "G", "A", "snv", 6, 7),
        ("chr3", 7, "multi", "G", "TT", "insertion", 6, 7),
    ]
    assert [v.line for v in variants] == [7, 8, 10, 11, 12, 12]
    assert all(v.unsupported is None and v.info == {} for v in variants)


def test_multi_allelic_record_is_split_with_per_alt_info(tmp_path):
    path = _write(tmp_path, GOOD)
    variants = read_vcf(path, info_fields=["AF", "DP", "DB", "CSQ", "ABSENT"])
    first, second = variants[-2:]
    assert (first.alt, first.alt_index, second.alt, second.alt_index) == ("A", 1, "TT", 2)
    assert first.info == {"AF": "0.2", "DP": "40", "CSQ": "x,y"}  # Number=. kept whole
    assert second.info == {"AF": "0.3", "DP": "40", "CSQ": "x,y"}
    assert variants[0].info == {"AF": "0.1", "DP": "30", "DB": ""}  # a flag reads as ''
    assert variants[2].info == {}  # INFO '.'
    assert [v.alt_index for v in variants[:-2]] == [1, 1, 1, 1]


def test_per_alt_split_needs_the_number_a_declaration_and_matching_count(tmp_path):
    text = (
        '##INFO=<ID=AF,Number=A,Type=Float,Description="x">\n'
        + HEADER.splitlines(keepends=True)[-1]
        + "chr1\t5\t.\tA\tC,G\t.\t.\tAF=0.1,0.2,0.3;AC=3,4\n"  # 3 AF values for 2 ALTs
    )
    variants = read_vcf(_write(tmp_path, text), info_fields=("AF", "AC"))
    assert [v.info for v in variants] == [{"AF": "0.1,0.2,0.3", "AC": "3,4"}] * 2


def test_unsupported_alleles_are_kept_and_say_why(tmp_path):
    records = (
        "chr1\t10\tsv\tA\t<DEL>\t.\t.\tSVTYPE=DEL\n"
        "chr1\t20\tbnd\tg\tg]chr2:300]\t.\t.\t.\n"
        "chr1\t30\tspan\tC\tT,*\t.\t.\t.\n"
        "chr1\t40\tnoalt\tT\t.\t.\t.\t.\n"
        "chr1\t50\tiupac\tR\tA\t.\t.\t.\n"
        "chr1\t60\tgvcf\tG\t<*>\t.\t.\t.\n"
    )
    variants = read_vcf(_write(tmp_path, HEADER + records))
    reasons = {(v.id, v.alt): v.unsupported for v in variants}
    assert reasons[("sv", "<DEL>")].startswith("symbolic ALT <DEL>")
    assert reasons[("bnd", "g]chr2:300]")].startswith("breakend")  # kept as written
    assert reasons[("span", "T")] is None
    assert reasons[("span", "*")].startswith("'*' allele")
    assert reasons[("noalt", ".")].startswith("missing ALT")
    assert reasons[("iupac", "A")] == "REF 'R' has characters outside ACGTN"
    assert reasons[("gvcf", "<*>")].startswith("symbolic ALT <*>")
    assert [v.kind for v in variants] == [
        "other",
        "other",
        "snv",
        "other",
        "other",
        "other",
        "other",
    ]
    assert variants[1].ref == "G"


def test_gzip_and_bgzip_read_like_plain(tmp_path):
    plain = read_vcf(_write(tmp_path, GOOD), info_fields=["AF"])
    gzipped = read_vcf(_write(tmp_path, GOOD, "calls.vcf.gz"), info_fields=["AF"])
    bgzip = tmp_path / "calls.bgz.vcf.gz"  # bgzip: several gzip members, one after another
    bgzip.write_bytes(gzip.compress(HEADER.encode()) + gzip.compress(RECORDS.encode()))
    assert len(plain) == 6
    assert gzipped == plain
    assert read_vcf(bgzip, info_fields=["AF"]) == plain


@pytest.mark.parametrize("compress", [False, True])
def test_bcf_is_refused_with_the_conversion_command(tmp_path, compress):
    data = b"BCF\x02\x02" + b"\x10\x00\x00\x00##fileformat=VCFv4.2\n\x00" + bytes(range(256))
    path = tmp_path / "calls.bcf"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(InputError) as info:
        read_vcf(path)
    message = str(info.value)
    assert "BCF" in message and f"bcftools view {path} -Oz -o {path}.vcf.gz" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (HEADER + "chr1\tten\t.\tA\tG\t.\t.\t.\n", 7, "POS 'ten' is not a positive integer"),
        (HEADER + "chr1\t0\t.\tA\tG\t.\t.\t.\n", 7, "POS '0' is not a positive integer"),
        (HEADER + "chr1\t-3\t.\tA\tG\t.\t.\t.\n", 7, "POS '-3' is not a positive integer"),
        (HEADER + "chr1\t5\t.\tA\tG\t.\t.\n", 7, "expected at least 8 tab-separated columns"),
        (HEADER + "chr1 5 . A G . . .\n", 7, "found 1"),
        (HEADER + "chr1\t5\t.\t\tG\t.\t.\t.\n", 7, "empty REF"),
        (HEADER + "\t5\t.\tA\tG\t.\t.\t.\n", 7, "empty chromosome name"),
        (HEADER + "chr1\t5\t.\tA\tG,\t.\t.\t.\n", 7, "empty allele in ALT 'G,'"),
        ("chr1\t5\t.\tA\tG\t.\t.\t.\n", 1, "record before the #CHROM header line"),
        ("##fileformat=VCFv4.2\nchr1\t5\t.\tA\tG\t.\t.\t.\n" + HEADER, 2, "record before"),
        ("##x\n#CHROM POS ID REF ALT QUAL FILTER INFO\n", 2, "must start with the tab-sep"),
        ("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\n", 1, "found '#CHROM\\tPOS"),
        (GOOD + HEADER, 13, "header line after the #CHROM line"),
    ],
)
def test_malformed_lines_are_one_error_naming_file_and_line(tmp_path, text, line, expected):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_vcf(path, allow_empty=True)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and expected in message, message
    assert "\n" not in message


def test_iter_vcf_yields_the_records_before_an_error(tmp_path):
    records = iter_vcf(_write(tmp_path, HEADER + "chr1\t5\t.\tA\tG\t.\t.\t.\nchr1\tx\n"))
    assert next(records).pos == 5
    with pytest.raises(InputError, match=r"calls.vcf:8: "):
        next(records)


def test_binary_truncated_empty_and_missing_files(tmp_path):
    truncated = tmp_path / "calls.vcf.gz"
    truncated.write_bytes(gzip.compress((HEADER + RECORDS * 50).encode())[:60])
    with pytest.raises(InputError, match=r"calls.vcf.gz: unreadable gzip data \("):
        read_vcf(truncated)
    binary = _write(tmp_path, HEADER, "binary.vcf")
    binary.write_bytes(HEADER.encode() + b"chr1\t5\t.\tA\tG\t.\t.\t\xff\xfe\n")
    with pytest.raises(InputError, match=r"binary.vcf:7: not text"):
        read_vcf(binary)
    for text in ("", HEADER):
        empty = _write(tmp_path, text, "empty.vcf")
        with pytest.raises(InputError, match=r"empty.vcf: no variants"):
            read_vcf(empty)
        assert read_vcf(empty, allow_empty=True) == []
    with pytest.raises(InputError, match="VCF file not found"):
        read_vcf(tmp_path / "absent.vcf")
    with pytest.raises(TypeError, match="info_fields"):
        read_vcf(_write(tmp_path, GOOD), info_fields="AF")


def test_variants_compare_and_hash_as_values():
    snv = Variant("chr1", 10, ".", "A", "G", 1, 3, {"AF": "0.1"})
    same = Variant("chr1", 10, ".", "A", "G", 1, 3, {"AF": "0.1"})
    assert snv == same and len({snv, same}) == 1  # hashable although info is a dict
    assert snv != Variant("chr1", 10, ".", "A", "G", 1, 3, {})
