"""The fixed part of every dnabird vocabulary, and how input sequences are normalised.

Vocabulary layout (the one place the fixed ids are defined)::

    0 [PAD]   1 [UNK]   2 [CLS]   3 [SEP]   4 [MASK]
    5..11     N runs: N*64, N*32, N*16, N*8, N*4, N*2, N
    12..      pieces learned by SentencePiece (unigram or BPE) from ACGT sentences; the
              four bases A, C, G, T are always among them

This module imports nothing heavy (no numpy, no sentencepiece), so any module may take the
ids from here.
"""

from __future__ import annotations

import re

from dnabird.errors import InputError

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: Lengths (bp) of the fixed N-run pieces, longest first; they take ids 5, 6, ... in order.
N_PIECE_LENGTHS = (64, 32, 16, 8, 4, 2, 1)
FIRST_LEARNED_ID = len(SPECIAL_TOKENS) + len(N_PIECE_LENGTHS)
BASES = "ACGT"
#: The smallest vocabulary: the specials, the N pieces and one piece per base (16 ids).
MIN_VOCAB_SIZE = FIRST_LEARNED_ID + len(BASES)
MODEL_TYPES = ("unigram", "bpe")
MODEL_FILE = "sentencepiece.model"
#: IUPAC ambiguity codes other than N; they are read as N.
IUPAC_AMBIGUOUS = "RYSWKMBDHV"

_NORMALIZE = str.maketrans(
    {
        **{c.lower(): c for c in BASES + "N"},
        **{c: "N" for c in IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower()},
    }
)
_INVALID = re.compile(r"[^ACGTN]")
_RUNS = re.compile(r"[ACGT]+|N+")


def normalize_sequence(seq: str) -> str:
    """Return ``seq`` uppercased with IUPAC ambiguity codes as ``N`` (same length).

    Raises InputError naming the first character that is not a nucleotide or IUPAC code
    (its 0-based position in ``seq``).
    """
    normalized = seq.translate(_NORMALIZE)
    bad = _INVALID.search(normalized)
    if bad is not None:
        raise InputError(
            f"sequence has {seq[bad.start()]!r} at position {bad.start()} (0-based); "
            "expected A, C, G, T, N or an IUPAC ambiguity code"
        )
    return normalized


def split_runs(normalized: str) -> list[str]:
    """The maximal ACGT runs and N runs of a normalised sequence, in order (they concatenate
    back to it); ``[""]`` for an empty sequence."""
    return _RUNS.findall(normalized) if "N" in normalized else [normalized]
