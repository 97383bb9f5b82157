"""Long-range benchmark: does block-sparse attention carry information over thousands of bp?

Generated data (any size), one model, two windows. Every sequence is ``--seq-bp`` bp of
background (random windows of the hg38 chr2 excerpt, or i.i.d. random bases) with motifs
planted in it (0-based, half-open bp coordinates throughout; ``c = seq_bp // 2``)::

    0            c-FAR_BP        c-LOCAL_BP  c  c+LOCAL_BP        c+FAR_BP            seq_bp
    |  flank      |                    | local |                    |  flank           |
      pair motif A or B (one each side)  local motif                  the other one

- **pair labels** ``pair_k``: 1 when both motifs ``pair_k.a`` and ``pair_k.b`` are present.
  Each is present with probability sqrt(1/2) (so half the labels are 1) and, when present,
  planted in one flank (``a``'s side drawn at random, ``b`` on the other side), so the two
  lie at least ``2 * FAR_BP`` bp apart and at least ``FAR_BP`` bp from the centre.
- **local labels** ``local_k``: 1 when motif ``local_k`` is present (probability 1/2),
  planted within ``LOCAL_BP`` bp of the centre.

Motifs are ``MOTIF_BP`` random bases drawn from ``--seed``; each present motif is planted
``COPIES`` times (non-overlapping) in its zone. Background windows holding any motif are
redrawn, so every label is exact. Training windows come from chr2 [0, 2,033,275), test
windows from the held-out last 300 kbp (the background of the two never overlaps).

The tokenizer (SentencePiece BPE, ``VOCAB_SIZE`` ids) is trained on training background only.
Each sequence is tokenized whole; a *window* of ``W`` tokens is ``[CLS]``, the ``W - 2`` tokens
around the token holding bp ``c`` (shifted inwards at the ends), ``[SEP]``, padded to ``W``
(every batch has the same padded length, so the same block-sparse pattern):

- ``W = 512`` covers about 2 kbp around the centre: never a pair motif (the script counts
  them and prints the bp the short windows span), so its pair AUROC is 0.5 by construction;
- ``W = 4096`` covers the whole sequence when it is at most 4094 tokens (printed).

The same model (``tiny`` preset, block-sparse, ``MODEL_OVERRIDES``, ``--model`` overrides),
seed, batches, optimizer and steps are trained once per window; only the window differs.
``--trim-padding`` pads each window only to its longest row (rounded up to a block) rather
than to ``W``: the same tokens for less work when the sequences are shorter than the window.
``--device cuda`` trains on a GPU; ``--max-train-s`` fits the first window's steps into a
time budget (the later windows train as many steps). Test AUROC per label type
(all labels of the type pooled) and per label with 95% percentile-bootstrap intervals; the
target: pair AUROC >= 0.9 with 4096 tokens, near 0.5 with 512; local labels high with both.

``--out DIR`` receives ``train.parquet`` and ``test.parquet`` (the examples,
:mod:`dnabird.data.multilabel` layout, with each motif's planted starts), ``tokenizer/``,
``results.json`` and ``manifest.json`` (last). Usage::

    PYTHONPATH=. python benchmarks/long_range.py --out /tmp/long_range --threads 2
    PYTHONPATH=. python benchmarks/long_range.py --out /tmp/lr --train 200 --test 100 --steps 20
    PYTHONPATH=. python benchmarks/long_range.py --out /tmp/lr8k --seq-bp 8000 --copies 6 \
        --train 4000 --test 500 --steps 4000 --max-train-s 1800 --windows 4096 512 \
        --trim-padding --background random \
        --model '{"hidden_size": 128, "num_attention_heads": 8, "intermediate_size": 256}'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dnabird.data.multilabel import Features, MultiLabelExamples, concatenate
from dnabird.errors import ConfigError, InputError

GENOME = "genome/hg38_chr2_1-2333275.fa.gz"
HELD_OUT_BP = 300_000
"""The last 300 kbp of the chr2 excerpt give the test backgrounds; the rest, training's."""
MAX_N = 10
"""Background windows with more N than this are redrawn."""
WINDOWS = (512, 4096)
VOCAB_SIZE = 512
TOKENIZER_SAMPLE = (1000, 2000)
"""Tokenizer training sentences: this many training-background windows of this many bp."""
MODEL_OVERRIDES = {
    "max_position_embeddings": 4096,
    "attention_type": "block_sparse",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
"""Over the ``tiny`` preset (2 layers, width 64, 4 heads, block 16); no dropout."""
BATCH_SIZE = 8
LEARNING_RATE = 1e-3
WARMUP_FRACTION = 0.1
CHUNK = 250
"""Sequences generated per job (:func:`generate_in_chunks`)."""
CALIBRATION_STEPS = (10, 30)
"""With ``--max-train-s``: steps after the first of these (warm-up: compilation, caches) up
to the second are timed, and the plan is fitted to the budget after the second."""
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Design:
    """Where motifs go and how often (bp, 0-based, half-open; ``c = seq_bp // 2``).

    Three zones of ``zone_bp`` bp (:meth:`zones`): two pair zones ``edge_bp`` bp in from the
    ends, ``[edge_bp, edge_bp + zone_bp)`` and ``[seq_bp - edge_bp - zone_bp, seq_bp -
    edge_bp)``, and the local zone ``[c - zone_bp // 2, c + zone_bp // 2)``. Each motif
    present is planted ``copies`` times in its zone, in distinct slots of ``2 * motif_bp`` bp.
    """

    seq_bp: int = 14_000
    motif_bp: int = 16
    pair_labels: int = 2
    local_labels: int = 2
    zone_bp: int = 800
    edge_bp: int = 500
    copies: int = 3

    def __post_init__(self) -> None:
        if self.motif_bp < 1 or self.copies < 1 or min(self.pair_labels, self.local_labels) < 0:
            raise ConfigError(f"{self}: motif_bp and copies must be >= 1, label counts >= 0")
        room = self.zone_bp // (2 * self.motif_bp)
        if room < self.copies * max(self.pair_labels, self.local_labels):
            raise ConfigError(
                f"a {self.zone_bp} bp zone has {room} slots of {2 * self.motif_bp} bp, fewer than "
                f"{self.copies * max(self.pair_labels, self.local_labels)} motif copies; raise "
                "--zone-bp or lower --copies"
            )
        (_, left_end), _, (local_start, _) = self.zones()
        if left_end > local_start:
            raise ConfigError(
                f"seq_bp={self.seq_bp}: the pair zones overlap the local zone; raise --seq-bp "
                f"to at least {2 * self.edge_bp + 3 * self.zone_bp}"
            )

    def zones(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(left pair zone, right pair zone, local zone)``, each ``(start, end)`` bp."""
        c, half = self.seq_bp // 2, self.zone_bp // 2
        right_end = self.seq_bp - self.edge_bp
        return (
            (self.edge_bp, self.edge_bp + self.zone_bp),
            (right_end - self.zone_bp, right_end),
            (c - half, c - half + self.zone_bp),
        )

    @property
    def centre(self) -> int:
        """The centre bp ``seq_bp // 2`` (0-based)."""
        return self.seq_bp // 2

    def features(self) -> Features:
        """``pair_0 ..`` then ``local_0 ..``, with categories ``pair`` and ``local``."""
        names = [f"pair_{k}" for k in range(self.pair_labels)]
        names += [f"local_{k}" for k in range(self.local_labels)]
        return Features.from_names(names, [name.split("_")[0] for name in names])

    def motif_names(self) -> list[str]:
        """``pair_k.a``, ``pair_k.b`` per pair label, then ``local_k``."""
        pairs = [f"pair_{k}.{side}" for k in range(self.pair_labels) for side in "ab"]
        return pairs + [f"local_{k}" for k in range(self.local_labels)]


def make_motifs(design: Design, seed: int) -> dict[str, str]:
    """``{motif name: sequence}``: distinct ``motif_bp``-bp ACGT strings drawn from ``seed``,
    none the reverse complement of another."""
    rng = np.random.default_rng([seed, 0])
    motifs: dict[str, str] = {}
    for name in design.motif_names():
        while True:
            motif = "".join(rng.choice(list("ACGT"), size=design.motif_bp))
            taken = set(motifs.values()) | {reverse_complement(m) for m in motifs.values()}
            if motif not in taken:
                motifs[name] = motif
                break
    return motifs


def reverse_complement(seq: str) -> str:
    """The reverse complement of an ACGT string."""
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


Background = Callable[[np.random.Generator, int], tuple[str, dict]]
"""``(rng, length) -> (sequence, columns)``: ``length`` bp of uppercase ACGT(N) background
and the per-row columns that say where it came from."""


def random_background(rng: np.random.Generator, length: int) -> tuple[str, dict]:
    """``length`` i.i.d. uniform random bases (no columns)."""
    return "".join(np.array(list("ACGT"))[rng.integers(0, 4, size=length)]), {}


class GenomeBackground:
    """Random windows of ``chrom[start:end)`` of a FASTA (0-based, half-open), either strand,
    redrawn while they hold more than :data:`MAX_N` N; columns ``chrom``, ``start``, ``end``,
    ``strand`` (forward-strand coordinates)."""

    def __init__(self, genome, chrom: str, start: int, end: int) -> None:
        self.genome, self.chrom, self.start, self.end = genome, chrom, start, end

    def __call__(self, rng: np.random.Generator, length: int) -> tuple[str, dict]:
        if self.end - self.start < length:
            raise ConfigError(
                f"{self.chrom}:{self.start}-{self.end} is shorter than one {length} bp window"
            )
        for _ in range(1000):
            start = int(rng.integers(self.start, self.end - length + 1))
            strand = "+-"[int(rng.integers(0, 2))]
            seq = self.genome.fetch(self.chrom, start, start + length, strand)
            if seq.count("N") <= MAX_N:
                columns = {"chrom": self.chrom, "start": start, "end": start + length}
                return seq, {**columns, "strand": strand}
        raise InputError(
            f"{self.genome.path}: no {length} bp window with at most {MAX_N} N found in "
            f"{self.chrom}:{self.start}-{self.end} after 1000 draws"
        )


def occurrences(seq: str, motif: str) -> list[int]:
    """Every start of ``motif`` in ``seq`` (0-based, overlapping occurrences included)."""
    found, start = [], seq.find(motif)
    while start >= 0:
        found.append(start)
        start = seq.find(motif, start + 1)
    return found


def plant_motifs(
    seq: str, design: Design, motifs: dict[str, str], rng: np.random.Generator
) -> tuple[str, np.ndarray, dict[str, list[int]]] | None:
    """Draw which motifs are present, plant them into ``seq`` and return (sequence, labels
    ``[F]`` uint8, ``{motif: sorted starts}``); None when some motif (or its reverse
    complement) then occurs where it was not planted: in the background or across a junction.

    Each pair motif is present with probability sqrt(1/2), ``a`` in a pair zone drawn at
    random and ``b`` in the other; each local motif with probability 1/2. Copies go to
    distinct ``2 * motif_bp`` bp slots of their zone, at a random offset in the slot.
    """
    left, right, local = design.zones()
    labels = np.zeros(len(design.features()), dtype=np.uint8)
    by_zone: dict[tuple[int, int], list[str]] = {left: [], right: [], local: []}
    for k in range(design.pair_labels):
        present = rng.random(2) < math.sqrt(0.5)
        a_zone = int(rng.integers(0, 2))
        for side, is_present, zone in zip("ab", present, (a_zone, 1 - a_zone), strict=True):
            if is_present:
                by_zone[(left, right)[zone]] += [f"pair_{k}.{side}"] * design.copies
        labels[k] = present.all()
    for k in range(design.local_labels):
        if rng.random() < 0.5:
            by_zone[local] += [f"local_{k}"] * design.copies
            labels[design.pair_labels + k] = 1
    slot = 2 * design.motif_bp
    bases = list(seq)
    placed: dict[str, list[int]] = {name: [] for name in motifs}
    for (zone_start, zone_end), names in by_zone.items():
        slots = rng.choice((zone_end - zone_start) // slot, size=len(names), replace=False)
        for name, index in zip(names, slots, strict=True):
            start = zone_start + int(index) * slot + int(rng.integers(0, design.motif_bp + 1))
            bases[start : start + design.motif_bp] = motifs[name]
            placed[name].append(start)
    planted = "".join(bases)
    for name, motif in motifs.items():
        placed[name].sort()
        if occurrences(planted, motif) != placed[name]:
            return None
        rc = reverse_complement(motif)
        if rc != motif and rc in planted:
            return None
    return planted, labels, placed


def generate_examples(
    count: int,
    design: Design,
    motifs: dict[str, str],
    background: Background,
    rng: np.random.Generator,
) -> MultiLabelExamples:
    """``count`` sequences of ``design.seq_bp`` bp with motifs planted (:func:`plant_motifs`;
    a draw where a motif occurs unplanted is redrawn, background included, so every label
    is exact).

    Labels ``[count, F]`` in the order of ``design.features()``; per-row columns: the
    background's, and ``<motif>.starts`` per motif (0-based bp of each planted copy, sorted;
    empty when absent).
    """
    sequences, labels, rows = [], [], []
    starts: dict[str, np.ndarray] = {name: np.empty(count, dtype=object) for name in motifs}
    for i in range(count):
        planted = None
        while planted is None:
            seq, columns = background(rng, design.seq_bp)
            planted = plant_motifs(seq, design, motifs, rng)
        sequence, row_labels, placed = planted
        sequences.append(sequence)
        labels.append(row_labels)
        rows.append(columns)
        for name, values in placed.items():
            starts[name][i] = values
    table = {key: np.array([row[key] for row in rows]) for key in (rows[0] if rows else {})}
    table.update({f"{name}.starts": values for name, values in starts.items()})
    labels = np.array(labels, dtype=np.uint8).reshape(count, len(design.features()))
    return MultiLabelExamples(sequences, labels, design.features(), "generated", table)


def generate_in_chunks(
    count: int,
    design: Design,
    motifs: dict[str, str],
    background: Background,
    seed: list[int],
    workers: int,
) -> MultiLabelExamples:
    """:func:`generate_examples` in chunks of :data:`CHUNK` sequences, chunk ``i`` drawn from
    ``default_rng([*seed, i])``, on ``workers`` forked processes (each gets a pickled copy of
    ``background``: a genome reopens its files there); the result depends on ``seed`` only,
    never on ``workers``."""
    import multiprocessing

    jobs = [
        (min(CHUNK, count - first), design, motifs, background, [*seed, i])
        for i, first in enumerate(range(0, count, CHUNK))
    ]
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            parts = pool.starmap(_generate_chunk, jobs)
    else:
        parts = [_generate_chunk(*job) for job in jobs]
    return concatenate(parts, "generated")


def _generate_chunk(count, design, motifs, background, seed) -> MultiLabelExamples:
    return generate_examples(count, design, motifs, background, np.random.default_rng(seed))


@dataclass
class Windows:
    """Model inputs of one window size for ``N`` sequences.

    ``input_ids``, ``attention_mask``: int64 ``[N, W]`` (``[CLS] tokens [SEP] [PAD]...``);
    ``spans``: int64 ``[N, 2]``, the bp of each sequence the window's tokens cover (0-based,
    half-open); ``tokens``: int64 ``[N]``, tokens of each whole sequence.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    spans: np.ndarray
    tokens: np.ndarray


def encode_windows(tokenizer, encoded: list[list[int]], window: int, centre: int) -> Windows:
    """The ``window``-token input of each sequence from its token ids (``encoded``, one list
    per sequence, as ``tokenizer.encode_batch`` gives): ``[CLS]``, the ``window - 2`` tokens
    around the token holding bp ``centre`` (shifted inwards at the ends), ``[SEP]``, padding."""
    from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID

    content = window - 2
    count = len(encoded)
    input_ids = np.full((count, window), PAD_ID, dtype=np.int64)
    attention_mask = np.zeros((count, window), dtype=np.int64)
    spans = np.zeros((count, 2), dtype=np.int64)
    tokens = np.zeros(count, dtype=np.int64)
    for i, ids in enumerate(encoded):
        ids = np.asarray(ids, dtype=np.int64)
        ends = np.cumsum(tokenizer.token_lengths(ids), dtype=np.int64)  # bp after each token
        middle = int(np.searchsorted(ends, centre, side="right"))  # the token holding centre
        first = min(max(middle - content // 2, 0), max(len(ids) - content, 0))
        last = min(first + content, len(ids))
        row = np.concatenate([[CLS_ID], ids[first:last], [SEP_ID]])
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
        spans[i] = (ends[first] - tokenizer.bp_per_id[ids[first]], ends[last - 1])
        tokens[i] = len(ids)
    return Windows(input_ids, attention_mask, spans, tokens)


def trim_padding(windows: list[Windows], block_size: int) -> list[Windows]:
    """``windows`` cut to one padded length: the longest row's tokens rounded up to a
    multiple of ``block_size`` (columns past it hold padding only, which attention never
    reads; the same length for all, so one block-sparse pattern still serves every batch)."""
    longest = max(int(w.attention_mask.sum(axis=1).max()) for w in windows)
    keep = -(-longest // block_size) * block_size
    return [
        Windows(w.input_ids[:, :keep], w.attention_mask[:, :keep], w.spans, w.tokens)
        for w in windows
    ]


def motifs_inside(examples: MultiLabelExamples, spans: np.ndarray, motif_bp: int) -> dict:
    """``{"pair" | "local": [copies inside their row's span, copies planted]}`` (a copy at
    ``s`` is inside when ``[s, s + motif_bp)`` lies in the span)."""
    counts = {"pair": [0, 0], "local": [0, 0]}
    for name in (key for key in examples.columns if key.endswith(".starts")):
        kind = name.split("_")[0]
        for (start, end), copies in zip(spans, examples.columns[name], strict=True):
            for s in copies:
                counts[kind][0] += int(start <= s and s + motif_bp <= end)
                counts[kind][1] += 1
    return counts


def train_model(config, data: Windows, labels: np.ndarray, steps: int, args: argparse.Namespace):
    """Train a fresh ``BigBirdForMultiLabelClassification`` (torch seed ``args.seed``) on
    ``args.device`` for ``steps`` AdamW steps on batches of ``args.batch_size`` drawn by
    epochs from ``default_rng([seed, 3])``: linear warm-up over the first
    :data:`WARMUP_FRACTION` of the steps to ``args.lr``, then linear decay to 0.

    With ``args.max_train_s`` set, the steps timed at :data:`CALIBRATION_STEPS` decide:
    when ``steps`` would take longer than that many seconds of training, the plan (and the
    schedule with it) shrinks once to the steps that fit. Returns (model, seconds, steps done,
    ``[(step, mean loss since the previous entry)]``)."""
    import torch

    from dnabird.model import BigBirdForMultiLabelClassification

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = BigBirdForMultiLabelClassification(config, labels.shape[1]).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    plan = {"steps": steps}

    def lr_factor(step: int) -> float:
        warmup = max(1, int(WARMUP_FRACTION * plan["steps"]))
        return min(
            (step + 1) / warmup, max(0.0, (plan["steps"] - step) / max(1, plan["steps"] - warmup))
        )

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    rng = np.random.default_rng([args.seed, 3])
    ids = torch.from_numpy(data.input_ids).to(device)
    mask = torch.from_numpy(data.attention_mask).to(device)
    targets = torch.from_numpy(labels.astype(np.float32)).to(device)
    order: list[int] = []
    losses, history = [], []
    timed_at: dict[int, float] = {}
    started = time.perf_counter()
    step = 0
    while step < plan["steps"]:
        step += 1
        if len(order) < args.batch_size:
            order += rng.permutation(len(labels)).tolist()
        batch, order = order[: args.batch_size], order[args.batch_size :]
        loss = model(ids[batch], mask[batch], labels=targets[batch], cls_only=True).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        losses.append(loss.detach())
        if args.max_train_s is not None and step in CALIBRATION_STEPS:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timed_at[step] = time.perf_counter()
            if step == CALIBRATION_STEPS[1]:
                first, last = CALIBRATION_STEPS
                per_step = (timed_at[last] - timed_at[first]) / (last - first)
                spent = timed_at[last] - started
                fits = max(step, step + int((args.max_train_s - spent) / per_step))
                if fits < plan["steps"]:
                    print(f"  {per_step:.3f} s/step: planned {plan['steps']} steps cut to {fits}")
                    plan["steps"] = fits
        if step % args.log_every == 0 or step == plan["steps"]:
            history.append((step, torch.stack(losses).mean().item()))
            elapsed = time.perf_counter() - started
            print(
                f"  step {step:>5}/{plan['steps']}  loss {history[-1][1]:.4f}  {elapsed:6.0f} s",
                flush=True,
            )
            losses = []
    return model.eval(), time.perf_counter() - started, step, history


def predict(model, data: Windows, batch_size: int = 16) -> np.ndarray:
    """P(label) ``[N, K]`` float64 of every row of ``data`` (on the model's device)."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(data.input_ids), batch_size):
            ids = torch.from_numpy(data.input_ids[i : i + batch_size]).to(device)
            mask = torch.from_numpy(data.attention_mask[i : i + batch_size]).to(device)
            out.append(torch.sigmoid(model(ids, mask, cls_only=True).logits.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def auroc_report(labels: np.ndarray, scores: np.ndarray, seed: int) -> dict:
    """Mean AUROC over the K columns of ``labels``/``scores`` ``[N, K]`` (0/1, P(label)) with
    its 95% percentile-bootstrap interval over examples (rows resampled with their K labels,
    ``BOOTSTRAP_RESAMPLES`` times, seed ``seed``)."""
    from dnabird.tasks.classification_metrics import binary_metrics, bootstrap_intervals

    def mean_auroc(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        values = [binary_metrics(y[:, j], p[:, j])["auroc"] for j in range(y.shape[1])]
        return {"auroc": float(np.mean(values))}

    labels = labels.astype(np.int64)
    interval = bootstrap_intervals(
        labels, scores, mean_auroc, resamples=BOOTSTRAP_RESAMPLES, seed=seed
    )["auroc"]
    return {"auroc": mean_auroc(labels, scores)["auroc"], "ci95": list(interval)}


def machine_description(args: argparse.Namespace) -> str:
    """CPUs, torch threads or the GPU's name, torch and Python versions."""
    import torch

    where = f"{os.cpu_count()} CPUs, {args.threads} torch threads"
    if args.device.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(args.device)}, {os.cpu_count()} CPUs"
    return f"{where}, torch {torch.__version__}, Python {platform.python_version()}"


def run_window(window, tokenizer, config, train, test, design, steps, args) -> dict:
    """Cut the windows, train ``steps`` steps (or fewer: :func:`train_model`), score one
    window size; print its coverage and progress. ``train`` and ``test`` are ``(examples,
    token ids per sequence)``."""
    (train, train_ids), (test, test_ids) = train, test
    train_in = encode_windows(tokenizer, train_ids, window, design.centre)
    test_in = encode_windows(tokenizer, test_ids, window, design.centre)
    if args.trim_padding:
        train_in, test_in = trim_padding([train_in, test_in], config.block_size)
    spans = np.concatenate([train_in.spans, test_in.spans])
    inside = {
        kind: [a + b for a, b in zip(x, y, strict=True)]
        for (kind, x), y in zip(
            motifs_inside(train, train_in.spans, design.motif_bp).items(),
            motifs_inside(test, test_in.spans, design.motif_bp).values(),
            strict=True,
        )
    }
    print(
        f"\n{window}-token window: covers bp [{spans[:, 0].min()}, {spans[:, 1].max()}) at most, "
        f"median [{int(np.median(spans[:, 0]))}, {int(np.median(spans[:, 1]))}) (0-based, "
        f"half-open); planted copies inside: pair {inside['pair'][0]} of {inside['pair'][1]}, "
        f"local {inside['local'][0]} of {inside['local'][1]}",
        flush=True,
    )
    model, seconds, steps, history = train_model(config, train_in, train.labels, steps, args)
    scores = predict(model, test_in, 4 * args.batch_size)
    categories = np.array(design.features().categories)
    result = {
        "window_tokens": window,
        "steps": steps,
        "train_s": round(seconds, 1),
        "s_per_step": round(seconds / steps, 3),
        "real_tokens": int(np.median(test_in.attention_mask.sum(axis=1))),
        "padded_tokens": int(test_in.input_ids.shape[1]),
        "span_bp": {
            "min_start": int(spans[:, 0].min()),
            "max_end": int(spans[:, 1].max()),
            "median": int(np.median(spans[:, 1] - spans[:, 0])),
        },
        "copies_inside": inside,
        "loss_history": history,
    }
    for kind in ("pair", "local"):
        columns = np.flatnonzero(categories == kind)
        if len(columns):
            result[kind] = auroc_report(test.labels[:, columns], scores[:, columns], args.seed)
    result["per_label"] = {
        name: auroc_report(test.labels[:, [j]], scores[:, [j]], args.seed)
        for j, name in enumerate(design.features().ids)
    }
    for kind in ("pair", "local"):
        if kind in result:
            r = result[kind]
            print(f"  {kind} AUROC {r['auroc']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
    return result


def summary_table(results: dict) -> str:
    """Markdown: per window, AUROC [95% CI] per label type, steps, training time, tokens and
    bp per window; with two windows a last column compares them (long vs short)."""
    runs = sorted(results["windows"].values(), key=lambda r: r["window_tokens"])

    def auroc(r: dict, kind: str) -> str:
        low, high = r[kind]["ci95"]
        return f"{r[kind]['auroc']:.3f} [{low:.3f}, {high:.3f}]"

    rows = [
        (f"{kind} labels: mean AUROC [95% CI]", [auroc(r, kind) for r in runs])
        for kind in ("pair", "local")
        if kind in runs[0]
    ]
    rows += [
        (
            f"training steps (batch {results['parameters']['batch_size']})",
            [f"{r['steps']:,}" for r in runs],
        ),
        ("training time, s", [f"{r['train_s']:.0f}" for r in runs]),
        ("tokens per window (real, median)", [f"{r['real_tokens']:,}" for r in runs]),
        ("bp per window (median)", [f"{r['span_bp']['median']:,}" for r in runs]),
        (
            "pair motif copies inside",
            [
                f"{r['copies_inside']['pair'][0]:,} of {r['copies_inside']['pair'][1]:,}"
                for r in runs
            ],
        ),
    ]
    header = ["", *(f"{r['window_tokens']}-token window" for r in runs)]
    if len(runs) == 2:
        short, long = runs
        header.append("long vs short")
        rows = [
            (name, [*cells, compare])
            for (name, cells), compare in zip(
                rows,
                [
                    *(
                        f"{long[k]['auroc'] - short[k]['auroc']:+.3f}"
                        for k in ("pair", "local")
                        if k in long
                    ),
                    "",
                    f"{long['train_s'] / short['train_s']:.1f}x",
                    f"{long['real_tokens'] / short['real_tokens']:.1f}x",
                    f"{long['span_bp']['median'] / short['span_bp']['median']:.1f}x",
                    "",
                ],
                strict=True,
            )
        ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training sequences")
    parser.add_argument("--test", type=int, default=500, help="test sequences")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per window")
    parser.add_argument("--seq-bp", type=int, default=Design.seq_bp, help="bp per sequence")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--background",
        choices=("genome", "random"),
        default="genome",
        help="hg38 chr2 excerpt windows (default) or i.i.d. random bases",
    )
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="training batch")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument(
        "--max-train-s",
        type=float,
        help="fit the first window's training into about this many seconds: its planned "
        "--steps shrink once, after timing the first steps; later windows train as many "
        "steps (the results record them)",
    )
    parser.add_argument("--copies", type=int, default=Design.copies, help="copies per motif")
    parser.add_argument("--motif-bp", type=int, default=Design.motif_bp, help="bp per motif")
    parser.add_argument(
        "--zone-bp", type=int, default=Design.zone_bp, help="bp per motif zone (room for copies)"
    )
    parser.add_argument("--pair-labels", type=int, default=Design.pair_labels)
    parser.add_argument("--local-labels", type=int, default=Design.local_labels)
    parser.add_argument("--model", type=json.loads, default={}, help="JSON config overrides")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument(
        "--trim-padding",
        action="store_true",
        help="pad every window only to the longest row (rounded up to a block) instead of "
        "to the full window: the same inputs for less work when sequences are shorter",
    )
    parser.add_argument("--log-every", type=int, default=50, help="steps between loss lines")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    for name in ("train", "test", "steps", "threads", "log_every", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.windows) < 3 or max(args.windows) > MODEL_OVERRIDES["max_position_embeddings"]:
        raise ConfigError("--windows must lie between 3 and 4096 tokens")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (module docstring); return the results."""
    args = parse_args(argv)
    import torch

    from dnabird.data.multilabel import write_parquet
    from dnabird.manifest import describe_file, new_manifest
    from dnabird.model import BigBirdConfig
    from dnabird.outputs import OutputFolder
    from dnabird.tokenizer import DNATokenizer

    torch.set_num_threads(args.threads)
    design = Design(
        seq_bp=args.seq_bp,
        copies=args.copies,
        motif_bp=args.motif_bp,
        zone_bp=args.zone_bp,
        pair_labels=args.pair_labels,
        local_labels=args.local_labels,
    )
    parameters = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "design": asdict(design),
    }
    # kept: everything that changes the result (--max-train-s changes the steps trained)
    for key in ("out", "json", "overwrite", "log_every", "threads", "device"):
        parameters.pop(key)
    genome = None
    if args.background == "genome":
        from dnabird.genome.regions import Genome
        from dnabird.testing import shared_data_dir

        data = shared_data_dir()
        if data is None:
            raise InputError(
                "no shared data folder (set DNABIRD_SHARED_DATA), or use --background random"
            )
        genome = Genome(data / GENOME)
        parameters["genome"] = describe_file(genome.path)
    with OutputFolder(
        args.out, "long-range-benchmark", parameters, overwrite=args.overwrite
    ) as folder:
        if folder.complete:
            results = json.loads((folder.path / "results.json").read_text())
            print(f"{args.out} already holds this run\n\n{summary_table(results)}")
            return results
        started = time.perf_counter()
        if genome is None:
            train_bg = test_bg = tokenizer_bg = random_background
        else:
            ((chrom, length),) = genome.lengths.items()
            train_bg = tokenizer_bg = GenomeBackground(genome, chrom, 0, length - HELD_OUT_BP)
            test_bg = GenomeBackground(genome, chrom, length - HELD_OUT_BP, length)
        motifs = make_motifs(design, args.seed)
        workers = os.cpu_count() or 1
        train = generate_in_chunks(args.train, design, motifs, train_bg, [args.seed, 1], workers)
        test = generate_in_chunks(args.test, design, motifs, test_bg, [args.seed, 2], workers)
        write_parquet(folder.path / "train.parquet", train)
        write_parquet(folder.path / "test.parquet", test)
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        rng = np.random.default_rng([args.seed, 4])
        count, bp = TOKENIZER_SAMPLE
        sample = [tokenizer_bg(rng, bp)[0] for _ in range(count)]
        tokenizer = DNATokenizer.train(sample, VOCAB_SIZE, "bpe", seed=args.seed)
        tokenizer.save_pretrained(folder.path / "tokenizer")
        tokenizer_s = time.perf_counter() - started
        train_ids, test_ids = (
            tokenizer.encode_batch(examples.sequences, num_threads=os.cpu_count() or 1)
            for examples in (train, test)
        )
        tokens = np.array([len(ids) for ids in train_ids])
        bp_per_token = train.sequences and sum(map(len, train.sequences)) / tokens.sum()
        print(
            f"data: {args.train} train + {args.test} test sequences of {design.seq_bp} bp "
            f"({args.background} background) in {generate_s:.1f} s; tokenizer ({VOCAB_SIZE} "
            f"ids, BPE) in {tokenizer_s:.1f} s: {bp_per_token:.2f} bp/token, tokens per "
            f"sequence median {int(np.median(tokens))}, max {tokens.max()}",
            flush=True,
        )
        (left, right, local) = design.zones()
        print(
            f"motifs: {design.motif_bp} bp, {design.copies} copies each when present; pair "
            f"zones [{left[0]}, {left[1]}) and [{right[0]}, {right[1]}), local zone "
            f"[{local[0]}, {local[1]}) (bp, 0-based, half-open)",
            flush=True,
        )
        config = BigBirdConfig.preset(
            "tiny", **{**MODEL_OVERRIDES, **args.model}, vocab_size=tokenizer.vocab_size
        )
        windows, steps = {}, args.steps
        for w in args.windows:  # every window trains the steps the first one did
            windows[str(w)] = run_window(
                w, tokenizer, config, (train, train_ids), (test, test_ids), design, steps, args
            )
            steps = windows[str(w)]["steps"]
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine_description(args),
            "parameters": parameters,
            "motifs": motifs,
            "model": config.to_dict(),
            "bp_per_token": bp_per_token,
            "tokens_per_sequence": {"median": float(np.median(tokens)), "max": int(tokens.max())},
            "generate_s": round(generate_s, 1),
            "tokenizer_s": round(tokenizer_s, 1),
            "windows": windows,
        }
        text = json.dumps(results, indent=2) + "\n"
        from dnabird.files import write_text_atomic

        write_text_atomic(folder.path / "results.json", text)
        if args.json:
            write_text_atomic(args.json, text)
        print(f"\n{summary_table(results)}")
        outputs = [
            describe_file(folder.path / name)
            for name in ("train.parquet", "test.parquet", "results.json")
        ]
        folder.finish(new_manifest("long-range-benchmark", parameters, outputs=outputs))
    return results


if __name__ == "__main__":
    import sys

    from dnabird.errors import DnabirdError

    try:
        main()
    except DnabirdError as err:
        sys.exit(f"long_range.py: error: {err}")
