"""``dnabird demo``: the whole pretraining recipe, end to end, in a few minutes on a CPU.

Genome FASTA -> held-out split -> documents (``preprocess``) -> SentencePiece tokenizer
(``train-tokenizer``) -> token shards (``tokenize``) -> a small BigBird masked language
model (``pretrain``) -> held-out bits per character next to an interpolated k-mer baseline
(``evaluate-mlm``) -> pictures of the attention pattern and the training curve.

The genome is the real hg38 chr2 excerpt from the shared data folder when it is present
(see :func:`dnabird.testing.shared_data_dir`), otherwise a seeded synthetic genome (an
order-3 Markov chain with interspersed repeat copies, clearly labelled as such): a fresh
clone has no real data and nothing may be downloaded.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError
from dnabird.files import write_text_atomic
from dnabird.testing import shared_data_dir

log = logging.getLogger(__name__)

REAL_GENOME = "genome/hg38_chr2_1-2333275.fa.gz"
FASTA_LINE_BP = 60


@dataclass
class DemoOptions:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    held_out_bp: int = 300_000
    """Last bp of the genome kept out of every training step and scored at the end."""
    passes: int = 4
    """Preprocessing passes (the paper uses 10); both strands are written."""
    vocab_size: int = 2048
    """Tokenizer vocabulary (the paper uses 32k on a whole genome)."""
    tokenizer_sample_bp: int = 500_000
    """bp of training sentences the tokenizer learns from."""
    max_length: int = 512
    """Tokens per pretraining sequence."""
    batch_size: int = 16
    """Sequences per optimizer step."""
    steps: int = 700
    """Optimizer steps of pretraining."""
    hidden_size: int = 128
    """Width of the model: the ``tiny`` preset (2 layers, 4 heads) widened from 64, which
    levels off above the k-mer baseline on real DNA (``benchmarks/RESULTS.md``)."""
    ngram_orders: tuple[int, ...] = (4, 6, 8, 10)
    """Orders of the k-mer baseline; the best one is reported."""
    synthetic_bp: int = 1_500_000
    """Length of the synthetic genome used when no real genome is available."""
    seed: int = 0
    """Seed of every random choice of the run."""


def synthetic_genome(length: int, seed: int) -> str:
    """Return a seeded synthetic DNA sequence of ``length`` bp.

    An order-3 Markov chain with random transition probabilities, into which copies of a
    few hundred repeat elements (300-3000 bp, 0-15% point mutations) are inserted, so that
    both local composition and long repeats give a language model something to learn.
    """
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    transitions = rng.dirichlet(np.full(4, 0.6), size=64).cumsum(axis=1)  # [64 contexts, 4]
    draws = rng.random(length)
    out = np.empty(length, dtype=np.uint8)
    context = 0
    for i in range(length):  # ~1 s per Mbp
        base = int(np.searchsorted(transitions[context], draws[i]))
        out[i] = min(base, 3)
        context = (context * 4 + out[i]) % 64
    repeats = [
        out[s : s + n].copy()
        for s, n in zip(
            rng.integers(0, length - 3000, 300), rng.integers(300, 3000, 300), strict=True
        )
    ]
    position = int(rng.integers(2_000, 20_000))
    while position < length:
        element = repeats[int(rng.integers(len(repeats)))].copy()
        mutated = rng.random(len(element)) < rng.uniform(0.0, 0.15)
        element[mutated] = rng.integers(0, 4, int(mutated.sum()))
        end = min(position + len(element), length)
        out[position:end] = element[: end - position]
        position = end + int(rng.integers(2_000, 20_000))
    return bases[out].tobytes().decode("ascii")


def _write_fasta(path: Path, name: str, sequence: str) -> None:
    lines = [f">{name}"] + [
        sequence[i : i + FASTA_LINE_BP] for i in range(0, len(sequence), FASTA_LINE_BP)
    ]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _genome(genome: str | Path | None, options: DemoOptions) -> tuple[str, str, str]:
    """Return (description, name, sequence) of the demo genome (the first FASTA record)."""
    from dnabird.genome.fasta import read_fasta

    if genome is None and (data := shared_data_dir()) is not None:
        genome = data / REAL_GENOME
    if genome is not None:
        name, sequence = next(iter(read_fasta(genome).items()))
        return f"{genome} (record {name}, {len(sequence):,} bp)", name, sequence
    log.info("no real genome found: generating a %s bp synthetic one", options.synthetic_bp)
    sequence = synthetic_genome(options.synthetic_bp, options.seed)
    return f"synthetic genome ({len(sequence):,} bp, seed {options.seed})", "synth1", sequence


def run_demo(
    out: str | Path,
    genome: str | Path | None = None,
    options: DemoOptions | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the recipe into folder ``out``; return the summary (also ``out/summary.json``).

    ``out`` goes through :class:`~dnabird.outputs.OutputFolder`: claimed before any work
    (an unwritable or busy folder fails at once), a finished demo of the same options is
    returned as it is, an interrupted one resumes (each stage reuses what it finished) and
    ``overwrite`` starts again.
    """
    from dataclasses import asdict

    from dnabird.manifest import new_manifest
    from dnabird.outputs import OutputFolder

    options = options or DemoOptions()
    run = {"genome": str(genome) if genome else "built-in", "options": asdict(options)}
    with OutputFolder(out, "demo", run, overwrite=overwrite) as folder:
        if folder.complete:
            return folder.manifest["summary"]
        summary = _run_stages(Path(out), genome, options, resuming=folder.resuming)
        folder.finish(new_manifest("demo", asdict(options), summary=summary))
    return summary


def _run_stages(
    out: Path, genome: str | Path | None, options: DemoOptions, resuming: bool
) -> dict[str, Any]:
    """The demo's stages, in order, into ``out`` (claimed by :func:`run_demo`)."""
    from dnabird.data.tokens import tokenize_corpus
    from dnabird.genome import preprocess
    from dnabird.model import BigBirdConfig
    from dnabird.model.patterns import make_pattern
    from dnabird.plots import plot_block_pattern, plot_training_curve
    from dnabird.tasks.config import load_config
    from dnabird.tasks.evaluate_mlm import evaluate_mlm, ngram_baseline
    from dnabird.tasks.pretrain_config import PretrainConfig
    from dnabird.tasks.pretrain_run import run_pretrain
    from dnabird.tokenizer import train_tokenizer

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)
        log.info("demo: %s done (%.1f s)", name, timings[name])

    source, name, sequence = _genome(genome, options)
    if len(sequence) < 2 * options.held_out_bp:
        raise ConfigError(f"{source}: needs at least {2 * options.held_out_bp:,} bp")
    split = len(sequence) - options.held_out_bp
    train_fa, held_out = out / "train.fa", sequence[split:].upper()
    _write_fasta(train_fa, name, sequence[:split])
    stage("genome")

    preprocess(
        train_fa,
        out / "corpus",
        passes=options.passes,
        seed=options.seed,
        both_strands=True,
        chromosomes=(name,),  # whatever its name and length
    )
    stage("preprocess")
    train_tokenizer(
        out / "corpus",
        out / "tokenizer",
        vocab_size=options.vocab_size,
        sample_bp=options.tokenizer_sample_bp,
        seed=options.seed,
    )
    stage("train-tokenizer")
    tokenize_corpus(out / "corpus", out / "tokenizer", out / "tokens")
    stage("tokenize")

    model_overrides = {  # no dropout: a few hundred steps see well under one epoch
        "hidden_size": options.hidden_size,
        "intermediate_size": 4 * options.hidden_size,
        "max_position_embeddings": options.max_length,
        "block_size": 16,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    config = load_config(
        PretrainConfig,
        None,
        [
            f"out={out / 'pretrain'}",
            f"seed={options.seed}",
            f"data.tokens={out / 'tokens'}",
            f"data.max_length={options.max_length}",
            f"data.batch_size={options.batch_size}",
            "data.val_fraction=0.02",
            "data.val_batches=4",
            "model.preset=tiny",
            f"model.overrides={json.dumps(model_overrides)}",
            "optim.lr=2.0e-3",
            f"optim.warmup_steps={options.steps // 10}",
            f"trainer.max_steps={options.steps}",
            "trainer.accelerator=cpu",
            f"trainer.val_every_steps={max(options.steps // 4, 1)}",
            f"trainer.checkpoint_every_steps={options.steps}",
            f"trainer.log_every_steps={max(1, min(10, options.steps // 4))}",
        ],
    )
    # an interrupted demo continues an interrupted pretraining run
    model_dir = run_pretrain(config, resume=resuming and (out / "pretrain").is_dir())
    stage("pretrain")

    train_sequence = sequence[:split].upper()
    scored = evaluate_mlm(
        model_dir,
        [(f"{name}:{split}-{len(sequence)}", held_out)],
        max_length=options.max_length,
        seed=options.seed,
    )
    baselines = [
        ngram_baseline([train_sequence], [held_out], order) for order in options.ngram_orders
    ]
    best = min(baselines, key=lambda b: b["bpc"])
    stage("evaluate")

    model_config = BigBirdConfig.load(model_dir)
    plot_block_pattern(
        make_pattern(model_config, options.max_length // model_config.block_size, layer=0),
        out / "attention_pattern.png",
    )
    plot_training_curve(
        {f"BigBird 2 x {options.hidden_size}": out / "pretrain" / "logs" / "metrics.csv"},
        out / "training_curve.png",
        baselines={f"{best['order']}-mer Markov": best["bpc"]},
        title="Demo pretraining: bits per masked bp",
    )
    stage("plots")

    summary = {
        "genome": source,
        "held_out": f"{name}:{split}-{len(sequence)} (0-based, half-open)",
        "model": str(model_dir),
        "held_out_bpc": scored["bpc"],
        "held_out_bpc_se": scored["bpc_se"],
        "held_out_accuracy": scored["accuracy"],
        "ngram_bpc": {str(b["order"]): b["bpc"] for b in baselines},  # str keys, as in JSON
        "best_ngram_order": best["order"],
        "seconds": timings,
        "options": {k: v for k, v in vars(options).items()},
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
