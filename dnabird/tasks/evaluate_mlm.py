"""Held-out masked-LM evaluation of an exported model, and its n-gram baseline.

Sequences (FASTA records, or BED regions of them; 0-based half-open) are cut into
sentences of ``sentence_bp`` bp (as the corpus does), tokenized, packed into
``[CLS] ... [SEP]`` sequences of ``max_length`` tokens and masked exactly as in
pretraining (:mod:`dnabird.data.mlm`, seeded), then scored: loss, masked-token accuracy,
perplexity and bits per character (per bp of A/C/G/T covered by the predicted tokens).
The baseline (:class:`~dnabird.ngram.KmerMarkovModel`) scores every A/C/G/T base of the
same sequences.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dnabird.errors import InputError


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


def evaluate_mlm(
    model_dir: str | os.PathLike,
    sequences: list[tuple[str, str]],
    *,
    max_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    mask_rate: float = 0.1,
    sentence_bp: int = 1000,
    device: str | None = None,
) -> dict[str, Any]:
    """Score ``sequences`` ((label, DNA) pairs) with the model in ``model_dir``.

    Returns ``{"loss", "accuracy", "perplexity", "bpc", "predicted_tokens", "bp",
    "sequences", "max_length", "seed", "mask_rate"}``.
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from dnabird.data.masking import MaskingConfig
    from dnabird.data.mlm import Document, InMemoryDocuments, PackedMLMDataset, make_masker
    from dnabird.model import BigBirdForMaskedLM
    from dnabird.tasks.metrics import MaskedLMMetrics
    from dnabird.tokenizer import DNATokenizer

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
    dataset = PackedMLMDataset(
        source=InMemoryDocuments([documents]),
        masker=make_masker(MaskingConfig(rate=mask_rate), tokenizer),
        max_length=max_length,
        seed=seed,
        train=False,
    )
    metrics = MaskedLMMetrics(torch.as_tensor(tokenizer.bp_per_id)).to(device)
    model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    with torch.no_grad(), autocast:
        for batch in DataLoader(dataset, batch_size=batch_size):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["input_ids"], batch["attention_mask"]).logits
            metrics.update(logits, batch["labels"])
    values = {k: float(v) for k, v in metrics.compute().items()}
    return {
        **values,
        "predicted_tokens": int(metrics.tokens),
        "bp": int(metrics.bp),
        "sequences": len(sequences),
        "max_length": max_length,
        "seed": seed,
        "mask_rate": mask_rate,
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
