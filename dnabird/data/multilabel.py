"""Multi-label examples: sequences with one 0/1 label per feature (chromatin profiles).

:class:`Features` names the label columns (unique ``ids``, the ``names`` as given, and a
``category`` each, e.g. DeepSEA's DHS / TF / HM); :class:`MultiLabelExamples` holds
``sequences`` (``N`` strings of uppercase ACGTN) and ``labels`` (uint8 ``[N, F]``, row
``i`` the labels of ``sequences[i]``, column ``j`` feature ``features.ids[j]``), plus
optional per-row ``columns`` (``name``, ``chrom``, ``start``, ``end``, ``split``, ...).

The Parquet layout (what ``dnabird make-dataset`` writes and ``finetune`` with
``task: multilabel`` reads): a string column ``sequence``, a ``labels`` column of
fixed-size lists of uint8 (one entry per feature), any other columns kept as they are, and
the features as JSON in the schema metadata key ``dnabird.features``
(``{"ids": [...], "names": [...], "categories": [...]}``; without it the features are
``feature_0 .. feature_{F-1}``). Reading checks the columns, the list lengths and that
labels are 0/1, and names the file in a one-line :class:`~dnabird.errors.InputError`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnabird.errors import InputError
from dnabird.files import atomic_path, require_file

FEATURES_KEY = b"dnabird.features"


@dataclass(frozen=True)
class Features:
    """The label columns: ``ids`` (unique), ``names`` (as given) and ``categories`` (a
    category name each, or None), all of length ``F``, in column order."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    categories: tuple[str | None, ...]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.names) == len(self.categories):
            raise ValueError("ids, names and categories must have one entry per feature")
        repeated = [name for name, count in Counter(self.ids).items() if count > 1]
        if repeated:
            raise ValueError(f"feature ids must be unique; repeated: {repeated[:3]}")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_names(
        cls, names: Sequence[str], categories: Sequence[str | None] | None = None
    ) -> Features:
        """Features named ``names``; a repeated name gets ids ``name``, ``name#2``, ..."""
        seen: Counter[str] = Counter()
        ids = []
        for name in names:
            seen[name] += 1
            ids.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        categories = tuple(categories) if categories is not None else (None,) * len(names)
        return cls(tuple(ids), tuple(names), categories)

    @classmethod
    def numbered(cls, count: int) -> Features:
        """``feature_0 .. feature_{count-1}``, no categories."""
        return cls.from_names([f"feature_{i}" for i in range(count)])

    def subset(self, index: Sequence[int] | np.ndarray) -> Features:
        """The features at ``index`` (column positions), in that order."""
        index = [int(i) for i in index]
        return Features(
            tuple(self.ids[i] for i in index),
            tuple(self.names[i] for i in index),
            tuple(self.categories[i] for i in index),
        )

    def to_json(self) -> dict[str, list]:
        """``{"ids", "names", "categories"}`` lists (manifests, Parquet metadata, models)."""
        return {
            "ids": list(self.ids),
            "names": list(self.names),
            "categories": list(self.categories),
        }

    @classmethod
    def from_json(cls, data: dict) -> Features:
        """The inverse of :meth:`to_json`."""
        return cls(tuple(data["ids"]), tuple(data["names"]), tuple(data["categories"]))


@dataclass
class MultiLabelExamples:
    """``N`` sequences with their labels ``[N, F]`` (see the module docstring).

    ``source``: where they came from (a path, for messages); ``columns``: extra per-row
    values, each a length-``N`` numpy array.
    """

    sequences: list[str]
    labels: np.ndarray
    features: Features
    source: str = ""
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        n = len(self.sequences)
        if self.labels.shape != (n, len(self.features)):
            raise ValueError(
                f"labels must be [N={n}, F={len(self.features)}], got {self.labels.shape}"
            )
        for name, values in self.columns.items():
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} rows, not {n}")

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, index: Sequence[int] | np.ndarray) -> MultiLabelExamples:
        """The rows at ``index`` (positions or a boolean mask), in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return MultiLabelExamples(
            [self.sequences[i] for i in index],
            self.labels[index],
            self.features,
            self.source,
            {name: values[index] for name, values in self.columns.items()},
        )

    def select_features(self, index: Sequence[int] | np.ndarray) -> MultiLabelExamples:
        """The same rows with only the label columns at ``index``."""
        index = np.asarray(index, dtype=np.int64)
        return MultiLabelExamples(
            self.sequences,
            self.labels[:, index],
            self.features.subset(index),
            self.source,
            self.columns,
        )


def concatenate(parts: Sequence[MultiLabelExamples], source: str) -> MultiLabelExamples:
    """The rows of ``parts`` one after the other (``source`` names the result); every part
    must have the same features and columns."""
    first = parts[0]
    for part in parts[1:]:
        if part.features != first.features or set(part.columns) != set(first.columns):
            raise ValueError(f"{part.source}: other features or columns than {first.source}")
    return MultiLabelExamples(
        [s for part in parts for s in part.sequences],
        np.concatenate([part.labels for part in parts]),
        first.features,
        source,
        {name: np.concatenate([p.columns[name] for p in parts]) for name in first.columns},
    )


def write_parquet(path: str | os.PathLike, examples: MultiLabelExamples) -> Path:
    """Write ``examples`` to ``path`` (atomically) in the layout of the module docstring."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = len(examples.features)
    flat = pa.array(examples.labels.reshape(-1), type=pa.uint8())
    arrays = {
        "sequence": pa.array(examples.sequences, type=pa.string()),
        "labels": pa.FixedSizeListArray.from_arrays(flat, features),
    }
    for name, values in examples.columns.items():
        arrays[name] = pa.array(values.tolist() if values.dtype == object else values)
    table = pa.table(arrays)
    metadata = {FEATURES_KEY: json.dumps(examples.features.to_json()).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet(path: str | os.PathLike) -> MultiLabelExamples:
    """Read a multi-label Parquet file (module docstring); InputError names what is wrong."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = require_file(path, "multi-label Parquet file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    names = table.schema.names
    for column in ("sequence", "labels"):
        if column not in names:
            raise InputError(
                f"{path}: no {column!r} column (columns: {', '.join(names)}); a multi-label "
                "file has 'sequence' and 'labels' (a list of 0/1 per feature)"
            )
    labels = _label_matrix(table.column("labels"), path)
    metadata = table.schema.metadata or {}
    if FEATURES_KEY in metadata:
        try:
            features = Features.from_json(json.loads(metadata[FEATURES_KEY]))
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path}: unreadable feature metadata ({err})") from None
    else:
        features = Features.numbered(labels.shape[1])
    if len(features) != labels.shape[1]:
        raise InputError(
            f"{path}: the metadata names {len(features)} features but rows hold "
            f"{labels.shape[1]} labels"
        )
    sequences = table.column("sequence").to_pylist()
    for row, sequence in enumerate(sequences, start=1):
        if not sequence:
            raise InputError(f"{path}: row {row}: empty sequence")
    columns = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in names
        if name not in ("sequence", "labels")
    }
    return MultiLabelExamples(sequences, labels, features, str(path), columns)


def _label_matrix(column, path: Path) -> np.ndarray:
    """The ``labels`` column as uint8 ``[N, F]``; InputError for ragged or non-0/1 rows."""
    rows = column.to_pylist()
    if not rows:
        raise InputError(f"{path}: no rows")
    width = len(rows[0]) if rows[0] is not None else 0
    for row, values in enumerate(rows, start=1):
        if values is None or len(values) != width:
            found = "none" if values is None else len(values)
            raise InputError(f"{path}: row {row}: {found} labels, but row 1 has {width}")
    if width == 0:
        raise InputError(f"{path}: rows hold no labels")
    labels = np.asarray(rows)
    bad = np.argwhere((labels != 0) & (labels != 1))
    if len(bad):
        row, col = bad[0]
        raise InputError(f"{path}: row {row + 1}: label {col} is {labels[row, col]}, not 0 or 1")
    return labels.astype(np.uint8)
