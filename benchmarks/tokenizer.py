"""Tokenizer benchmark on the real chr2 excerpt: bp per token, training time and peak RSS,
and encode throughput of dnabird's DNATokenizer against its peers.

Study (issue 4): train on the hg38 chr2 excerpt without its last 300 kbp (cut into sentences
like ``dnabird preprocess``, one pass, seed 0); measure average bp per token (total bp /
total tokens) on the held-out 300 kbp, the 2,929 EPDnew promoters, the 100 DeepSEA 8 kbp
sequences and the training sentences, for each vocabulary size and model type, next to
non-overlapping 6-mers (a sequence of n bp is ceil(n / 6) tokens). Each training runs from a
fresh process, which reports its wall time and peak RSS (its own or that of the SentencePiece
process it starts, whichever is larger).

Throughput: encode the held-out region as 1,000 bp sentences (one batch) with one thread,
alternating after a warm-up: ours (``DNATokenizer.encode_batch``: validation, N-run
split, SentencePiece), raw SentencePiece on the same (pre-uppercased) sentences, and the
Hugging Face fast tokenizer loaded from our export. Prints medians (Mbp/s per core) and
ratios ours/peer.

Usage::

    .venv/bin/python benchmarks/tokenizer.py                 # full table (~5 min, 2 cores)
    .venv/bin/python benchmarks/tokenizer.py --vocab-sizes 4000 --model-types bpe
    .venv/bin/python benchmarks/tokenizer.py --tokenizer tok/   # throughput only
"""

from __future__ import annotations

import argparse
import gzip
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HELD_OUT_BP = 300_000
SENTENCE_BP = 1_000
GENA_LM = {"held-out": 6.4, "promoters": 5.9, "deepsea": 6.4}


def load_real_data(data: Path) -> dict[str, list[str]]:
    """chr2 excerpt (training part and held-out), promoters and DeepSEA sequences."""
    from Bio import SeqIO

    with gzip.open(data / "genome" / "hg38_chr2_1-2333275.fa.gz", "rt") as handle:
        chrom = str(next(SeqIO.parse(handle, "fasta")).seq)
    promoters = (data / "promoters" / "human_TATA_EPDnew_300bp.txt").read_text().split()
    with gzip.open(data / "deepsea" / "deepsea_test_sample_100.csv.gz", "rt") as handle:
        deepsea = [line.split(",", 1)[0] for line in handle]
    return {
        "train": [chrom[:-HELD_OUT_BP]],
        "held-out": [chrom[-HELD_OUT_BP:]],
        "promoters": promoters,
        "deepsea": deepsea,
    }


def training_sentences(train: str, seed: int = 0) -> list[str]:
    """The training part cut like ``dnabird preprocess`` (one pass), via a temporary FASTA."""
    from dnabird.tokenizer import training_sample

    with tempfile.TemporaryDirectory() as folder:
        fasta = Path(folder) / "train.fa"
        fasta.write_text(
            ">chr2\n" + "\n".join(train[i : i + 60] for i in range(0, len(train), 60)) + "\n"
        )
        return training_sample(fasta, sample_bp=len(train), seed=seed)


def _train_in_child(
    sentences: list[str], vocab_size: int, model_type: str
) -> tuple[bytes, float, int]:
    """Train from this (fresh) process; return the model, seconds and peak RSS in bytes (the
    larger of this process and SentencePiece's training process, its child)."""
    from dnabird.tokenizer import DNATokenizer

    started = time.perf_counter()
    tokenizer = DNATokenizer.train(sentences, vocab_size=vocab_size, model_type=model_type)
    seconds = time.perf_counter() - started
    peak_kib = max(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return tokenizer.model_proto, seconds, peak_kib * 1024


def train_isolated(sentences: list[str], vocab_size: int, model_type: str):
    spawn = multiprocessing.get_context("spawn")  # a fresh process: RSS is the training's own
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_train_in_child, sentences, vocab_size, model_type).result()


def kmer_bp_per_token(seqs: list[str], k: int = 6) -> float:
    return sum(map(len, seqs)) / sum(math.ceil(len(s) / k) for s in seqs)


def study(data: dict[str, list[str]], sentences: list[str], vocab_sizes, model_types):
    """Rows of the bp-per-token table, and the trained tokenizers by (type, size)."""
    from dnabird.tokenizer import DNATokenizer

    sets = {"held-out": data["held-out"], "promoters": data["promoters"]}
    sets |= {"deepsea": data["deepsea"], "training": sentences}
    rows, tokenizers = [], {}
    for model_type in model_types:
        for vocab_size in vocab_sizes:
            proto, seconds, rss = train_isolated(sentences, vocab_size, model_type)
            tokenizer = DNATokenizer(proto)
            tokenizers[(model_type, vocab_size)] = tokenizer
            values = {name: tokenizer.bp_per_token(seqs) for name, seqs in sets.items()}
            rows.append((f"{model_type} {vocab_size // 1000}k", values, seconds, rss))
            print(f"  trained {model_type} {vocab_size}: {seconds:.1f} s", file=sys.stderr)
    rows.append(("6-mers", {n: kmer_bp_per_token(s) for n, s in sets.items()}, None, None))
    rows.append(("GENA-LM 32k BPE (issue anchor)", GENA_LM, None, None))
    return rows, tokenizers


def print_study(rows, train_bp: int) -> None:
    print(f"\nbp per token (training sample: {train_bp:,} bp of chr2, last 300 kbp held out)\n")
    print(
        "| tokenizer | held-out chr2 | promoters | DeepSEA | training sentences "
        "| train time (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values, seconds, rss in rows:
        cells = [
            f"{values[k]:.2f}" if k in values else "-"
            for k in ("held-out", "promoters", "deepsea", "training")
        ]
        timing = f"{seconds:.1f}" if seconds is not None else "-"
        memory = f"{rss / 2**20:.0f}" if rss is not None else "-"
        print(f"| {name} | {' | '.join(cells)} | {timing} | {memory} |")


def throughput(tokenizer, held_out: str, repeats: int) -> None:
    """Median encode Mbp/s (one thread) of ours and the peers on 1 kbp sentences."""
    sentences = [held_out[i : i + SENTENCE_BP] for i in range(0, len(held_out), SENTENCE_BP)]
    upper = [s.upper() for s in sentences]
    runners = {
        "dnabird DNATokenizer.encode_batch": lambda: tokenizer.encode_batch(sentences),
        "sentencepiece (raw, uppercase input)": lambda: tokenizer._sp.encode(upper, num_threads=1),
    }
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        print("transformers not installed: Hugging Face peer skipped", file=sys.stderr)
    else:
        with tempfile.TemporaryDirectory() as folder:
            tokenizer.save_pretrained(folder)
            hf = PreTrainedTokenizerFast.from_pretrained(folder)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        runners["HF tokenizers (our export)"] = lambda: hf(sentences, add_special_tokens=False)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    ours = statistics.median(times["dnabird DNATokenizer.encode_batch"])
    mbp = len(held_out) / 1e6
    print(
        f"\nencode throughput, {tokenizer!r}, {len(sentences)} x {SENTENCE_BP} bp, 1 thread, "
        f"median of {repeats}\n"
    )
    print("| encoder | Mbp/s per core | ours / peer time |")
    print("|---|---|---|")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"| {name} | {mbp / median:.2f} | {ours / median:.2f} |")


def main() -> None:
    from dnabird.testing import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[4000, 16000, 32000])
    parser.add_argument("--model-types", nargs="+", default=["unigram", "bpe"])
    parser.add_argument("--repeats", type=int, default=5, help="throughput repeats")
    parser.add_argument("--save", type=Path, help="save each trained tokenizer in SAVE/TYPE-SIZE")
    parser.add_argument(
        "--tokenizer", type=Path, nargs="+", help="skip the study: throughput of these folders"
    )
    args = parser.parse_args()
    from dnabird.tokenizer import DNATokenizer

    data_dir = shared_data_dir()
    if data_dir is None:
        sys.exit("real data not found: set $DNABIRD_SHARED_DATA or place it at ../shared/data")
    data = load_real_data(data_dir)
    if args.tokenizer:
        for folder in args.tokenizer:
            throughput(DNATokenizer.from_pretrained(folder), data["held-out"][0], args.repeats)
        return
    sentences = training_sentences(data["train"][0])
    rows, tokenizers = study(data, sentences, args.vocab_sizes, args.model_types)
    print_study(rows, sum(map(len, sentences)))
    if args.save:
        for (model_type, size), tokenizer in tokenizers.items():
            tokenizer.save_pretrained(args.save / f"{model_type}-{size}")
    for model_type in args.model_types:
        key = (model_type, max(args.vocab_sizes))
        throughput(tokenizers[key], data["held-out"][0], args.repeats)


if __name__ == "__main__":
    main()
