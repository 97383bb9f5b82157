"""Prediction throughput and memory: dnabird vs Hugging Face BigBird on real DNA windows.

One process, the contenders side by side on the same token batches (eval mode,
``torch.inference_mode``, the same torch threads, batch size and ``--precision``):

- ``ours``: dnabird's :class:`BigBirdForMultiLabelClassification` (what ``dnabird predict``
  runs for a chromatin model: encoder + [CLS] head, called with ``cls_only=True`` so the last
  layer computes the [CLS] row alone), a freshly initialised (seeded) model of
  ``--preset`` with our own random blocks (``random_mode="fixed"``, the default of every
  model dnabird trains): per ordinary query block 2 global + 3 window + 3 random key blocks,
  the same amount of attention work as transformers' block-sparse attention.
- ``ours-hf-mode``: the same weights with ``random_mode="hf"``, which computes exactly what
  transformers computes in eval mode (block 0 in every random slot, full attention for short
  inputs), so its outputs are compared with the peer's (max abs difference printed).
- ``hf``: ``transformers.BigBirdModel`` (``attention_type="block_sparse"``) made from those
  weights by :func:`dnabird.model.hf.to_hf` (encoder only: the peer's head is left out,
  which can only favour it). transformers switches itself to full attention for inputs of at
  most ``(5 + 2r) * b`` tokens (704 at b = 64, r = 3); the table says where it did.

Precision (``--precision``): ``32-true`` runs all three in float32. ``bf16-mixed`` runs ours
as ``dnabird predict --precision bf16-mixed`` does (bfloat16 matrix products under
``torch.autocast``; our attention kernel multiplies in bfloat16 where the CPU has AVX-512 BF16,
else in float32: ``DNABIRD_CPU_KERNEL_BF16=0`` forces float32) and the peer with its weights
cast to bfloat16 (``model.to(torch.bfloat16)``): transformers' block-sparse attention raises
under CPU autocast (``scatter(): Expected self.dtype to be equal to src.dtype``), and bfloat16
weights are its one bfloat16 mode that runs.

Windows: ``--windows`` bp cut at seeded random places from the last 300 kbp of the soft-masked
hg38 chr2 excerpt (``../shared/data``; read through :class:`dnabird.genome.regions.Genome`
with its index cache in a temporary folder), tokenized by a SentencePiece tokenizer trained
with dnabird's API on the rest of the excerpt (``--vocab-size``, ``--model-type``; or
``--tokenizer DIR`` to reuse/save one), each window padded to one fixed token length per
window size (``[CLS] ids [SEP]`` rounded up to a block multiple, as prediction does:
:func:`dnabird.data.classification.default_window` and ``pad_to_window``).

Throughput: windows per second = batch size / median seconds of a batch, the contenders
alternating call by call after warm-up (the output comparison's call, plus ``--warmup``
more). The same timed calls also time the parts of every encoder layer (forward hooks:
q/k/v/output projections, the attention kernel itself, the feed-forward; medians). Peak
memory: each contender alone in a fresh subprocess (it builds that model, then the peak RSS,
``VmHWM``, is reset and one batch runs): the peak RSS while predicting and its rise over the
loaded model.

Streaming: the peak RSS (``wait4``, see :data:`PEAK_RSS_WRAPPER`) of the ``dnabird predict``
command on a FASTA of N and of 10 N records of 1 kbp (``--stream-records``), with a small
model folder written by :func:`dnabird.model.pretrained.write_model_folder`; the issue's
bound: 10x the records may raise the peak by at most 10%.

Usage::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/predict.py --out results.json
    .venv/bin/python benchmarks/predict.py --quick        # tiny model, seconds (the test)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

GENOME = "genome/hg38_chr2_1-2333275.fa.gz"
HELD_OUT_BP = 300_000
"""Windows come from the last this many bp; the tokenizer is trained on the rest."""
SENTENCE_BP = 1_000
"""Tokenizer training sentences: the training part cut into pieces of this many bp."""
RANDOM_DNA_BP = 600_000
"""Length of the ``--random-dna`` stand-in for the excerpt (the last 300 kbp give the
windows, the rest trains the tokenizer)."""
CONTENDERS = ("ours", "ours-hf-mode", "hf")
NUM_LABELS = 16
"""Outputs of the multi-label head (its cost is negligible next to the encoder's)."""


# ---------------------------------------------------------------------------------- data
def read_excerpt(data_dir: Path, cache_dir: Path) -> tuple[str, str]:
    """(name, uppercase sequence) of the hg38 chr2 excerpt, read through ``Genome`` with its
    index cache in ``cache_dir`` (the data folder is read-only)."""
    from dnabird.genome.regions import Genome

    with Genome(data_dir / GENOME, cache_dir=cache_dir) as genome:
        ((name, length),) = genome.lengths.items()
        return name, genome.fetch(name, 0, length)


def held_out_start(sequence: str) -> int:
    """Where the held-out end of ``sequence`` (windows) begins; the tokenizer trains before."""
    return max(0, len(sequence) - HELD_OUT_BP)


def training_sentences(sequence: str, end: int, sentence_bp: int = SENTENCE_BP) -> list[str]:
    """``sequence[:end]`` cut into pieces of ``sentence_bp``, those holding N dropped."""
    pieces = (sequence[i : i + sentence_bp] for i in range(0, end - sentence_bp + 1, sentence_bp))
    return [piece for piece in pieces if "N" not in piece]


def sample_windows(sequence: str, start: int, bp: int, count: int, seed: int) -> list[str]:
    """``count`` windows of ``bp`` from ``sequence[start:]`` at seeded random places, none
    holding N (ConfigError when the region is too short)."""
    from dnabird.errors import ConfigError

    last = len(sequence) - bp
    if not 0 <= start <= last:
        raise ConfigError(f"windows of {bp:,} bp do not fit into {len(sequence) - start:,} bp")
    rng = np.random.default_rng([seed, bp])
    windows: list[str] = []
    for _ in range(1000 * count):
        begin = int(rng.integers(start, last + 1))
        window = sequence[begin : begin + bp]
        if "N" not in window:
            windows.append(window)
            if len(windows) == count:
                return windows
    raise ConfigError(f"found fewer than {count} windows of {bp:,} bp without N")


def get_tokenizer(args: argparse.Namespace, sequence: str) -> tuple[Any, dict[str, Any]]:
    """The tokenizer (loaded from ``--tokenizer`` when it holds one, else trained on the
    excerpt without its held-out end and saved there if given) and a description."""
    from dnabird.tokenizer import DNATokenizer
    from dnabird.tokenizer.vocab import MODEL_FILE

    folder = Path(args.tokenizer) if args.tokenizer else None
    if folder is not None and (folder / MODEL_FILE).is_file():
        tokenizer = DNATokenizer.from_pretrained(folder)
        return tokenizer, {"loaded_from": str(folder), "vocab_size": tokenizer.vocab_size}
    sentences = training_sentences(sequence, held_out_start(sequence))[: args.tokenizer_sentences]
    started = time.perf_counter()
    tokenizer = DNATokenizer.train(sentences, args.vocab_size, args.model_type, seed=args.seed)
    info = {
        "trained_on_bp": sum(map(len, sentences)),
        "vocab_size": args.vocab_size,
        "model_type": args.model_type,
        "train_s": round(time.perf_counter() - started, 1),
    }
    if folder is not None:
        tokenizer.save_pretrained(folder)
    return tokenizer, info


def token_batch(tokenizer, windows: list[str], block_size: int, max_positions: int):
    """``(input_ids, attention_mask)`` int64 ``[B, L]`` and the token count of each window
    (no special tokens): ``[CLS] ids [SEP]`` padded to one window of ``L`` tokens, the
    longest rounded up to a multiple of ``block_size`` (as prediction pads)."""
    from dnabird.data.classification import batch_tensors, default_window, pad_to_window

    ids = tokenizer.encode_batch(windows)
    counts = [len(row) for row in ids]
    window = default_window(max(counts), block_size, max_positions)
    batch = batch_tensors(pad_to_window(ids, window))
    return batch["input_ids"], batch["attention_mask"], counts


# -------------------------------------------------------------------------------- models
def model_config(preset: str, vocab_size: int, max_positions: int, seed: int):
    """The preset's shape, our own random blocks (``random_mode="fixed"``)."""
    from dnabird.model import BigBirdConfig

    return BigBirdConfig.preset(
        preset, vocab_size=vocab_size, max_position_embeddings=max_positions, random_seed=seed
    )


def build_model(config, name: str, seed: int, precision: str = "32-true"):
    """One contender's model in eval mode at ``precision``, weights from
    ``torch.manual_seed(seed)`` (the same for every contender): ours (``config``), ours-hf-mode
    (``random_mode="hf"``), both prepared as ``dnabird predict`` prepares a model
    (:func:`~dnabird.model.pretrained.for_inference`), or the HF encoder converted from
    ours-hf-mode with ``to_hf`` (exact; see :func:`peer`)."""
    from dnabird.model import BigBirdForMultiLabelClassification
    from dnabird.model.pretrained import for_inference

    torch.manual_seed(seed)
    if name == "ours":
        model = BigBirdForMultiLabelClassification(config, NUM_LABELS)
        return for_inference(model, torch.device("cpu"), precision)
    exact = BigBirdForMultiLabelClassification(
        dataclasses.replace(config, random_mode="hf"), NUM_LABELS
    ).eval()
    if name == "ours-hf-mode":
        return for_inference(exact, torch.device("cpu"), precision)
    return peer(exact, precision)


def peer(exact: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The HF encoder converted from the float32 ours-hf-mode ``exact``, in eval mode; for
    ``bf16-mixed`` its weights cast to bfloat16 (see the module docstring)."""
    from dnabird.model.hf import to_hf

    model = to_hf(exact.encoder).eval()
    return model.to(torch.bfloat16) if precision == "bf16-mixed" else model


def build_models(config, seed: int, precision: str = "32-true") -> dict[str, torch.nn.Module]:
    """All three contenders at ``precision``, sharing one set of weights (ours' copied into
    the others)."""
    from dnabird.model.pretrained import for_inference

    ours = build_model(config, "ours", seed)
    exact = build_model(config, "ours-hf-mode", seed)
    exact.load_state_dict(ours.state_dict())
    hf = peer(exact, precision)  # from the float32 weights
    cpu = torch.device("cpu")
    return {
        "ours": for_inference(ours, cpu, precision),
        "ours-hf-mode": for_inference(exact, cpu, precision),
        "hf": hf,
    }


def is_ours(model: torch.nn.Module) -> bool:
    """A dnabird model (else the HF peer)."""
    from dnabird.model.heads import BigBirdPreTrainedModel

    return isinstance(model, BigBirdPreTrainedModel)


def forward(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, precision: str = "32-true"
) -> torch.Tensor:
    """One batch through a contender: our head model's logits ``[B, K]`` (with
    ``cls_only=True`` and under ``precision``'s autocast, as ``dnabird predict`` calls it: the
    last layer computes [CLS] alone), or HF's last hidden states ``[B, L, C]``."""
    from dnabird.model.pretrained import inference_autocast

    if is_ours(model):
        with inference_autocast(ids.device, precision):
            return model(ids, mask, cls_only=True).logits
    return model(input_ids=ids, attention_mask=mask).last_hidden_state


@torch.inference_mode()
def precision_error(reference, model, ids: torch.Tensor, mask: torch.Tensor, precision: str):
    """How far ``model`` at ``precision`` is from the float32 ``reference`` (the same weights)
    on one batch: max abs difference of the logits and of the probabilities (sigmoid)."""
    exact = forward(reference, ids, mask)
    got = forward(model, ids, mask, precision).float()
    return {
        "logits": float((got - exact).abs().max()),
        "probabilities": float((torch.sigmoid(got) - torch.sigmoid(exact)).abs().max()),
    }


def hf_attention_used(model: torch.nn.Module) -> str:
    """The attention the HF model ran last (it switches itself to full for short inputs),
    then switched back to block_sparse for the next window size."""
    used = model.attention_type
    model.set_attention_type("block_sparse")
    return "block_sparse" if used == "block_sparse" else "full"


@torch.inference_mode()
def differences(
    models, ids: torch.Tensor, mask: torch.Tensor, precision: str = "32-true"
) -> dict[str, float]:
    """Max abs difference of the last hidden states at real (unpadded) positions between
    the HF peer and each of ours (in float32, ours-hf-mode should agree to float rounding;
    ours differs wherever its own random blocks differ from HF's block 0)."""
    from dnabird.model.pretrained import inference_autocast

    real = mask.bool()
    theirs = models["hf"](input_ids=ids, attention_mask=mask).last_hidden_state.float()
    out = {}
    for name in ("ours-hf-mode", "ours"):
        with inference_autocast(ids.device, precision):
            mine = models[name].encoder(ids, mask).float()
        out[name] = float((mine - theirs).abs()[real].max())
    return out


def layer_parts(model: torch.nn.Module) -> dict[str, list[torch.nn.Module]]:
    """Modules whose time makes each part of the encoder layers: ``layers`` (whole layers),
    ``attention`` (the attention module, projections included), ``projections`` (q, k, v
    and the output projection) and ``feed_forward`` (both linear layers and the
    activation)."""
    parts: dict[str, list[torch.nn.Module]] = {
        "layers": [],
        "attention": [],
        "projections": [],
        "feed_forward": [],
    }
    if is_ours(model):
        for layer in model.encoder.layers:
            att = layer.attention
            parts["layers"].append(layer)
            parts["attention"].append(att)
            parts["projections"] += [att.query, att.key, att.value, att.output]
            parts["feed_forward"] += [layer.intermediate, layer.activation, layer.output]
    else:  # HF BigBirdModel
        for layer in model.encoder.layer:
            att = layer.attention
            parts["layers"].append(layer)
            parts["attention"] += [att.self, att.output.dense]
            parts["projections"] += [att.self.query, att.self.key, att.self.value]
            parts["projections"].append(att.output.dense)
            parts["feed_forward"] += [layer.intermediate, layer.output.dense]
    return parts


class PartClock:
    """Forward hooks adding up the seconds spent in each part of :func:`layer_parts` of one
    model (the CPU runs synchronously; the hooks cost microseconds against calls of
    seconds). Register it after the model's warm-up: HF swaps its attention modules when it
    switches to full attention."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.spent: dict[str, float] = {}
        self.handles = []
        for part, modules in layer_parts(model).items():
            self.spent[part] = 0.0
            for module in modules:
                starts: list[float] = []

                def pre(_m, _i, starts=starts):
                    starts.append(time.perf_counter())

                def post(_m, _i, _o, starts=starts, part=part):
                    self.spent[part] += time.perf_counter() - starts.pop()

                self.handles.append(module.register_forward_pre_hook(pre))
                self.handles.append(module.register_forward_hook(post))

    def call(self, fn) -> dict[str, float]:
        """Run ``fn()``; its parts: those of :func:`layer_parts`, ``total`` (the call),
        ``kernel`` = attention - projections and ``other`` = layers - attention -
        feed-forward (residual adds and LayerNorms)."""
        self.spent = dict.fromkeys(self.spent, 0.0)
        started = time.perf_counter()
        fn()
        parts = {**self.spent, "total": time.perf_counter() - started}
        parts["kernel"] = parts["attention"] - parts["projections"]
        parts["other"] = parts["layers"] - parts["attention"] - parts["feed_forward"]
        return parts

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.inference_mode()
def time_contenders(
    models, ids, mask, repeats: int, warmup: int, precision: str = "32-true"
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Seconds per batch of each contender (``warmup`` untimed calls each, then ``repeats``
    rounds with the contenders alternating) and the median seconds of each part of its
    layers over those same calls (:class:`PartClock`; CPU only: on a GPU the calls are
    synchronised and only their totals timed)."""
    for _ in range(warmup):
        for model in models.values():
            forward(model, ids, mask, precision)
    if ids.is_cuda:
        return _time_cuda(models, ids, mask, repeats, precision), {}
    clocks = {name: PartClock(model) for name, model in models.items()}
    calls: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    try:
        for _ in range(repeats):
            for name, model in models.items():
                calls[name].append(
                    clocks[name].call(lambda model=model: forward(model, ids, mask, precision))
                )
    finally:
        for clock in clocks.values():
            clock.close()
    times = {name: [c["total"] for c in runs] for name, runs in calls.items()}
    parts = {
        name: {part: statistics.median(c[part] for c in runs) for part in runs[0]}
        for name, runs in calls.items()
    }
    return times, parts


def _time_cuda(models, ids, mask, repeats: int, precision: str) -> dict[str, list[float]]:
    """Seconds per synchronised call of each contender, alternating."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            torch.cuda.synchronize()
            started = time.perf_counter()
            forward(model, ids, mask, precision)
            torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return times


# -------------------------------------------------------------------------------- memory
def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(spec: dict[str, Any]) -> dict[str, float]:
    """In a fresh process: build one contender, reset the peak RSS, run one batch; return
    ``loaded_mib`` (RSS with the model ready), ``peak_mib`` (peak RSS while predicting) and
    ``rise_mib`` (their difference)."""
    torch.set_num_threads(spec["threads"])
    from dnabird.model import BigBirdConfig

    config = BigBirdConfig.from_dict(spec["config"])
    model = build_model(config, spec["name"], spec["seed"], spec["precision"])
    batch = torch.load(spec["batch"], weights_only=True)
    gc.collect()
    with contextlib.suppress(OSError):  # hand freed heap pages back (building HF's copy)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    loaded = _status_mib("VmRSS")
    with torch.inference_mode():
        forward(model, batch["input_ids"], batch["attention_mask"], spec["precision"])
    peak = _status_mib("VmHWM")
    return {"loaded_mib": loaded, "peak_mib": peak, "rise_mib": peak - loaded}


def measure_memory(
    config, name: str, ids, mask, seed: int, threads: int, work: Path, precision: str = "32-true"
) -> dict:
    """:func:`memory_child` of one contender in a fresh subprocess."""
    batch = work / "batch.pt"
    torch.save({"input_ids": ids, "attention_mask": mask}, batch)
    spec = {
        "config": config.to_dict(),
        "name": name,
        "seed": seed,
        "threads": threads,
        "batch": str(batch),
        "precision": precision,
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"memory child of {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- streaming
def write_classifier(folder: Path, tokenizer, preset: str, window: int, window_bp: int, seed: int):
    """A model folder ``dnabird predict`` accepts: a seeded multi-label model of ``preset``
    (block-sparse, ``window`` tokens), its tokenizer and a manifest."""
    from dnabird.model import BigBirdConfig, BigBirdForMultiLabelClassification
    from dnabird.model.pretrained import write_model_folder

    config = BigBirdConfig.preset(
        preset, vocab_size=tokenizer.vocab_size, max_position_embeddings=window
    )
    torch.manual_seed(seed)
    model = BigBirdForMultiLabelClassification(config, NUM_LABELS)
    manifest = {
        "task": "multilabel",
        "classes": [f"feature{i}" for i in range(NUM_LABELS)],
        "max_length": window,
        "truncate": False,
        "window_bp": window_bp,
    }
    write_model_folder(folder, model, manifest, tokenizer=tokenizer)


def predict_command() -> list[str]:
    """The ``dnabird`` entry point of this interpreter (or the same ``main`` through
    ``python -c`` where no entry point is installed)."""
    entry = Path(sys.executable).with_name("dnabird")
    if entry.is_file():
        return [str(entry)]
    return [sys.executable, "-c", "import sys; from dnabird.cli import main; sys.exit(main())"]


PEAK_RSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command and writes its peak RSS (KiB, ``wait4``) into a file. Needed because a
process exec'd from this one inherits this process's RSS high-water mark into its
``ru_maxrss`` (Linux keeps the old address space's peak across ``exec``); forked from this
small wrapper, the command's ``ru_maxrss`` is its own."""


def run_peak_rss(cmd: list[str], env: dict[str, str], work: Path) -> tuple[float, float]:
    """Run ``cmd`` (its first item an executable path); (its peak RSS in MiB, wall
    seconds), through :data:`PEAK_RSS_WRAPPER`."""
    peak_file = work / "peak_rss_kib"
    wrapped = [sys.executable, "-c", PEAK_RSS_WRAPPER, str(peak_file), *cmd]
    started = time.perf_counter()
    proc = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode:
        output = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")
    return int(peak_file.read_text()) / 1024, seconds


def streaming_memory(args, tokenizer, sequence: str, work: Path, threads: int) -> dict[str, Any]:
    """Peak RSS of ``dnabird predict`` on N and 10 N records (see the module docstring)."""
    counts = args.stream_records
    bp = args.stream_bp
    records = [
        (f"window{i}", seq)
        for i, seq in enumerate(
            sample_windows(sequence, held_out_start(sequence), bp, max(counts), args.seed + 1)
        )
    ]
    from dnabird.data.classification import default_window
    from dnabird.genome.fasta import write_fasta
    from dnabird.model import BigBirdConfig

    block = BigBirdConfig.preset(args.stream_preset).block_size
    longest = max(len(ids) for ids in tokenizer.encode_batch([seq for _, seq in records]))
    window = default_window(longest, block, 1 << 20)
    folder = work / "stream_model"
    write_classifier(folder, tokenizer, args.stream_preset, window, bp, args.seed)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    rows = []
    for count in counts:
        fasta = work / f"records_{count}.fa"
        write_fasta(fasta, records[:count])
        out = work / f"predictions_{count}.tsv"
        cmd = [
            *predict_command(),
            "--no-progress",
            "predict",
            "--model",
            str(folder),
            "--fasta",
            str(fasta),
            "-o",
            str(out),
            "--batch-size",
            str(args.stream_batch_size),
            "--device",
            "cpu",
            "--precision",
            args.precision,
        ]
        peak, seconds = run_peak_rss(cmd, env, work)
        with open(out, encoding="utf-8") as handle:
            lines = sum(1 for _ in handle)
        rows.append({"records": count, "peak_rss_mib": peak, "seconds": seconds, "lines": lines})
    return {
        "preset": args.stream_preset,
        "record_bp": bp,
        "window_tokens": window,
        "batch_size": args.stream_batch_size,
        "command": " ".join(["dnabird", *cmd[len(predict_command()) :]]).replace(
            f"{work}{os.sep}", ""
        ),
        "runs": rows,
        "peak_ratio": rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"],
    }


# -------------------------------------------------------------------------------- report
def report(results: dict[str, Any], out=sys.stdout) -> None:
    """Print the tables (markdown) of ``results``."""
    meta = results["meta"]
    print(f"\ncommand: {meta['command']}", file=out)
    print(
        f"machine: {meta['platform']}, {meta['nproc']} CPUs, load average "
        f"{meta['load_average']} at the start, {meta.get('load_average_end')} at the end, "
        f"torch {meta['torch']} ({meta['torch_threads']} threads), transformers "
        f"{meta['transformers']}; {meta['preset']} preset, batch {meta['batch_size']}, "
        f"{meta['precision']}, medians of {meta['repeats']}",
        file=out,
    )
    tok = results["tokenizer"]
    print(f"tokenizer: {tok}; held-out windows {tok.get('bp_per_token', 0):.2f} bp/token", file=out)
    rows = results["windows"]
    if rows:
        _throughput_table(rows, out)
    stream = results.get("streaming")
    if stream:
        _streaming_table(stream, out)


def _throughput_table(rows: list[dict[str, Any]], out) -> None:
    print(
        "\n| window | tokens (min-max) -> padded | HF attention | ours win/s | "
        "ours-hf-mode win/s | HF win/s | ours/HF | ours-hf-mode/HF | max abs diff hf-mode / ours |",
        file=out,
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|", file=out)
    for r in rows:
        wps = r["windows_per_s"]
        print(
            f"| {r['bp'] / 1000:g} kbp | {min(r['tokens'])}-{max(r['tokens'])} -> "
            f"{r['padded_tokens']} | {r['hf_attention']} | {wps['ours']:.3f} | "
            f"{wps['ours-hf-mode']:.3f} | {wps['hf']:.3f} | {r['ratio']['ours']:.2f}x | "
            f"{r['ratio']['ours-hf-mode']:.2f}x | {r['max_abs_diff']['ours-hf-mode']:.1e} / "
            f"{r['max_abs_diff']['ours']:.1e} |",
            file=out,
        )
    if any("vs_float32" in r for r in rows):
        print(
            "\nours at this precision vs ours in float32 (same weights), max abs difference:",
            file=out,
        )
        print("| window | logits | probabilities |", file=out)
        print("|---|---:|---:|", file=out)
        for r in rows:
            err = r["vs_float32"]
            print(
                f"| {r['bp'] / 1000:g} kbp | {err['logits']:.2e} | {err['probabilities']:.2e} |",
                file=out,
            )
    if any("memory" in r for r in rows):
        print(
            "\npeak RSS while predicting one batch, MiB (rise over the loaded model), each "
            "contender alone in a fresh process:",
            file=out,
        )
        print("| window | " + " | ".join(CONTENDERS) + " |", file=out)
        print("|---|" + "---:|" * len(CONTENDERS), file=out)
        for r in rows:
            mem = r["memory"]
            cells = [f"{mem[n]['peak_mib']:,.0f} (+{mem[n]['rise_mib']:,.0f})" for n in CONTENDERS]
            print(f"| {r['bp'] / 1000:g} kbp | " + " | ".join(cells) + " |", file=out)
    if any(r.get("profile") for r in rows):
        print(
            "\nwhere the time goes, ms per batch (forward hooks on the timed calls, medians):",
            file=out,
        )
        print(
            "| window | contender | total | projections | attention kernel | feed-forward | "
            "other in layers | outside layers |",
            file=out,
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|", file=out)
        for r in rows:
            for name, p in r["profile"].items():
                outside = p["total"] - p["layers"]
                cells = [p["total"], p["projections"], p["kernel"], p["feed_forward"]]
                cells += [p["other"], outside]
                print(
                    f"| {r['bp'] / 1000:g} kbp | {name} | "
                    + " | ".join(f"{v * 1e3:,.0f}" for v in cells)
                    + " |",
                    file=out,
                )


def _streaming_table(stream: dict[str, Any], out) -> None:
    print(
        f"\nstreaming: `{stream['command']}` ({stream['preset']} model, records of "
        f"{stream['record_bp']} bp, window {stream['window_tokens']} tokens)",
        file=out,
    )
    print("| records | peak RSS MiB | seconds |", file=out)
    print("|---:|---:|---:|", file=out)
    for run in stream["runs"]:
        print(
            f"| {run['records']:,} | {run['peak_rss_mib']:,.0f} | {run['seconds']:.1f} |",
            file=out,
        )
    print(
        f"peak ratio {stream['runs'][-1]['records'] // stream['runs'][0]['records']}x "
        f"records: {stream['peak_ratio']:.3f}",
        file=out,
    )


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--windows", default="1000,8000,17000", help="window sizes in bp ('' for none)"
    )
    parser.add_argument("--batch-size", type=int, default=2, help="windows per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per contender")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="untimed batches per contender besides the output comparison's, which warms up",
    )
    parser.add_argument("--preset", default="base")
    from dnabird.model.config import INFERENCE_PRECISIONS

    parser.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="32-true",
        help="float32 throughout, or bfloat16 (see the module docstring)",
    )
    parser.add_argument("--max-positions", type=int, default=4096)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"])
    parser.add_argument(
        "--tokenizer-sentences",
        type=int,
        default=10**9,
        help="train the tokenizer on at most this many 1 kbp sentences",
    )
    parser.add_argument("--tokenizer", help="tokenizer folder: loaded if it holds one, else saved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--random-dna",
        action="store_true",
        help=f"i.i.d. random bases ({RANDOM_DNA_BP:,} bp, seeded) instead of the chr2 excerpt",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu or cuda; on cuda every call is synchronised, the part profile and the "
        "RSS measurements are skipped (use --no-memory --no-stream)",
    )
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument(
        "--stream-records", default="200,2000", help="N,10N records for the streaming check"
    )
    parser.add_argument("--stream-bp", type=int, default=1000)
    parser.add_argument("--stream-preset", default="tiny")
    parser.add_argument("--stream-batch-size", type=int, default=16)
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--data", help="shared data folder (default: $DNABIRD_SHARED_DATA)")
    parser.add_argument("--quick", action="store_true", help="tiny model and sizes (the test)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.max_positions, args.windows = "tiny", 1024, "300,1500"
        args.batch_size, args.repeats = 2, 1
        args.vocab_size, args.model_type, args.tokenizer_sentences = 256, "bpe", 200
        args.stream_records, args.stream_bp, args.stream_batch_size = "4,40", 300, 8
    args.windows = [int(bp) for bp in str(args.windows).split(",") if bp]
    args.stream_records = [int(n) for n in str(args.stream_records).split(",")]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (module docstring); print the tables; return the results."""
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return {}
    import transformers

    from dnabird.model.attention import cpu_kernel
    from dnabird.testing import shared_data_dir

    transformers.logging.set_verbosity_error()  # its "switching to full attention" warning
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    data = Path(args.data) if args.data else shared_data_dir()
    if (data is None or not (data / GENOME).is_file()) and not args.random_dna:
        raise SystemExit(
            "benchmarks/predict.py needs ../shared/data (or $DNABIRD_SHARED_DATA), or --random-dna"
        )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(
            ["benchmarks/predict.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_kernel": cpu_kernel.status(),
        "preset": args.preset,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "precision": args.precision,
        "device": args.device,
        "data": "random DNA" if args.random_dna else "hg38 chr2 excerpt",
    }
    print(json.dumps(meta), flush=True)
    results: dict[str, Any] = {"meta": meta, "windows": []}
    with tempfile.TemporaryDirectory(prefix="dnabird-predict-bench-") as tmp:
        work = Path(tmp)
        if args.random_dna:  # e.g. the GPU machine: no shared data, no pyfaidx
            rng = np.random.default_rng(args.seed)
            sequence = "".join(rng.choice(list("ACGT"), size=RANDOM_DNA_BP))
        else:
            _, sequence = read_excerpt(data, work / "cache")
        tokenizer, tok_info = get_tokenizer(args, sequence)
        start = held_out_start(sequence)
        held = sequence[start:]
        tok_info["bp_per_token"] = len(held) / len(tokenizer.encode(held))
        results["tokenizer"] = tok_info
        print(f"tokenizer {tok_info}", flush=True)

        config = model_config(args.preset, tokenizer.vocab_size, args.max_positions, args.seed)
        models = build_models(config, args.seed, args.precision) if args.windows else {}
        models = {name: model.to(args.device) for name, model in models.items()}
        reference = None  # ours in float32, to measure what a lower precision changes
        if args.windows and args.precision != "32-true":
            reference = build_model(config, "ours", args.seed).to(args.device)
        for bp in args.windows:
            windows = sample_windows(sequence, start, bp, args.batch_size, args.seed)
            ids, mask, counts = token_batch(
                tokenizer, windows, config.block_size, args.max_positions
            )
            ids, mask = ids.to(args.device), mask.to(args.device)
            diffs = differences(models, ids, mask, args.precision)
            error = None
            if reference is not None:
                error = precision_error(reference, models["ours"], ids, mask, args.precision)
            times, parts = time_contenders(
                models, ids, mask, args.repeats, args.warmup, args.precision
            )
            hf_attention = hf_attention_used(models["hf"])
            median = {name: statistics.median(t) for name, t in times.items()}
            row = {
                "bp": bp,
                "tokens": counts,
                "bp_per_token": bp * len(counts) / sum(counts),
                "padded_tokens": int(ids.shape[1]),
                "hf_attention": hf_attention,
                "max_abs_diff": diffs,
                "times_s": times,
                "median_s": median,
                "windows_per_s": {name: args.batch_size / s for name, s in median.items()},
                "ratio": {name: median["hf"] / median[name] for name in median},
                "profile": parts,
            }
            if error:
                row["vs_float32"] = error
            print(
                f"{bp} bp ({min(counts)}-{max(counts)} tokens -> {ids.shape[1]}; HF "
                f"{hf_attention}): "
                + ", ".join(f"{n} {s:.3f} s" for n, s in median.items())
                + f"; max abs diff {diffs}"
                + (f"; ours vs float32 {error}" if error else ""),
                flush=True,
            )
            results["windows"].append(row)
            if args.memory:
                row["memory"] = {
                    name: measure_memory(
                        config, name, ids, mask, args.seed, threads, work, args.precision
                    )
                    for name in CONTENDERS
                }
                print(f"{bp} bp memory {row['memory']}", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=1))
        del models, reference
        gc.collect()
        if args.stream:
            results["streaming"] = streaming_memory(args, tokenizer, sequence, work, threads)
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
