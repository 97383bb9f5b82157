"""Tests of dnabird.genome.regions: Genome.fetch against pyfaidx and hand-computed values."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pyfaidx
import pytest
from Bio.Seq import Seq

from dnabird.errors import InputError
from dnabird.genome.regions import Genome

from .conftest import read_plain_fasta
from .test_fasta import _gzip

EXCERPT = "genome/hg38_chr2_1-2333275.fa.gz"
LENGTH = 2_333_275
IUPAC = "RYKMSWBDHVrykmswbdhv"


@pytest.fixture(scope="module")
def excerpt(shared_data, tmp_path_factory):
    """Our Genome on the read-only excerpt in place (its samtools index) and pyfaidx on a
    copy that it indexes itself."""
    copy = Path(shutil.copy(shared_data / EXCERPT, tmp_path_factory.mktemp("ref") / "ref.fa.gz"))
    reference = pyfaidx.Fasta(str(copy), as_raw=True)
    with Genome(shared_data / EXCERPT, keep_case=True) as genome:
        yield genome, reference["chr2"]
    reference.close()


@pytest.mark.realdata
def test_fetch_equals_pyfaidx_inside_the_chromosome(excerpt, shared_data):
    genome, reference = excerpt
    assert genome.lengths == {"chr2": LENGTH} and genome.chromosomes == ["chr2"]
    rng = np.random.default_rng(0)
    for _ in range(200):
        start = int(rng.integers(0, LENGTH))
        end = min(LENGTH, start + int(rng.integers(0, 5000)))
        assert genome.fetch("chr2", start, end) == reference[start:end], (start, end)
    with Genome(shared_data / EXCERPT) as upper:  # default: uppercase ACGTN
        region = reference[100_000:101_000]
        assert any(c.islower() for c in region)  # soft-masked repeats in the file
        assert upper.fetch("chr2", 100_000, 101_000) == region.upper()
        assert genome.fetch("chr2", 100_000, 101_000) == region  # keep_case keeps them


@pytest.mark.realdata
def test_fetch_pads_with_n_beyond_both_ends(excerpt):
    genome, reference = excerpt
    assert genome.fetch("chr2", 0, 10_010) == "N" * 10_000 + reference[10_000:10_010]
    assert genome.fetch("chr2", -5, 10_003) == "N" * 10_005 + reference[10_000:10_003]
    assert genome.fetch("chr2", LENGTH - 4, LENGTH + 6) == reference[LENGTH - 4 :] + "N" * 6
    assert genome.fetch("chr2", -3, LENGTH + 2) == "N" * 3 + reference[:] + "NN"
    assert genome.fetch("chr2", LENGTH + 10, LENGTH + 20) == "N" * 10
    assert genome.fetch("chr2", -20, -10) == "N" * 10
    assert genome.fetch("chr2", 500, 500) == ""


@pytest.mark.realdata
def test_minus_strand_is_the_reverse_complement(excerpt):
    genome, reference = excerpt
    for start, end in [(123_456, 124_000), (LENGTH - 100, LENGTH + 7), (-4, 10_020)]:
        forward = genome.fetch("chr2", start, end)
        assert genome.fetch("chr2", start, end, "-") == str(Seq(forward).reverse_complement())
        assert genome.fetch("chr2", start, end, ".") == forward
    expected = str(Seq(reference[200_000:200_050]).reverse_complement())
    assert genome.fetch("chr2", 200_000, 200_050, "-") == expected


@pytest.mark.realdata
def test_fetch_reads_only_the_region(excerpt, monkeypatch):
    genome, _ = excerpt
    asked = []
    real = genome._reader._faidx.fetch
    monkeypatch.setattr(
        genome._reader._faidx, "fetch", lambda n, s, e: asked.append((n, s, e)) or real(n, s, e)
    )
    genome.fetch("chr2", 1_000_000, 1_000_100, "-")
    genome.fetch("chr2", LENGTH - 10, LENGTH + 90)
    assert asked == [("chr2", 1_000_001, 1_000_100), ("chr2", LENGTH - 9, LENGTH)]  # 1-based


def test_fetch_on_a_small_fasta_maps_ambiguity_codes(data_file, tmp_path):
    path = _gzip(data_file("tiny.fa"))  # plain gzip: read through a cached copy
    records = read_plain_fasta(data_file("tiny.fa"))
    with Genome(path, cache_dir=tmp_path / "cache") as genome:
        assert genome.chromosomes == list(records)
        for name, sequence in records.items():
            upper = "".join("N" if c in IUPAC else c.upper() for c in sequence)
            assert genome.fetch(name, 0, len(sequence)) == upper
            assert genome.fetch(name, 3, 17, "-") == str(Seq(upper[3:17]).reverse_complement())
        kept = Genome(path, cache_dir=tmp_path / "cache", keep_case=True)
        assert kept.fetch("chr1", 0, len(records["chr1"])).count("n") > 0
        kept.close()


def test_a_pickled_genome_reopens_the_file_with_its_settings(data_file, tmp_path):
    path = _gzip(data_file("tiny.fa"))
    with Genome(path, cache_dir=tmp_path / "cache", keep_case=True) as genome:
        cached = sorted((tmp_path / "cache").rglob("*"))
        copy = pickle.loads(pickle.dumps(genome))
        assert copy.path == genome.path and copy.keep_case and copy.lengths == genome.lengths
        assert copy._reader is not genome._reader  # its own file handles
        for name, length in genome.lengths.items():
            assert copy.fetch(name, 0, length) == genome.fetch(name, 0, length)
        copy.close()
        assert cached and sorted((tmp_path / "cache").rglob("*")) == cached  # its cache reused


def _error(genome: Genome, *args) -> str:
    with pytest.raises(InputError) as info:
        genome.fetch(*args)
    message = str(info.value)
    assert "\n" not in message and str(genome.path) in message
    return message


def test_unknown_chromosome_and_bad_regions_are_one_line_errors(data_file, tmp_path):
    with Genome(data_file("tiny.fa"), cache_dir=tmp_path / "cache") as genome:
        message = _error(genome, "1", 0, 10)
        assert "no chromosome '1'" in message and "chr1, chr2" in message
        assert "did you mean 'chr1'?" in message
        assert "no chromosome 'scaffold_9'" in _error(genome, "scaffold_9", 0, 10)
        assert "start > end" in _error(genome, "chr1", 20, 10)
        assert "strand must be" in _error(genome, "chr1", 0, 10, "forward")


def test_bad_fasta_is_reported_when_opening(data_file, tmp_path):
    with pytest.raises(InputError, match="record 'chr2', line 6: invalid sequence character"):
        Genome(data_file("bad_char.fa"), cache_dir=tmp_path / "cache")
    with pytest.raises(InputError, match="FASTA file not found"):
        Genome(tmp_path / "absent.fa", cache_dir=tmp_path / "cache")


def test_cache_that_cannot_be_written_is_one_line(data_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write the FASTA index cache"):
        Genome(data_file("tiny.fa"), cache_dir=blocker / "cache")


def test_reader_is_opened_once_per_genome(data_file, tmp_path, monkeypatch):
    opened = []
    real = pyfaidx.Faidx

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pyfaidx, "Faidx", counting)
    with Genome(data_file("tiny.fa"), cache_dir=tmp_path / "cache") as genome:
        for start in range(0, 200, 10):
            genome.fetch("chr1", start, start + 30)
            genome.fetch("chr2", start, start + 5, "-")
    assert len(opened) == 1
