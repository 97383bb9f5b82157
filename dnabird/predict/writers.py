"""Prediction tables written incrementally and finished atomically: TSV, HDF5, Parquet.

A table has identifier columns (:data:`Column`: a name and a kind, ``int``, ``str`` or
``bool``), one value column per output feature, and one or more *datasets*: ``data`` for
``predict``, one per score (``ref``, ``alt``, ``diff``, ...) for ``variant-effect``.
The format follows the output's extension:

- ``.tsv``: a header, then one line per row: identifiers, then the values (``%.6g``).
  Several datasets go to one file each, ``STEM.DATASET.tsv``.
- ``.parquet``: the same columns (values float32), written one row group per batch;
  several datasets as for TSV.
- ``.h5`` / ``.hdf5``: one file; a float32 dataset ``[rows, features]`` per dataset name,
  ``features`` (the column names, strings) and a group ``rows`` with one dataset per
  identifier column (their order in its attribute ``columns``).

Every file is written under a temporary name beside its destination and renamed into place
only by :meth:`TableWriter.commit`; an error (or Ctrl-C) before that leaves no file that
looks complete. :class:`NaWriter` writes the rows that could not be scored (``.NA``, TSV
with a ``reason`` column), the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError

Column = tuple[str, str]
"""An identifier column: ``(name, kind)``, kind ``int``, ``str`` or ``bool``."""

FORMATS = {".tsv": "tsv", ".h5": "h5", ".hdf5": "h5", ".parquet": "parquet"}
"""Output extension -> format."""


def output_format(path: str | os.PathLike) -> str:
    """The format of an output path from its extension (ConfigError when unknown)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"{path}: unknown output format {suffix or '(no extension)'!r}; end the name "
            "with .tsv, .h5 or .parquet"
        )
    return FORMATS[suffix]


def dataset_paths(path: str | os.PathLike, datasets: Sequence[str]) -> dict[str, Path]:
    """Where each dataset goes: ``path`` itself for HDF5 or a single dataset, else
    ``STEM.DATASET.EXT`` per dataset."""
    path = Path(path)
    if output_format(path) == "h5" or len(datasets) == 1:
        return {name: path for name in datasets}
    return {name: path.with_name(f"{path.stem}.{name}{path.suffix}") for name in datasets}


def side_path(path: str | os.PathLike, suffix: str) -> Path:
    """A file beside the output: ``preds.tsv`` -> ``preds<suffix>`` (``.NA``,
    ``.manifest.json``)."""
    path = Path(path)
    return path.with_name(path.stem + suffix)


class _Discarded(Exception):
    """Thrown into the temporary files' context to remove them instead of renaming."""


class _Temporary:
    """Temporary files beside their destinations (:func:`dnabird.files.atomic_path`):
    renamed into place by :meth:`commit`, removed by :meth:`discard`."""

    def __init__(self, targets: Sequence[Path]) -> None:
        from dnabird.files import atomic_path

        self._stack = contextlib.ExitStack()
        self.temporary = {
            target: self._stack.enter_context(atomic_path(target))
            for target in dict.fromkeys(Path(t) for t in targets)
        }

    def commit(self) -> None:
        self._stack.close()

    def discard(self) -> None:
        self._stack.__exit__(_Discarded, _Discarded(), None)


class _Output:
    """A context manager that commits its files when the block succeeds, discards them
    otherwise."""

    def commit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def discard(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


class TableWriter(_Output):
    """Writes one table (see the module docstring) to ``path``; use as a context manager
    (commits when the block succeeds, discards otherwise) or call :meth:`commit`."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Sequence[Column],
        features: Sequence[str],
        datasets: Sequence[str] = ("data",),
    ) -> None:
        self.format = output_format(path)
        self.columns = list(columns)
        self.features = list(features)
        self.datasets = list(datasets)
        self.paths = dataset_paths(path, self.datasets)
        self._files = _Temporary(list(self.paths.values()))
        self.rows = 0
        self._open()

    # ------------------------------------------------------------------ formats
    def _open(self) -> None:
        tmp = {name: self._files.temporary[p] for name, p in self.paths.items()}
        if self.format == "tsv":
            header = "\t".join([name for name, _ in self.columns] + self.features) + "\n"
            self._handles = {  # closed by commit / discard
                name: open(tmp[name], "w", encoding="utf-8")  # noqa: SIM115
                for name in tmp
            }
            for handle in self._handles.values():
                handle.write(header)
        elif self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            kinds = {"int": pa.int64(), "str": pa.string(), "bool": pa.bool_()}
            fields = [pa.field(name, kinds[kind]) for name, kind in self.columns]
            fields += [pa.field(name, pa.float32()) for name in self.features]
            self._schema = pa.schema(fields)
            self._handles = {name: pq.ParquetWriter(tmp[name], self._schema) for name in tmp}
        else:
            import h5py

            self._h5 = h5py.File(next(iter(tmp.values())), "w")
            width = len(self.features)
            chunk_rows = max(1, min(1024, (1 << 20) // max(1, 4 * width)))
            for name in self.datasets:
                self._h5.create_dataset(
                    name,
                    shape=(0, width),
                    maxshape=(None, width),
                    dtype="float32",
                    chunks=(chunk_rows, max(1, width)),
                )
            self._h5.create_dataset(
                "features", data=np.array(self.features, dtype=object), dtype=_h5_string()
            )
            group = self._h5.create_group("rows")
            group.attrs["columns"] = [name for name, _ in self.columns]  # their order
            for name, kind in self.columns:
                dtype = {"int": "int64", "bool": "bool", "str": _h5_string()}[kind]
                group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=True)

    def write(self, ids: Sequence[Sequence[Any]], values: dict[str, np.ndarray]) -> None:
        """Append rows: ``ids[i]`` (one value per identifier column) and, per dataset,
        ``values[name][i]`` (float32 ``[rows, features]``)."""
        if not len(ids):
            return
        for name in self.datasets:
            if values[name].shape != (len(ids), len(self.features)):
                raise ValueError(
                    f"dataset {name}: values {values[name].shape} for {len(ids)} rows and "
                    f"{len(self.features)} features"
                )
        if self.format == "tsv":
            prefixes = ["\t".join(str(v) for v in row) for row in ids]
            for name, handle in self._handles.items():
                handle.writelines(
                    prefix + "\t" + "\t".join(f"{v:.6g}" for v in row.tolist()) + "\n"
                    for prefix, row in zip(prefixes, values[name], strict=True)
                )
        elif self.format == "parquet":
            import pyarrow as pa

            id_arrays = [
                pa.array([row[j] for row in ids], type=self._schema.field(j).type)
                for j in range(len(self.columns))
            ]
            for name, handle in self._handles.items():
                block = np.asarray(values[name], dtype=np.float32)
                arrays = id_arrays + [pa.array(block[:, k]) for k in range(block.shape[1])]
                handle.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        else:
            start, stop = self.rows, self.rows + len(ids)
            for name in self.datasets:
                data = self._h5[name]
                data.resize(stop, axis=0)
                data[start:stop] = np.asarray(values[name], dtype=np.float32)
            for j, (name, _) in enumerate(self.columns):
                column = self._h5["rows"][name]
                column.resize(stop, axis=0)
                column[start:stop] = [row[j] for row in ids]
        self.rows += len(ids)

    def _close(self) -> None:
        if self.format == "h5":
            self._h5.close()
        else:
            for handle in self._handles.values():
                handle.close()

    def commit(self) -> None:
        """Finish the files and rename them into place."""
        self._close()
        self._files.commit()

    def discard(self) -> None:
        """Close and delete the temporary files."""
        try:
            self._close()
        finally:
            self._files.discard()


class NaWriter(_Output):
    """The ``.NA`` file: TSV of the rows not scored, ``columns`` then ``reason``; written
    under a temporary name and renamed by :meth:`commit` (always, even when empty, so a
    stale file from an earlier run never survives)."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self._files = _Temporary([self.path])
        self._handle = open(  # noqa: SIM115 - closed by commit / discard
            self._files.temporary[self.path], "w", encoding="utf-8"
        )
        self._handle.write("\t".join([*columns, "reason"]) + "\n")
        self.rows = 0

    def write(self, ids: Sequence[Any], reason: str) -> None:
        """One row not scored: its identifiers and why."""
        self._handle.write("\t".join([*(str(v) for v in ids), reason]) + "\n")
        self.rows += 1

    def commit(self) -> None:
        self._handle.close()
        self._files.commit()

    def discard(self) -> None:
        self._handle.close()
        self._files.discard()


def _h5_string() -> Any:
    import h5py

    return h5py.string_dtype(encoding="utf-8")
