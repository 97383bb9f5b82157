"""``dnabird train-tokenizer`` and ``dnabird tokenize``: the DNA tokenizer and token shards."""

from __future__ import annotations

import argparse

from dnabird.commands._types import at_least
from dnabird.tokenizer.vocab import MIN_VOCAB_SIZE


def _train(args: argparse.Namespace) -> None:
    from dnabird.tokenizer import train_tokenizer

    manifest = train_tokenizer(
        args.source,
        args.out,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        max_piece_length=args.max_piece_length,
        sample_bp=args.sample_bp,
        seed=args.seed,
        threads=args.threads,
        overwrite=args.overwrite,
    )
    counts = manifest["counts"]
    print(
        f"Trained a {args.vocab_size:,}-piece {args.model_type} tokenizer on "
        f"{counts['sample_sentences']:,} sentences ({counts['sample_bp']:,} bp) of "
        f"{args.source} in {manifest['seconds']:.1f} s: {manifest['bp_per_token_sample']:.2f} "
        f"bp per token on the sample. Written to {args.out}."
    )


def _tokenize(args: argparse.Namespace) -> None:
    from dnabird.data.tokens import tokenize_corpus

    manifest = tokenize_corpus(
        args.corpus, args.tokenizer, args.out, workers=args.workers, overwrite=args.overwrite
    )
    counts = manifest["counts"]
    print(
        f"Tokenized {counts['documents']:,} documents ({counts['sentences']:,} sentences, "
        f"{counts['bp']:,} bp) into {counts['tokens']:,} tokens "
        f"({manifest['bp_per_token']:.2f} bp per token) in {len(manifest['shards'])} shards "
        f"in {manifest['seconds']:.1f} s. Written to {args.out}."
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-tokenizer`` and ``tokenize`` subcommands."""
    train = subparsers.add_parser(
        "train-tokenizer",
        help="train a SentencePiece DNA tokenizer (~8 bp per token) on a corpus or FASTA",
        description="Train a SentencePiece DNA tokenizer on a seeded sample of sentences from "
        "a corpus folder (dnabird preprocess) or a FASTA file (cut like preprocess, one pass). "
        "Rerunning into a folder that holds the same training does nothing; Ctrl-C stops it "
        "at once.",
    )
    train.add_argument("source", metavar="CORPUS_DIR_or_FASTA")
    train.add_argument("--out", required=True, help="tokenizer folder (new, or made by this)")
    train.add_argument(
        "--vocab-size",
        type=at_least(MIN_VOCAB_SIZE, " (5 special tokens, 7 N pieces, A, C, G, T)"),
        default=32000,
        help="pieces, specials included",
    )
    train.add_argument(
        "--model-type",
        choices=("unigram", "bpe"),
        default="unigram",
        help="SentencePiece algorithm (unigram: longer tokens; see docs/workflow/tokenizer.md)",
    )
    train.add_argument(
        "--max-piece-length",
        type=at_least(1),
        default=16,
        help="longest piece, bp",
    )
    train.add_argument(
        "--sample-bp",
        type=at_least(1),
        default=20_000_000,
        help="bp of sentences to train on",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the sample")
    train.add_argument(
        "--threads",
        type=at_least(1),
        default=1,
        help="SentencePiece threads, recorded in the model",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a tokenizer folder made from other inputs or parameters",
    )
    train.set_defaults(func=_train)

    tokenize = subparsers.add_parser(
        "tokenize",
        help="turn a corpus into token-id shards for pretraining",
        description="Encode every sentence of a corpus folder with a tokenizer into Parquet "
        "token shards (one per corpus shard; an interrupted run resumes; same output for any "
        "worker count).",
    )
    tokenize.add_argument("corpus", metavar="CORPUS_DIR")
    tokenize.add_argument("--tokenizer", required=True, help="tokenizer folder")
    tokenize.add_argument("--out", required=True, help="token folder (resumed if interrupted)")
    tokenize.add_argument("--workers", type=at_least(1), default=1, help="processes")
    tokenize.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a token folder made from another corpus or tokenizer",
    )
    tokenize.set_defaults(func=_tokenize)
