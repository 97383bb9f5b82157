"""Sequence (and per-token) embeddings from any exported model folder, a pretrained masked
LM included.

Each FASTA record is tokenized whole, wrapped in ``[CLS] ... [SEP]`` and padded to one
fixed token window for the whole run (``max_length``; default: the smallest multiple of
the block size that holds the longest record, at most ``max_position_embeddings``; the
file is read twice to find it), so a record's embedding does not depend on its batch. A
record whose tokens do not fit is an error naming it. The encoder's last hidden states
``[L, C]`` are pooled:

- ``cls``: the ``[CLS]`` token's state (the one a classification head reads);
- ``mean``: the mean over the record's own tokens (not ``[CLS]``, ``[SEP]`` or padding).

The HDF5 output holds ``embeddings`` float32 ``[N, C]`` and ``names`` ``[N]``; with
``per_token`` also ``token_embeddings`` float32 ``[T, C]`` (every record's own tokens,
concatenated), ``token_offsets`` int64 ``[T, 2]`` (each token's 0-based, half-open bp span
in its record) and ``token_index`` int64 ``[N + 1]`` (record ``i``'s tokens are rows
``token_index[i]:token_index[i + 1]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dnabird.errors import ConfigError, InputError

POOLINGS = ("cls", "mean")
"""How token states become one embedding per sequence."""


@dataclass
class EmbedSummary:
    """What :func:`embed_fasta` wrote: ``sequences``, ``tokens`` (per-token rows, 0 without
    them), the ``window`` in tokens, the embedding ``width``, ``path``."""

    sequences: int
    tokens: int
    window: int
    width: int
    path: Path


def embed_fasta(
    model: str | os.PathLike,
    fasta: str | os.PathLike,
    out: str | os.PathLike,
    *,
    pool: str = "cls",
    per_token: bool = False,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    precision: str = "32-true",
) -> EmbedSummary:
    """Embed every record of ``fasta`` with the encoder of the model folder ``model`` and
    write ``out`` (HDF5, atomically; see the module docstring). ``precision``: ``32-true``,
    or ``bf16-mixed`` (bfloat16 matrix products under autocast; the file holds float32)."""
    import h5py

    from dnabird.data.classification import default_window, pad_to_window
    from dnabird.files import atomic_path
    from dnabird.genome.fasta import iter_fasta
    from dnabird.model.pretrained import (
        for_inference,
        inference_autocast,
        load_model,
        load_tokenizer,
        resolve_device,
    )
    from dnabird.predict.engine import batches
    from dnabird.progress import progress

    if pool not in POOLINGS:
        raise ConfigError(f"--pool must be one of {', '.join(POOLINGS)}, got {pool!r}")
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, got {batch_size}")
    chosen = resolve_device(device)
    autocast = inference_autocast(chosen, precision)
    loaded = load_model(model)
    # a classifier's base features (dnabird.model.bases) are part of its token embeddings
    bases = getattr(loaded, "bases", None)
    encoder = for_inference(loaded.encoder, chosen, precision)
    if bases is not None:
        bases = for_inference(bases, chosen, precision)
    tokenizer = load_tokenizer(model, verify=False)
    config = encoder.config
    if max_length is None:
        longest = max((len(ids) for ids in _token_ids(tokenizer, fasta)), default=0)
        max_length = default_window(longest, config.block_size, config.max_position_embeddings)
    if not 3 <= max_length <= config.max_position_embeddings:
        raise ConfigError(
            f"--max-length must be 3 to {config.max_position_embeddings} tokens, got {max_length}"
        )
    strings = h5py.string_dtype(encoding="utf-8")
    width = config.hidden_size
    count = tokens = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        pooled = h5.create_dataset("embeddings", (0, width), "float32", maxshape=(None, width))
        names = h5.create_dataset("names", (0,), strings, maxshape=(None,))
        if per_token:
            states = h5.create_dataset(
                "token_embeddings", (0, width), "float32", maxshape=(None, width)
            )
            offsets = h5.create_dataset("token_offsets", (0, 2), "int64", maxshape=(None, 2))
            index = [0]
        with progress(unit="seq", desc="embed") as bar:
            for batch in batches(iter_fasta(fasta), batch_size):
                ids = tokenizer.encode_batch([sequence for _, sequence in batch])
                labels = [name for name, _ in batch]
                empty = [name for name, token_ids in zip(labels, ids, strict=True) if not token_ids]
                if empty:
                    raise InputError(f"{fasta}: record {empty[0]} is empty; remove it")
                _check_fits(ids, labels, max_length, fasta)
                windows = pad_to_window(ids, max_length, names=labels, source=str(fasta))
                with autocast:
                    hidden = _hidden_states(encoder, bases, windows, chosen)  # [B, L, C]
                if not np.isfinite(hidden).all():
                    raise InputError(
                        f"{model}: the model gives non-finite hidden states (NaN or inf); "
                        "its weights are broken: export or train it again"
                    )
                vectors = hidden[:, 0] if pool == "cls" else _mean_states(hidden, ids)
                _append(pooled, vectors)
                _append(names, np.array(labels, dtype=object))
                if per_token:
                    for row, token_ids in zip(hidden, ids, strict=True):
                        _append(states, row[1 : 1 + len(token_ids)])
                        _append(offsets, tokenizer.offsets(token_ids))
                        index.append(index[-1] + len(token_ids))
                count += len(batch)
                bar.update(len(batch))
        if not count:
            raise InputError(f"{fasta}: no sequences to embed")
        if per_token:
            h5.create_dataset("token_index", data=np.array(index, dtype=np.int64))
            tokens = index[-1]
        h5.attrs.update(
            {"model": str(model), "pool": pool, "window": max_length, "precision": precision}
        )
    return EmbedSummary(count, tokens, max_length, width, Path(out))


def _token_ids(tokenizer, fasta: str | os.PathLike) -> Iterator[list[int]]:
    from dnabird.genome.fasta import iter_fasta

    for _, sequence in iter_fasta(fasta):
        yield tokenizer.encode(sequence)


def _check_fits(
    ids: list[list[int]], names: list[str], window: int, fasta: str | os.PathLike
) -> None:
    """InputError naming the first record whose tokens do not fit ``window``."""
    for name, token_ids in zip(names, ids, strict=True):
        if len(token_ids) + 2 > window:
            raise InputError(
                f"{fasta}: record {name} has {len(token_ids) + 2} tokens, more than the window "
                f"of {window}; give a larger --max-length (up to the model's maximum) or "
                "split the record"
            )


@torch.inference_mode()
def _hidden_states(encoder, bases, windows: np.ndarray, device: torch.device) -> np.ndarray:
    """The encoder's last hidden states float32 ``[B, L, C]`` of token windows ``[B, L]``
    (``bases``: the model's base features, or None)."""
    from dnabird.data.classification import batch_tensors

    batch = batch_tensors(windows)
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    hidden = encoder(ids, mask, base_features=bases)
    return hidden.float().cpu().numpy()


def _mean_states(hidden: np.ndarray, ids: list[list[int]]) -> np.ndarray:
    """The mean state over each sequence's own tokens (positions ``1 .. n``)."""
    pairs = zip(hidden, ids, strict=True)
    return np.stack([row[1 : 1 + len(token_ids)].mean(axis=0) for row, token_ids in pairs])


def _append(dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(values), axis=0)
    dataset[start:] = values
