"""The fixed vocabulary, normalisation, the ids defined once, and what importing the runtime
tokenizer costs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dnabird
from dnabird.errors import InputError
from dnabird.tokenizer import (
    CLS_ID,
    FIRST_LEARNED_ID,
    MASK_ID,
    MIN_VOCAB_SIZE,
    N_PIECE_LENGTHS,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    normalize_sequence,
)
from dnabird.tokenizer.vocab import split_runs


def test_fixed_layout():
    assert (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID) == (0, 1, 2, 3, 4)
    assert SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    assert N_PIECE_LENGTHS == (64, 32, 16, 8, 4, 2, 1)
    assert FIRST_LEARNED_ID == 12
    assert MIN_VOCAB_SIZE == 5 + 7 + 4  # specials, N pieces, A C G T


def test_normalize_and_split():
    assert normalize_sequence("acgtRYswkmbdhvNn") == "ACGT" + "N" * 12
    with pytest.raises(InputError, match=r"'X' at position 4 \(0-based\)"):
        normalize_sequence("ACGTXACGT")
    assert split_runs("ACNNNGT") == ["AC", "NNN", "GT"]
    assert split_runs("ACGT") == ["ACGT"] and split_runs("") == [""]
    assert "".join(split_runs("NNACGNTTN")) == "NNACGNTTN"


def test_special_ids_are_defined_once():
    """No module but tokenizer/vocab.py assigns the special-token ids (issue 11)."""
    names = {"PAD_ID", "UNK_ID", "CLS_ID", "SEP_ID", "MASK_ID"}
    root = Path(dnabird.__file__).parent
    owners = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            assigned = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if assigned & names:
                owners.append(path.relative_to(root).as_posix())
    assert owners == ["tokenizer/vocab.py"]


def test_runtime_tokenizer_imports_no_genome_code(tmp_path):
    """Prediction loads and uses a tokenizer without the genome code, pyfaidx or biopython;
    the ids alone cost no numpy. Checked in a fresh interpreter."""
    code = f"""
import sys
import dnabird.tokenizer.vocab
assert "numpy" not in sys.modules, "the ids imported numpy"
from dnabird.tokenizer import DNATokenizer
heavy = ("dnabird.genome", "pyfaidx", "Bio")
def loaded():
    return sorted(m for m in sys.modules if m.startswith(heavy))
assert not loaded() and "dnabird.tokenizer.train" not in sys.modules, loaded()
tokenizer = DNATokenizer.train(["ACGTTGCAAC" * 20] * 5, vocab_size=20, model_type="bpe")
tokenizer.save_pretrained({str(tmp_path)!r})
again = DNATokenizer.from_pretrained({str(tmp_path)!r})
assert again.decode(again.encode("ACGTNNNNacgt")) == "ACGTNNNNACGT"
assert not loaded(), loaded()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
