"""Hugging Face export of a :class:`~dnabird.tokenizer.DNATokenizer`.

:func:`save_hf_files` writes ``tokenizer.json`` (a ``tokenizers`` pipeline that reproduces
:meth:`DNATokenizer.encode <dnabird.tokenizer.DNATokenizer.encode>`), ``tokenizer_config.json``
and ``special_tokens_map.json``, so ``transformers.AutoTokenizer.from_pretrained(folder)``
gives our ids. The pipeline: normaliser (uppercase ACGT, IUPAC codes -> N), pre-tokenizer
(N runs isolated as the longest fixed N pieces), model (the same unigram scores or BPE
merges), post-processor (``[CLS] ... [SEP]``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnabird.files import write_text_atomic
from dnabird.tokenizer.vocab import (
    CLS_ID,
    FIRST_LEARNED_ID,
    IUPAC_AMBIGUOUS,
    N_PIECE_LENGTHS,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
)

if TYPE_CHECKING:
    from dnabird.tokenizer.dna import DNATokenizer

_SPECIAL_NAMES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")


def save_hf_files(tokenizer: DNATokenizer, folder: str | os.PathLike) -> None:
    """Write the three Hugging Face tokenizer files into ``folder`` (atomically each)."""
    folder = Path(folder)
    write_text_atomic(folder / "tokenizer.json", json.dumps(tokenizer_json(tokenizer)))
    special_map = dict(zip(_SPECIAL_NAMES, SPECIAL_TOKENS, strict=True))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        **special_map,
    }
    write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    write_text_atomic(folder / "special_tokens_map.json", json.dumps(special_map, indent=2) + "\n")


def tokenizer_json(tokenizer: DNATokenizer) -> dict[str, Any]:
    """The ``tokenizers`` JSON that reproduces ``tokenizer.encode`` (N runs via the
    pre-tokenizer)."""
    n_pieces = "|".join(f"N{{{n}}}" for n in N_PIECE_LENGTHS)
    lower = [_replace({"String": c}, c.upper()) for c in "acgt"]
    ambiguous = "N" + IUPAC_AMBIGUOUS + ("N" + IUPAC_AMBIGUOUS).lower()
    specials = {
        t: {"id": t, "ids": [i], "tokens": [t]}
        for i, t in enumerate(SPECIAL_TOKENS)
        if i in (CLS_ID, SEP_ID)
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in enumerate(SPECIAL_TOKENS)
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [*lower, _replace({"Regex": f"[{ambiguous}]"}, "N")],
        },
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": n_pieces},
            "behavior": "Isolated",
            "invert": False,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": _template("[CLS]", "A", "[SEP]"),
            "pair": _template("[CLS]", "A", "[SEP]", "B", "[SEP]"),
            "special_tokens": specials,
        },
        "decoder": {"type": "Fuse"},
        "model": _model(tokenizer),
    }


def _model(tokenizer: DNATokenizer) -> dict[str, Any]:
    """The ``model`` section: unigram pieces with their scores, or BPE vocabulary + merges."""
    pieces = tokenizer.pieces
    if tokenizer.model_type == "unigram":
        # N pieces score -1 each, so one long N piece beats several short ones.
        vocab = [
            [p, -1.0 if FIRST_LEARNED_ID > i >= len(SPECIAL_TOKENS) else tokenizer.score(i)]
            for i, p in enumerate(pieces)
        ]
        return {"type": "Unigram", "unk_id": UNK_ID, "vocab": vocab, "byte_fallback": False}
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": SPECIAL_TOKENS[UNK_ID],
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": {p: i for i, p in enumerate(pieces)},
        "merges": bpe_merges(pieces),
    }


def bpe_merges(pieces: list[str]) -> list[list[str]]:
    """BPE merges in SentencePiece priority order (the merged piece's id, then split)."""
    index = {p: i for i, p in enumerate(pieces)}
    merges = []
    for piece in pieces[len(SPECIAL_TOKENS) :]:
        for cut in range(1, len(piece)):
            if piece[:cut] in index and piece[cut:] in index:
                merges.append([piece[:cut], piece[cut:]])
    return merges


def _replace(pattern: dict[str, str], content: str) -> dict[str, Any]:
    """A ``tokenizers`` Replace normalizer (pattern ``{"String": s}`` or ``{"Regex": r}``)."""
    return {"type": "Replace", "pattern": pattern, "content": content}


def _template(*parts: str) -> list[dict[str, Any]]:
    """A TemplateProcessing template: ``[X]`` parts are special tokens, others sequences."""
    return [
        {"SpecialToken": {"id": p, "type_id": 0}}
        if p.startswith("[")
        else {"Sequence": {"id": p, "type_id": 0}}
        for p in parts
    ]
