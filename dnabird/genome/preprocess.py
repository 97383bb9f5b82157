"""``preprocess``: a reference FASTA -> a corpus of documents, in (chromosome, pass) units.

The pipeline: scan and validate the whole FASTA (nothing is written before it passes);
choose the chromosomes; make the FASTA readable at random (pyfaidx); cut every
(chromosome, pass) unit in a process pool, each unit seeded from (seed, chromosome, pass)
and writing its Parquet pieces plus a completion record under ``DIR/.units/``; finally
place the pieces as ``shard-NNNNN.parquet`` in fixed (chromosome, pass) order and write
``manifest.json``. Results are byte-identical whatever the number of workers. An
interrupted run resumes: completed units are skipped; ``overwrite`` redoes everything.
A worker holds about one chromosome in memory (its sequence, N mask and output).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import atomic_path, require_file, write_text_atomic
from dnabird.genome.assemblies import length_mismatches, load_assembly
from dnabird.genome.chromosomes import DEFAULT_MIN_LENGTH, Selection, select_chromosomes
from dnabird.genome.corpus import STAGE, shard_name, split_by_bp, unit_table, write_shard
from dnabird.genome.cutting import CuttingParams, cut_chromosome, n_runs, unit_rng
from dnabird.genome.fasta import (
    FastaScan,
    FastaSource,
    normalise,
    prepare_source,
    read_record,
    scan_fasta,
)
from dnabird.manifest import (
    MANIFEST_NAME,
    describe_file,
    new_manifest,
    read_manifest,
    write_manifest,
)
from dnabird.progress import progress

log = logging.getLogger(__name__)

UNITS_DIR = ".units"
CACHE_DIR = ".cache"
DONE_NAME = "done.json"
RUN_NAME = "run.json"


@dataclass(frozen=True)
class PreprocessOptions:
    """Parameters of ``preprocess``; all but workers/overwrite/cache_dir shape the output."""

    passes: int = 10
    """Independent cutting passes per chromosome."""
    seed: int = 0
    """Seed of every random choice (with chromosome name and pass)."""
    workers: int = 1
    """Processes cutting units in parallel (does not change the output)."""
    chromosomes: tuple[str, ...] | None = None
    """Records to cut (either naming style); default: the primary assembly."""
    min_length: int = DEFAULT_MIN_LENGTH
    """Minimum length (bp) of non-primary records cut by default."""
    both_strands: bool = False
    """Also write the reverse complement of every document."""
    keep_case: bool = False
    """Keep soft-masking (lowercase); default uppercase."""
    max_shard_bp: int = 100_000_000
    """Upper bound on the sequence bp of one shard (a single larger document excepted)."""
    cutting: CuttingParams = field(default_factory=CuttingParams)
    """Sentence/document lengths and N rules."""
    assembly: str | None = None
    """Expected assembly (``grch37``): warn when chromosome lengths differ."""
    overwrite: bool = False
    """Redo everything, discarding earlier output and completed units."""
    cache_dir: str | None = None
    """Kept cache of indexes/decompressed copies (default: DIR/.cache, removed when done)."""

    def validate(self) -> None:
        """Raise ConfigError on impossible values."""
        if self.passes < 1:
            raise ConfigError(f"--passes must be >= 1, got {self.passes}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.max_shard_bp < 1:
            raise ConfigError(f"max_shard_bp must be >= 1, got {self.max_shard_bp}")
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
    """One (chromosome, pass) unit of work, picklable for the process pool."""

    chrom: str
    length: int
    pass_index: int
    folder: str
    source: FastaSource
    seed: int
    cutting: CuttingParams
    both_strands: bool
    keep_case: bool
    max_shard_bp: int


# One chromosome per worker process: (fasta, name, keep_case) -> (sequence, N runs).
_loaded: tuple[tuple[str, str, bool], bytes, tuple[np.ndarray, np.ndarray]] | None = None


def _chromosome(task: UnitTask) -> tuple[bytes, tuple[np.ndarray, np.ndarray]]:
    """The normalised sequence (bytes [L]) and its N runs (starts, ends: int64 [R]) of the
    task's chromosome, kept for the next unit of the same chromosome."""
    global _loaded
    key = (task.source.fasta, task.chrom, task.keep_case)
    if _loaded is None or _loaded[0] != key:
        _loaded = None  # free the previous chromosome first
        sequence = normalise(read_record(task.source, task.chrom), task.keep_case)
        if len(sequence) != task.length:
            raise InputError(
                f"{task.source.fasta}: record {task.chrom!r} read back as {len(sequence)} bp, "
                f"expected {task.length}; is the index stale?"
            )
        _loaded = (key, sequence, n_runs(sequence))
    return _loaded[1], _loaded[2]


def run_unit(task: UnitTask) -> dict[str, Any]:
    """Cut one unit, write its pieces and completion record into ``task.folder``; return
    the record: chromosome, pass, pieces (file, rows, bytes, sha256) and counts."""
    folder = Path(task.folder)
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted attempt
    folder.mkdir(parents=True)
    sequence, (run_starts, run_ends) = _chromosome(task)
    rng = unit_rng(task.seed, task.chrom, task.pass_index)
    cut = cut_chromosome(len(sequence), run_starts, run_ends, task.cutting, rng)
    table = unit_table(sequence, cut, task.chrom, task.pass_index, task.both_strands)
    pieces = []
    for i, piece in enumerate(split_by_bp(table, task.max_shard_bp)):
        if piece.num_rows:
            name = f"part-{i:05d}.parquet"
            pieces.append({"file": name, **write_shard(piece, folder / name)})
    strands = 2 if task.both_strands else 1
    sizes = np.diff(cut.doc_offsets)
    record = {
        "chrom": task.chrom,
        "pass": task.pass_index,
        "pieces": pieces,
        "counts": {
            "documents": cut.num_documents * strands,
            "short_documents": int((sizes < task.cutting.min_doc).sum()) * strands,
            "sentences": len(cut.sentence_starts) * strands,
            "bp": int((cut.sentence_ends - cut.sentence_starts).sum()) * strands,
            "gap_bp": cut.gap_bp,
            "short_segment_bp": cut.short_segment_bp,
            "n_rich_sentences_dropped": cut.n_rich_sentences,
            "n_rich_bp_dropped": cut.n_rich_bp,
        },
    }
    write_text_atomic(folder / DONE_NAME, json.dumps(record, sort_keys=True))
    return record


def _completed(task: UnitTask) -> dict[str, Any] | None:
    """The completion record of a finished unit whose pieces are all present, else None."""
    folder = Path(task.folder)
    try:
        record = json.loads((folder / DONE_NAME).read_text(encoding="utf-8"))
        if (record["chrom"], record["pass"]) != (task.chrom, task.pass_index):
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
    complete. Raises InputError for a bad FASTA before anything is written and ConfigError
    for bad parameters or an output folder holding something else.
    """
    options = dataclasses.replace(options or PreprocessOptions(), **overrides)
    options.validate()
    started = time.perf_counter()
    fasta = require_file(fasta, "FASTA file")
    out = Path(out)
    scan = scan_fasta(fasta)
    selection = select_chromosomes(scan.lengths, options.chromosomes, options.min_length)
    assembly_check = _check_assembly(options.assembly, scan.lengths) if options.assembly else None
    input_info = describe_file(fasta)
    run_key = _run_key(input_info, options, selection.chromosomes)
    finished = _prepare_output(out, run_key, options.overwrite)
    if finished is not None:
        log.info("%s already holds this corpus (same input and parameters); nothing to do", out)
        return finished
    cache = Path(options.cache_dir) if options.cache_dir else out / CACHE_DIR
    source = prepare_source(scan, cache / input_info["sha256"][:16])  # keyed by content
    lengths = scan.lengths
    tasks = [
        UnitTask(
            chrom=chrom,
            length=lengths[chrom],
            pass_index=p,
            folder=str(out / UNITS_DIR / f"{c:04d}-p{p:03d}"),
            source=source,
            seed=options.seed,
            cutting=options.cutting,
            both_strands=options.both_strands,
            keep_case=options.keep_case,
            max_shard_bp=options.max_shard_bp,
        )
        for c, chrom in enumerate(selection.chromosomes)
        for p in range(options.passes)
    ]
    records = {(t.chrom, t.pass_index): _completed(t) for t in tasks}
    pending = [t for t in tasks if records[(t.chrom, t.pass_index)] is None]
    if len(pending) < len(tasks):
        log.info("resuming: %d of %d units already complete", len(tasks) - len(pending), len(tasks))
    with progress(
        total=sum(t.length for t in tasks),
        initial=sum(t.length for t in tasks if t not in pending),
        unit="bp",
        unit_scale=True,
        desc="preprocess",
    ) as bar:
        for record in _run_units(pending, options.workers):
            records[(record["chrom"], record["pass"])] = record
            bar.update(lengths[record["chrom"]])
            if on_unit_done is not None:
                on_unit_done(record)
    manifest = _finalise(out, tasks, records, scan, selection, options, input_info, run_key)
    manifest["assembly_check"] = assembly_check
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_manifest(out, manifest)
    shutil.rmtree(out / UNITS_DIR, ignore_errors=True)
    if not options.cache_dir:  # a decompressed copy of the input is not part of the corpus
        shutil.rmtree(out / CACHE_DIR, ignore_errors=True)
    return manifest


def _run_units(pending: list[UnitTask], workers: int):
    """Yield unit records as units finish: in this process, or in a spawn pool."""
    global _loaded
    if workers == 1 or len(pending) <= 1:
        try:
            for task in pending:
                yield run_unit(task)
        finally:
            _loaded = None  # do not keep a chromosome alive (or stale) after the run
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(workers, len(pending))) as pool:
        yield from pool.imap_unordered(run_unit, pending, chunksize=1)


def _run_key(input_info: dict[str, Any], options: PreprocessOptions, chroms: list[str]) -> str:
    """sha256 of what determines the output: input checksum, parameters, chromosomes."""
    key = {
        "input_sha256": input_info["sha256"],
        "parameters": options.output_parameters(),
        "chromosomes": chroms,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _ours(path: Path) -> bool:
    """Whether ``path`` (an entry of the output folder) is something preprocess writes."""
    name = path.name
    return name in (MANIFEST_NAME, UNITS_DIR, CACHE_DIR) or (
        name.startswith(("shard-", ".shard-")) and name.endswith((".parquet", ".tmp"))
    )


def _prepare_output(out: Path, run_key: str, overwrite: bool) -> dict[str, Any] | None:
    """Make ``out`` ready for this run; return the manifest if it already holds the result.

    Refuses (ConfigError) a folder with other files, or one holding a different corpus or
    an interrupted run of different input/parameters unless ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: output exists and is not a folder")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if not _ours(p)]
        if foreign:
            raise ConfigError(
                f"{out}: output folder holds other files ({', '.join(sorted(foreign)[:3])}); "
                "choose an empty or new folder"
            )
        if overwrite:
            for entry in out.iterdir():
                if entry.name == UNITS_DIR:
                    shutil.rmtree(entry)
                elif entry.name != CACHE_DIR:
                    entry.unlink()
        elif (out / MANIFEST_NAME).is_file():
            manifest = read_manifest(out, stage=STAGE)
            if manifest.get("run_key") == run_key:
                return manifest
            raise ConfigError(
                f"{out}: holds a corpus made from other input or parameters; "
                "use --overwrite to replace it or choose another folder"
            )
    run_file = out / UNITS_DIR / RUN_NAME
    if run_file.is_file() and _recorded_run_key(run_file) != run_key:
        raise ConfigError(
            f"{out}: holds an interrupted run with other input or parameters; "
            "use --overwrite to start again"
        )
    write_text_atomic(run_file, json.dumps({"run_key": run_key}) + "\n")
    return None


def _recorded_run_key(run_file: Path) -> str | None:
    """The run key an interrupted run recorded, or None if the record is unreadable."""
    try:
        return json.loads(run_file.read_text(encoding="utf-8")).get("run_key")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


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
    records: dict[tuple[str, int], dict[str, Any] | None],
    scan: FastaScan,
    selection: Selection,
    options: PreprocessOptions,
    input_info: dict[str, Any],
    run_key: str,
) -> dict[str, Any]:
    """Place every unit's pieces as numbered shards in (chromosome, pass) order; return the
    manifest (not yet written) with per-chromosome and total counts."""
    shards: list[dict[str, Any]] = []
    per_chrom: dict[str, dict[str, int]] = {}
    for task in tasks:
        record = records[(task.chrom, task.pass_index)]
        assert record is not None
        for piece in record["pieces"]:
            name = shard_name(len(shards))
            _place(Path(task.folder) / piece["file"], out / name)
            shards.append({**piece, "file": name, "chrom": task.chrom, "pass": task.pass_index})
        totals = per_chrom.setdefault(task.chrom, {})
        for key, value in record["counts"].items():
            totals[key] = totals.get(key, 0) + value
    total: dict[str, int] = {}
    for counts in per_chrom.values():
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    ambiguous = {r.name: r.ambiguous for r in scan.records}
    return new_manifest(
        STAGE,
        options.output_parameters(),
        input={**input_info, "compression": scan.compression},
        run_key=run_key,
        workers=options.workers,
        chromosomes=[
            {"name": c, "length": scan.lengths[c], "ambiguous_to_n": ambiguous[c]}
            for c in selection.chromosomes
        ],
        skipped=selection.skipped,
        counts={"total": total, "per_chromosome": per_chrom},
        shards=shards,
    )
