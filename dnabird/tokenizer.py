"""DNA tokenizer: SentencePiece pieces over ACGT runs, fixed pieces for N runs.

Vocabulary layout (the one place the fixed ids are defined)::

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

Training: :func:`train_tokenizer` (``dnabird train-tokenizer``) draws a seeded sample of
sentences from a corpus folder or a FASTA (:func:`training_sample`) and fits SentencePiece
with DNA settings (:meth:`DNATokenizer.train`: no whitespace logic, full character
coverage, no byte fallback); same sample, parameters, seed and threads give the same bytes.

A tokenizer folder holds ``sentencepiece.model`` (the source of truth) and a Hugging Face
export (``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``) that
``transformers.AutoTokenizer`` loads and that reproduces our ids.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.files import require_file, write_bytes_atomic, write_text_atomic

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: Lengths (bp) of the fixed N-run pieces, longest first; they take ids 5, 6, ... in order.
N_PIECE_LENGTHS = (64, 32, 16, 8, 4, 2, 1)
FIRST_LEARNED_ID = len(SPECIAL_TOKENS) + len(N_PIECE_LENGTHS)
MODEL_TYPES = ("unigram", "bpe")
MODEL_FILE = "sentencepiece.model"

_IUPAC_AMBIGUOUS = "RYSWKMBDHV"
_NORMALIZE = str.maketrans(
    {
        **{c.lower(): c for c in "ACGTN"},
        **{c: "N" for c in _IUPAC_AMBIGUOUS + _IUPAC_AMBIGUOUS.lower()},
    }
)
_INVALID = re.compile(r"[^ACGTN]")
_RUNS = re.compile(r"[ACGT]+|N+")


def normalize_sequence(seq: str) -> str:
    """Return ``seq`` uppercased with IUPAC ambiguity codes as ``N`` (same length).

    Raises InputError naming the first character that is not a nucleotide or IUPAC code.
    """
    normalized = seq.translate(_NORMALIZE)
    bad = _INVALID.search(normalized)
    if bad is not None:
        raise InputError(
            f"sequence has {seq[bad.start()]!r} at position {bad.start()} (0-based); "
            "expected A, C, G, T, N or an IUPAC ambiguity code"
        )
    return normalized


def _hf_replace(pattern: dict[str, str], content: str) -> dict[str, Any]:
    """A ``tokenizers`` Replace normalizer (pattern ``{"String": s}`` or ``{"Regex": r}``)."""
    return {"type": "Replace", "pattern": pattern, "content": content}


class DNATokenizer:
    """A SentencePiece DNA tokenizer with fixed special ids and exact bp offsets.

    Attributes: ``vocab_size``; ``bp_per_id`` (``np.int32 [vocab_size]``, bp covered by
    each id, 0 for specials); ``pad_token_id`` ... ``mask_token_id``; ``special_ids``.
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

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> DNATokenizer:
        """Load the tokenizer saved in ``folder`` (its ``sentencepiece.model``)."""
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise InputError(f"{folder}: no {MODEL_FILE}; is it a dnabird tokenizer folder?")
        return cls(path.read_bytes(), source=str(path))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``sentencepiece.model`` and the Hugging Face export into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / MODEL_FILE, self.model_proto)
        write_text_atomic(folder / "tokenizer.json", json.dumps(self._hf_tokenizer_json()))
        names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
        special_map = dict(zip(names, SPECIAL_TOKENS, strict=True))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            **special_map,
        }
        write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
        write_text_atomic(
            folder / "special_tokens_map.json", json.dumps(special_map, indent=2) + "\n"
        )
        return folder

    # ----------------------------------------------------------------- encoding
    def encode(self, seq: str) -> list[int]:
        """Token ids of ``seq`` (no special tokens); see the module docstring for rules."""
        return self.encode_batch([seq])[0]

    def encode_batch(self, seqs: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """Token ids of each sequence (no special tokens), in one SentencePiece call."""
        runs_per_seq: list[list[str]] = []
        acgt_runs: list[str] = []
        for seq in seqs:
            normalized = normalize_sequence(seq)
            runs = _RUNS.findall(normalized) if "N" in normalized else [normalized]
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

    # ----------------------------------------------------------------- Hugging Face export
    def _hf_tokenizer_json(self) -> dict[str, Any]:
        """The ``tokenizers`` JSON that reproduces :meth:`encode` (N runs via pre-tokenizer)."""
        n_pieces = "|".join(f"N{{{n}}}" for n in N_PIECE_LENGTHS)
        if self.model_type == "unigram":
            # N pieces score -1 each, so one long N piece beats several short ones.
            vocab = [
                [p, -1.0 if FIRST_LEARNED_ID > i >= len(SPECIAL_TOKENS) else self._sp.get_score(i)]
                for i, p in enumerate(self.pieces)
            ]
            model: dict[str, Any] = {
                "type": "Unigram",
                "unk_id": UNK_ID,
                "vocab": vocab,
                "byte_fallback": False,
            }
        else:
            model = {
                "type": "BPE",
                "dropout": None,
                "unk_token": SPECIAL_TOKENS[UNK_ID],
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": {p: i for i, p in enumerate(self.pieces)},
                "merges": self._bpe_merges(),
            }
        specials = {
            t: {"id": t, "ids": [i], "tokens": [t]}
            for i, t in enumerate(SPECIAL_TOKENS)
            if i in (CLS_ID, SEP_ID)
        }

        def template(*parts: str) -> list[dict[str, Any]]:
            return [
                {"SpecialToken": {"id": p, "type_id": 0}}
                if p.startswith("[")
                else {"Sequence": {"id": p, "type_id": 0}}
                for p in parts
            ]

        lower = [_hf_replace({"String": c}, c.upper()) for c in "acgt"]
        ambiguous = "N" + _IUPAC_AMBIGUOUS + ("N" + _IUPAC_AMBIGUOUS).lower()
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
                "normalizers": [
                    *lower,
                    _hf_replace({"Regex": f"[{ambiguous}]"}, "N"),
                ],
            },
            "pre_tokenizer": {
                "type": "Split",
                "pattern": {"Regex": n_pieces},
                "behavior": "Isolated",
                "invert": False,
            },
            "post_processor": {
                "type": "TemplateProcessing",
                "single": template("[CLS]", "A", "[SEP]"),
                "pair": template("[CLS]", "A", "[SEP]", "B", "[SEP]"),
                "special_tokens": specials,
            },
            "decoder": {"type": "Fuse"},
            "model": model,
        }

    def _bpe_merges(self) -> list[list[str]]:
        """BPE merges in SentencePiece priority order (the merged piece's id, then split)."""
        index = {p: i for i, p in enumerate(self.pieces)}
        merges = []
        for piece in self.pieces[len(SPECIAL_TOKENS) :]:
            for cut in range(1, len(piece)):
                if piece[:cut] in index and piece[cut:] in index:
                    merges.append([piece[:cut], piece[cut:]])
        return merges

    # ----------------------------------------------------------------- training
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
        """Train on ``sentences`` (DNA strings, any case) and return the tokenizer.

        Sentences are normalised like :meth:`encode` and split at N runs; the ACGT runs are
        the SentencePiece training sentences. Deterministic: the same sentences, parameters,
        seed and thread count give a byte-identical model.
        """
        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type={model_type!r}; use one of {', '.join(MODEL_TYPES)}")
        runs = [
            run for s in sentences for run in _RUNS.findall(normalize_sequence(s)) if run[0] != "N"
        ]
        if not runs:
            raise InputError("no A, C, G or T in the training sentences")
        writer = io.BytesIO()
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(runs),
                model_writer=writer,
                model_type=model_type,
                vocab_size=vocab_size,
                character_coverage=1.0,
                required_chars="ACGT",
                add_dummy_prefix=False,
                split_by_whitespace=False,
                remove_extra_whitespaces=False,
                split_by_unicode_script=False,
                split_by_number=False,
                normalization_rule_name="identity",
                max_sentence_length=max(map(len, runs)) + 1,
                max_sentencepiece_length=max_piece_length,
                byte_fallback=False,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=-1,
                eos_id=-1,
                pad_piece=SPECIAL_TOKENS[PAD_ID],
                unk_piece=SPECIAL_TOKENS[UNK_ID],
                control_symbols=list(SPECIAL_TOKENS[CLS_ID:]),
                user_defined_symbols=["N" * n for n in N_PIECE_LENGTHS],
                input_sentence_size=0,
                shuffle_input_sentence=False,
                num_threads=threads,
                minloglevel=2,
            )
        except RuntimeError as err:
            raise ConfigError(
                f"sentencepiece could not train a {vocab_size}-piece {model_type} vocabulary "
                f"from {sum(map(len, runs)):,} bp ({str(err).strip()}); lower the vocabulary "
                "size or give more sequence"
            ) from None
        return cls(writer.getvalue())


def sample_sentences(
    sentences: Iterable[str], total_bp: int, sample_bp: int, seed: int = 0
) -> list[str]:
    """A seeded sample of about ``sample_bp`` bp of ``sentences`` (in their order).

    Each sentence is kept with probability ``min(1, sample_bp / total_bp)`` (``total_bp``:
    the bp of all sentences) from a generator seeded by ``seed``; the sample stops once it
    holds ``sample_bp`` bp. Same input, sizes and seed give the same sample.
    """
    if sample_bp < 1:
        raise ConfigError(f"sample size must be >= 1 bp, got {sample_bp}")
    keep = min(1.0, sample_bp / max(total_bp, 1))
    rng = np.random.default_rng(seed)
    sample, kept_bp = [], 0
    for sentence in sentences:
        if kept_bp >= sample_bp:
            break
        if rng.random() < keep:
            sample.append(sentence)
            kept_bp += len(sentence)
    return sample


def training_sample(source: str | os.PathLike, sample_bp: int, seed: int = 0) -> list[str]:
    """A seeded sample of about ``sample_bp`` bp of sentences from a corpus or a FASTA.

    A folder is read as a :class:`~dnabird.genome.Corpus` (its documents' sentences in
    corpus order). A FASTA file is first cut like ``dnabird preprocess`` (one pass, seed
    ``seed``, every record, default sentence lengths and N rules) into a temporary corpus.
    See :func:`sample_sentences` for the sampling.
    """
    import tempfile

    from dnabird.genome import Corpus, preprocess

    path = Path(source)
    if path.is_dir():
        return _sample_corpus(Corpus(path), sample_bp, seed)
    require_file(path, "FASTA file")
    with tempfile.TemporaryDirectory(prefix="dnabird-train-tokenizer-") as folder:
        preprocess(path, Path(folder) / "corpus", passes=1, seed=seed, min_length=1)
        return _sample_corpus(Corpus(Path(folder) / "corpus"), sample_bp, seed)


def _sample_corpus(corpus: Any, sample_bp: int, seed: int) -> list[str]:
    total = corpus.manifest.get("counts", {}).get("total", {}).get("bp")
    if total is None:
        total = sum(len(s) for doc in corpus for s in doc.sentences)
    sentences = (s for doc in corpus for s in doc.sentences)
    return sample_sentences(sentences, int(total), sample_bp, seed)


def train_tokenizer(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vocab_size: int = 32000,
    model_type: str = "unigram",
    max_piece_length: int = 16,
    sample_bp: int = 20_000_000,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """Train on a seeded sample of a corpus folder or FASTA; write the folder ``out``.

    ``out`` (which must not exist, or be empty) receives the tokenizer files and a
    ``manifest.json`` (stage ``train-tokenizer``); it is assembled under a temporary name
    and renamed when complete. Returns the manifest.
    """
    import shutil
    import tempfile
    import time

    from dnabird.manifest import describe_file, new_manifest, write_manifest

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists and is not empty; choose a new --out")
    started = time.perf_counter()
    sample = training_sample(source, sample_bp, seed)
    if not sample:
        raise InputError(f"{source}: no sentences to train on (is the corpus empty?)")
    tokenizer = DNATokenizer.train(sample, vocab_size, model_type, max_piece_length, seed, threads)
    sample_tokens = sum(map(len, tokenizer.encode_batch(sample)))
    source = Path(source)
    described = (
        {"path": str(source), "corpus_manifest": describe_file(source / "manifest.json")}
        if source.is_dir()
        else describe_file(source)
    )
    manifest = new_manifest(
        "train-tokenizer",
        {
            "vocab_size": vocab_size,
            "model_type": model_type,
            "max_piece_length": max_piece_length,
            "sample_bp": sample_bp,
            "seed": seed,
            "threads": threads,
        },
        input=described,
        counts={
            "sample_sentences": len(sample),
            "sample_bp": sum(map(len, sample)),
            "sample_tokens": sample_tokens,
        },
        bp_per_token_sample=round(sum(map(len, sample)) / max(sample_tokens, 1), 4),
        model_sha256=hashlib.sha256(tokenizer.model_proto).hexdigest(),
        seconds=round(time.perf_counter() - started, 3),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tokenizer.save_pretrained(staging)
        write_manifest(staging, manifest)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
