"""Train / validation / test splits of labelled sequences: stratified, by sequence identity.

:func:`split_by_identity` assigns every row a split name from :data:`SPLITS`. It is

- deterministic: the same sequences, labels, fractions and seed give the same splits;
- by identity: identical sequences (after normalisation: uppercase, IUPAC codes as ``N``)
  form one group and a group always lands in one split, so no test sequence was seen in
  training. A group whose members carry different labels goes by its majority label (ties:
  the lower class index); :func:`group_by_identity` counts such groups
  (:attr:`IdentityGroups.conflicting`) and :func:`split_by_identity` logs a warning;
- stratified: groups are allocated class by class (by group label), each class filling the
  row targets ``fraction * rows`` (largest-remainder rounding). With single-copy sequences
  every split of every class is within one row of its target; every split with a positive
  fraction receives at least one group of each class that has at least three groups.

Files that ship their own splits (GUE's train/dev/test) are used as they are: readers put
their split names in :attr:`dnabird.data.labelled.LabelledSequences.split` (see
:func:`split_name` for the accepted spellings). :func:`split_counts` gives the
``{split: {class: rows}}`` table recorded in manifests and printed in summaries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dnabird.errors import ConfigError
from dnabird.tokenizer.vocab import normalize_sequence

log = logging.getLogger(__name__)

#: Split names, in the order of :func:`split_by_identity`'s ``fractions``.
SPLITS = ("train", "validation", "test")
_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def split_name(text: str) -> str | None:
    """The split of :data:`SPLITS` that ``text`` names (case-insensitive; ``dev``, ``val``
    and ``valid`` mean ``validation``), or None when it names none."""
    return _ALIASES.get(text.strip().lower())


@dataclass(frozen=True)
class IdentityGroups:
    """Rows grouped by identical sequence.

    ``group``: int64 [N], the group of each row (groups numbered in order of first
    appearance); ``label``: int64 [G], each group's majority label (ties: the lower label);
    ``size``: int64 [G], rows per group; ``conflicting``: number of groups whose members
    carry more than one label.
    """

    group: np.ndarray
    label: np.ndarray
    size: np.ndarray
    conflicting: int


def group_by_identity(
    sequences: Sequence[str], labels: np.ndarray, related: np.ndarray | None = None
) -> IdentityGroups:
    """Group the rows of ``sequences`` (with their int ``labels`` [N]) by identical
    normalised sequence and, when ``related`` (int [N]) is given, also join rows that share
    a ``related`` key; see :class:`IdentityGroups` (``conflicting`` counts only groups of
    identical sequences with different labels)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
    first: dict[str, int] = {}
    identity = np.fromiter(
        (first.setdefault(normalize_sequence(s), len(first)) for s in sequences),
        dtype=np.int64,
        count=len(sequences),
    )
    conflicting = int(((_votes(identity, labels) > 0).sum(axis=1) > 1).sum())
    group = identity if related is None else _join(identity, np.asarray(related))
    votes = _votes(group, labels)
    return IdentityGroups(group, votes.argmax(axis=1), votes.sum(axis=1), conflicting)


def _votes(group: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows per (group, label): int64 [G, labels] (groups numbered 0..G-1)."""
    n_labels = int(labels.max()) + 1 if len(labels) else 1
    votes = np.zeros((int(group.max()) + 1 if len(group) else 0, n_labels), dtype=np.int64)
    np.add.at(votes, (group, labels), 1)
    return votes


def _join(identity: np.ndarray, related: np.ndarray) -> np.ndarray:
    """Groups [N] (numbered by first appearance) of the rows connected through a shared
    identity group or a shared ``related`` key (union-find over identity groups)."""
    if related.shape != identity.shape:
        raise ValueError(f"{len(identity)} sequences but {len(related)} related keys")
    parent = list(range(int(identity.max()) + 1 if len(identity) else 0))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    anchor: dict[object, int] = {}
    for node, key in zip(identity.tolist(), related.tolist(), strict=True):
        other = anchor.setdefault(key, node)
        parent[root(node)] = root(other)
    roots = [root(node) for node in identity.tolist()]
    number: dict[int, int] = {}
    return np.fromiter((number.setdefault(r, len(number)) for r in roots), dtype=np.int64)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64)
    if values.shape != (len(SPLITS),):
        raise ConfigError(
            f"split fractions {tuple(fractions)}: give {len(SPLITS)} numbers, for "
            f"{', '.join(SPLITS)} (e.g. 0.8, 0.1, 0.1)"
        )
    if not np.isfinite(values).all() or (values < 0).any() or values[0] <= 0:
        raise ConfigError(
            f"split fractions {tuple(fractions)}: train must be > 0 and validation and test "
            ">= 0 (0 leaves that split empty)"
        )
    if abs(values.sum() - 1.0) > 1e-6:
        raise ConfigError(
            f"split fractions {tuple(fractions)} sum to {values.sum():g}; they must sum to 1"
        )
    return values / values.sum()  # exactly 1, so the row targets add up


def _targets(rows: int, fractions: np.ndarray) -> list[int]:
    """Rows per split: ``fractions * rows`` rounded by largest remainder (sums to rows)."""
    exact = fractions * rows
    counts = np.floor(exact).astype(np.int64)
    short = rows - int(counts.sum())
    remainder = np.where(fractions > 0, exact - counts, -1.0)  # an empty split stays empty
    order = np.argsort(-remainder, kind="stable")  # largest remainder first
    counts[order[:short]] += 1
    return counts.tolist()


def split_by_identity(
    sequences: Sequence[str],
    labels: np.ndarray,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    related: np.ndarray | None = None,
) -> np.ndarray:
    """Assign each row a split: str array [N] of ``"train"``, ``"validation"``, ``"test"``.

    ``labels``: int [N] (class index of each row); ``fractions``: the share of rows of
    each class per split, in :data:`SPLITS` order, each >= 0 (train > 0), summing to 1.
    Identical sequences share a split; see the module docstring for the guarantees.
    ``related``: optional int [N] keys; rows sharing a key share a split too. Promoter
    negatives keep 8 of their positive's 20 parts (``shuffle`` negatives all of its bases),
    so a positive and the negatives made from it must never be split apart: give them one
    key (:func:`dnabird.data.negatives.promoter_negatives` keeps the positives' order).
    Groups of mixed labels are allocated under their majority label (ties: the lower).
    """
    wanted = _check_fractions(fractions)
    groups = group_by_identity(sequences, labels, related)
    if groups.conflicting:
        log.warning(
            "%d groups of identical sequences carry different labels; each group was split "
            "by its majority label",
            groups.conflicting,
        )
    rng = np.random.default_rng(seed)
    group_split = np.zeros(len(groups.size), dtype=np.int64)  # [G] index into SPLITS
    for label in np.unique(groups.label):
        members = np.flatnonzero(groups.label == label)
        members = members[rng.permutation(len(members))]
        group_split[members] = _allocate(groups.size[members], wanted)
    return np.asarray(SPLITS)[group_split[groups.group]]


def _allocate(sizes: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Splits (indices) for one class's groups of ``sizes`` [G], given in random order.

    Every split with a positive fraction first gets one of the smallest groups (when there
    are at least three groups); then, largest groups first (ties in the given random order),
    each group goes to the split furthest below its row target.
    """
    deficit = _targets(int(sizes.sum()), fractions)
    chosen = np.full(len(sizes), -1, dtype=np.int64)
    positive = [k for k in range(len(SPLITS)) if fractions[k] > 0]
    if len(sizes) >= len(SPLITS):  # smallest groups to the smallest splits
        smallest_first = sorted(positive, key=lambda k: fractions[k])
        for k, member in zip(smallest_first, np.argsort(sizes, kind="stable"), strict=False):
            chosen[member] = k
            deficit[k] -= int(sizes[member])
    for member in np.argsort(-sizes, kind="stable"):
        if chosen[member] < 0:
            k = max(positive, key=deficit.__getitem__)  # the first of equal deficits
            chosen[member] = k
            deficit[k] -= int(sizes[member])
    return chosen


def split_counts(
    split: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Rows per split and class, ``{split: {class: count}}``, for manifests and summaries.

    ``split``: str [N]; ``labels``: int [N] indices into ``classes``. Every name of
    :data:`SPLITS` is listed (empty ones with zeros), then any other split name present
    (sorted); every class is listed under every split, in ``classes`` order.
    """
    split = np.asarray(split, dtype=str)
    labels = np.asarray(labels, dtype=np.int64)
    if split.shape != labels.shape:
        raise ValueError(f"{len(split)} split names but {len(labels)} labels")
    names = list(SPLITS) + sorted(set(split.tolist()) - set(SPLITS))
    counts = {}
    for name in names:
        per_class = np.bincount(labels[split == name], minlength=len(classes))
        counts[name] = {c: int(n) for c, n in zip(classes, per_class, strict=True)}
    return counts
