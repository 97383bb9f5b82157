"""DNA tokenizer: SentencePiece pieces over ACGT runs, fixed pieces for N runs.

Modules, one job each::

    vocab.py            fixed ids (PAD_ID ... MASK_ID), N pieces, normalisation of input
    dna.py              DNATokenizer: load, encode/decode, batches for a model, save
    hf.py               the Hugging Face export (tokenizer.json, reproduces our ids)
    train.py            sample sentences, fit SentencePiece, the train-tokenizer stage
    trainer_process.py  SentencePiece training in a killable child process, with status

Vocabulary layout::

    0 [PAD]   1 [UNK]   2 [CLS]   3 [SEP]   4 [MASK]
    5..11     N runs: N*64, N*32, N*16, N*8, N*4, N*2, N
    12..      pieces learned by SentencePiece (unigram or BPE) from ACGT sentences

Encoding (:meth:`DNATokenizer.encode`):

1. The input is uppercased; IUPAC ambiguity codes (R Y S W K M B D H V, any case) become
   ``N``. Any other character raises :class:`~dnabird.errors.InputError`.
2. The sequence is split into maximal ACGT runs and maximal N runs. ACGT runs are encoded
   by SentencePiece; an N run is written greedily with the longest N pieces (a 100 bp gap
   is ``N*64 N*32 N*4``). N is therefore never merged with A, C, G or T, and gaps cost few
   tokens. N runs are removed from the training sentences, so learned pieces are pure ACGT.
3. Every token covers a fixed number of bp (``bp_per_id``), so token offsets are cumulative
   sums and ``decode(encode(s)) == s.upper()`` for any ACGTN string ``s``.

A tokenizer folder holds ``sentencepiece.model`` (the source of truth), the Hugging Face
export (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``) and, when
made by ``dnabird train-tokenizer``, its ``manifest.json``.

Importing this package or :mod:`~dnabird.tokenizer.vocab` loads nothing heavy;
:class:`DNATokenizer` loads numpy (sentencepiece when a tokenizer is built); the genome code,
pyfaidx and biopython are loaded only when training samples a corpus or FASTA.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dnabird.tokenizer.vocab import (
    CLS_ID,
    FIRST_LEARNED_ID,
    MASK_ID,
    MIN_VOCAB_SIZE,
    MODEL_FILE,
    MODEL_TYPES,
    N_PIECE_LENGTHS,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    normalize_sequence,
)

if TYPE_CHECKING:
    from dnabird.tokenizer.dna import DNATokenizer
    from dnabird.tokenizer.train import (
        fit_sentencepiece,
        sample_sentences,
        train_tokenizer,
        training_sample,
    )

#: Names loaded on first use, so the ids (``dnabird.tokenizer.vocab``) cost no numpy import.
_LAZY = {
    "DNATokenizer": "dnabird.tokenizer.dna",
    "fit_sentencepiece": "dnabird.tokenizer.train",
    "sample_sentences": "dnabird.tokenizer.train",
    "train_tokenizer": "dnabird.tokenizer.train",
    "training_sample": "dnabird.tokenizer.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dnabird.tokenizer' has no attribute {name!r}")


__all__ = [
    "CLS_ID",
    "FIRST_LEARNED_ID",
    "MASK_ID",
    "MIN_VOCAB_SIZE",
    "MODEL_FILE",
    "MODEL_TYPES",
    "N_PIECE_LENGTHS",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "DNATokenizer",
    "fit_sentencepiece",
    "normalize_sequence",
    "sample_sentences",
    "train_tokenizer",
    "training_sample",
]
