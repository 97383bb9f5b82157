"""Token shards: a corpus encoded into token ids, ready for pretraining.

Layout of a token folder (interface 2 of the project contracts)::

    manifest.json          "stage": "tokenize"; corpus manifest and tokenizer checksums,
                           counts of documents, sentences, tokens and bp; shards
    tokenizer/             the tokenizer used (a copy, so the folder is self-contained)
    shard-00000.parquet    one per corpus shard, same file name, same rows in the same order

Columns: ``doc_id``, ``chrom``, ``pass`` (int16), ``strand``, ``start``, ``end`` (int64,
0-based half-open on the forward strand) as in the corpus, plus ``sentence_ids``
(list<list<uint16>>, or int32 when the vocabulary exceeds 65,535 ids: the token ids of each
sentence, no special tokens) and ``sentence_bp`` (list<int32>: bp of each sentence).

Writing (:func:`tokenize_corpus`): the output folder is claimed through
:class:`~dnabird.outputs.OutputFolder` (lock, run record, refusal of other inputs,
``overwrite``); each corpus shard becomes one token shard, written under a temporary name by
one worker and renamed when complete. A shard's bytes depend only on its corpus shard and the
tokenizer, so any worker count gives identical shards. An interrupted run resumes: shards
already present are kept, the rest are written, and the manifest comes last. Reading:
:class:`TokenShards`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dnabird.errors import ConfigError, InputError
from dnabird.files import atomic_path, sha256_file
from dnabird.manifest import new_manifest, read_manifest, verified_shards
from dnabird.progress import progress

STAGE = "tokenize"
TOKENIZER_DIR = "tokenizer"
DOCS_PER_ROW_GROUP = 256
log = logging.getLogger(__name__)
#: Fixed Parquet writer settings (part of the same-bytes-for-any-worker-count guarantee).
WRITER_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}


def id_type(vocab_size: int) -> pa.DataType:
    """Arrow type of a token id: uint16 when every id fits, else int32."""
    return pa.uint16() if vocab_size <= 1 << 16 else pa.int32()


def token_schema(vocab_size: int) -> pa.Schema:
    """Schema of a token shard for a vocabulary of ``vocab_size`` ids."""
    from dnabird.genome.corpus import DOCUMENT_FIELDS

    return pa.schema(
        [
            *DOCUMENT_FIELDS,
            ("sentence_ids", pa.list_(pa.list_(id_type(vocab_size)))),
            ("sentence_bp", pa.list_(pa.int32())),
        ]
    )


@dataclass(frozen=True)
class TokenizedDocument:
    """One tokenized document of ``chrom[start:end)`` (0-based, half-open, forward strand).

    ``sentence_ids``: per sentence, its token ids (``np.ndarray [T_s]``, uint16 or int32,
    no special tokens); ``sentence_bp``: ``np.ndarray [S]`` int32, bp of each sentence.
    A document built in memory (held-out sequence to evaluate, tests) needs only
    ``doc_id``, ``chrom`` and ``sentence_ids``; the rest then default to pass 0, ``+``,
    0, 0 and None (not known).
    """

    doc_id: str
    chrom: str
    pass_index: int = 0
    strand: str = "+"
    start: int = 0
    end: int = 0
    sentence_ids: list[np.ndarray] = field(default_factory=list)
    sentence_bp: np.ndarray | None = None


# ----------------------------------------------------------------------------- writing
def encode_documents(documents: list[Any], tokenizer: Any, schema: pa.Schema) -> pa.Table:
    """Encode corpus documents (``dnabird.genome.Document``) into a token-shard table."""
    sentences = [s for doc in documents for s in doc.sentences]
    encoded = tokenizer.encode_batch(sentences)
    ids_type = schema.field("sentence_ids").type.value_type.value_type
    flat = np.fromiter(
        itertools.chain.from_iterable(encoded),
        dtype=ids_type.to_pandas_dtype(),
        count=sum(map(len, encoded)),
    )
    sentence_offsets = np.concatenate(([0], np.cumsum([len(ids) for ids in encoded])))
    doc_offsets = np.concatenate(([0], np.cumsum([len(doc.sentences) for doc in documents])))
    per_sentence = pa.ListArray.from_arrays(
        pa.array(sentence_offsets, pa.int32()), pa.array(flat, ids_type)
    )
    doc_index = pa.array(doc_offsets, pa.int32())
    columns = {
        "doc_id": [doc.doc_id for doc in documents],
        "chrom": [doc.chrom for doc in documents],
        "pass": [doc.pass_index for doc in documents],
        "strand": [doc.strand for doc in documents],
        "start": [doc.start for doc in documents],
        "end": [doc.end for doc in documents],
    }
    arrays = [pa.array(values, schema.field(name).type) for name, values in columns.items()]
    arrays.append(pa.ListArray.from_arrays(doc_index, per_sentence))
    bp = pa.array([len(s) for s in sentences], pa.int32())
    arrays.append(pa.ListArray.from_arrays(doc_index, bp))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_token_shard(corpus: Any, tokenizer: Any, source: Path, target: Path) -> int:
    """Encode corpus shard ``source`` into ``target`` (atomically); return its documents."""
    schema = token_schema(tokenizer.vocab_size)
    rows = 0
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema, **WRITER_OPTIONS) as writer:
        documents = iter(corpus.iter_shard(source))
        while chunk := list(itertools.islice(documents, DOCS_PER_ROW_GROUP)):
            writer.write_table(encode_documents(chunk, tokenizer, schema))
            rows += len(chunk)
    return rows


_worker: tuple[Any, Any] | None = None  # (Corpus, DNATokenizer) of a pool worker


def _init_worker(corpus_dir: str, tokenizer_dir: str) -> None:
    global _worker
    from dnabird.genome import Corpus
    from dnabird.tokenizer import DNATokenizer

    _worker = (Corpus(corpus_dir, verify=False), DNATokenizer.from_pretrained(tokenizer_dir))


def _run_shard(paths: tuple[str, str]) -> int:
    assert _worker is not None
    return _write_token_shard(*_worker, Path(paths[0]), Path(paths[1]))


def tokenize_corpus(
    corpus_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Encode every document of a corpus folder into token shards in ``out``; return the
    manifest.

    ``out`` is claimed through :class:`~dnabird.outputs.OutputFolder` before any work: a
    folder that already holds these tokens (same corpus manifest and tokenizer checksums)
    is returned as it is, an interrupted run of the same inputs resumes (shards already
    written are kept), and a folder of other inputs is refused (naming what differs) unless
    ``overwrite``. The worker count does not change the output.
    """
    from dnabird.genome import Corpus
    from dnabird.outputs import OutputFolder
    from dnabird.tokenizer import DNATokenizer

    if workers < 1:
        raise ConfigError(f"workers={workers}; it must be at least 1")
    started = time.perf_counter()
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        what = "is not a folder" if corpus_dir.exists() else "corpus folder not found"
        raise InputError(f"{corpus_dir}: {what}; give a folder made by dnabird preprocess")
    corpus = Corpus(corpus_dir)
    tokenizer = DNATokenizer.from_pretrained(tokenizer_dir)
    run = {
        "corpus_manifest_sha256": sha256_file(corpus_dir / "manifest.json"),
        "tokenizer_sha256": hashlib.sha256(tokenizer.model_proto).hexdigest(),
    }
    with OutputFolder(out, STAGE, run, overwrite=overwrite) as folder:
        if folder.complete:
            log.info("%s already holds these tokens (same corpus and tokenizer)", out)
            return folder.manifest
        out = folder.path
        for leftover in out.glob(".shard-*.tmp"):  # from a killed run
            leftover.unlink()
        tokenizer.save_pretrained(out / TOKENIZER_DIR)
        targets = [out / path.name for path in corpus.shards]
        pending = [
            (str(source), str(target))
            for source, target in zip(corpus.shards, targets, strict=True)
            if not target.exists()
        ]
        if folder.resuming:
            log.info(
                "resuming: %d of %d shards already written",
                len(targets) - len(pending),
                len(targets),
            )
        _write_shards(corpus, tokenizer, pending, workers, out / TOKENIZER_DIR)
        manifest = new_manifest(
            STAGE,
            {"workers": workers},
            corpus=str(corpus_dir),
            tokenizer=str(tokenizer_dir),
            tokenizer_dir=TOKENIZER_DIR,
            vocab_size=tokenizer.vocab_size,
            id_dtype=str(id_type(tokenizer.vocab_size)),
            **run,
        )
        manifest["shards"] = [_describe_shard(path) for path in targets]
        totals = {
            key: sum(entry[key] for entry in manifest["shards"])
            for key in ("documents", "sentences", "tokens", "bp")
        }
        manifest["counts"] = totals
        manifest["bp_per_token"] = round(totals["bp"] / max(totals["tokens"], 1), 4)
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        folder.finish(manifest)
        return folder.manifest


def _write_shards(
    corpus: Any, tokenizer: Any, pending: list[tuple[str, str]], workers: int, tokenizer_dir: Path
) -> None:
    """Write the ``(corpus shard, token shard)`` pairs in ``pending``, in this process or a
    pool of ``workers`` (each loads the corpus and the tokenizer copy in ``tokenizer_dir``)."""
    done_docs = len(corpus) - sum(pq.ParquetFile(s).metadata.num_rows for s, _ in pending)
    with progress(total=len(corpus), initial=done_docs, unit="doc", desc="tokenize") as bar:
        if workers == 1 or len(pending) <= 1:
            for source, target in pending:
                bar.update(_write_token_shard(corpus, tokenizer, Path(source), Path(target)))
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        initargs = (str(corpus.folder), str(tokenizer_dir))
        with context.Pool(min(workers, len(pending)), _init_worker, initargs) as pool:
            for rows in pool.imap_unordered(_run_shard, pending):
                bar.update(rows)


def _describe_shard(path: Path) -> dict[str, Any]:
    """Counts (documents, sentences, tokens, bp), size and sha256 of a written shard."""
    table = pq.read_table(path, columns=["sentence_ids", "sentence_bp"])
    sentences = pc.list_flatten(table.column("sentence_ids"))
    return {
        "file": path.name,
        "rows": table.num_rows,
        "documents": table.num_rows,
        "sentences": len(sentences),
        "tokens": int(pc.sum(pc.list_value_length(sentences)).as_py() or 0),
        "bp": int(pc.sum(pc.list_flatten(table.column("sentence_bp"))).as_py() or 0),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


# ----------------------------------------------------------------------------- reading
class TokenShards:
    """A token folder written by ``dnabird tokenize``, checked against its manifest.

    ``shards``: shard paths in corpus order; ``len()``: documents; iterating (or
    :meth:`iter_shard`) yields :class:`TokenizedDocument`; ``tokenizer_dir``: the copy of
    the tokenizer (load it with ``DNATokenizer.from_pretrained``). ``verify`` also checks
    every shard's sha256 (sizes and row counts are always checked).
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, stage=STAGE)
        self.shards, self._rows = verified_shards(self.folder, self.manifest, verify)
        self.tokenizer_dir = self.folder / self.manifest.get("tokenizer_dir", TOKENIZER_DIR)

    def __len__(self) -> int:
        return sum(self._rows)

    def __iter__(self) -> Iterator[TokenizedDocument]:
        for path in self.shards:
            yield from self.iter_shard(path)

    def iter_shard(self, path: str | os.PathLike) -> Iterator[TokenizedDocument]:
        """Documents of one shard file, in row order."""
        for batch in pq.ParquetFile(path).iter_batches(batch_size=DOCS_PER_ROW_GROUP):
            sentences = batch.column("sentence_ids").flatten()
            ids = np.split(
                sentences.flatten().to_numpy(), np.cumsum(sentences.value_lengths())[:-1]
            )
            bp = batch.column("sentence_bp").flatten().to_numpy()
            per_doc = np.cumsum(batch.column("sentence_ids").value_lengths().to_numpy())
            bounds = np.concatenate(([0], per_doc))
            columns = batch.select(["doc_id", "chrom", "pass", "strand", "start", "end"])
            for i, row in enumerate(columns.to_pylist()):
                first, last = bounds[i], bounds[i + 1]
                yield TokenizedDocument(
                    doc_id=row["doc_id"],
                    chrom=row["chrom"],
                    pass_index=row["pass"],
                    strand=row["strand"],
                    start=row["start"],
                    end=row["end"],
                    sentence_ids=ids[first:last],
                    sentence_bp=bp[first:last],
                )

    def __repr__(self) -> str:
        return f"TokenShards({str(self.folder)!r}, documents={len(self)})"
