"""Simple models that every real-data result is reported next to.

Two L2-regularised logistic regressions (scikit-learn, lbfgs), trained on the same training
split as the transformer and scored on the same test split (:func:`run_baselines`), so a
report shows what composition alone and position alone achieve:

- :class:`KmerLogisticRegression`: frequencies of every k-mer for k = 1..``max_k`` (default 6:
  4 + 16 + ... + 4,096 = 5,460 features). Blind to where a k-mer occurs; strong when the
  label shows in composition (GC content, motifs anywhere in the window: TF binding).
- :class:`OneHotLogisticRegression`: the base at each position, one-hot (A, C, G, T; N is
  all zeros), for sequences of one length. Blind to motifs that move; strong when the label
  sits at fixed positions (a TATA box ~30 bp upstream of an aligned TSS).

Sequences are read as the tokenizer reads them (:func:`dnabird.tokenizer.vocab.normalize_sequence`:
case ignored, IUPAC codes as N, anything else an InputError naming the sequence).
Features are scaled to unit variance on the training split (not centred, which keeps the
k-mer matrix sparse; the intercept absorbs the means). The regularisation strength ``C`` is
chosen on the training split only, by 3-fold stratified cross-validation over a grid
(:data:`C_GRID`), unless given: no fixed value suits every data set. On the GUE TF-binding
and the promoter data the best C moved with the training-set size (about 1e-4 at 20,000 to
30,000 sequences, 3e-4 to 1e-3 at 4,000), and scikit-learn's default of 1 cost 0.02-0.06
validation AUROC on the four GUE tasks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse

from dnabird.errors import ConfigError, InputError
from dnabird.tasks.classification_metrics import (
    best_f1_threshold,
    check_labels,
    classification_report,
)

_MAX_ITER = 2000

_CODES = np.full(256, 4, dtype=np.uint8)  # byte -> 0..3 for A, C, G, T; 4 for N
for _code, _base in enumerate(b"ACGT"):
    _CODES[_base] = _code


def encode_sequences(sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated base codes ``uint8 [sum of lengths]`` (A 0, C 1, G 2, T 3, N 4) and the
    length of each sequence ``int64 [N]``. Raises InputError naming the sequence (0-based)
    and position of a character that is not a base or IUPAC code."""
    from dnabird.tokenizer.vocab import normalize_sequence

    normalized = []
    for number, sequence in enumerate(sequences):
        try:
            normalized.append(normalize_sequence(sequence))
        except InputError as error:
            raise InputError(f"sequence {number} (0-based): {error}") from None
    if not normalized:
        raise InputError("no sequences given")
    lengths = np.fromiter((len(s) for s in normalized), dtype=np.int64, count=len(normalized))
    codes = _CODES[np.frombuffer("".join(normalized).encode("ascii"), dtype=np.uint8)]
    return codes, lengths


def _check_max_k(max_k: int) -> int:
    if isinstance(max_k, bool) or not isinstance(max_k, int) or not 1 <= max_k <= 10:
        raise ConfigError(f"max_k must be a whole number from 1 to 10; got {max_k!r}")
    return max_k


def kmer_frequencies(sequences: Sequence[str], max_k: int = 6) -> scipy.sparse.csr_matrix:
    """``float32 [N, 4 + 16 + ... + 4**max_k]`` k-mer frequencies, sparse.

    Block k (columns ``sum(4**j for j < k) + index``) holds, for each k-mer in lexicographic
    order (``index`` = the k-mer read as a base-4 number, A=0 C=1 G=2 T=3), its count in the
    sequence divided by the number of k-mers counted there. Only the given strand is
    counted: the inputs are oriented (promoters relative to their TSS), and a regression on
    strand-specific k-mers can weigh a motif and its reverse complement alike. k-mers that
    overlap an N are skipped; a sequence without any k-mer of some k has zeros in that block.
    """
    _check_max_k(max_k)
    codes, lengths = encode_sequences(sequences)
    num_sequences, total = lengths.size, codes.size
    sequence_of = np.repeat(np.arange(num_sequences), lengths)  # [total]
    room = np.repeat(lengths, lengths) - (
        np.arange(total) - np.repeat(lengths.cumsum() - lengths, lengths)
    )
    # room[p]: bases from p to the end of its sequence; a k-mer may start at p when room >= k
    n_seen = np.concatenate([[0], np.cumsum(codes == 4)])  # Ns in codes[:p] is n_seen[p]
    bases = np.where(codes == 4, 0, codes).astype(np.int64)
    blocks = []
    index = np.zeros(total, dtype=np.int64)  # index[p]: the (k-1)-mer starting at p
    for k in range(1, max_k + 1):
        starts = total - k + 1
        if starts <= 0:
            blocks.append(scipy.sparse.csr_matrix((num_sequences, 4**k), dtype=np.float32))
            continue
        index = index[:starts] * 4 + bases[k - 1 : k - 1 + starts]
        valid = np.flatnonzero((room[:starts] >= k) & (n_seen[k : k + starts] == n_seen[:starts]))
        rows = sequence_of[valid]
        counted = np.bincount(rows, minlength=num_sequences)
        weights = (1.0 / np.maximum(counted, 1))[rows].astype(np.float32)
        block = scipy.sparse.coo_matrix(
            (weights, (rows, index[valid])), shape=(num_sequences, 4**k)
        ).tocsr()  # duplicates (a k-mer seen twice) are summed
        blocks.append(block)
    return scipy.sparse.hstack(blocks, format="csr", dtype=np.float32)


def one_hot_features(sequences: Sequence[str], length: int | None = None) -> np.ndarray:
    """``float32 [N, 4 * L]`` position-wise one-hot: columns ``4 * position + base`` (A, C, G,
    T); an N is four zeros. Every sequence must have ``length`` bp (default: the first's);
    otherwise ConfigError naming both lengths."""
    codes, lengths = encode_sequences(sequences)
    length = int(lengths[0]) if length is None else length
    odd = np.flatnonzero(lengths != length)
    if odd.size:
        raise ConfigError(
            f"the one-hot baseline needs sequences of one length: expected {length} bp, "
            f"sequence {odd[0]} (0-based) has {lengths[odd[0]]} bp; pad or trim the "
            "sequences, or leave the one-hot baseline out"
        )
    onehot = np.eye(5, 4, dtype=np.float32)[codes]  # row 4 (N) is all zeros
    return onehot.reshape(lengths.size, 4 * length)


def check_training_labels(labels: Any, num_sequences: int) -> np.ndarray:
    """Training labels as int64 ``[N]``: 0..K-1 with every class present, K >= 2."""
    labels = np.asarray(labels)
    if labels.shape != (num_sequences,):
        raise InputError(
            f"expected one label per sequence ({num_sequences}); got labels of shape "
            f"{list(labels.shape)}"
        )
    if labels.dtype.kind not in "biuf":
        raise InputError(f"labels must be class indices 0..K-1; got {labels.dtype} values")
    labels = check_labels(labels, int(np.max(labels, initial=0)) + 1)
    present = np.bincount(labels)
    if present.size < 2:
        raise InputError("the training labels hold one class only; a classifier needs two or more")
    missing = np.flatnonzero(present == 0)
    if missing.size:
        raise InputError(
            f"class {missing[0]} has no training examples; a classifier needs every class 0..K-1"
        )
    return labels


C_GRID = tuple(float(c) for c in np.logspace(-5, 0, 11))
"""Inverse L2 strengths tried by the internal cross-validation (half-decades, 1e-5 to 1)."""
CV_FOLDS = 3


class _LogisticBaseline:
    """Standardised features -> L2 logistic regression; subclasses define the features.

    ``C``: scikit-learn's inverse L2 strength (on unit-variance features, loss summed over
    examples); None chooses it from :data:`C_GRID` by stratified :data:`CV_FOLDS`-fold
    cross-validation on the training data (held-out log-loss), never looking at a test split.
    ``seed``: the folds' shuffle (the lbfgs solver itself draws nothing).
    """

    def __init__(self, C: float | None = None, seed: int = 0) -> None:
        if C is not None and not (isinstance(C, (int, float)) and C > 0):
            raise ConfigError(f"C (inverse regularisation strength) must be > 0; got {C!r}")
        self.C = None if C is None else float(C)
        self.seed = seed
        self.chosen_C: float | None = None
        """The C of the fitted model (``C``, or the one cross-validation chose)."""
        self._scale: np.ndarray | None = None
        self._model = None

    def _features(self, sequences: Sequence[str], fitting: bool):
        raise NotImplementedError

    def fit(self, sequences: Sequence[str], labels: np.ndarray):
        """Fit on ``sequences`` and their class indices ``labels`` ``[N]`` (0..K-1)."""
        labels = check_training_labels(labels, len(sequences))
        features = self._standardised(sequences)
        self.chosen_C = self.C if self.C is not None else self._cross_validated_C(features, labels)
        self._model = _logistic(self.chosen_C).fit(features, labels)
        return self

    def _standardised(self, sequences: Sequence[str]):
        """The training features scaled to unit variance (the scale is kept for later)."""
        features = self._features(sequences, fitting=True)
        if scipy.sparse.issparse(features):
            squares = np.asarray(features.multiply(features).mean(axis=0)).ravel()
            means = np.asarray(features.mean(axis=0)).ravel()
        else:
            squares, means = (features**2).mean(axis=0), features.mean(axis=0)
        std = np.sqrt(np.maximum(squares - means**2, 0.0))
        self._scale = np.where(std > 1e-12, 1.0 / np.maximum(std, 1e-12), 1.0)
        return self._scaled(features)

    def fit_predict_labels(
        self, sequences: Sequence[str], labels: np.ndarray, test_sequences: Sequence[str]
    ) -> tuple[np.ndarray, list[float | None]]:
        """Multi-label: one model per column of ``labels`` (0/1 ``[N, F]``) on the features
        computed once; returns P(positive) of ``test_sequences`` ``float64 [M, F]`` and the C
        of each column. A column with fewer than 2 positives or 2 negatives in training
        cannot be fitted (nor its C chosen): its score is the training prevalence, a
        constant (AUROC 0.5), and its C None."""
        from dnabird.progress import progress

        labels = np.asarray(labels)
        features = self._standardised(sequences)
        test = self._scaled(self._features(test_sequences, fitting=False))
        scores = np.empty((len(test_sequences), labels.shape[1]))
        chosen: list[float | None] = []
        for j in progress(range(labels.shape[1]), desc="baseline", unit="label"):
            column = labels[:, j].astype(np.int64)
            positives = int(column.sum())
            if min(positives, len(column) - positives) < 2:
                scores[:, j] = positives / len(column)
                chosen.append(None)
                continue
            c = self.C if self.C is not None else self._cross_validated_C(features, column)
            scores[:, j] = _logistic(c).fit(features, column).predict_proba(test)[:, 1]
            chosen.append(c)
        return scores, chosen

    def _cross_validated_C(self, features, labels: np.ndarray) -> float:
        """The C of :data:`C_GRID` with the lowest mean held-out log-loss over stratified
        folds (each fold's path warm-started from the strongest regularisation)."""
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedKFold

        folds = min(CV_FOLDS, int(np.bincount(labels).min()))
        if folds < 2:
            raise InputError(
                "too few examples to choose C by cross-validation (a class has fewer than 2); "
                "give C explicitly"
            )
        losses = np.zeros(len(C_GRID))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        for train, held_out in splitter.split(np.zeros(labels.size), labels):
            model = _logistic(C_GRID[0], warm_start=True)
            for number, c in enumerate(C_GRID):
                model.set_params(C=c).fit(features[train], labels[train])
                losses[number] += log_loss(
                    labels[held_out], model.predict_proba(features[held_out]), labels=model.classes_
                )
        return C_GRID[int(np.argmin(losses))]

    def settings(self) -> dict[str, Any]:
        """JSON-able description of the fitted model, for reports and manifests."""
        return {
            "model": type(self).__name__,
            "C": self.chosen_C,
            "C_chosen_by": "given"
            if self.C is not None
            else f"{CV_FOLDS}-fold CV on training data",
            **self._feature_settings(),
        }

    def _feature_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _scaled(self, features):
        if scipy.sparse.issparse(features):
            return features @ scipy.sparse.diags(self._scale.astype(np.float32))
        return features * self._scale.astype(np.float32)

    def predict_proba(self, sequences: Sequence[str]) -> np.ndarray:
        """``float64 [N, K]`` class probabilities (columns: classes 0..K-1)."""
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}.fit must be called before predict_proba")
        return self._model.predict_proba(self._scaled(self._features(sequences, fitting=False)))


class KmerLogisticRegression(_LogisticBaseline):
    """Logistic regression on k-mer frequencies, k = 1..``max_k`` (:func:`kmer_frequencies`:
    5,460 features at the default ``max_k = 6``; the given strand only).

    ``C`` and ``seed``: as for every baseline here (None: C chosen by cross-validation on
    the training data; see the module docstring).
    """

    def __init__(self, max_k: int = 6, C: float | None = None, seed: int = 0) -> None:
        super().__init__(C, seed)
        self.max_k = _check_max_k(max_k)

    def _features(self, sequences: Sequence[str], fitting: bool) -> scipy.sparse.csr_matrix:
        return kmer_frequencies(sequences, self.max_k)

    def _feature_settings(self) -> dict[str, Any]:
        return {"features": "k-mer frequencies, given strand", "max_k": self.max_k}


class OneHotLogisticRegression(_LogisticBaseline):
    """Logistic regression on the position-wise one-hot bases of fixed-length sequences
    (:func:`one_hot_features`: 4 features per position). Sequences of another length than
    the training ones are a ConfigError naming the lengths."""

    def __init__(self, C: float | None = None, seed: int = 0) -> None:
        super().__init__(C, seed)
        self.length: int | None = None

    def _features(self, sequences: Sequence[str], fitting: bool) -> np.ndarray:
        features = one_hot_features(sequences, None if fitting else self.length)
        if fitting:
            self.length = features.shape[1] // 4
        return features

    def _feature_settings(self) -> dict[str, Any]:
        return {"features": "position-wise one-hot", "length": self.length}


def _logistic(C: float, warm_start: bool = False):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=_MAX_ITER, warm_start=warm_start)


def run_baselines(
    train: tuple[Sequence[str], np.ndarray],
    test: tuple[Sequence[str], np.ndarray],
    classes: Sequence[str],
    *,
    fixed_length: bool | None = None,
    seed: int = 0,
    resamples: int = 1000,
    probabilities: dict[str, np.ndarray] | None = None,
    threshold: float = 0.5,
    validation: tuple[Sequence[str], np.ndarray] | None = None,
    average_strands: bool = False,
) -> dict[str, dict]:
    """Fit each baseline on ``train`` (sequences, class indices) and report on ``test``.

    Returns ``{"kmer_logreg": report, "onehot_logreg": report}``, each a
    :func:`~dnabird.tasks.classification_metrics.classification_report` (same ``classes``,
    ``seed`` and ``resamples`` as the model's own report, so they can be set side by side)
    with the fitted model's settings (:meth:`settings`: C and how it was chosen, features)
    under ``"baseline"``.
    The one-hot model runs when every train and test sequence has the same length
    (``fixed_length=None``), always (``True``: different lengths are a ConfigError) or never
    (``False``). Every class must have training examples. ``probabilities``: a dict to fill
    with each baseline's test probabilities, ``{name: float64 [N, K]}`` (e.g. to draw their
    ROC and precision-recall curves). Two classes are split at ``threshold``, or, given
    ``validation`` (sequences, class indices), at each baseline's best-F1 threshold there
    (:func:`~dnabird.tasks.classification_metrics.best_f1_threshold`), as the fine-tuned
    model's may be. ``average_strands``: every probability (test and validation) is the mean
    of the sequence's and its reverse complement's, as a strand-averaging model's is.
    """
    (train_sequences, train_labels), (test_sequences, test_labels) = train, test
    classes = list(classes)
    train_labels = check_training_labels(train_labels, len(train_sequences))
    if int(train_labels.max()) + 1 != len(classes):
        raise InputError(
            f"the training labels hold {int(train_labels.max()) + 1} classes but "
            f"{len(classes)} class names were given ({', '.join(classes)})"
        )
    if fixed_length is None:
        lengths = {len(s) for s in itertools.chain(train_sequences, test_sequences)}
        fixed_length = len(lengths) == 1
    models = {"kmer_logreg": KmerLogisticRegression(seed=seed)}
    if fixed_length:
        models["onehot_logreg"] = OneHotLogisticRegression(seed=seed)
    reports = {}
    for name, model in models.items():
        model.fit(train_sequences, train_labels)
        predicted = _probabilities(model, test_sequences, average_strands)
        if probabilities is not None:
            probabilities[name] = predicted
        scores = predicted[:, 1] if len(classes) == 2 else predicted
        cut = threshold
        if validation is not None and len(classes) == 2:
            on_validation = _probabilities(model, validation[0], average_strands)
            cut = best_f1_threshold(validation[1], on_validation[:, 1])
        report = classification_report(
            test_labels, scores, classes, resamples=resamples, seed=seed, threshold=cut
        )
        reports[name] = {**report, "baseline": model.settings()}
    return reports


def _probabilities(model: Any, sequences: Sequence[str], average_strands: bool) -> np.ndarray:
    """``model.predict_proba`` of ``sequences`` ``[N, K]``, or its mean with that of their
    reverse complements."""
    predicted = model.predict_proba(sequences)
    if average_strands:
        from dnabird.genome.fasta import reverse_complements

        predicted = (predicted + model.predict_proba(reverse_complements(sequences))) / 2
    return predicted
