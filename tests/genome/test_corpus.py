"""Tests of dnabird.genome.corpus: unit tables, shard splitting and writing, the reader."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from Bio.Seq import Seq

from dnabird.errors import ConfigError, InputError
from dnabird.genome.corpus import Corpus, documents_table, split_by_bp, write_shard
from dnabird.genome.cutting import CuttingParams, cut_chromosome, n_runs
from dnabird.genome.fasta import reverse_complement
from dnabird.manifest import new_manifest, write_manifest

SEQUENCE = b"ACGTTGCAAC" * 3 + b"NNNNNNNN" + b"acgtACGTnnGGCCAATTGG"


def _cut():
    params = CuttingParams(min_sentence=4, max_sentence=7, min_doc=2, max_doc=3, max_n_run=5)
    return cut_chromosome(len(SEQUENCE), *n_runs(SEQUENCE), params, np.random.default_rng(0))


def test_table_rows_match_the_cut_on_both_strands():
    cut = _cut()
    table = documents_table([(SEQUENCE, cut, "chrT", 3)], both_strands=True)
    rows = table.to_pylist()
    assert cut.num_documents >= 3
    assert len(rows) == 2 * cut.num_documents
    for d in range(cut.num_documents):
        forward, reverse = rows[2 * d], rows[2 * d + 1]
        first, last = cut.doc_offsets[d], cut.doc_offsets[d + 1]
        bounds = zip(cut.sentence_starts[first:last], cut.sentence_ends[first:last], strict=True)
        expected = [SEQUENCE[a:b].decode() for a, b in bounds]
        assert forward["sentences"] == expected
        assert forward["doc_id"] == f"chrT:p3:+:{d:06d}"
        assert reverse["doc_id"] == f"chrT:p3:-:{d:06d}"
        assert (forward["start"], forward["end"]) == (reverse["start"], reverse["end"])
        assert forward["pass"] == 3 and forward["strand"] == "+" and reverse["strand"] == "-"
        whole = SEQUENCE[forward["start"] : forward["end"]].decode()
        assert "".join(reverse["sentences"]) == str(Seq(whole).reverse_complement())
        assert reverse["sentences"] == [str(Seq(s).reverse_complement()) for s in expected[::-1]]


def test_a_table_of_several_cuts_is_their_tables_one_after_another():
    other = b"TTGACCA" * 9
    params = CuttingParams(min_sentence=4, max_sentence=7, min_doc=2, max_doc=3, max_n_run=5)
    other_cut = cut_chromosome(len(other), *n_runs(other), params, np.random.default_rng(1))
    parts = [
        (SEQUENCE, _cut(), "chrT", 0),
        (other, other_cut, "chrU", 2),
        (SEQUENCE, _cut(), "chrT", 1),
    ]
    joined = documents_table(parts, both_strands=True)
    separate = [documents_table([part], both_strands=True) for part in parts]
    assert joined.to_pylist() == [row for table in separate for row in table.to_pylist()]
    assert {r["chrom"] for r in joined.to_pylist()} == {"chrT", "chrU"}


def test_a_table_too_large_for_arrow_is_refused(monkeypatch):
    from dnabird.genome import corpus

    monkeypatch.setattr(corpus, "MAX_TABLE_BP", 20)  # instead of wrapping int32 offsets
    with pytest.raises(ConfigError, match="fit one table"):
        documents_table([(SEQUENCE, _cut(), "chrT", 0)])


def test_reverse_complement_keeps_case():
    assert reverse_complement(b"AACGTn") == b"nACGTT"
    assert reverse_complement(b"acgN") == b"Ncgt"


def test_split_by_bp_bounds_each_piece():
    table = documents_table([(SEQUENCE, _cut(), "chrT", 0)])
    for limit in (1, 10, 15, 30, 10_000):
        pieces = split_by_bp(table, limit)
        assert sum(p.num_rows for p in pieces) == table.num_rows
        for piece in pieces:
            piece_bp = sum(r["end"] - r["start"] for r in piece.to_pylist())
            assert piece_bp <= limit or piece.num_rows == 1


def test_write_shard_is_byte_reproducible(tmp_path):
    table = documents_table([(SEQUENCE, _cut(), "chrT", 0)], both_strands=True)
    first = write_shard(table, tmp_path / "a.parquet")
    second = write_shard(table, tmp_path / "b.parquet")
    assert first == second and first["rows"] == table.num_rows
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.read_table(tmp_path / "a.parquet").equals(table)
    assert not list(tmp_path.glob("*.tmp"))


def _corpus_folder(tmp_path):
    table = documents_table([(SEQUENCE, _cut(), "chrT", 0)])
    info = write_shard(table, tmp_path / "shard-00000.parquet")
    shards = [{"file": "shard-00000.parquet", **info}]
    write_manifest(tmp_path, new_manifest("preprocess", {}, shards=shards))
    return table


def test_corpus_reads_documents_in_order(tmp_path):
    table = _corpus_folder(tmp_path)
    corpus = Corpus(tmp_path)
    docs = list(corpus)
    assert len(corpus) == len(docs) == table.num_rows
    assert corpus.shards == [tmp_path / "shard-00000.parquet"]
    for doc, row in zip(docs, table.to_pylist(), strict=True):
        assert (doc.doc_id, doc.chrom, doc.pass_index, doc.strand) == (
            row["doc_id"],
            row["chrom"],
            row["pass"],
            row["strand"],
        )
        assert (doc.start, doc.end, doc.sentences) == (row["start"], row["end"], row["sentences"])
        assert doc.sequence == SEQUENCE[doc.start : doc.end].decode()


def test_corpus_rejects_damaged_folders(tmp_path):
    _corpus_folder(tmp_path)
    shard = tmp_path / "shard-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 differs"):
        Corpus(tmp_path)
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(InputError, match="size differs"):
        Corpus(tmp_path)
    shard.unlink()
    with pytest.raises(InputError, match="missing"):
        Corpus(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["stage"] = "tokenize"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="expected 'preprocess'"):
        Corpus(tmp_path)
