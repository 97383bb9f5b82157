"""Held-out masked-LM evaluation of an exported model, and its n-gram baseline.

Sequences (FASTA records, or BED regions of them; 0-based half-open) are cut into
sentences of ``sentence_bp`` bp (as the corpus does), tokenized and packed into
``[CLS] ... [SEP]`` sequences of ``max_length`` tokens (:mod:`dnabird.data.mlm`). By
default each packed sequence is then scored in ``passes = round(1 / mask_rate)`` passes
that each mask a disjoint ~``mask_rate`` share of its tokens (80/10/10, as in pretraining,
seeded; :meth:`~dnabird.data.masking.TokenMasker.coverage`), so every maskable token is
predicted exactly once; ``passes=1`` masks one random ``mask_rate`` share instead, exactly
as pretraining's validation does. Reported: loss, masked-token accuracy, perplexity, bits
per character (per bp of A/C/G/T covered by the predicted tokens) and its standard error
over packed sequences. The baseline (:class:`~dnabird.ngram.KmerMarkovModel`) scores every
A/C/G/T base of the same sequences.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnabird.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

    from dnabird.data.masking import TokenMasker


def read_bed_regions(path: str | os.PathLike, records: dict[str, str]) -> list[tuple[str, str]]:
    """(label, sequence) of each BED region (0-based half-open ``chrom start end``)."""
    from dnabird.files import require_file

    path = require_file(path, "BED file")
    regions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise InputError(f"{path}:{number}: expected 'chrom start end'") from None
        if chrom not in records:
            raise InputError(f"{path}:{number}: chromosome {chrom!r} is not in the FASTA")
        if not 0 <= start < end <= len(records[chrom]):
            raise InputError(
                f"{path}:{number}: region {start}-{end} is empty or outside {chrom} "
                f"(length {len(records[chrom])})"
            )
        regions.append((f"{chrom}:{start}-{end}", records[chrom][start:end]))
    if not regions:
        raise InputError(f"{path}: no regions")
    return regions


def _sentences(sequence: str, sentence_bp: int) -> Iterator[str]:
    for start in range(0, len(sequence), sentence_bp):
        yield sequence[start : start + sentence_bp]


def _scored_samples(
    samples: Iterable[dict[str, torch.Tensor]], masker: TokenMasker, passes: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """The samples to score, each with ``sequence`` (0-d int64: index of its packed sequence).

    ``samples``: the one-pass :class:`~dnabird.data.mlm.PackedMLMDataset` stream (masked
    once, seeded). With ``passes == 1`` these are scored as they are; otherwise each is
    unmasked back to its ids and replaced by the ``passes`` corruptions of
    :meth:`TokenMasker.coverage`, seeded by ``(seed, 4, *source)`` (streams 0-3 are the
    dataset's).
    """
    import numpy as np
    import torch

    from dnabird.data.masking import IGNORE_INDEX, sequence_rng

    for number, sample in enumerate(samples):
        sequence = torch.tensor(number)
        if passes == 1:
            yield {**sample, "sequence": sequence}
            continue
        # the original ids: labels hold them where the dataset masked, inputs elsewhere
        masked = sample["labels"].numpy()
        ids = np.where(masked != IGNORE_INDEX, masked, sample["input_ids"].numpy())
        rng = sequence_rng(seed, 4, *sample["source"].tolist())
        for inputs, labels in masker.coverage(ids, passes, rng):
            yield {
                "input_ids": torch.from_numpy(inputs),
                "attention_mask": sample["attention_mask"],
                "labels": torch.from_numpy(labels),
                "sequence": sequence,
            }


def _batches(
    samples: Iterator[dict[str, torch.Tensor]], batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive ``samples`` stacked ``batch_size`` at a time (the last batch may be short)."""
    from torch.utils.data import default_collate

    while chunk := list(itertools.islice(samples, batch_size)):
        yield default_collate(chunk)


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
    """Score ``sequences`` ((label, DNA) pairs) with the model in ``model_dir``.

    ``passes``: forward passes per packed sequence. ``None`` (default) means
    ``round(1 / mask_rate)`` (10 at the 10% rate): the passes mask disjoint groups that
    cover every maskable token exactly once. ``1``: one random ``mask_rate`` share, as in
    pretraining's validation (and as this function did before passes existed).

    Returns ``{"loss", "accuracy", "perplexity", "bpc", "bpc_se", "predicted_tokens",
    "bp", "sequences", "packed_sequences", "max_length", "seed", "mask_rate", "passes"}``:
    ``sequences`` counts the input sequences and ``packed_sequences`` the packed
    sequences with predicted tokens; ``bpc_se`` is the standard error of ``bpc`` (bits per
    bp) with those packed sequences as the units (all passes of one merged; ratio
    estimator, :func:`~dnabird.tasks.metrics.ratio_standard_error`), ``None`` when there
    are fewer than 2 of them. It measures the masking and sampling noise of the held-out
    sequence at hand, assuming its packed sequences independent (neighbouring ones are
    correlated a little).
    """
    import numpy as np
    import torch

    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import Document, InMemoryDocuments, PackedMLMDataset, make_masker
    from dnabird.model import BigBirdForMaskedLM
    from dnabird.tasks.metrics import MaskedLMMetrics, per_sequence_bits, ratio_standard_error
    from dnabird.tokenizer import DNATokenizer

    passes = max(1, round(1 / mask_rate)) if passes is None else passes
    if passes < 1:
        raise ConfigError(f"passes must be at least 1, got {passes}")
    model_dir = Path(model_dir)
    tokenizer = DNATokenizer.from_pretrained(model_dir / "tokenizer")
    model = BigBirdForMaskedLM.from_pretrained(model_dir)
    max_length = max_length or min(4096, model.config.max_position_embeddings)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    documents = [
        Document(
            label,
            label.split(":")[0],
            [np.asarray(tokenizer.encode(s), dtype=np.int64) for s in _sentences(seq, sentence_bp)],
        )
        for label, seq in sequences
    ]
    masker = make_masker(MaskingConfig(rate=mask_rate), tokenizer)
    dataset = PackedMLMDataset(
        source=InMemoryDocuments([documents]),
        masker=masker,
        max_length=max_length,
        seed=seed,
        train=False,
    )
    metrics = MaskedLMMetrics(torch.as_tensor(tokenizer.bp_per_id)).to(device)
    rows: list[int] = []  # per scored sample: its packed sequence, bits and bp
    bits: list[float] = []
    bp: list[float] = []
    model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    with torch.no_grad(), autocast:
        for batch in _batches(_scored_samples(dataset, masker, passes, seed), batch_size):
            labels = batch["labels"].to(device)
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).logits
            metrics.update(logits, labels)
            sample_bits, sample_bp = per_sequence_bits(logits, labels, metrics.bp_per_id)
            rows.extend(batch["sequence"].tolist())
            bits.extend(sample_bits.tolist())
            bp.extend(sample_bp.tolist())
    index = np.asarray(rows, dtype=np.int64)
    sequence_bits = np.bincount(index, weights=bits)  # [packed sequences], passes merged
    sequence_bp = np.bincount(index, weights=bp)
    scored = sequence_bp > 0
    se = ratio_standard_error(sequence_bits[scored], sequence_bp[scored])
    values = {k: float(v) for k, v in metrics.compute().items()}
    return {
        **values,
        "bpc_se": se if np.isfinite(se) else None,
        "predicted_tokens": int(metrics.tokens),
        "bp": int(metrics.bp),
        "sequences": len(sequences),
        "packed_sequences": int(scored.sum()),
        "max_length": max_length,
        "seed": seed,
        "mask_rate": mask_rate,
        "passes": passes,
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
