"""Run an input through a predictor into a table: batches in input order, in one process
or in many (Lightning's predict loop with DDP).

The input's rows (:mod:`dnabird.predict.inputs`, :mod:`dnabird.predict.variants`) are cut
into batches of ``batch_size`` rows in input order, skipped rows included, so batch ``i``
is the same whatever the number of processes. A *scorer* turns the scorable rows of a
batch into one float32 ``[rows, features]`` array per dataset. One process scores every
batch and writes it (:func:`run`). With ``devices * num_nodes > 1`` processes, process
``r`` of ``W`` scores batches ``r, r + W, ...`` inside Lightning's predict loop and appends
them to its own part file (``np.save`` records, beside the output); process 0 then reads
the input again and writes every batch, in order, from the parts: the same writer calls
with the same values, so the output is the file a single process would write. Every rank
must see the output's folder (a shared file system across nodes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import numpy as np

from dnabird.errors import InputError
from dnabird.predict.inputs import Row
from dnabird.predict.predictor import Predictor
from dnabird.predict.writers import NaWriter, TableWriter, side_path

T = TypeVar("T")


class Input(Protocol):
    """What :func:`run` reads: identifier ``columns`` (``(name, kind)``), ``na_columns``,
    ``source`` (for messages), :meth:`rows` in input order and their :meth:`count`."""

    columns: Sequence[tuple[str, str]]
    na_columns: Sequence[str]
    source: str

    def rows(self) -> Iterator[Row]: ...

    def count(self) -> int: ...


Scorer = Callable[[Predictor, Sequence[Row]], tuple[dict[str, np.ndarray], np.ndarray]]
"""``(predictor, scorable rows) -> ({dataset: float32 [rows, features]}, scored bool
[rows])``; a row not scored (its tokens do not fit the model's window) is listed in the
``.NA`` file."""


def predict_windows(predictor: Predictor, rows: Sequence[Row]) -> tuple[dict, np.ndarray]:
    """The :data:`Scorer` of ``predict``: the probabilities of each row's one window, as
    dataset ``data``."""
    values, scored = predictor.predict([row.sequences[0] for row in rows])
    return {"data": values[scored]}, scored


@dataclass
class RunSummary:
    """What a run wrote: ``rows`` scored, ``not_scored`` (in the ``.NA`` file), the
    ``outputs`` paths, ``seconds`` and the ``processes`` it ran in."""

    rows: int
    not_scored: int
    outputs: list[Path]
    na_path: Path
    manifest_path: Path
    seconds: float
    processes: int = 1
    ref_mismatches: int = 0
    """Variant effects: alleles whose REF differs from the genome (flagged or skipped)."""


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(
    source: Input,
    predictor: Predictor,
    out: str | os.PathLike,
    *,
    scorer: Scorer = predict_windows,
    datasets: Sequence[str] = ("data",),
    stage: str = "predict",
    parameters: dict[str, Any] | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    unit: str = "seq",
) -> RunSummary | None:
    """Score every row of ``source`` and write ``out`` (format by extension), its ``.NA``
    file and, last, its ``.manifest.json``. Returns the summary, or None in a process other
    than the first of a multi-process run (which only scores its share)."""
    started = time.time()
    processes = devices * num_nodes
    parts: list[Path] | None = None
    if processes > 1:
        from dnabird.predict.distributed import score_distributed

        parts = score_distributed(
            source, predictor, out, scorer, datasets, devices, num_nodes, accelerator
        )
        if parts is None:
            return None
    try:
        summary = _write(source, predictor, out, scorer, datasets, parts, unit)
    finally:
        for part in parts or ():
            part.unlink(missing_ok=True)
    summary.seconds = round(time.time() - started, 3)
    summary.processes = processes
    _write_manifest(source, predictor, summary, stage, parameters or {})
    return summary


def _write(
    source: Input,
    predictor: Predictor,
    out: str | os.PathLike,
    scorer: Scorer,
    datasets: Sequence[str],
    parts: list[Path] | None,
    unit: str,
) -> RunSummary:
    """Write every batch: scored here, or read from ``parts`` (batch ``i`` in part
    ``i % len(parts)``)."""
    from dnabird.progress import progress

    not_fit = (
        f"its tokens do not fit the model's window of {predictor.classifier.window} tokens; "
        "use a smaller --window-bp"
    )
    handles = [open(p, "rb") for p in parts] if parts else []  # noqa: SIM115 - closed below
    try:
        with (
            TableWriter(out, source.columns, predictor.columns, datasets) as table,
            NaWriter(side_path(out, ".NA"), source.na_columns) as na,
            progress(total=source.count(), unit=unit, desc=Path(out).name) as bar,
        ):
            for i, batch in enumerate(batches(source.rows(), predictor.batch_size)):
                scorable = [row for row in batch if row.skipped is None]
                if handles:
                    values, scored = _read_part(handles[i % len(handles)], datasets)
                else:
                    values, scored = score_rows(predictor, scorer, scorable, datasets)
                kept = [row.ids for row, ok in zip(scorable, scored, strict=True) if ok]
                table.write(kept, values)
                fitted = iter(scored)
                for row in batch:
                    reason = row.skipped or (None if next(fitted) else not_fit)
                    if reason is not None:
                        na.write(row.na_ids, reason)
                bar.update(len(batch))
            if not table.rows and not na.rows:  # nothing written that looks complete
                raise InputError(f"{source.source}: no records to score")
    finally:
        for handle in handles:
            handle.close()
    return RunSummary(
        table.rows,
        na.rows,
        list(dict.fromkeys(table.paths.values())),
        na.path,
        side_path(out, ".manifest.json"),
        0.0,
    )


def score_rows(
    predictor: Predictor, scorer: Scorer, rows: Sequence[Row], datasets: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``scorer`` on ``rows``; an empty result (with every dataset) when there are none."""
    if not rows:
        empty = np.empty((0, len(predictor.columns)), dtype=np.float32)
        return {name: empty for name in datasets}, np.zeros(0, dtype=bool)
    return scorer(predictor, rows)


def _write_manifest(
    source: Input,
    predictor: Predictor,
    summary: RunSummary,
    stage: str,
    parameters: dict[str, Any],
) -> None:
    import json

    from dnabird.files import write_text_atomic
    from dnabird.manifest import new_manifest

    manifest = new_manifest(
        stage,
        {**predictor.describe(), **parameters},
        input=source.source,
        rows=summary.rows,
        not_scored=summary.not_scored,
        outputs=[str(p) for p in summary.outputs],
        na_file=str(summary.na_path),
        seconds=summary.seconds,
        processes=summary.processes,
    )
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_text_atomic(summary.manifest_path, text)


# ------------------------------------------------------------------ many processes
def part_path(out: str | os.PathLike, rank: int) -> Path:
    """The part file of process ``rank`` (hidden, beside the output)."""
    out = Path(out)
    return out.with_name(f".{out.name}.part-{rank:05d}.npy")


def append_part(handle: IO[bytes], values: dict[str, np.ndarray], scored: np.ndarray) -> None:
    """Append one batch to a part file: each dataset's values (by name), then ``scored``."""
    for name in sorted(values):
        np.save(handle, np.ascontiguousarray(values[name], dtype=np.float32))
    np.save(handle, np.asarray(scored, dtype=bool))


def _read_part(
    handle: IO[bytes], datasets: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    values = {name: np.load(handle, allow_pickle=False) for name in sorted(datasets)}
    return values, np.load(handle, allow_pickle=False)
