"""Labelled sequences in: one reader for the formats users have.

``read_labelled(path)`` -> :class:`LabelledSequences` (ids, normalised sequences, label
indices, class names, optional per-row split). Formats (:data:`FORMATS`), chosen from the
extension unless ``format`` says (``.gz`` allowed for the text formats):

- ``lines`` (``.txt``, ``.seq``; the DeePromoter format): one sequence per line, blank
  lines skipped, no labels in the file; ids ``NAME:LINE`` (file name, 1-based line);
- ``fasta`` (``.fa``, ``.fasta``, ``.fna``; plain, gzip or bgzip): ids are the record
  names; the label may sit in the header as ``label=X`` (``>seq1 label=promoter``);
- ``csv`` / ``tsv``: a header row naming a ``sequence`` and a ``label`` column (GUE:
  ``sequence,label``), optionally ``id`` (else ``NAME:LINE``) and ``split`` (``train``,
  ``validation``/``dev``, ``test``: see :func:`dnabird.data.splits.split_name`); other
  columns are ignored, names are case-insensitive;
- ``parquet``: the same columns; rows are counted from 1 in messages.

Labels come from exactly one place: the file (header field or column named
``label_field``), a constant ``label=`` for the whole file (a file of positives, or of
negatives), or a ``labels_file``: tab-separated ``id<TAB>label`` (an ``id<TAB>label``
header is optional) covering every id of the file and no other. Labels are strings;
``classes`` declares the allowed ones in index order, otherwise they are the sorted
distinct labels (numerically when all are integers).

Sequences may have different lengths; they become uppercase ``ACGTN`` (IUPAC ambiguity
codes as ``N``, as in the tokenizer). A character outside ACGTN and the IUPAC codes, a
label outside the declared classes, a duplicate id, an empty sequence, a missing column or
a file without sequences raises :class:`~dnabird.errors.InputError` in one line naming the
file and line (FASTA: record and line).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabird.data.splits import SPLITS, split_name
from dnabird.errors import ConfigError, InputError
from dnabird.files import require_file
from dnabird.genome.fasta import iter_fasta
from dnabird.tokenizer.vocab import normalize_sequence

FORMATS = ("lines", "fasta", "csv", "tsv", "parquet")
_EXTENSIONS = {
    ".txt": "lines",
    ".seq": "lines",
    ".fa": "fasta",
    ".fasta": "fasta",
    ".fna": "fasta",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class LabelledSequences:
    """Labelled sequences, one row each.

    ``ids``: list[str] [N], unique; ``sequences``: list[str] [N], uppercase ``ACGTN``
    (lengths may differ); ``labels``: int64 [N], index into ``classes``; ``classes``:
    tuple[str, ...], the class names in index order; ``source``: the file path (``" + "``
    between the sources of a concatenation); ``split``: str [N] of :data:`SPLITS` names
    when the file carries them, else None.
    """

    ids: list[str]
    sequences: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    split: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.sequences) != n or self.labels.shape != (n,):
            raise ValueError(
                f"{n} ids, {len(self.sequences)} sequences and labels of shape "
                f"{self.labels.shape} do not match"
            )
        if self.split is not None and self.split.shape != (n,):
            raise ValueError(f"{n} rows but split of shape {self.split.shape}")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: np.ndarray) -> LabelledSequences:
        """The rows selected by ``index`` (int positions or a bool mask [N]), in that order."""
        rows = np.arange(len(self))[np.asarray(index)]
        return dataclasses.replace(
            self,
            ids=[self.ids[i] for i in rows],
            sequences=[self.sequences[i] for i in rows],
            labels=self.labels[rows],
            split=None if self.split is None else self.split[rows],
        )

    def with_split(self, name: str) -> LabelledSequences:
        """The same rows, all in split ``name`` (one of :data:`SPLITS`), e.g. for files that
        ship one split each (GUE ``train.csv``, ``dev.csv``, ``test.csv``)."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return dataclasses.replace(self, split=np.full(len(self), name))


def concatenate(parts: Sequence[LabelledSequences]) -> LabelledSequences:
    """The rows of ``parts`` one after the other. All parts must declare the same classes,
    their ids must be distinct, and either all or none carry splits."""
    if not parts:
        raise ValueError("concatenate needs at least one part")
    classes = parts[0].classes
    for part in parts[1:]:
        if part.classes != classes:
            raise InputError(
                f"{part.source}: classes {part.classes} differ from {classes} of "
                f"{parts[0].source}; declare the same classes when reading both"
            )
    with_split = [part.split is not None for part in parts]
    if any(with_split) and not all(with_split):
        raise InputError(
            f"{' + '.join(p.source for p in parts)}: some files carry splits and others do "
            "not; give every part a split (LabelledSequences.with_split) or none"
        )
    ids = [i for part in parts for i in part.ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        raise InputError(
            f"id {twice!r} occurs in more than one of {', '.join(p.source for p in parts)}; "
            "ids must be unique"
        )
    sources = list(dict.fromkeys(part.source for part in parts))
    return LabelledSequences(
        ids=ids,
        sequences=[s for part in parts for s in part.sequences],
        labels=np.concatenate([part.labels for part in parts]),
        classes=classes,
        source=" + ".join(sources),
        split=np.concatenate([part.split for part in parts]) if all(with_split) else None,
    )


@dataclass
class _Rows:
    """What a format reader found: per row the id, raw sequence, location (line or row
    number, 1-based), and the file's labels and split names when it has them."""

    ids: list[str]
    sequences: list[str]
    where: list[int]
    labels: list[str] | None = None
    split: list[str] | None = None
    unit: str = "line"  # what ``where`` counts: "line" or "row"
    records: bool = False  # FASTA: messages name the record too
    label_source: str | None = None  # where the file would carry labels (for messages)


def read_labelled(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    label: str | None = None,
    classes: Sequence[str] | None = None,
    labels_file: str | os.PathLike | None = None,
    label_field: str = "label",
) -> LabelledSequences:
    """Read labelled sequences from ``path``; see the module docstring.

    ``format``: one of :data:`FORMATS` or ``"auto"`` (by extension); ``label``: one label
    for every row; ``classes``: the allowed labels in index order; ``labels_file``: TSV
    ``id<TAB>label``; ``label_field``: the FASTA header key / table column of the labels.
    """
    path = require_file(path, "labelled sequence file")
    kind = _format(path, format)
    if label is not None and labels_file is not None:
        raise ConfigError("give either label= (one label for the whole file) or labels_file")
    if kind == "lines":
        rows = _read_lines(path)
    elif kind == "fasta":
        rows = _read_fasta(path, label_field)
    elif kind == "parquet":
        rows = _read_parquet(path, label_field)
    else:
        rows = _read_table(path, "," if kind == "csv" else "\t", label_field)
    if not rows.ids:
        raise InputError(f"{path}: empty file (no sequences)")
    where = _locator(path, rows)
    sequences = [_normalise(seq, where, i) for i, seq in enumerate(rows.sequences)]
    _check_unique(rows.ids, where)
    texts, label_where = _labels(path, rows, where, label, labels_file)
    declared = _classes(classes, texts)
    index = {name: i for i, name in enumerate(declared)}
    labels = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        if text not in index:
            raise InputError(
                f"{label_where(i)}: label {text!r} is not one of the declared classes "
                f"({', '.join(declared)}); fix the label or declare it in classes"
            )
        labels[i] = index[text]
    split = None if rows.split is None else np.asarray(rows.split, dtype=str)
    return LabelledSequences(rows.ids, sequences, labels, declared, str(path), split)


def _format(path: Path, format: str) -> str:
    if format != "auto":
        if format not in FORMATS:
            raise ConfigError(f"unknown format {format!r}; choose auto or {', '.join(FORMATS)}")
        return format
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if gzipped and len(suffixes) > 1 else suffixes[-1] if suffixes else ""
    kind = _EXTENSIONS.get(suffix)
    if kind is None or (gzipped and kind == "parquet"):
        known = ", ".join(_EXTENSIONS)
        raise ConfigError(
            f"{path}: cannot tell the format from the name (known: {known}, .gz for text); "
            f"give the format ({', '.join(FORMATS)})"
        )
    return kind


def _read_bytes(path: Path) -> bytes:
    """The whole content of ``path``, decompressed when it is gzip (by its first bytes)."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: unreadable gzip data ({err}); get the file again") from None


def _read_text(path: Path) -> str:
    """The whole UTF-8 text of ``path`` (plain or gzip), line ends as in the file."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); is "
            "it the right file and format?"
        ) from None


def _read_lines(path: Path) -> _Rows:
    rows = _Rows([], [], [])
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        sequence = line.strip()
        if sequence:
            rows.ids.append(f"{path.name}:{number}")
            rows.sequences.append(sequence)
            rows.where.append(number)
    return rows


def _read_fasta(path: Path, label_field: str) -> _Rows:
    """Records through the validated FASTA reader; header labels from a second, cheap pass
    over the header lines (``iter_fasta`` keeps only the record names)."""
    key = f"{label_field}="
    rows = _Rows([], [], [], records=True, label_source=f"{key!r} header fields")
    for name, sequence in iter_fasta(path):
        rows.ids.append(name)
        rows.sequences.append(sequence)
    labels: list[str | None] = []
    for number, header in _fasta_headers(path):
        rows.where.append(number)
        found = [word[len(key) :] for word in header.split()[1:] if word.startswith(key)]
        if len(found) > 1:
            raise InputError(f"{path}: line {number}: more than one {key!r} in the header")
        labels.append(found[0] if found else None)
    assert len(labels) == len(rows.ids)
    given = [text is not None for text in labels]
    if any(given):
        if not all(given):
            missing = given.index(False)
            raise InputError(
                f"{path}: line {rows.where[missing]}: record {rows.ids[missing]!r} has no "
                f"'{key}' in its header while others do; label every record"
            )
        rows.labels = labels  # type: ignore[assignment]
    return rows


def _fasta_headers(path: Path) -> list[tuple[int, str]]:
    """(1-based line, header text without '>') of every header of an already validated
    FASTA file."""
    return [
        (number, line[1:].decode("utf-8", errors="replace").strip())
        for number, line in enumerate(_read_bytes(path).split(b"\n"), 1)
        if line.startswith(b">")
    ]


def _read_table(path: Path, delimiter: str, label_field: str) -> _Rows:
    """CSV or TSV with a header row; see the module docstring."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            return _Rows([], [], [])
        columns = _columns(header, label_field, f"{path}: line {reader.line_num}")
        width = len(header)
        rows = _Rows([], [], [], [] if "label" in columns else None)
        rows.label_source = f"{label_field!r} column"
        rows.split = [] if "split" in columns else None
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            number = reader.line_num
            if len(row) != width:
                raise InputError(
                    f"{path}: line {number}: {len(row)} fields, the header has {width}; "
                    f"check the delimiter ({delimiter!r}) and quoting"
                )
            rows.where.append(number)
            rows.sequences.append(row[columns["sequence"]].strip())
            rows.ids.append(
                row[columns["id"]].strip() if "id" in columns else f"{path.name}:{number}"
            )
            if rows.labels is not None:
                rows.labels.append(row[columns["label"]].strip())
            if rows.split is not None:
                rows.split.append(_split(path, number, row[columns["split"]]))
    except csv.Error as err:
        raise InputError(
            f"{path}: line {reader.line_num}: malformed {delimiter!r}-separated text ({err})"
        ) from None
    return rows


def _columns(header: Sequence[str], label_field: str, where: str) -> dict[str, int]:
    """Positions of the ``sequence``, ``label`` (``label_field``), ``id`` and ``split``
    columns in ``header`` (names compared case-insensitively); ``where`` names the header
    in messages."""
    names = [name.strip().lower() for name in header]
    for name in names:
        if name and names.count(name) > 1:
            raise InputError(f"{where}: column {name!r} appears twice in the header")
    wanted = {"sequence": "sequence", "label": label_field.lower(), "id": "id", "split": "split"}
    columns = {key: names.index(name) for key, name in wanted.items() if name in names}
    if "sequence" not in columns:
        shown = ", ".join(repr(name[:20]) for name in header[:5])
        more = f", ... ({len(header)} columns)" if len(header) > 5 else ""
        raise InputError(
            f"{where}: no 'sequence' column in the header ({shown}{more}); the file needs a "
            f"header row naming the 'sequence' and {label_field!r} columns"
        )
    return columns


def _split(path: Path, where: int | str, text: str, unit: str = "line") -> str:
    name = split_name(text)
    if name is None:
        raise InputError(
            f"{path}: {unit} {where}: split {text.strip()!r} is not one of "
            f"{', '.join(SPLITS)} (dev, val and valid mean validation)"
        )
    return name


def _read_parquet(path: Path, label_field: str) -> _Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        columns = _columns(names, label_field, f"{path}: schema")
        table = pq.read_table(path, columns=[names[i] for i in columns.values()])
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    values = {key: [_text(v) for v in table.column(i).to_pylist()] for i, key in enumerate(columns)}
    numbers = list(range(1, table.num_rows + 1))
    rows = _Rows(
        ids=values.get("id") or [f"{path.name}:{n}" for n in numbers],
        sequences=values["sequence"],
        where=numbers,
        labels=values.get("label"),
        unit="row",
        label_source=f"{label_field!r} column",
    )
    if "split" in values:
        rows.split = [
            _split(path, n, v, "row") for n, v in zip(numbers, values["split"], strict=True)
        ]
    return rows


def _text(value: object) -> str:
    """A Parquet cell as stripped text (None -> empty, bytes decoded)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


def _locator(path: Path, rows: _Rows) -> Callable[[int], str]:
    """Row index -> ``FILE: line N`` (FASTA: with the record; Parquet: ``row N``)."""
    if rows.records:
        return lambda i: f"{path}: record {rows.ids[i]!r}, line {rows.where[i]}"
    return lambda i: f"{path}: {rows.unit} {rows.where[i]}"


def _normalise(sequence: str, where: Callable[[int], str], i: int) -> str:
    if not sequence:
        raise InputError(f"{where(i)}: empty sequence; remove the row or fill it in")
    try:
        return normalize_sequence(sequence)
    except InputError as err:
        raise InputError(f"{where(i)}: {err}") from None


def _check_unique(ids: list[str], where: Callable[[int], str]) -> None:
    first: dict[str, int] = {}
    for i, name in enumerate(ids):
        if not name:
            raise InputError(f"{where(i)}: empty id")
        if first.setdefault(name, i) != i:
            raise InputError(
                f"{where(i)}: duplicate id {name!r} (first at {where(first[name])}); ids must "
                "be unique"
            )


def _labels(
    path: Path,
    rows: _Rows,
    where: Callable[[int], str],
    label: str | None,
    labels_file: str | os.PathLike | None,
) -> tuple[list[str], Callable[[int], str]]:
    """The label text of every row, and where each came from (for messages)."""
    if (label is not None or labels_file is not None) and rows.labels is not None:
        raise ConfigError(
            f"{path}: the file carries labels ({rows.label_source}) and "
            f"{'label=' if label is not None else 'labels_file'} was given too; use one"
        )
    if label is not None:
        if not label.strip():
            raise ConfigError("label= is empty; give the class name of every row")
        return [label.strip()] * len(rows.ids), lambda i: f"{path} (label= for every row)"
    if labels_file is not None:
        return _from_labels_file(Path(labels_file), rows.ids, where)
    if rows.labels is None:
        missing = f"no {rows.label_source}" if rows.label_source else "one sequence per line"
        raise InputError(
            f"{path}: no labels in the file ({missing}); give label= (one label for the whole "
            "file) or labels_file"
        )
    for i, text in enumerate(rows.labels):
        if not text:
            raise InputError(f"{where(i)}: empty label")
    return rows.labels, where


def _from_labels_file(
    path: Path, ids: list[str], where: Callable[[int], str]
) -> tuple[list[str], Callable[[int], str]]:
    """Labels of ``ids`` from a TSV ``id<TAB>label`` file (optional ``id<TAB>label`` header)."""
    require_file(path, "labels file")
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise InputError(f"{path}: line {number}: expected 'id<TAB>label', found {line[:60]!r}")
        name, text = fields[0].strip(), fields[1].strip()
        if not found and number == 1 and (name.lower(), text.lower()) == ("id", "label"):
            continue  # the optional header
        if name in found:
            raise InputError(f"{path}: line {number}: id {name!r} listed twice")
        found[name] = (text, number)
    missing = next((i for i, name in enumerate(ids) if name not in found), None)
    if missing is not None:
        raise InputError(f"{where(missing)}: id {ids[missing]!r} has no label in {path}")
    extra = set(found) - set(ids)
    if extra:
        name = min(extra, key=lambda n: found[n][1])
        raise InputError(
            f"{path}: line {found[name][1]}: id {name!r} is not in the sequence file "
            f"({len(extra)} such ids); is it the labels file of that file?"
        )
    return [found[name][0] for name in ids], lambda i: f"{path}: line {found[ids[i]][1]}"


def _classes(classes: Sequence[str] | None, texts: list[str]) -> tuple[str, ...]:
    """The declared classes (checked), or the sorted distinct labels."""
    if classes is not None:
        if isinstance(classes, str):
            raise ConfigError(f"classes must be a list of names, not the string {classes!r}")
        declared = tuple(str(c).strip() for c in classes)
        if not declared or any(not c for c in declared) or len(set(declared)) != len(declared):
            raise ConfigError(
                f"classes {list(classes)}: give distinct, non-empty class names in index order"
            )
        return declared
    distinct = set(texts)
    if all(_INTEGER.fullmatch(text) for text in distinct):
        return tuple(sorted(distinct, key=lambda text: (int(text), text)))
    return tuple(sorted(distinct))
