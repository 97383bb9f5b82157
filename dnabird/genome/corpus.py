"""The corpus of pretraining documents: Parquet shards plus ``manifest.json``.

Layout of a corpus folder (interface 1 of the project contracts)::

    manifest.json          "stage": "preprocess"; inputs, parameters, counts, shards
    shard-00000.parquet    pyarrow, zstd; one row per document
    shard-00001.parquet    ...

Columns: ``doc_id`` (string, unique, ``"chr2:p3:+:000017"``), ``chrom`` (string),
``pass`` (int16), ``strand`` (``"+"`` or ``"-"``), ``start``/``end`` (int64, 0-based
half-open on the forward strand; a ``-`` document is the reverse complement of the forward
interval), ``sentences`` (list<string>; concatenated they give the document's sequence).

Shards are written with fixed writer settings and no timestamps, so the same documents give
byte-identical files. :class:`Corpus` reads a folder back and checks it against its manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dnabird.errors import ConfigError
from dnabird.files import atomic_path, sha256_file
from dnabird.genome.cutting import Cut
from dnabird.genome.fasta import reverse_complement
from dnabird.manifest import read_manifest, verified_shards

STAGE = "preprocess"
#: Most sequence bp one table (a work unit's documents) can hold: Arrow's int32 offsets.
MAX_TABLE_BP = 2**31 - 1
SHARD_PATTERN = "shard-{:05d}.parquet"

#: Where a document comes from; token shards (:mod:`dnabird.data.tokens`) keep these columns.
DOCUMENT_FIELDS: list[tuple[str, pa.DataType]] = [
    ("doc_id", pa.string()),
    ("chrom", pa.string()),
    ("pass", pa.int16()),
    ("strand", pa.string()),
    ("start", pa.int64()),  # 0-based, forward strand
    ("end", pa.int64()),  # exclusive
]
SCHEMA = pa.schema([*DOCUMENT_FIELDS, ("sentences", pa.list_(pa.string()))])

#: Fixed Parquet writer settings (part of the byte-identical output guarantee).
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["chrom", "strand"],
    "write_statistics": ["pass", "start", "end"],
    "row_group_size": 256,
    "data_page_size": 1 << 20,
}


@dataclass(frozen=True)
class Document:
    """One document: consecutive sentences of one strand of ``chrom[start:end)``
    (0-based, half-open, forward-strand coordinates; ``pass_index`` is the pass number)."""

    doc_id: str
    chrom: str
    pass_index: int
    strand: str
    start: int
    end: int
    sentences: list[str]

    @property
    def sequence(self) -> str:
        """The document's sequence on its strand (its sentences joined)."""
        return "".join(self.sentences)


def documents_table(
    parts: Iterable[tuple[bytes, Cut, str, int]], both_strands: bool = False
) -> pa.Table:
    """Documents of one or more (chromosome, pass) cuts as one table in :data:`SCHEMA`.

    Each part is (``sequence``: the normalised chromosome, bytes [L]; its ``cut``; the
    chromosome name; the pass index). Rows follow the parts, then forward document order;
    with ``both_strands`` each forward document is followed by its reverse complement
    (sentences reversed and each reverse-complemented).
    """
    strands = ("+", "-") if both_strands else ("+",)
    ids, chroms, passes, starts, ends, strand_col = [], [], [], [], [], []
    pieces, sentence_lengths, counts = [], [], []
    for sequence, cut, chrom, pass_index in parts:
        doc_starts, doc_ends = cut.doc_starts.tolist(), cut.doc_ends.tolist()
        offsets = cut.doc_offsets.tolist()
        lengths = cut.sentence_ends - cut.sentence_starts
        view = memoryview(sequence)  # forward documents are joined without intermediate copies
        for d, (start, end) in enumerate(zip(doc_starts, doc_ends, strict=True)):
            forward = view[start:end]
            doc_lengths = lengths[offsets[d] : offsets[d + 1]]
            for strand in strands:
                ids.append(f"{chrom}:p{pass_index}:{strand}:{d:06d}")
                starts.append(start)
                ends.append(end)
                strand_col.append(strand)
                if strand == "+":
                    pieces.append(forward)
                    sentence_lengths.append(doc_lengths)
                else:
                    pieces.append(reverse_complement(bytes(forward)))
                    sentence_lengths.append(doc_lengths[::-1])
                counts.append(len(doc_lengths))
        added = len(ids) - len(chroms)
        chroms.extend([chrom] * added)
        passes.extend([pass_index] * added)
    all_lengths = np.concatenate(sentence_lengths) if sentence_lengths else np.zeros(0, np.int64)
    value_offsets = np.concatenate(([0], np.cumsum(all_lengths)))
    if value_offsets[-1] > MAX_TABLE_BP:  # Arrow strings address their bytes with int32
        raise ConfigError(
            f"{value_offsets[-1]:,} bp of documents in one work unit; at most {MAX_TABLE_BP:,} "
            "fit one table (lower --max-shard-bp, or cut fewer strands of so long a record)"
        )
    value_offsets = value_offsets.astype(np.int32)
    list_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    strings = pa.StringArray.from_buffers(
        len(all_lengths), pa.py_buffer(value_offsets), pa.py_buffer(b"".join(pieces))
    )
    sentences = pa.ListArray.from_arrays(pa.array(list_offsets, pa.int32()), strings)
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(chroms, pa.string()),
            pa.array(passes, pa.int16()),
            pa.array(strand_col, pa.string()),
            pa.array(starts, pa.int64()),
            pa.array(ends, pa.int64()),
            sentences,
        ],
        schema=SCHEMA,
    )


def split_by_bp(table: pa.Table, max_bp: int) -> list[pa.Table]:
    """Split ``table`` into consecutive row ranges of at most ``max_bp`` sequence bp each
    (a single larger document still gets its own piece). Always at least one piece."""
    doc_bp = (np.asarray(table.column("end")) - np.asarray(table.column("start"))).tolist()
    pieces, first, total = [], 0, 0
    for row, bp in enumerate(doc_bp):
        if total and total + bp > max_bp:
            pieces.append(table.slice(first, row - first))
            first, total = row, 0
        total += bp
    pieces.append(table.slice(first, len(doc_bp) - first))
    return pieces


def write_shard(table: pa.Table, path: str | os.PathLike) -> dict[str, Any]:
    """Write ``table`` to ``path`` atomically with :data:`WRITER_OPTIONS`; return
    ``{"rows", "bytes", "sha256"}`` of the written file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **WRITER_OPTIONS)
    return {"rows": table.num_rows, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


class Corpus:
    """A corpus folder written by ``dnabird preprocess``, checked against its manifest.

    ``Corpus(folder)`` reads ``manifest.json`` (stage ``preprocess``) and checks that every
    shard it lists exists with the recorded size and row count, and (``verify=True``) sha256.
    ``len(corpus)`` is the number of documents; iterating yields :class:`Document` in
    manifest shard order and row order (chromosome, pass, document, strand).
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, stage=STAGE)
        self.shards, self._rows = verified_shards(self.folder, self.manifest, verify)

    def __len__(self) -> int:
        return sum(self._rows)

    def __iter__(self) -> Iterator[Document]:
        for path in self.shards:
            yield from self.iter_shard(path)

    def iter_shard(self, path: str | os.PathLike, batch_size: int = 64) -> Iterator[Document]:
        """Documents of one shard file, in row order."""
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            columns = batch.to_pydict()
            for i in range(batch.num_rows):
                yield Document(
                    doc_id=columns["doc_id"][i],
                    chrom=columns["chrom"][i],
                    pass_index=columns["pass"][i],
                    strand=columns["strand"][i],
                    start=columns["start"][i],
                    end=columns["end"][i],
                    sentences=columns["sentences"][i],
                )

    def __repr__(self) -> str:
        return f"Corpus({str(self.folder)!r}, documents={len(self)}, shards={len(self.shards)})"


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard-00000.parquet``."""
    return SHARD_PATTERN.format(index)
