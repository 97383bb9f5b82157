"""Held-out masked-LM evaluation of an exported model, and its n-gram baseline.

Data path: sequences (FASTA records, or BED regions of them; 0-based half-open) -> cut
into sentences of ``sentence_bp`` bp (as the corpus does) -> tokenized by the model
folder's tokenizer -> packed into ``[CLS] ... [SEP]`` sequences of ``max_length`` tokens
(:mod:`dnabird.data.mlm`, as in pretraining) -> masking passes -> per-token sums.

Masking passes: the maskable tokens of each packed sequence (A/C/G/T pieces; specials and N
runs are never predicted) are dealt at random into ``groups = ceil(1 / mask_rate)`` disjoint
groups of equal size (+-1 token), :meth:`~dnabird.data.masking.TokenMasker.coverage`; a
group is a ``mask_rate`` share when ``1 / mask_rate`` is a whole number (10 groups of 10%
at the default 0.1) and ``1 / groups`` otherwise. Pass ``k`` masks group ``k`` (80/10/10,
seeded) and scores it. ``passes`` groups are scored, by default all of them, so every
maskable token is predicted exactly once; ``passes=2`` scores two groups (~20% of the
tokens at rate 0.1).

Reported: loss, masked-token accuracy, perplexity, bits per character (per bp of A/C/G/T
covered by the predicted tokens) and its standard error over packed sequences, with the
counts of maskable and predicted tokens. Nothing to score and non-finite model outputs are
errors, never a number. The baseline (:class:`~dnabird.ngram.KmerMarkovModel`) scores every
A/C/G/T base of the same sequences.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dnabird.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

    from dnabird.data.masking import TokenMasker


def read_bed_regions(bed: str | os.PathLike, fasta: str | os.PathLike) -> list[tuple[str, str]]:
    """(label ``chrom:start-end``, sequence) of each interval of ``bed`` (0-based,
    half-open; the reverse complement on strand ``-``), fetched from ``fasta`` without
    loading whole chromosomes (:class:`~dnabird.genome.regions.Genome`). An empty region or
    one reaching outside its chromosome is an InputError naming the BED line."""
    from dnabird.genome.intervals import read_bed
    from dnabird.genome.regions import Genome

    intervals = read_bed(bed)
    regions = []
    with Genome(fasta) as genome:
        for interval in intervals:
            where, chrom = f"{bed}:{interval.line}", interval.chrom
            if chrom not in genome.lengths:
                raise InputError(f"{where}: chromosome {chrom!r} is not in {fasta}")
            length = genome.lengths[chrom]
            if not 0 <= interval.start < interval.end <= length:
                raise InputError(
                    f"{where}: region {interval.start}-{interval.end} is empty or outside "
                    f"{chrom} (length {length})"
                )
            sequence = genome.fetch(chrom, interval.start, interval.end, interval.strand)
            regions.append((interval.label, sequence))
    return regions


def _sentences(sequence: str, sentence_bp: int) -> Iterator[str]:
    for start in range(0, len(sequence), sentence_bp):
        yield sequence[start : start + sentence_bp]


def mask_groups(mask_rate: float) -> int:
    """Number of disjoint masking groups at ``mask_rate`` (in (0, 1)): ``ceil(1 / rate)``,
    so each group is at most a ``mask_rate`` share (tolerant of float noise: 0.1 -> 10)."""
    if not 0.0 < mask_rate < 1.0:
        raise ConfigError(f"mask_rate must be in (0, 1), got {mask_rate}")
    return math.ceil(1 / mask_rate - 1e-9)


def _scored_samples(
    samples: Iterable[dict[str, torch.Tensor]],
    masker: TokenMasker,
    groups: int,
    passes: int,
    seed: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """The masking passes to score, each with ``sequence`` (0-d int64: index of its packed
    sequence) and ``document`` (0-d int64: index of the input sequence it comes from).

    ``samples``: the one-pass :class:`~dnabird.data.mlm.PackedMLMDataset` stream (masked
    once by the dataset); each is unmasked back to its ids, its maskable tokens dealt into
    ``groups`` groups by :meth:`TokenMasker.coverage` (seeded by ``(seed, 4, *source)``;
    streams 0-3 are the dataset's) and one corruption is yielded for each of the first
    ``passes`` groups (a group is empty, and skipped, only when the sequence has fewer
    maskable tokens than ``groups``).
    """
    import numpy as np
    import torch

    from dnabird.data.masking import sequence_rng
    from dnabird.model.config import IGNORE_INDEX

    for number, sample in enumerate(samples):
        sequence = torch.tensor(number)
        document = sample["source"][2]  # (epoch, shard, row, chunk): row = input sequence
        # the original ids: labels hold them where the dataset masked, inputs elsewhere
        masked = sample["labels"].numpy()
        ids = np.where(masked != IGNORE_INDEX, masked, sample["input_ids"].numpy())
        rng = sequence_rng(seed, 4, *sample["source"].tolist())
        for inputs, labels in masker.coverage(ids, groups, rng)[:passes]:
            if (labels != IGNORE_INDEX).any():
                yield {
                    "input_ids": torch.from_numpy(inputs),
                    "attention_mask": sample["attention_mask"],
                    "labels": torch.from_numpy(labels),
                    "sequence": sequence,
                    "document": document,
                }


def _batches(
    samples: Iterator[dict[str, torch.Tensor]], batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive ``samples`` stacked ``batch_size`` at a time (the last batch may be short)."""
    from torch.utils.data import default_collate

    while chunk := list(itertools.islice(samples, batch_size)):
        yield default_collate(chunk)


def _row_sums(logits: torch.Tensor, labels: torch.Tensor, bp_per_id: torch.Tensor) -> torch.Tensor:
    """Per-row sums of one batch from a single cross-entropy: ``logits`` [N, V] at the
    predicted positions in row-major order (``labelled_logits_only``), ``labels`` [B, L]
    (``IGNORE_INDEX`` where not predicted), ``bp_per_id`` [V]. Returns float64 [B, 4]:
    :data:`~dnabird.tasks.metrics.SUMS` per row: nats (sum of -ln p(label)), correct
    (argmax == label), tokens, bp covered."""
    import torch
    import torch.nn.functional as F

    from dnabird.model.config import IGNORE_INDEX

    predicted = labels != IGNORE_INDEX  # (B, L)
    rows = predicted.nonzero()[:, 0]  # (N,) row of each predicted token
    target = labels[predicted]  # (N,)
    nats = F.cross_entropy(logits.float(), target, reduction="none")  # (N,)
    correct = logits.argmax(-1) == target  # (N,)
    values = torch.stack(
        [
            nats.double(),
            correct.double(),
            torch.ones_like(nats).double(),
            bp_per_id[target].double(),
        ],
        dim=1,
    )  # (N, 4)
    zeros = torch.zeros(labels.shape[0], 4, dtype=torch.float64, device=logits.device)
    return zeros.index_add(0, rows, values)


def _check_options(
    batch_size: int, seed: int, passes: int | None, groups: int, sentence_bp: int
) -> int:
    """Validate the options; return the number of passes to score."""
    for name, value, least in (("batch_size", batch_size, 1), ("seed", seed, 0)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}")
    if sentence_bp < 1:
        raise ConfigError(f"sentence_bp must be at least 1, got {sentence_bp}")
    passes = groups if passes is None else passes
    if not 1 <= passes <= groups:
        raise ConfigError(
            f"passes must be between 1 and {groups} at this mask rate ({groups} disjoint "
            f"groups cover every maskable token once), got {passes}"
        )
    return passes


def evaluate_mlm(
    model_dir: str | os.PathLike,
    sequences: list[tuple[str, str]],
    *,
    max_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    mask_rate: float = 0.1,
    passes: int | None = None,
    sentence_bp: int = 1000,
    device: str | None = None,
) -> dict[str, Any]:
    """Score ``sequences`` ((label, DNA) pairs) with the masked LM in ``model_dir``.

    ``model_dir``: an exported model folder (:func:`~dnabird.model.pretrained.load_model`:
    checksums verified; a folder holding another head is refused). ``mask_rate`` in (0, 1)
    sets ``groups = ceil(1 / mask_rate)`` disjoint masking groups per packed sequence;
    ``passes`` (1..groups) is how many of them are scored, one forward pass each; None
    (default) scores all, so every maskable token is predicted exactly once (see the module
    docstring). ``max_length``: tokens per packed sequence (default: the model's
    ``max_position_embeddings``, at most 4096). ``device``: ``cpu``, ``cuda`` or ``cuda:N``
    (default: CUDA when available).

    Returns ``{"loss", "accuracy", "perplexity", "bpc", "bpc_se", "maskable_tokens",
    "predicted_tokens", "bp", "sequences", "packed_sequences", "max_length", "seed",
    "mask_rate", "mask_groups", "passes", "per_sequence"}``: ``maskable_tokens`` counts the
    tokens that can be predicted, ``predicted_tokens`` those predicted (``passes /
    mask_groups`` of them, +-1 per packed sequence), covering ``bp`` bp; ``sequences``
    counts the input sequences and ``packed_sequences`` the packed sequences with predicted
    tokens. ``bpc_se`` is the standard error of ``bpc`` (bits per bp) with those packed
    sequences as the units (all passes of one merged; ratio estimator,
    :func:`~dnabird.tasks.metrics.ratio_standard_error`), ``None`` when there are fewer
    than 2 of them; it measures the masking and sampling noise of the held-out sequence at
    hand, assuming its packed sequences independent (neighbours are correlated a little).
    ``per_sequence``: for each input sequence, in order, ``{"name", "predicted_tokens",
    "bp", "bpc"}`` (``bpc`` None when nothing of it was predicted). Every packed sequence is
    padded to ``max_length`` and masked by a seed of its own, so a sequence's numbers do not
    depend on the other sequences it is scored with.

    ConfigError for options out of range; InputError when there is nothing to score (no
    A/C/G/T token) or the model outputs non-finite values.
    """
    import numpy as np
    import torch

    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import InMemoryDocuments, PackedMLMDataset, make_masker, pack_sentences
    from dnabird.data.tokens import TokenizedDocument
    from dnabird.model.pretrained import load_model, load_tokenizer, resolve_device
    from dnabird.progress import progress
    from dnabird.tasks.metrics import SUMS, masked_lm_values, ratio_standard_error

    groups = mask_groups(mask_rate)
    passes = _check_options(batch_size, seed, passes, groups, sentence_bp)
    device = resolve_device(device)
    model = load_model(model_dir, "BigBirdForMaskedLM", labelled_logits_only=True)
    tokenizer = load_tokenizer(model_dir)
    longest = model.config.max_position_embeddings
    max_length = max_length or min(4096, longest)
    if not 3 <= max_length <= longest:
        raise ConfigError(
            f"max_length must be between 3 and the model's max_position_embeddings "
            f"({longest}), got {max_length}"
        )
    masker = make_masker(MaskingConfig(rate=mask_rate), tokenizer)
    documents = [
        TokenizedDocument(
            label,
            label.split(":")[0],
            sentence_ids=[
                np.asarray(tokenizer.encode(s), dtype=np.int64)
                for s in _sentences(seq, sentence_bp)
            ],
        )
        for label, seq in sequences
    ]
    maskable = sum(masker.maskable_positions(s).size for d in documents for s in d.sentence_ids)
    if maskable == 0:
        names = ", ".join(label for label, _ in sequences[:3]) + (", ..." * (len(sequences) > 3))
        raise InputError(
            f"nothing to score in {names or 'an empty list of sequences'}: no A/C/G/T bases "
            "(empty or all N); give sequence with A/C/G/T"
        )
    packed = sum(1 for d in documents for _ in pack_sentences(d.sentence_ids, max_length - 2))
    dataset = PackedMLMDataset(
        source=InMemoryDocuments([documents]),
        masker=masker,
        max_length=max_length,
        seed=seed,
        train=False,
    )
    bp_per_id = torch.as_tensor(tokenizer.bp_per_id, device=device)
    rows: list[int] = []  # per scored pass: its packed sequence
    inputs: list[int] = []  # per scored pass: its input sequence
    sums: list[np.ndarray] = []  # per scored pass: the SUMS (nats, correct, tokens, bp)
    model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    samples = _scored_samples(dataset, masker, groups, passes, seed)
    bar = progress(total=packed, unit="seq", desc="evaluate-mlm")  # packed sequences
    with torch.inference_mode(), autocast, bar:
        for batch in _batches(samples, batch_size):
            labels = batch["labels"].to(device)
            out = model(
                batch["input_ids"].to(device), batch["attention_mask"].to(device), labels=labels
            )
            batch_sums = _row_sums(out.logits, labels, bp_per_id)
            if not bool(torch.isfinite(batch_sums).all()):
                raise InputError(
                    f"{model_dir}: the model produced non-finite values (NaN or infinity); "
                    "its weights are corrupt or its training diverged"
                )
            rows.extend(batch["sequence"].tolist())
            inputs.extend(batch["document"].tolist())
            sums.append(batch_sums.cpu().numpy())
            bar.update(rows[-1] + 1 - bar.n)
        bar.update(packed - bar.n)
    per_pass = np.concatenate(sums)  # (passes scored, 4)
    per_sequence = np.stack(  # (packed sequences, 4), passes merged
        [np.bincount(rows, weights=per_pass[:, k], minlength=packed) for k in range(4)], axis=1
    )
    per_input = np.stack(  # (input sequences, 4)
        [np.bincount(inputs, weights=per_pass[:, k], minlength=len(sequences)) for k in range(4)],
        axis=1,
    )
    scored = per_sequence[:, 2] > 0
    se = ratio_standard_error(per_sequence[scored, 0] / math.log(2), per_sequence[scored, 3])
    totals = dict(zip(SUMS, torch.from_numpy(per_sequence.sum(axis=0)), strict=True))
    values = {name: float(value) for name, value in masked_lm_values(totals).items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise InputError(
            f"{model_dir}: the model's metrics are not finite (loss {values['loss']:.4g} nats "
            "per token); its weights are corrupt or its training diverged"
        )
    return {
        **values,
        "bpc_se": se if math.isfinite(se) else None,
        "maskable_tokens": int(maskable),
        "predicted_tokens": int(totals["tokens"]),
        "bp": int(totals["bp"]),
        "sequences": len(sequences),
        "packed_sequences": int(scored.sum()),
        "max_length": max_length,
        "seed": seed,
        "mask_rate": mask_rate,
        "mask_groups": groups,
        "passes": passes,
        "per_sequence": [
            {
                "name": name,
                "predicted_tokens": int(tokens),
                "bp": int(bp),
                "bpc": float(nats / math.log(2) / bp) if bp else None,
            }
            for (name, _), (nats, _, tokens, bp) in zip(sequences, per_input, strict=True)
        ],
    }


def ngram_baseline(
    train_sequences: list[str], test_sequences: list[str], order: int
) -> dict[str, Any]:
    """Bits per character of an order-``order`` interpolated k-mer model trained on
    ``train_sequences`` (and their reverse complements) and scored on ``test_sequences``."""
    from dnabird.ngram import KmerMarkovModel

    complement = str.maketrans("ACGTacgt", "TGCAtgca")
    model = KmerMarkovModel(order)
    model.fit(train_sequences)
    model.fit(s.translate(complement)[::-1] for s in train_sequences)
    bpc, bases = model.bits_per_character(test_sequences)
    return {"order": order, "bpc": bpc, "bases": bases}
