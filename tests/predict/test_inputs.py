"""Windows in bp: FASTA records centred and padded or cut into sliding windows, BED windows
centred on intervals and fetched from the real chr2 excerpt (checked with pyfaidx), and the
rows that cannot be scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnabird.genome.fasta import reverse_complement
from dnabird.predict.inputs import BedWindows, FastaWindows


def _fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    return path


def test_a_short_record_is_centred_and_padded_with_n(tmp_path: Path) -> None:
    fasta = _fasta(tmp_path / "a.fa", {"s": "ACGTA"})
    rows = list(FastaWindows(fasta, window_bp=10).rows())
    assert len(rows) == 1
    # (10 - 5) // 2 = 2 N on the left, 3 on the right; start -2, end 8 in the record
    assert rows[0].ids == (0, "s", -2, 8)
    assert rows[0].sequences == ("NNACGTANNN",)


def test_a_long_record_gives_sliding_windows_with_their_coordinates(tmp_path: Path) -> None:
    sequence = "ACGTTGCAAC" * 2 + "GGG"  # 23 bp
    fasta = _fasta(tmp_path / "a.fa", {"first": "A" * 4, "long": sequence})
    rows = list(FastaWindows(fasta, window_bp=10, stride_bp=4).rows())
    long_rows = [r for r in rows if r.ids[1] == "long"]
    # windows start at 0, 4, 8, 12, 16: 1 + ceil((23 - 10) / 4) = 5, the last padded by 3 N
    assert [r.ids[2:] for r in long_rows] == [(0, 10), (4, 14), (8, 18), (12, 22), (16, 26)]
    assert all(r.ids[0] == 1 for r in long_rows)
    for row in long_rows:
        start, end = row.ids[2:]
        assert row.sequences[0] == (sequence + "NNN")[start:end]
    assert FastaWindows(fasta, 10, 4).count() == len(rows) == 6


def test_adjacent_windows_by_default_and_whole_records_without_a_window(tmp_path: Path) -> None:
    fasta = _fasta(tmp_path / "a.fa", {"r": "ACGT" * 5})
    assert [r.ids[2:] for r in FastaWindows(fasta, 10).rows()] == [(0, 10), (10, 20)]
    whole = list(FastaWindows(fasta, None).rows())
    assert [(r.ids, r.sequences) for r in whole] == [((0, "r", 0, 20), ("ACGT" * 5,))]


def test_bed_windows_equal_the_genome_at_their_coordinates(tmp_path: Path, chr2: Path) -> None:
    import pyfaidx

    bed = tmp_path / "peaks.bed"
    bed.write_text(
        "chr2\t100000\t100500\tp1\t0\t+\n"
        "chr2\t200001\t200100\tp2\t0\t-\n"
        "chr2\t300000\t300001\n"
        "chrX\t10\t20\tp3\t0\t+\n"  # not in the excerpt
        "chr2\t10\t50\tp4\t0\t+\n"  # the window would start before 0
        "chr2\t2333200\t2333275\tp5\t0\t+\n"  # ... or end past the chromosome
    )
    source = BedWindows(bed, chr2, window_bp=300)
    rows = list(source.rows())
    scored = [r for r in rows if r.skipped is None]
    reference = pyfaidx.Fasta(str(chr2), as_raw=True, rebuild=False, build_index=False)
    assert [r.ids[:5] for r in scored] == [
        (0, "chr2", 100100, 100400, "+"),  # centre 100250 - 150
        (1, "chr2", 199900, 200200, "-"),  # centre 200050 - 150
        (2, "chr2", 299850, 300150, "."),
    ]
    for row in scored:
        _, chrom, start, end, strand, unknown = row.ids
        expected = reference[chrom][start:end].upper()
        if strand == "-":
            expected = reverse_complement(expected.encode()).decode()
        assert row.sequences == (expected,)
        assert unknown == ("N" in expected)
    skipped = {r.na_ids[0]: r.skipped for r in rows if r.skipped is not None}
    assert set(skipped) == {3, 4, 5}
    assert "chromosome chrX is not in" in skipped[3]
    assert "extends past the chromosome" in skipped[4]
    assert "extends past the chromosome" in skipped[5]
    assert source.count() == 6


def test_a_stride_without_a_window_is_refused(tmp_path: Path) -> None:
    from dnabird.errors import InputError

    with pytest.raises(InputError, match="--stride-bp needs a window"):
        FastaWindows(tmp_path / "a.fa", None, 5)
