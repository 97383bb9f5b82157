"""``preprocess``: a reference FASTA -> a corpus of documents, in work units.

The pipeline: scan and validate the whole FASTA (nothing is written before it passes);
choose the chromosomes; claim the output folder (:class:`~dnabird.outputs.OutputFolder`:
lock, run record, resume or overwrite); make the FASTA readable at random
(:mod:`~dnabird.genome.index`); plan the (chromosome, pass) items, in that order, into work
units of consecutive items holding up to ``max_shard_bp`` of sequence, so a large
chromosome is one unit per pass while thousands of short contigs share one unit (and one
shard); cut the units in a process pool, each item seeded from (seed, chromosome, pass),
each process reading through one open FASTA reader, each unit writing its Parquet pieces
(at most ``max_shard_bp`` each) and a completion record under ``DIR/.units/``; finally place
the pieces as ``shard-NNNNN.parquet`` in unit order and write ``manifest.json`` last.

Results are byte-identical whatever the number of workers. An interrupted run resumes:
completed units are skipped; ``overwrite`` redoes everything. A worker holds one chromosome
(its sequence and N runs) and one unit's documents in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import atomic_path, require_file, write_text_atomic
from dnabird.genome.assemblies import length_mismatches, load_assembly
from dnabird.genome.chromosomes import DEFAULT_MIN_LENGTH, Selection, select_chromosomes
from dnabird.genome.corpus import (
    MAX_TABLE_BP,
    STAGE,
    documents_table,
    shard_name,
    split_by_bp,
    write_shard,
)
from dnabird.genome.cutting import CuttingParams, cut_chromosome, n_runs, unit_rng
from dnabird.genome.fasta import FastaScan, normalise, scan_fasta
from dnabird.genome.index import FastaSource, prepare_source
from dnabird.genome.regions import IndexedFasta
from dnabird.manifest import describe_file, new_manifest
from dnabird.outputs import OutputFolder
from dnabird.progress import progress

log = logging.getLogger(__name__)

UNITS_DIR = ".units"
CACHE_DIR = ".cache"
DONE_NAME = "done.json"


@dataclass(frozen=True)
class PreprocessOptions:
    """Parameters of ``preprocess``; all but workers/overwrite/cache_dir shape the output."""

    passes: int = 10
    """Independent cutting passes per chromosome."""
    seed: int = 0
    """Seed of every random choice (with chromosome name and pass); >= 0."""
    workers: int = 1
    """Processes cutting units in parallel (does not change the output)."""
    chromosomes: tuple[str, ...] | None = None
    """Records to cut (either naming style); default: the primary assembly."""
    min_length: int = DEFAULT_MIN_LENGTH
    """Minimum length (bp) of non-primary records cut by default (0: every record)."""
    both_strands: bool = False
    """Also write the reverse complement of every document."""
    keep_case: bool = False
    """Keep soft-masking (lowercase); default uppercase."""
    max_shard_bp: int = 100_000_000
    """Upper bound on the sequence bp of one shard (a single larger document excepted);
    also the size of a work unit, so short records are grouped up to it."""
    cutting: CuttingParams = field(default_factory=CuttingParams)
    """Sentence/document lengths and N rules."""
    assembly: str | None = None
    """Expected assembly (``grch37``): warn when chromosome lengths differ."""
    overwrite: bool = False
    """Redo everything, discarding earlier output and completed units."""
    cache_dir: str | None = None
    """Kept cache of indexes/decompressed copies (default: DIR/.cache, removed when done)."""

    def validate(self) -> None:
        """Raise ConfigError (one line naming the option) on impossible values."""
        for option, value, least in (
            ("--passes", self.passes, 1),
            ("--workers", self.workers, 1),
            ("--max-shard-bp", self.max_shard_bp, 1),
            ("--min-length", self.min_length, 0),
            ("--seed", self.seed, 0),
        ):
            if value < least:
                raise ConfigError(f"{option} must be >= {least}, got {value}")
        if self.chromosomes is not None and not self.chromosomes:
            raise ConfigError("--chromosomes: give at least one record name")
        self.cutting.validate()

    def output_parameters(self) -> dict[str, Any]:
        """The parameters that determine the output (recorded in the manifest)."""
        return {
            "passes": self.passes,
            "seed": self.seed,
            "chromosomes": list(self.chromosomes) if self.chromosomes else None,
            "min_length": self.min_length,
            "both_strands": self.both_strands,
            "keep_case": self.keep_case,
            "max_shard_bp": self.max_shard_bp,
            **dataclasses.asdict(self.cutting),
        }


@dataclass(frozen=True)
class UnitTask:
    """One work unit: consecutive (chromosome, length, pass) items, picklable for the pool."""

    index: int
    items: tuple[tuple[str, int, int], ...]
    folder: str
    source: FastaSource
    seed: int
    cutting: CuttingParams
    both_strands: bool
    keep_case: bool
    max_shard_bp: int

    @property
    def bp(self) -> int:
        """Input bp of the unit (chromosome lengths, once per pass)."""
        return sum(length for _, length, _ in self.items)


def plan_units(
    chromosomes: list[str], lengths: dict[str, int], options: PreprocessOptions
) -> list[list[tuple[str, int, int]]]:
    """Group the (chromosome, length, pass) items, chromosome-major, into units of
    consecutive items whose sequence (both strands counted) fits ``max_shard_bp`` (and one
    table, :data:`~dnabird.genome.corpus.MAX_TABLE_BP`); an item larger than that is a unit
    of its own. Depends only on the inputs and parameters."""
    strands = 2 if options.both_strands else 1
    limit = min(options.max_shard_bp, MAX_TABLE_BP)
    units: list[list[tuple[str, int, int]]] = []
    current: list[tuple[str, int, int]] = []
    size = 0
    for chrom in chromosomes:
        weight = lengths[chrom] * strands
        for p in range(options.passes):
            if current and size + weight > limit:
                units.append(current)
                current, size = [], 0
            current.append((chrom, lengths[chrom], p))
            size += weight
    if current:
        units.append(current)
    return units


# Per worker process: one open reader and the last chromosome read through it.
_reader: IndexedFasta | None = None
_loaded: tuple[tuple[str, bool], bytes, tuple[np.ndarray, np.ndarray]] | None = None


def _chromosome(task: UnitTask, chrom: str, length: int) -> tuple[bytes, tuple[np.ndarray, ...]]:
    """The normalised sequence (bytes [L]) and its N runs (starts, ends: int64 [R]) of
    ``chrom``, read through this process's one reader and kept for the next item."""
    global _reader, _loaded
    if _reader is None or _reader.source != task.source:
        close_reader()
        _reader = IndexedFasta(task.source)
    key = (chrom, task.keep_case)
    if _loaded is None or _loaded[0] != key:
        _loaded = None  # free the previous chromosome first
        sequence = normalise(_reader.record(chrom), task.keep_case)
        if len(sequence) != length:
            raise InputError(
                f"{task.source.fasta}: record {chrom!r} read back as {len(sequence)} bp, "
                f"expected {length}; is the index stale?"
            )
        _loaded = (key, sequence, n_runs(sequence))
    return _loaded[1], _loaded[2]


def close_reader() -> None:
    """Close this process's FASTA reader and drop the chromosome it holds."""
    global _reader, _loaded
    if _reader is not None:
        _reader.close()
    _reader, _loaded = None, None


def run_unit(task: UnitTask) -> dict[str, Any]:
    """Cut one unit, write its pieces and completion record into ``task.folder``; return
    the record: unit index, items, pieces (file, rows, bytes, sha256, first/last item) and
    counts per chromosome."""
    folder = Path(task.folder)
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted attempt
    folder.mkdir(parents=True)
    strands = 2 if task.both_strands else 1
    counts: dict[str, dict[str, int]] = {}
    parts = []
    for chrom, length, pass_index in task.items:
        sequence, (run_starts, run_ends) = _chromosome(task, chrom, length)
        rng = unit_rng(task.seed, chrom, pass_index)
        cut = cut_chromosome(length, run_starts, run_ends, task.cutting, rng)
        parts.append((sequence, cut, chrom, pass_index))
        sizes = np.diff(cut.doc_offsets)
        item = {
            "documents": cut.num_documents * strands,
            "short_documents": int((sizes < task.cutting.min_doc).sum()) * strands,
            "sentences": len(cut.sentence_starts) * strands,
            "bp": int((cut.sentence_ends - cut.sentence_starts).sum()) * strands,
            "gap_bp": cut.gap_bp,
            "short_segment_bp": cut.short_segment_bp,
            "n_rich_sentences_dropped": cut.n_rich_sentences,
            "n_rich_bp_dropped": cut.n_rich_bp,
        }
        totals = counts.setdefault(chrom, dict.fromkeys(item, 0))
        for key, value in item.items():
            totals[key] += value
    table = documents_table(parts, task.both_strands)
    pieces = []
    for i, piece in enumerate(split_by_bp(table, task.max_shard_bp)):
        if piece.num_rows:
            name = f"part-{i:05d}.parquet"
            chroms, passes = piece.column("chrom"), piece.column("pass")
            span = {
                "first": [chroms[0].as_py(), passes[0].as_py()],
                "last": [chroms[-1].as_py(), passes[-1].as_py()],
            }
            pieces.append({"file": name, **write_shard(piece, folder / name), **span})
    record = {
        "unit": task.index,
        "items": [[chrom, p] for chrom, _, p in task.items],
        "pieces": pieces,
        "counts": counts,
    }
    write_text_atomic(folder / DONE_NAME, json.dumps(record, sort_keys=True))
    return record


def _completed(task: UnitTask) -> dict[str, Any] | None:
    """The completion record of a finished unit whose pieces are all present, else None."""
    folder = Path(task.folder)
    try:
        record = json.loads((folder / DONE_NAME).read_text(encoding="utf-8"))
        items = [[chrom, p] for chrom, _, p in task.items]
        if record["unit"] != task.index or record["items"] != items:
            return None
        for piece in record["pieces"]:
            path = folder / piece["file"]
            if not path.is_file() or path.stat().st_size != piece["bytes"]:
                return None
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return record


def preprocess(
    fasta: str | os.PathLike,
    out: str | os.PathLike,
    options: PreprocessOptions | None = None,
    *,
    on_unit_done: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Cut ``fasta`` into a corpus in folder ``out``; return its manifest.

    ``options`` (or keyword ``overrides`` of its fields) set the parameters.
    ``on_unit_done(record)`` is called in this process after each unit is recorded
    complete. Raises InputError for a bad FASTA or an unwritable ``out`` before anything is
    written, and ConfigError for bad parameters or an output folder that holds something
    else or is in use by another run.
    """
    options = dataclasses.replace(options or PreprocessOptions(), **overrides)
    options.validate()
    started = time.perf_counter()
    fasta = require_file(fasta, "FASTA file")
    out = Path(out)
    _require_writable(out)
    scan = scan_fasta(fasta)
    selection = select_chromosomes(scan.lengths, options.chromosomes, options.min_length)
    assembly_check = _check_assembly(options.assembly, scan.lengths) if options.assembly else None
    input_info = describe_file(fasta)
    run = {
        "input_sha256": input_info["sha256"],
        "parameters": options.output_parameters(),
        "chromosomes": selection.chromosomes,
    }
    with OutputFolder(out, STAGE, run, overwrite=options.overwrite) as folder:
        if not folder.complete:
            manifest = _cut_corpus(out, scan, selection, options, input_info, on_unit_done)
            manifest["assembly_check"] = assembly_check
            manifest["seconds"] = round(time.perf_counter() - started, 3)
            folder.finish(manifest)
        else:
            log.info("%s already holds this corpus (same input and parameters)", out)
        shutil.rmtree(out / UNITS_DIR, ignore_errors=True)
        if not options.cache_dir:  # a decompressed copy of the input is not part of the corpus
            shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
        assert folder.manifest is not None
        return folder.manifest


def _require_writable(out: Path) -> None:
    """Fail in one line, before the FASTA is scanned, when ``out`` cannot be written:
    it is a file, or its nearest existing folder refuses writes."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "exists" if existing == out else f"is under the file {existing}"
        raise InputError(f"{out}: output {what} and is not a folder; choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"{out}: cannot write the output folder (no write permission in {existing}); "
            "choose another --out"
        )


def _cut_corpus(
    out: Path,
    scan: FastaScan,
    selection: Selection,
    options: PreprocessOptions,
    input_info: dict[str, Any],
    on_unit_done: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Plan, run (or resume) and finalise the units; return the manifest (not written)."""
    cache = Path(options.cache_dir) if options.cache_dir else out / CACHE_DIR
    try:
        source = prepare_source(scan, cache / input_info["sha256"][:16])  # keyed by content
    except OSError as err:
        raise InputError(
            f"{cache}: cannot write the index cache ({err.strerror or err}); "
            "choose another --cache-dir"
        ) from None
    tasks = [
        UnitTask(
            index=u,
            items=tuple(items),
            folder=str(out / UNITS_DIR / f"{u:06d}"),
            source=source,
            seed=options.seed,
            cutting=options.cutting,
            both_strands=options.both_strands,
            keep_case=options.keep_case,
            max_shard_bp=options.max_shard_bp,
        )
        for u, items in enumerate(plan_units(selection.chromosomes, scan.lengths, options))
    ]
    records = [_completed(t) for t in tasks]
    pending = [t for t, record in zip(tasks, records, strict=True) if record is None]
    if len(pending) < len(tasks):
        log.info("resuming: %d of %d units already complete", len(tasks) - len(pending), len(tasks))
    with progress(
        total=sum(t.bp for t in tasks),
        initial=sum(t.bp for t, record in zip(tasks, records, strict=True) if record),
        unit="bp",
        unit_scale=True,
        desc="preprocess",
    ) as bar:
        for record in _run_units(pending, options.workers):
            records[record["unit"]] = record
            bar.update(tasks[record["unit"]].bp)
            if on_unit_done is not None:
                on_unit_done(record)
    return _finalise(out, tasks, records, scan, selection, options, input_info)


def _run_units(pending: list[UnitTask], workers: int) -> Iterator[dict[str, Any]]:
    """Yield unit records as units finish: in this process, or in a spawn pool."""
    if workers == 1 or len(pending) <= 1:
        try:
            for task in pending:
                yield run_unit(task)
        finally:
            close_reader()  # do not keep the FASTA open (or a chromosome alive) after the run
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(workers, len(pending))) as pool:
        yield from pool.imap_unordered(run_unit, pending, chunksize=1)


def _check_assembly(name: str, lengths: dict[str, int]) -> dict[str, Any]:
    """Compare record lengths with assembly ``name``; log a warning on any difference."""
    assembly = load_assembly(name)
    result = {"assembly": assembly["name"], **length_mismatches(assembly, lengths)}
    if result["mismatched"]:
        listed = list(result["mismatched"].items())[:3]
        shown = ", ".join(f"{n} {got:,} vs {want:,}" for n, (got, want) in listed)
        log.warning(
            "chromosome lengths differ from %s (%s%s): is this FASTA really %s?",
            assembly["name"],
            shown,
            ", ..." if len(result["mismatched"]) > 3 else "",
            assembly["name"],
        )
    return result


def _place(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a hard link, or a copy across filesystems."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _finalise(
    out: Path,
    tasks: list[UnitTask],
    records: list[dict[str, Any] | None],
    scan: FastaScan,
    selection: Selection,
    options: PreprocessOptions,
    input_info: dict[str, Any],
) -> dict[str, Any]:
    """Place every unit's pieces as numbered shards in unit order; return the manifest
    (not yet written) with per-chromosome and total counts."""
    shards: list[dict[str, Any]] = []
    per_chrom: dict[str, dict[str, int]] = {}
    for task, record in zip(tasks, records, strict=True):
        assert record is not None
        for piece in record["pieces"]:
            name = shard_name(len(shards))
            _place(Path(task.folder) / piece["file"], out / name)
            shards.append({**piece, "file": name})
        for chrom, counts in record["counts"].items():
            totals = per_chrom.setdefault(chrom, dict.fromkeys(counts, 0))
            for key, value in counts.items():
                totals[key] += value
    total: dict[str, int] = {}
    for counts in per_chrom.values():
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    records = {r.name: r for r in scan.records}
    return new_manifest(
        STAGE,
        options.output_parameters(),
        input={**input_info, "compression": scan.compression},
        workers=options.workers,
        units=len(tasks),
        chromosomes=[
            {"name": c, "length": records[c].length, "ambiguous_to_n": records[c].ambiguous}
            for c in selection.chromosomes
        ],
        skipped=selection.skipped,
        counts={"total": total, "per_chromosome": per_chrom},
        shards=shards,
    )
