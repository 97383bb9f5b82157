"""The runtime DNA tokenizer: load, encode, decode, batch for a model, save.

All that prediction needs: imports numpy at module level, sentencepiece when a tokenizer is
built, torch only for ``return_tensors="pt"``; never the genome or training code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import write_bytes_atomic
from dnabird.tokenizer.vocab import (
    CLS_ID,
    FIRST_LEARNED_ID,
    MASK_ID,
    MODEL_FILE,
    N_PIECE_LENGTHS,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    normalize_sequence,
    split_runs,
)


class DNATokenizer:
    """A SentencePiece DNA tokenizer with fixed special ids and exact bp offsets.

    Attributes: ``vocab_size``; ``pieces`` (the string of each id); ``model_type``
    (``"unigram"`` or ``"bpe"``); ``bp_per_id`` (``np.int32 [vocab_size]``, bp covered by
    each id, 0 for specials); ``pad_token_id`` ... ``mask_token_id``; ``special_ids``;
    ``model_proto`` (the serialized SentencePiece model, the source of truth).
    """

    pad_token_id, unk_token_id, cls_token_id = PAD_ID, UNK_ID, CLS_ID
    sep_token_id, mask_token_id = SEP_ID, MASK_ID
    special_ids = frozenset(range(len(SPECIAL_TOKENS)))

    def __init__(self, model_proto: bytes, source: str = "<memory>") -> None:
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.model_proto)
        except (RuntimeError, OSError) as err:
            raise InputError(f"{source}: not a SentencePiece model ({err})") from None
        self.pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        self._check_layout(source)
        self.vocab_size = len(self.pieces)
        self.model_type = self._model_type()
        self.bp_per_id = np.array(
            [0 if i in self.special_ids else len(p) for i, p in enumerate(self.pieces)],
            dtype=np.int32,
        )
        self._n_piece_ids = {n: len(SPECIAL_TOKENS) + k for k, n in enumerate(N_PIECE_LENGTHS)}

    def _check_layout(self, source: str) -> None:
        expected = list(SPECIAL_TOKENS) + ["N" * n for n in N_PIECE_LENGTHS]
        if self.pieces[: len(expected)] != expected:
            raise InputError(f"{source}: not a dnabird tokenizer (wrong pieces at ids 0-11)")
        for i, piece in enumerate(self.pieces[FIRST_LEARNED_ID:], FIRST_LEARNED_ID):
            if not piece or piece.strip("ACGT"):
                raise InputError(f"{source}: piece {i} {piece!r} is not an ACGT string")

    def _model_type(self) -> str:
        """``"bpe"`` or ``"unigram"``: SentencePiece scores BPE pieces -rank, unigram log-p."""
        learned = range(FIRST_LEARNED_ID, len(self.pieces))
        is_bpe = all(self._sp.get_score(i) == FIRST_LEARNED_ID - i for i in learned)
        return "bpe" if is_bpe else "unigram"

    def score(self, token_id: int) -> float:
        """SentencePiece's score of an id (unigram: log-probability; BPE: minus its rank)."""
        return self._sp.get_score(token_id)

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> DNATokenizer:
        """Load the tokenizer saved in ``folder`` (its ``sentencepiece.model``)."""
        folder = Path(folder)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "folder not found"
            raise InputError(f"{folder}: {what}; give a tokenizer folder (dnabird train-tokenizer)")
        path = folder / MODEL_FILE
        if not path.is_file():
            inner = folder / "tokenizer"
            hint = (
                f"use its tokenizer folder {inner}"
                if (inner / MODEL_FILE).is_file()
                else "is it a dnabird tokenizer folder?"
            )
            raise InputError(f"{folder}: no {MODEL_FILE}; {hint}")
        return cls(path.read_bytes(), source=str(path))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``sentencepiece.model`` and the Hugging Face export into ``folder``."""
        from dnabird.tokenizer.hf import save_hf_files

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / MODEL_FILE, self.model_proto)
        save_hf_files(self, folder)
        return folder

    @classmethod
    def train(
        cls,
        sentences: Iterable[str],
        vocab_size: int = 32000,
        model_type: str = "unigram",
        max_piece_length: int = 16,
        seed: int = 0,
        threads: int = 1,
    ) -> DNATokenizer:
        """Train on ``sentences`` (DNA strings, any case); see
        :func:`dnabird.tokenizer.train.fit_sentencepiece` for the rules."""
        from dnabird.tokenizer.train import fit_sentencepiece

        proto = fit_sentencepiece(
            sentences, vocab_size, model_type, max_piece_length, seed, threads
        )
        return cls(proto)

    # ----------------------------------------------------------------- encoding
    def encode(self, seq: str) -> list[int]:
        """Token ids of ``seq`` (no special tokens).

        ``seq`` is uppercased, IUPAC ambiguity codes become N (any other character raises
        InputError), then split into maximal ACGT and N runs: ACGT runs are encoded by
        SentencePiece, N runs greedily with the longest N pieces (100 N: N*64 N*32 N*4).
        """
        return self.encode_batch([seq])[0]

    def encode_batch(self, seqs: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """Token ids of each sequence (no special tokens), in one SentencePiece call."""
        runs_per_seq: list[list[str]] = []
        acgt_runs: list[str] = []
        for seq in seqs:
            runs = split_runs(normalize_sequence(seq))
            runs_per_seq.append(runs)
            acgt_runs.extend(run for run in runs if run and run[0] != "N")
        encoded = iter(self._sp.encode(acgt_runs, num_threads=num_threads) if acgt_runs else [])
        out: list[list[int]] = []
        for runs in runs_per_seq:
            ids: list[int] = []
            for run in runs:
                if not run:
                    continue
                if run[0] == "N":
                    ids.extend(self._encode_n_run(len(run)))
                else:
                    ids.extend(next(encoded))
            out.append(ids)
        return out

    def _encode_n_run(self, length: int) -> list[int]:
        ids: list[int] = []
        for n in N_PIECE_LENGTHS:
            count, length = divmod(length, n)
            ids.extend([self._n_piece_ids[n]] * count)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The sequence the ids spell (uppercase); special tokens are dropped."""
        pieces = self.pieces
        return "".join(pieces[i] for i in map(int, ids) if i >= len(SPECIAL_TOKENS))

    def token_lengths(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """bp covered by each id (``np.int32 [T]``; 0 for special tokens)."""
        return self.bp_per_id[np.asarray(ids, dtype=np.int64)]

    def offsets(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``[T, 2]`` int64 ``(start, end)`` bp span of each token in the encoded sequence.

        0-based, half-open; special tokens get an empty span at the current position.
        """
        ends = np.cumsum(self.token_lengths(ids), dtype=np.int64)
        return np.stack([ends - self.token_lengths(ids), ends], axis=-1)

    def bp_per_token(self, seqs: Iterable[str]) -> float:
        """Average bp per token over ``seqs`` (total bp / total tokens)."""
        seqs = list(seqs)
        tokens = sum(map(len, self.encode_batch(seqs)))
        return sum(map(len, seqs)) / tokens if tokens else float("nan")

    def __call__(
        self,
        seqs: str | Sequence[str],
        max_length: int | None = None,
        padding: bool | str = "longest",
        truncation: bool = False,
        add_special_tokens: bool = True,
        return_tensors: str | None = "pt",
        return_offsets: bool = False,
    ) -> dict[str, Any]:
        """Encode a batch (a single string is a batch of one) for a model.

        Returns ``input_ids`` and ``attention_mask`` (1 real token, 0 padding), each
        ``[B, L]``, and with ``return_offsets`` an ``offsets`` ``[B, L, 2]`` of 0-based
        half-open bp spans in each input (``(0, 0)`` for padding, empty spans for specials).
        With ``add_special_tokens`` each row is ``[CLS] tokens [SEP]``. ``padding``:
        ``"longest"``/True pads to the longest row, ``"max_length"`` to ``max_length``,
        False pads nothing. A row longer than ``max_length`` is cut (keeping ``[SEP]``) when
        ``truncation`` is set and raises InputError otherwise. ``return_tensors``: ``"pt"``
        (torch.long), ``"np"`` (int64) or None (Python lists).
        """
        if isinstance(seqs, str):
            seqs = [seqs]
        if padding is True:
            padding = "longest"
        if padding not in ("longest", "max_length", False):
            raise ConfigError(f"padding={padding!r}; use 'longest', 'max_length' or False")
        if padding == "max_length" and max_length is None:
            raise ConfigError("padding='max_length' needs max_length")
        if return_tensors not in ("pt", "np", None):
            raise ConfigError(f"return_tensors={return_tensors!r}; use 'pt', 'np' or None")
        n_special = 2 if add_special_tokens else 0
        if max_length is not None and max_length < n_special + 1:
            raise ConfigError(f"max_length={max_length} leaves no room for a token")
        rows = []
        for k, ids in enumerate(self.encode_batch(seqs)):
            if max_length is not None and len(ids) + n_special > max_length:
                if not truncation:
                    raise InputError(
                        f"sequence {k} has {len(ids) + n_special} tokens > max_length="
                        f"{max_length}; pass truncation=True or a larger max_length"
                    )
                ids = ids[: max_length - n_special]
            rows.append([CLS_ID, *ids, SEP_ID] if add_special_tokens else ids)
        width = max(map(len, rows), default=0) if padding == "longest" else max_length
        if padding is False:
            if return_tensors is not None and len({len(r) for r in rows}) > 1:
                raise ConfigError("rows differ in length; tensors need padding")
            width = None
        batch: dict[str, Any] = {
            "input_ids": [r + [PAD_ID] * (width - len(r)) if width else r for r in rows],
            "attention_mask": [[1] * len(r) + [0] * ((width or len(r)) - len(r)) for r in rows],
        }
        if return_offsets:
            batch["offsets"] = [self.offsets(r).tolist() for r in batch["input_ids"]]
            for row, mask in zip(batch["offsets"], batch["attention_mask"], strict=True):
                for j, real in enumerate(mask):
                    if not real:
                        row[j] = [0, 0]
        if return_tensors == "np":
            return {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        if return_tensors == "pt":
            import torch

            return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        return batch

    def __repr__(self) -> str:
        return f"DNATokenizer(vocab_size={self.vocab_size}, model_type={self.model_type!r})"
