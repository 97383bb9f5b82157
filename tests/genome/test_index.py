"""Tests of dnabird.genome.index: readable sources, the .gzi format, never touching the
user's index files, and the per-file cache used by Genome."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pyfaidx
import pytest
from Bio import bgzf

from dnabird.genome import fasta as fasta_module
from dnabird.genome import index as index_module
from dnabird.genome.fasta import scan_fasta
from dnabird.genome.index import BGZF_EOF, accepted_gzi, indexed_source, prepare_source
from dnabird.genome.regions import IndexedFasta

from .conftest import read_plain_fasta
from .test_fasta import _bgzip, _gzip

EXCERPT = "genome/hg38_chr2_1-2333275.fa.gz"


def _read_all(source) -> dict[str, str]:
    with IndexedFasta(source) as reader:
        return {name: reader.record(name).decode() for name in reader.lengths}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file in ``folder``."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _random_fasta(path: Path, lengths: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as out:
        for name, length in lengths.items():
            sequence = "".join(rng.choice(list("ACGTacgt"), length))
            out.write(f">{name}\n")
            out.writelines(sequence[i : i + 60] + "\n" for i in range(0, length, 60))
    return path


@pytest.mark.parametrize("compress", [None, _gzip, _bgzip])
def test_every_source_reads_back_every_record(data_file, compress, tmp_path):
    plain = data_file("tiny.fa")
    path = compress(plain) if compress else plain
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert _read_all(source) == read_plain_fasta(plain)


@pytest.mark.parametrize("compress", [None, _gzip])
def test_ragged_lines_are_read_through_a_normalised_copy(data_file, tmp_path, compress):
    plain = data_file("ragged.fa")
    path = compress(plain) if compress else plain
    scan = scan_fasta(path)
    assert not scan.regular_lines
    source = prepare_source(scan, tmp_path / "cache")
    assert Path(source.fasta).parent == tmp_path / "cache"
    assert _read_all(source) == read_plain_fasta(plain)


def test_new_indexes_go_to_the_cache_never_beside_the_fasta(data_file, tmp_path):
    path = _bgzip(data_file("tiny.fa"))
    before = _snapshot(path.parent)
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert Path(source.fai).parent == tmp_path / "cache" and source.gzi
    assert Path(source.gzi).parent == tmp_path / "cache"
    assert _snapshot(path.parent) == before
    assert _read_all(source)["chr2"] == read_plain_fasta(data_file("tiny.fa"))["chr2"]


def test_a_wrong_index_beside_the_fasta_keeps_its_bytes_and_mtime(data_file, tmp_path):
    """Before: a stale .fai beside the FASTA was overwritten in place."""
    path = data_file("tiny.fa")
    Path(f"{path}.fai").write_text("chr1\t5\t6\t10\t11\n")  # wrong length
    before = _snapshot(path.parent)
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert Path(source.fai).parent == tmp_path / "cache"
    assert _snapshot(path.parent) == before
    assert _read_all(source)["chr1"] == read_plain_fasta(path)["chr1"]


def _multi_block_bgzip(folder: Path) -> Path:
    """A bgzip FASTA of several BGZF blocks (Bio.bgzf, 64 KiB per block) and its plain text."""
    plain = _random_fasta(folder / "genome.fa", {"chrA": 150_000, "chrB": 70_000, "chrC": 999})
    target = folder / "genome.fa.gz"
    with bgzf.BgzfWriter(str(target), "wb") as out:
        out.write(plain.read_bytes())
    return target


def test_gzi_is_what_htslib_writes_and_pyfaidx_differs_only_by_the_eof_entry(tmp_path):
    path = _multi_block_bgzip(tmp_path)
    scan = scan_fasta(path)
    assert len(scan.bgzf_blocks) >= 4
    pyfaidx.Fasta(str(path)).close()  # pyfaidx writes its own .fai and .gzi beside the file
    by_pyfaidx = Path(f"{path}.gzi").read_bytes()
    ours = scan.gzi_bytes()
    (count,) = struct.unpack("<Q", ours[:8])
    assert count == len(scan.bgzf_blocks)
    # htslib (samtools faidx / bgzip -r) records every block after the first, the empty
    # end-of-file block included; pyfaidx (and bgzip -i) leave that last entry out.
    assert ours[8:-16] == by_pyfaidx[8:] and struct.unpack("<Q", by_pyfaidx[:8])[0] == count - 1
    eof_offset, eof_start = struct.unpack("<QQ", ours[-16:])
    assert eof_offset == path.stat().st_size - len(BGZF_EOF)
    assert eof_start == (tmp_path / "genome.fa").stat().st_size
    assert accepted_gzi(scan) == [ours, by_pyfaidx]
    assert Path(f"{path}.fai").read_bytes() == scan.fai_text().encode()


def test_an_index_pyfaidx_made_beside_the_fasta_is_used_untouched(tmp_path):
    """Before: a pyfaidx- or bgzip -i-made .gzi was judged stale and overwritten."""
    path = _multi_block_bgzip(tmp_path)
    pyfaidx.Fasta(str(path)).close()
    before = _snapshot(tmp_path)
    source = prepare_source(scan_fasta(path), tmp_path / "cache")
    assert (source.fai, source.gzi) == (f"{path}.fai", f"{path}.gzi")
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "cache").exists()
    expected = read_plain_fasta(tmp_path / "genome.fa")
    with IndexedFasta(source) as reader:
        assert reader.read("chrA", 65_000, 66_500).decode() == expected["chrA"][65_000:66_500]
        assert reader.record("chrC").decode() == expected["chrC"]


@pytest.mark.realdata
def test_samtools_index_of_the_excerpt_is_computed_and_used_untouched(shared_data, tmp_path):
    fasta = shared_data / EXCERPT
    scan = scan_fasta(fasta)
    assert scan.fai_text().encode() == Path(f"{fasta}.fai").read_bytes()
    assert scan.gzi_bytes() == Path(f"{fasta}.gzi").read_bytes()  # real, 37 blocks
    for suffix in ("", ".fai", ".gzi"):  # a user's copy, samtools indexes beside it
        shutil.copy2(f"{fasta}{suffix}", tmp_path / f"excerpt.fa.gz{suffix}")
    copy = tmp_path / "excerpt.fa.gz"
    os.utime(copy, ns=(0, Path(f"{copy}.gzi").stat().st_mtime_ns + 10**9))  # FASTA now newer
    before = _snapshot(tmp_path)
    source = prepare_source(scan_fasta(copy), tmp_path / "cache")
    assert (source.fai, source.gzi) == (f"{copy}.fai", f"{copy}.gzi")  # content checked
    assert _snapshot(tmp_path) == before


def test_indexed_source_trusts_a_current_index_beside_the_fasta(tmp_path, monkeypatch):
    path = _multi_block_bgzip(tmp_path)
    pyfaidx.Fasta(str(path)).close()
    monkeypatch.setattr(index_module, "scan_fasta", _no_scan)
    source = indexed_source(path, tmp_path / "cache")
    assert (source.fai, source.gzi) == (f"{path}.fai", f"{path}.gzi")
    os.utime(path, ns=(0, Path(source.gzi).stat().st_mtime_ns + 10**9))  # FASTA now newer
    scans = []
    monkeypatch.setattr(index_module, "scan_fasta", lambda p: scans.append(p) or scan_fasta(p))
    again = indexed_source(path, tmp_path / "cache")
    assert scans == [path]  # not trusted by date: scanned, and the content still matches
    assert again == source


def _no_scan(path):
    raise AssertionError(f"{path} was scanned")


def test_indexed_source_fills_and_reuses_a_cache_entry_per_file(data_file, tmp_path, monkeypatch):
    path = _gzip(data_file("tiny.fa"))  # plain gzip: needs a decompressed copy
    before = _snapshot(path.parent)
    scans = []
    monkeypatch.setattr(
        index_module, "scan_fasta", lambda p: scans.append(p) or fasta_module.scan_fasta(p)
    )
    first = indexed_source(path, tmp_path / "cache")
    again = indexed_source(path, tmp_path / "cache")
    assert first == again and len(scans) == 1
    assert Path(first.fasta).parent.parent == tmp_path / "cache"
    assert _read_all(again) == read_plain_fasta(data_file("tiny.fa"))
    path.write_bytes(path.read_bytes())  # rewritten: another mtime, scanned again
    indexed_source(path, tmp_path / "cache")
    assert len(scans) == 2
    assert set(_snapshot(path.parent)) == set(before)  # nothing new beside the input
