"""DeepSEA chromatin-profile data: the ``.mat`` bundle, CSV files and the feature names.

The data's path::

    train.mat / valid.mat / test.mat -> DeepSEAFile -> iter_chunks() / read() -> MultiLabelExamples
    sequences.csv[.gz] (no header)   -> read_multilabel_csv()              -> MultiLabelExamples
    feature names (.tsv)             -> read_feature_names() -> Features -> select_features()

Each example is a sequence of ``L`` bp (DeepSEA: 1,000) with one 0/1 label per feature
(DeepSEA: 919). The bases are one-hot in the order **A, G, C, T** (:data:`ONE_HOT_ORDER`;
not alphabetical); a position whose four values are all 0 is ``N``.

The bundle of Zhou & Troyanskaya (2015) holds three MATLAB files:

- ``train.mat``: MATLAB v7.3, i.e. an HDF5 file (after a 512-byte userblock whose text starts
  ``MATLAB 7.3 MAT-file``), read with h5py. HDF5 keeps MATLAB's column-major arrays with
  **the axes reversed**: the ``N x 4 x 1000`` array ``trainxdata`` is stored as
  ``(1000, 4, N)`` and the ``N x 919`` labels ``traindata`` as ``(919, N)``. About 4.4
  million examples (tens of GB): it is never read whole. A chunk ``[start, stop)`` is the
  hyperslab ``trainxdata[:, :, start:stop]`` (4 x 1000 runs of ``stop - start`` bytes),
  transposed to ``[n, 4, 1000]``, and ``traindata[:, start:stop].T``; memory per chunk is
  proportional to the chunk size, not to ``N``.
- ``valid.mat`` and ``test.mat``: MATLAB v5, read with scipy, axes as in MATLAB:
  ``validxdata`` ``(N, 4, 1000)``, ``validdata`` ``(N, 919)`` (``testxdata`` /
  ``testdata`` likewise; 8,000 and 455,024 examples). The v5 format cannot be read in
  parts: the first :meth:`DeepSEAFile.read` loads both arrays whole (``test.mat``: about
  2.2 GB) and keeps them until the file is closed.

:class:`DeepSEAFile` tells the two formats apart by the file's first bytes (the HDF5
signature at offset 0 or 512, or the v5 header) and the split by its keys. Shuffling stays
I/O friendly: chunks are read whole and in a shuffled order, and the rows within each
chunk are shuffled, so every example comes exactly once and each read is one hyperslab.

Rows are counted from 0 in messages and in the ``index`` column of the examples read from a
``.mat`` file; ranges ``[start, stop)`` are 0-based and half-open. Every problem with a
file (missing keys, wrong shapes, labels other than 0/1, a truncated file, a file that is
not a MAT-file) raises a one-line :class:`~dnabird.errors.InputError` naming the file.
"""

from __future__ import annotations

import difflib
import gzip
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from dnabird.data.multilabel import Features, MultiLabelExamples, read_parquet
from dnabird.errors import ConfigError, InputError
from dnabird.files import require_file
from dnabird.genome.fasta import detect_compression
from dnabird.tokenizer.vocab import normalize_sequence

#: DeepSEA's label categories as column ranges [start, end) of its 919 features.
DEEPSEA_CATEGORIES = {"DHS": (0, 125), "TF": (125, 815), "HM": (815, 919)}
DEEPSEA_FEATURES = 919
PUBLISHED_MEDIAN_AUROC = {
    "DeepSEA": {"TF": 0.958, "HM": 0.856, "DHS": 0.923},
    "BigBird": {"TF": 0.961, "HM": 0.887, "DHS": 0.921},
}
"""Median test AUROC per category on DeepSEA's test set, as the BigBird paper reports
them (Zaheer et al. 2020): the reference rows next to a model trained on these 919
profiles."""
#: The base of each one-hot row, in order (DeepSEA's; not alphabetical).
ONE_HOT_ORDER = "AGCT"
_MAT_SPLITS = ("train", "valid", "test")  # the key prefixes of the three files
#: :func:`read_multilabel` refuses ``.mat`` files with more examples (use iter_chunks).
MAX_IN_MEMORY = 1_000_000

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512)  # plain HDF5; MATLAB v7.3 (after its 512-byte userblock)
_BINARY = frozenset(("0", "1"))
_MI_COMPRESSED = 15  # MAT v5 element type of a zlib-compressed variable (not padded)
# packed one-hot (A=1, G=2, C=4, T=8) -> ASCII code; 0 marks more than one base set
_ASCII = np.zeros(16, dtype=np.uint8)
_ASCII[0] = ord("N")
for _bit, _base in enumerate(ONE_HOT_ORDER):
    _ASCII[1 << _bit] = ord(_base)


def read_feature_names(path: str | os.PathLike) -> Features:
    """The features named by a DeepSEA names file, in column order.

    Format: ``index<TAB>cell|target|treatment`` per line, indices 1, 2, ... naming label
    columns 0, 1, ...; a first line ``0<TAB>Auto-select`` (a header-like row) is skipped,
    blank lines too. Names are kept exactly as given (``NA|NA|NA``, trailing spaces in cell
    names); a repeated name gets the id ``name#2``, ``name#3``, ... Categories are DeepSEA's
    (:data:`DEEPSEA_CATEGORIES`) when there are exactly 919 features, else None.
    """
    path = require_file(path, "feature names file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    names: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        index, tab, name = line.partition("\t")
        if not tab or not name.strip() or not index.strip().isdigit():
            raise InputError(
                f"{path}: line {number}: expected 'index<TAB>name', found {line[:60]!r}"
            )
        if int(index) == 0 and not names:
            continue  # DeepSEA's "0<TAB>Auto-select" row
        if int(index) != len(names) + 1:
            raise InputError(
                f"{path}: line {number}: index {int(index)}, expected {len(names) + 1} "
                "(indices count the label columns from 1, in order)"
            )
        names.append(name)
    if not names:
        raise InputError(f"{path}: no feature names")
    return Features.from_names(names, _categories(len(names)))


def _categories(count: int) -> list[str | None]:
    """DeepSEA's category of each of ``count`` columns (None unless ``count`` is 919)."""
    if count != DEEPSEA_FEATURES:
        return [None] * count
    return [name for name, (lo, hi) in DEEPSEA_CATEGORIES.items() for _ in range(lo, hi)]


def _default_features(count: int) -> Features:
    """``feature_0 .. feature_{count-1}``, with DeepSEA's categories for 919 columns."""
    return Features.from_names([f"feature_{i}" for i in range(count)], _categories(count))


def select_features(
    features: Features, selection: str | os.PathLike | Sequence[str] | None
) -> np.ndarray:
    """Column indices (int64, ascending: the file's order) of the selected features.

    ``selection``: None (all); a category name (``TF``), a feature id or name, or the path
    of a file with one per line (blank lines and ``#`` comments skipped); or a list of
    them. An item matching an id or name selects every feature with that id or name (a
    repeated name selects all its replicates; ``name#2`` only the second); a category
    selects all its features. An unknown item raises ConfigError (InputError for a file,
    with its line), suggesting the closest id or category.
    """
    if selection is None:
        return np.arange(len(features), dtype=np.int64)
    if isinstance(selection, os.PathLike) or (
        isinstance(selection, str) and Path(selection).is_file()
    ):
        items = _selection_file(Path(selection))
    elif isinstance(selection, str):
        items = [(selection, None)]
    else:
        items = [(str(item), None) for item in selection]
    by_key: dict[str, list[int]] = {}
    for column, (ident, name, category) in enumerate(
        zip(features.ids, features.names, features.categories, strict=True)
    ):
        for key in dict.fromkeys((ident, name, category)):
            if key is not None:
                by_key.setdefault(key, []).append(column)
    chosen: set[int] = set()
    for item, where in items:
        if item not in by_key:
            lowered = {key.lower(): key for key in by_key}
            close = difflib.get_close_matches(item.lower(), list(lowered), n=1)
            hint = f"; did you mean {lowered[close[0]]!r}?" if close else ""
            if where is not None:
                raise InputError(f"{where}: unknown feature or category {item!r}{hint}")
            raise ConfigError(
                f"feature selection: {item!r} is not a feature id, name, category or file{hint}"
            )
        chosen.update(by_key[item])
    if not chosen:
        raise ConfigError("the feature selection is empty; give at least one id or category")
    return np.array(sorted(chosen), dtype=np.int64)


def _selection_file(path: Path) -> list[tuple[str, str | None]]:
    """(item, ``FILE: line N``) of each non-blank, non-comment line of ``path``."""
    path = require_file(path, "feature selection file")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return [
        (line.strip(), f"{path}: line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def decode_one_hot(x: np.ndarray) -> list[str]:
    """The sequences of one-hot array ``x`` [n, 4, L] (rows A, G, C, T; any integer, bool
    or float dtype holding 0/1): ``n`` strings of ``L`` characters ACGTN, an all-zero
    column read as ``N``. Other values, or more than one base at a position, raise
    InputError naming the example and position (0-based)."""
    return _decode(x, "one-hot array", 0)


def _decode(x: np.ndarray, where: str, first: int) -> list[str]:
    """:func:`decode_one_hot`; messages start with ``where`` and count examples from
    ``first``."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] != len(ONE_HOT_ORDER):
        raise InputError(f"{where}: one-hot array of shape {x.shape}, expected [n, 4, L]")
    n, _, length = x.shape
    bad = _first_non_binary(x)
    if bad is not None:
        i, row, j = bad
        raise InputError(
            f"{where}: example {first + i}, position {j}: one-hot value {x[i, row, j]} "
            f"for {ONE_HOT_ORDER[row]}, not 0 or 1"
        )
    bits = x.astype(np.uint8, copy=False)
    packed = bits[:, 0] | (bits[:, 1] << 1) | (bits[:, 2] << 2) | (bits[:, 3] << 3)  # [n, L]
    ascii_codes = _ASCII[packed]
    if not ascii_codes.all():
        i, j = np.argwhere(ascii_codes == 0)[0]
        bases = "".join(b for b, v in zip(ONE_HOT_ORDER, x[i, :, j], strict=True) if v)
        raise InputError(
            f"{where}: example {first + i}, position {j}: more than one base set ({bases})"
        )
    text = ascii_codes.tobytes().decode("ascii")
    return [text[i * length : (i + 1) * length] for i in range(n)]


def _first_non_binary(a: np.ndarray) -> tuple[int, ...] | None:
    """The position of the first value of ``a`` other than 0 and 1, or None. Integer
    arrays are checked by their range (no temporary arrays: chunks may be large)."""
    if a.size == 0 or (a.dtype.kind in "biu" and a.min() >= 0 and a.max() <= 1):
        return None
    bad = np.argwhere((a != 0) & (a != 1))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


class DeepSEAFile:
    """One DeepSEA ``.mat`` file (MATLAB v7.3 or v5), opened lazily; see the module docstring.

    ``features``: the names of the label columns (:func:`read_feature_names`); default
    ``feature_0 ..`` (with DeepSEA's categories for 919 columns). Attributes: ``path``,
    ``format`` (``"v7.3"`` or ``"v5"``), ``split`` (``train``, ``valid`` or ``test``, from
    the keys), ``sequence_length`` (L, bp), ``features``. ``len()`` is the number of
    examples ``N``. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, features: Features | None = None) -> None:
        self.path = require_file(path, "DeepSEA .mat file")
        self.format = _detect_format(self.path)
        self._h5 = None
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None  # v5, once loaded
        try:
            self._open(features)
        except BaseException:
            self.close()
            raise

    def _open(self, features: Features | None) -> None:
        if self.format == "v7.3":
            self._h5 = _open_hdf5(self.path)
            shapes = {
                key: item.shape
                for key, item in self._h5.items()
                if hasattr(item, "shape")  # datasets, not groups (#refs#)
            }
        else:
            shapes = _v5_shapes(self.path)
        self.split = _split(self.path, shapes)
        self._x_key, self._y_key = f"{self.split}xdata", f"{self.split}data"
        self._length, self.sequence_length, count = self._check_shapes(shapes)
        if features is None:
            features = _default_features(count)
        elif len(features) != count:
            raise InputError(
                f"{self.path}: {count} labels per example, but {len(features)} feature "
                "names were given; is it the names file of this data?"
            )
        self.features = features

    def _check_shapes(self, shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, int]:
        """(N, L, F) from the shapes of the two arrays, checked."""
        x, y = shapes[self._x_key], shapes[self._y_key]
        v73 = self.format == "v7.3"
        layout = "(L, 4, N) in a v7.3 file (axes reversed)" if v73 else "(N, 4, L) in a v5 file"
        if len(x) != 3 or x[1] != 4 or min(x) == 0:
            example = "(1000, 4, N)" if v73 else "(N, 4, 1000)"
            raise InputError(
                f"{self.path}: {self._x_key} has shape {x}, expected {layout}, e.g. {example}"
            )
        n, length = (x[2], x[0]) if v73 else (x[0], x[2])
        if len(y) != 2 or (y[1] if v73 else y[0]) != n or 0 in y:
            expected = f"(features, {n})" if v73 else f"({n}, features)"
            hint = "; a MATLAB v7.3 file stores both arrays with the axes reversed" if v73 else ""
            raise InputError(
                f"{self.path}: {self._y_key} has shape {y}, expected {expected} to match "
                f"{self._x_key} {x} ({n} examples){hint}"
            )
        return n, length, y[0] if v73 else y[1]

    def __len__(self) -> int:
        return self._length

    @property
    def num_features(self) -> int:
        """F, the number of labels per example."""
        return len(self.features)

    def read(self, start: int = 0, stop: int | None = None) -> MultiLabelExamples:
        """Examples ``[start, stop)`` (0-based, half-open; ``stop`` None: to the end), with
        an ``index`` column (int64, the examples' positions in the file)."""
        stop = len(self) if stop is None else stop
        if not 0 <= start <= stop <= len(self):
            raise ValueError(f"range [{start}, {stop}) is outside [0, {len(self)})")
        x, y = self._slab(start, stop)
        return self._examples(x, y, start)

    def iter_chunks(
        self, chunk_size: int = 4096, shuffle: bool = False, seed: int = 0
    ) -> Iterator[MultiLabelExamples]:
        """All examples in chunks of ``chunk_size`` (the last one may be shorter), each as
        :meth:`read` returns it. ``shuffle``: chunks in a random order and the rows within
        each chunk permuted, drawn from ``seed`` (same seed, same order; pass a new seed per
        epoch). Each chunk is one read of ``chunk_size`` consecutive examples."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        starts = np.arange(0, len(self), chunk_size)
        rng = np.random.default_rng(seed) if shuffle else None
        if rng is not None:
            starts = rng.permutation(starts)
        for start in starts.tolist():
            chunk = self.read(start, min(start + chunk_size, len(self)))
            yield chunk if rng is None else chunk.subset(rng.permutation(len(chunk)))

    def _slab(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """x [n, 4, L] and labels [n, F] of examples [start, stop), as stored (any dtype)."""
        if self._h5 is not None:
            try:
                x = self._h5[self._x_key][:, :, start:stop]  # (L, 4, n)
                y = self._h5[self._y_key][:, start:stop]  # (F, n)
            except (OSError, ValueError, KeyError) as err:
                raise InputError(
                    f"{self.path}: cannot read examples [{start}, {stop}) "
                    f"({_one_line(err)}); the file may be truncated or corrupt"
                ) from None
            return x.transpose(2, 1, 0), y.T
        if self._arrays is None:
            self._arrays = _load_v5(self.path, self._x_key, self._y_key)
        x, y = self._arrays
        return x[start:stop], y[start:stop]

    def _examples(self, x: np.ndarray, y: np.ndarray, start: int) -> MultiLabelExamples:
        bad = _first_non_binary(y)
        if bad is not None:
            row, column = bad
            raise InputError(
                f"{self.path}: example {start + row} (0-based): label {column} "
                f"({self.features.ids[column]}) is {y[row, column]}, not 0 or 1"
            )
        sequences = _decode(x, f"{self.path}: {self._x_key}", start)
        index = np.arange(start, start + len(sequences), dtype=np.int64)
        return MultiLabelExamples(
            sequences, y.astype(np.uint8), self.features, str(self.path), {"index": index}
        )

    def close(self) -> None:
        """Close the HDF5 file / drop the loaded v5 arrays."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._arrays = None

    def __enter__(self) -> DeepSEAFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DeepSEAFile({str(self.path)!r}, format={self.format}, split={self.split}, "
            f"examples={len(self)}, length={self.sequence_length}, features={len(self.features)})"
        )


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _detect_format(path: Path) -> str:
    """``v7.3`` (HDF5 signature at offset 0 or 512) or ``v5`` (MAT v5 header), else
    InputError."""
    with open(path, "rb") as handle:
        head = handle.read(max(_HDF5_OFFSETS) + len(_HDF5_SIGNATURE))
    if any(head[o : o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS):
        return "v7.3"
    if head.startswith(b"MATLAB") and head[126:128] in (b"IM", b"MI"):
        return "v5"
    raise InputError(
        f"{path}: neither a MATLAB v7.3 (HDF5) nor a MATLAB v5 MAT-file (starts with "
        f"{head[:16]!r}); DeepSEA's train.mat, valid.mat and test.mat are one or the other"
    )


def _open_hdf5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            f"{path}: unreadable MATLAB v7.3 (HDF5) file ({_one_line(err)}); it may be "
            "truncated or corrupt: get it again"
        ) from None


def _split(path: Path, shapes: dict[str, tuple[int, ...]]) -> str:
    """The split whose ``{split}xdata`` and ``{split}data`` arrays the file holds."""
    keys = ", ".join(sorted(shapes)) or "none"
    found = [split for split in _MAT_SPLITS if f"{split}xdata" in shapes]
    if len(found) != 1:
        wanted = "one of " + ", ".join(f"{s}xdata" for s in _MAT_SPLITS)
        what = "more than one split" if found else "no DeepSEA sequence array"
        raise InputError(f"{path}: {what} ({wanted}); its arrays: {keys}")
    if f"{found[0]}data" not in shapes:
        raise InputError(
            f"{path}: {found[0]}xdata without its labels {found[0]}data; its arrays: {keys}"
        )
    return found[0]


def _v5_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the variables of a MAT v5 file, read from the headers only."""
    from scipy.io import whosmat

    _check_v5_complete(path)
    try:
        return {name: tuple(shape) for name, shape, _ in whosmat(path)}
    except Exception as err:  # scipy raises many types for a corrupt file
        raise InputError(f"{path}: unreadable MATLAB v5 file ({_one_line(err)})") from None


def _check_v5_complete(path: Path) -> None:
    """InputError if a top-level element of a MAT v5 file runs past the file's end (scipy
    lists only the variables before a cut without saying so)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        order = "<" if handle.read(128)[126:128] == b"IM" else ">"
        offset = 128
        while offset < size:
            tag = handle.read(8)
            kind, nbytes = struct.unpack(order + "II", tag) if len(tag) == 8 else (0, size)
            end = offset + 8 + nbytes
            if end > size:
                raise InputError(
                    f"{path}: truncated MATLAB v5 file (a variable at byte {offset} ends at "
                    f"byte {end}, the file has {size}); get it again"
                )
            offset = end if kind == _MI_COMPRESSED else end + (-nbytes % 8)
            handle.seek(offset)


def _load_v5(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays of a MAT v5 file, whole (the format has no partial reads)."""
    from scipy.io import loadmat

    try:
        data = loadmat(path, variable_names=[x_key, y_key])
    except Exception as err:  # scipy raises many types for a corrupt file
        raise InputError(
            f"{path}: unreadable MATLAB v5 file ({_one_line(err)}); it may be truncated or "
            "corrupt: get it again"
        ) from None
    return data[x_key], data[y_key]


def read_multilabel_csv(
    path: str | os.PathLike, features: Features | None = None
) -> MultiLabelExamples:
    """Read a DeepSEA-style CSV (``.tsv``: tab-separated), plain or gzip.

    No header: each line is the sequence, then one 0/1 label per feature (the shared
    sample: 8,000 bp and 919 labels). Sequences become uppercase ACGTN (IUPAC codes as N);
    every line must hold as many labels as the first. ``features`` names the label
    columns (default ``feature_0 ..``, DeepSEA's categories for 919). Errors name the line.
    """
    path = require_file(path, "multi-label CSV file")
    delimiter = "\t" if _base_suffix(path) == ".tsv" else ","
    sequences: list[str] = []
    rows: list[bytes] = []
    width = first = 0
    opener = gzip.open if detect_compression(path) != "plain" else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                where = f"{path}: line {number}"
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise InputError(f"{where}: not UTF-8 text; is it a CSV file?") from None
                if not line.strip():
                    continue
                fields = line.split(delimiter)
                if not width:
                    width, first = len(fields) - 1, number
                    if not width:
                        raise InputError(
                            f"{where}: no labels after the sequence ({delimiter!r}-separated, "
                            "no header: the sequence, then one 0/1 per feature)"
                        )
                elif len(fields) - 1 != width:
                    raise InputError(
                        f"{where}: {len(fields) - 1} labels, but line {first} has {width}"
                    )
                rows.append(_label_row(fields[1:], where))  # first: a header fails here
                sequences.append(_sequence(fields[0].strip(), where))
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: unreadable gzip data ({_one_line(err)}); get it again") from None
    if not rows:
        raise InputError(f"{path}: empty file (no examples)")
    labels = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), width) - ord("0")
    if features is None:
        features = _default_features(width)
    elif len(features) != width:
        raise InputError(
            f"{path}: {width} labels per line, but {len(features)} feature names were given; "
            "is it the names file of this data?"
        )
    return MultiLabelExamples(sequences, labels, features, str(path))


def _sequence(text: str, where: str) -> str:
    if not text:
        raise InputError(f"{where}: empty sequence")
    try:
        return normalize_sequence(text)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def _label_row(cells: list[str], where: str) -> bytes:
    """The ASCII ``0``/``1`` of one line's labels, or InputError naming the bad one."""
    if not _BINARY.issuperset(cells):
        column = next(j for j, cell in enumerate(cells) if cell not in ("0", "1"))
        raise InputError(
            f"{where}: label {column} (field {column + 2}) is {cells[column]!r}, not 0 or 1 "
            "(the file has no header: the sequence, then one 0/1 per feature)"
        )
    return "".join(cells).encode("ascii")


def _base_suffix(path: Path) -> str:
    """The extension before any ``.gz``, lowercase (``a.csv.gz`` -> ``.csv``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def read_multilabel(
    path: str | os.PathLike, features: Features | None = None
) -> MultiLabelExamples:
    """Read multi-label examples, the format chosen by the extension: ``.csv``/``.tsv``
    (optionally ``.gz``) -> :func:`read_multilabel_csv`; ``.parquet`` ->
    :func:`dnabird.data.multilabel.read_parquet` (``features``, if given, replace the names
    stored in the file; the counts must match); ``.mat`` -> the whole :class:`DeepSEAFile`,
    refused above :data:`MAX_IN_MEMORY` examples (stream those with ``iter_chunks``)."""
    path = require_file(path, "multi-label data file")
    suffix = _base_suffix(path)
    if suffix in (".csv", ".tsv"):
        return read_multilabel_csv(path, features)
    if suffix == ".parquet" and path.suffix.lower() != ".gz":
        examples = read_parquet(path)
        if features is None:
            return examples
        if len(features) != len(examples.features):
            raise InputError(
                f"{path}: {len(examples.features)} labels per row, but {len(features)} "
                "feature names were given; is it the names file of this data?"
            )
        return MultiLabelExamples(
            examples.sequences, examples.labels, features, examples.source, examples.columns
        )
    if suffix == ".mat" and path.suffix.lower() != ".gz":
        with DeepSEAFile(path, features) as data:
            if len(data) > MAX_IN_MEMORY:
                raise InputError(
                    f"{path}: {len(data):,} examples are too many to hold in memory (limit "
                    f"{MAX_IN_MEMORY:,}); stream them with DeepSEAFile(path).iter_chunks()"
                )
            return data.read()
    raise ConfigError(
        f"{path}: cannot tell the format from the name; multi-label data is .csv or .tsv "
        "(optionally .gz), .parquet or .mat"
    )
