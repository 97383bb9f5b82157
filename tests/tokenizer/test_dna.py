"""DNATokenizer at run time: fixed ids, lossless round trips, N runs, batches, offsets,
saving and loading."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnabird.errors import ConfigError, InputError
from dnabird.tokenizer import (
    CLS_ID,
    FIRST_LEARNED_ID,
    MASK_ID,
    N_PIECE_LENGTHS,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    DNATokenizer,
)

from .conftest import VOCAB

dna = st.text(alphabet="ACGTNacgtn", max_size=3000)


# ----------------------------------------------------------------------------- layout
def test_fixed_ids_and_vocabulary(tokenizer):
    assert tokenizer.vocab_size == VOCAB
    assert tokenizer.pieces[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id == 4
    assert tokenizer.special_ids == {0, 1, 2, 3, 4}
    assert tokenizer.pieces[5:FIRST_LEARNED_ID] == ["N" * n for n in N_PIECE_LENGTHS]
    learned = tokenizer.pieces[FIRST_LEARNED_ID:]
    assert all(re.fullmatch("[ACGT]+", p) for p in learned)
    assert {"A", "C", "G", "T"} <= set(learned)
    assert max(map(len, learned)) > 4  # the motifs were learned
    assert tokenizer.bp_per_id.shape == (VOCAB,)
    assert tokenizer.bp_per_id[:5].tolist() == [0] * 5
    assert tokenizer.bp_per_id.tolist()[5:] == [len(p) for p in tokenizer.pieces[5:]]


def test_model_type_is_recovered(tokenizer, training_sentences):
    other = "bpe" if tokenizer.model_type == "unigram" else "unigram"
    trained = DNATokenizer.train(training_sentences, vocab_size=VOCAB, model_type=other)
    assert trained.model_type == other != tokenizer.model_type


# ----------------------------------------------------------------------------- round trips
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=dna)
def test_round_trip_and_offsets(tokenizer, seq):
    ids = tokenizer.encode(seq)
    assert tokenizer.decode(ids) == seq.upper()
    assert all(i >= len(SPECIAL_TOKENS) for i in ids)
    assert int(tokenizer.token_lengths(ids).sum()) == len(seq)
    offsets = tokenizer.offsets(ids)
    assert offsets.shape == (len(ids), 2)
    if ids:
        assert offsets[0, 0] == 0 and offsets[-1, 1] == len(seq)
        assert (offsets[1:, 0] == offsets[:-1, 1]).all()
    for (start, end), token in zip(offsets.tolist(), ids, strict=True):
        assert seq[start:end].upper() == tokenizer.pieces[token]


@settings(max_examples=60, deadline=None)
@given(seq=dna)
def test_n_never_merges_with_bases(tokenizer, seq):
    for token in tokenizer.encode(seq):
        piece = tokenizer.pieces[token]
        assert set(piece) == {"N"} or "N" not in piece


def test_n_runs_use_the_longest_pieces(tokenizer):
    n_id = {n: tokenizer.pieces.index("N" * n) for n in N_PIECE_LENGTHS}
    ids = tokenizer.encode("N" * 100)
    assert ids == [n_id[64], n_id[32], n_id[4]]
    ids = tokenizer.encode("AC" + "n" * 7 + "GT")
    lengths = [len(tokenizer.pieces[i]) for i in ids if "N" in tokenizer.pieces[i]]
    assert lengths == [4, 2, 1]
    assert len(tokenizer.encode("N" * 10_000)) == 157  # 156 * 64 + 16


def test_case_and_ambiguity_codes(tokenizer):
    assert tokenizer.encode("acgtacgtttga") == tokenizer.encode("ACGTACGTTTGA")
    assert tokenizer.encode("ACRYGT") == tokenizer.encode("ACNNGT")
    assert tokenizer.decode(tokenizer.encode("acrygt")) == "ACNNGT"


def test_invalid_character_names_position(tokenizer):
    with pytest.raises(InputError, match=r"'X' at position 4 \(0-based\)"):
        tokenizer.encode("ACGTXACGT")
    with pytest.raises(InputError, match="' '"):
        tokenizer.encode("ACGT ACGT")


def test_decode_drops_specials(tokenizer):
    ids = tokenizer.encode("ACGTTGCA")
    assert tokenizer.decode([CLS_ID, *ids, SEP_ID, PAD_ID, MASK_ID]) == "ACGTTGCA"


def test_encode_batch_equals_single_calls(tokenizer, training_sentences):
    seqs = training_sentences[:20] + ["", "NNNN", "acgN"]
    assert tokenizer.encode_batch(seqs) == [tokenizer.encode(s) for s in seqs]


def test_bp_per_token(tokenizer, training_sentences):
    tokens = sum(len(tokenizer.encode(s)) for s in training_sentences)
    expected = sum(map(len, training_sentences)) / tokens
    assert tokenizer.bp_per_token(training_sentences) == pytest.approx(expected)
    assert expected > 2.0


# ----------------------------------------------------------------------------- batches
def test_batch_padding_masks_and_specials(tokenizer):
    torch = pytest.importorskip("torch")
    seqs = ["ACGTACGTAAAC", "GGGCCCATATATTTTNNNNNACGGTAGCTAGCTAGCTAGCA", "A"]
    batch = tokenizer(seqs)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.dtype == torch.long and mask.shape == ids.shape
    lengths = [len(tokenizer.encode(s)) + 2 for s in seqs]
    assert ids.shape == (3, max(lengths))
    for row, length, seq in zip(range(3), lengths, seqs, strict=True):
        assert mask[row].tolist() == [1] * length + [0] * (ids.shape[1] - length)
        assert ids[row, 0] == CLS_ID and ids[row, length - 1] == SEP_ID
        assert ids[row, 1 : length - 1].tolist() == tokenizer.encode(seq)
        assert (ids[row, length:] == PAD_ID).all()


def test_batch_max_length_truncation_and_formats(tokenizer):
    seq = "ACGTTTGACCA" * 30
    full = tokenizer.encode(seq)
    assert len(full) > 10
    cut = tokenizer([seq, "ACG"], max_length=10, truncation=True, return_tensors="np")
    assert cut["input_ids"].dtype == np.int64 and cut["input_ids"].shape == (2, 10)
    assert cut["input_ids"][0].tolist() == [CLS_ID, *full[:8], SEP_ID]
    padded = tokenizer(["ACG"], max_length=12, padding="max_length", return_tensors=None)
    assert len(padded["input_ids"][0]) == 12 and sum(padded["attention_mask"][0]) == 3
    plain = tokenizer(["ACG", seq], padding=False, add_special_tokens=False, return_tensors=None)
    assert plain["input_ids"] == [tokenizer.encode("ACG"), full]
    with pytest.raises(InputError, match="max_length=10"):
        tokenizer([seq], max_length=10)
    with pytest.raises(ConfigError):
        tokenizer(["ACG", seq], padding=False, return_tensors="np")
    with pytest.raises(ConfigError):
        tokenizer(["ACG"], padding="max_length")
    single = tokenizer("ACGT", return_tensors="np")
    assert single["input_ids"].shape[0] == 1


def test_batch_offsets_map_tokens_to_input(tokenizer):
    seqs = ["acgtNNNNNNNNNNtttgacca", "GATTACA" * 5]
    batch = tokenizer(seqs, return_offsets=True, return_tensors="np")
    offsets, ids, mask = batch["offsets"], batch["input_ids"], batch["attention_mask"]
    assert offsets.shape == ids.shape + (2,)
    for row, seq in enumerate(seqs):
        real = int(mask[row].sum())
        spans = offsets[row, :real]
        assert spans[0].tolist() == [0, 0] and spans[-1].tolist() == [len(seq), len(seq)]
        widths = spans[:, 1] - spans[:, 0]
        assert int(widths.sum()) == len(seq)
        pieces = [seq[s:e].upper() for s, e in spans[1:-1].tolist()]
        assert pieces == [tokenizer.pieces[i] for i in ids[row, 1 : real - 1]]
        assert (offsets[row, real:] == 0).all()


# ----------------------------------------------------------------------------- saving
def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = DNATokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.model_proto == tokenizer.model_proto
    assert loaded.model_type == tokenizer.model_type
    assert loaded.encode("ACGTTTGANNNNNNNNNNNAC") == tokenizer.encode("ACGTTTGANNNNNNNNNNNAC")


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no sentencepiece.model; is it a dnabird tokenizer"):
        DNATokenizer.from_pretrained(tmp_path)
    (tmp_path / "sentencepiece.model").write_bytes(b"not a model")
    with pytest.raises(InputError, match="sentencepiece.model"):
        DNATokenizer.from_pretrained(tmp_path)


def test_load_names_a_missing_folder(tmp_path, tokenizer):
    """``--tokenizer nosuchdir`` says the folder does not exist (issue 12), not that it
    lacks a sentencepiece.model; a folder holding a tokenizer/ (token or model folder)
    points to it."""
    with pytest.raises(InputError, match=r"nosuchdir: folder not found; give a tokenizer folder"):
        DNATokenizer.from_pretrained(tmp_path / "nosuchdir")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file: is not a folder"):
        DNATokenizer.from_pretrained(tmp_path / "file")
    tokenizer.save_pretrained(tmp_path / "tokens" / "tokenizer")
    with pytest.raises(InputError, match=r"use its tokenizer folder \S+tokens/tokenizer$"):
        DNATokenizer.from_pretrained(tmp_path / "tokens")


def test_load_rejects_foreign_sentencepiece_model(tmp_path):
    import io

    import sentencepiece as spm

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world"] * 50 + ["the quick brown fox"] * 50),
        model_writer=writer,
        vocab_size=23,
        minloglevel=2,
    )
    (tmp_path / "sentencepiece.model").write_bytes(writer.getvalue())
    with pytest.raises(InputError, match="not a dnabird tokenizer"):
        DNATokenizer.from_pretrained(tmp_path)
