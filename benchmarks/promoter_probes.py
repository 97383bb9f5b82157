"""How far simple models built for the promoter task get: three probes on the exact splits
of ``benchmarks/finetune.py`` (human TATA promoters, seed 0, 80/10/10, each negative in its
positive's split; ``--draws`` negatives per training positive, 10 as in the fine-tuning
runs), so the fine-tuned model's F1 can be read against what simple models get from the
same data. Not a speed benchmark; the CNN trains for a wall-clock budget like the runs.

- ``markov``: an order-``k`` Markov chain fitted to the training positives and one to the
  training negatives; the score is the log-likelihood ratio of the two. It sees composition
  and the junctions between parts, not position.
- ``generator`` (substitute negatives only): the likelihood ratio under the negatives' own
  recipe. A negative is its positive with 12 of the 20 parts, chosen at random, replaced by
  uniform random bases, so ``P(x | negative)`` is the mean, over the C(20, 12) choices, of
  the product of ``4**-len`` over the replaced parts and ``p(part)`` over the kept ones,
  with ``p`` the positives' chain (:func:`generator_log_odds`): what a detector of the
  substituted parts gets from that chain, knowing how the negatives were made.
- ``cnn``: a plain convolutional network on one-hot bases, written apart from dnabird's
  model as an independent reference: convolutions of the base features' sizes (15 and 9 bp,
  128 channels) but with ReLU (ours: GELU), the max and mean of every channel in each of 20
  equal segments (where a part sits; the head's segment bounds), a linear layer; Adam (lr
  1e-3), batch 64, the weights of the best validation AUROC. It sees motifs and their coarse
  positions: the convolutional half of DeePromoter.

Each probe's decision threshold is its best-F1 threshold on the validation split (as
``early_stopping.threshold=validation``); test metrics carry 95% bootstrap intervals.
Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/promoter_probes.py \
        --negatives shuffle --cnn-seconds 840 --json probes_shuffle.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit  # log odds -> probabilities, float64: distinct up to ~|36|
from torch import nn

from dnabird.baselines import encode_sequences, one_hot_features
from dnabird.data.classification import load_splits
from dnabird.model.bases import FIRST_KERNEL_BP, SECOND_KERNEL_BP, segment_bounds
from dnabird.tasks.classification_metrics import (
    best_f1_threshold,
    binary_metrics,
    classification_report,
    metrics_table,
)
from dnabird.tasks.finetune_config import ClassificationDataConfig
from dnabird.testing import shared_data_dir

PARTS = 20  # DeePromoter's parts per sequence
REPLACED = 12  # parts of a substitute negative that are random bases
VALIDATE_EVERY = 200  # CNN training steps between validations


def chain_contexts(sequences: Sequence[str], order: int) -> tuple[np.ndarray, ...]:
    """Every (``order`` + 1)-mer without N: its sequence ``[M]``, its part (0..19, by the
    position of its last base) ``[M]`` and its index ``[M]`` (the (order + 1)-mer read as a
    base-4 number; its context is ``index // 4``, its base ``index % 4``)."""
    codes, lengths = encode_sequences(sequences)
    starts = np.repeat(lengths.cumsum() - lengths, lengths)
    position = np.arange(codes.size) - starts  # [total] position within its sequence
    sequence_of = np.repeat(np.arange(lengths.size), lengths)
    index = np.zeros(codes.size, dtype=np.int64)
    clean = np.ones(codes.size, dtype=bool)
    for back in range(order + 1):  # base ``back`` positions before the last one
        shifted = np.roll(codes, back).astype(np.int64)
        index += np.where(shifted == 4, 0, shifted) * 4**back
        clean &= shifted != 4
    keep = clean & (position >= order)
    part = position * PARTS // np.repeat(lengths, lengths)
    return sequence_of[keep], part[keep], index[keep]


def fit_chain(sequences: Sequence[str], order: int) -> np.ndarray:
    """Natural-log transition probabilities ``[4**order, 4]`` (add-one-half smoothing)."""
    _, _, index = chain_contexts(sequences, order)
    counts = np.bincount(index, minlength=4 ** (order + 1)).reshape(-1, 4) + 0.5
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def part_log_odds(sequences: Sequence[str], chain: np.ndarray, order: int) -> np.ndarray:
    """``[N, 20]`` log-likelihood of each part under ``chain`` minus that of uniform bases
    (nats), summed over the part's (order + 1)-mers."""
    sequence_of, part, index = chain_contexts(sequences, order)
    gain = chain.reshape(-1)[index] - np.log(0.25)
    out = np.zeros((len(sequences), PARTS))
    np.add.at(out, (sequence_of, part), gain)
    return out


def generator_log_odds(part_odds: np.ndarray) -> np.ndarray:
    """``log P(x | positive) - log P(x | substitute negative)`` ``[N]`` from the parts'
    log-odds against uniform bases ``g`` ``[N, 20]``: ``-log(e_12(exp(-g)) / C(20, 12))``,
    ``e_12`` the elementary symmetric polynomial (the sum over every choice of 12 replaced
    parts of their ratios' product), computed in log space one part at a time."""
    num_sequences, parts = part_odds.shape
    chosen = np.full((num_sequences, REPLACED + 1), -np.inf)  # log e_k of the parts so far
    chosen[:, 0] = 0.0
    for j in range(parts):
        chosen[:, 1:] = np.logaddexp(chosen[:, 1:], chosen[:, :-1] - part_odds[:, j : j + 1])
    return math.log(math.comb(parts, REPLACED)) - chosen[:, REPLACED]


class SegmentCNN(nn.Module):
    """One-hot ``[B, 4, L]`` -> logit ``[B]``: two convolutions, max and mean per segment."""

    def __init__(self, length: int, channels: int = 128, segments: int = PARTS) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(4, channels, FIRST_KERNEL_BP, padding=FIRST_KERNEL_BP // 2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, SECOND_KERNEL_BP, padding=SECOND_KERNEL_BP // 2),
            nn.ReLU(),
        )
        self.bounds = segment_bounds(torch.tensor([length]), segments)[0].tolist()  # the head's
        self.linear = nn.Linear(2 * channels * segments, 1)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        h = self.convs(onehot)
        pieces = [h[:, :, a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]
        summary = [p.amax(dim=2) for p in pieces] + [p.mean(dim=2) for p in pieces]
        return self.linear(torch.cat(summary, dim=1)).squeeze(1)


def train_cnn(
    splits: dict, seconds: float, seed: int, validate_every: int = VALIDATE_EVERY
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Trains :class:`SegmentCNN` on ``splits`` (``{name: (sequences, labels [N])}`` for
    train, validation, test; sequences of one length) for about ``seconds``, validating every
    ``validate_every`` steps and at the end. Returns P(positive) on validation and test from
    the weights of the best validation AUROC, and what training did."""
    torch.manual_seed(seed)
    tensors = {
        name: torch.from_numpy(one_hot_features(seqs).reshape(len(seqs), -1, 4)).transpose(1, 2)
        for name, (seqs, _) in splits.items()
    }
    labels = torch.tensor(splits["train"][1], dtype=torch.float32)
    model = SegmentCNN(tensors["train"].shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(seed)

    def predict(name: str) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(batch) for batch in tensors[name].split(512)])
        model.train()
        return torch.sigmoid(logits).numpy()

    def batches():  # endless shuffled passes over the training split
        while True:
            yield from torch.randperm(len(labels), generator=generator).split(64)

    best, best_state, steps, started = -1.0, None, 0, time.perf_counter()
    for rows in batches():
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(tensors["train"][rows]), labels[rows]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        out_of_time = time.perf_counter() - started >= seconds
        if steps % validate_every == 0 or out_of_time:
            auroc = binary_metrics(splits["validation"][1], predict("validation"))["auroc"]
            if auroc > best:
                best, best_step = auroc, steps
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if out_of_time:
            break
    model.load_state_dict(best_state)
    training = {"steps": steps, "best_step": best_step, "best_val_auroc": best}
    return predict("validation"), predict("test"), training


def report(splits: dict, validation: np.ndarray, test: np.ndarray) -> dict:
    """Test report at the validation's best-F1 threshold."""
    threshold = best_f1_threshold(splits["validation"][1], validation)
    return classification_report(
        splits["test"][1], test, ["non_promoter", "promoter"], threshold=threshold
    )


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--negatives", choices=("substitute", "shuffle"), required=True)
    parser.add_argument("--draws", type=int, default=10, help="negatives per training positive")
    parser.add_argument("--order", type=int, default=5, help="Markov chain order (bases)")
    parser.add_argument("--cnn-seconds", type=float, default=600, help="0: no CNN")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        sys.exit("benchmarks/promoter_probes.py needs ../shared/data (or $DNABIRD_SHARED_DATA)")
    config = ClassificationDataConfig(
        train=str(data / "promoters" / "human_TATA_EPDnew_300bp.txt"),
        negatives=args.negatives,
        classes=["non_promoter", "promoter"],
        label="promoter",
        negative_draws=args.draws,
    )
    loaded = load_splits(config, args.seed)
    splits = {}
    for name in ("train", "validation", "test"):
        rows = loaded.part(name)
        splits[name] = (list(rows.sequences), np.asarray(rows.labels))
    train_seqs, train_labels = splits["train"]
    chains = {  # label -> the chain of that class's training sequences
        label: fit_chain(
            [s for s, y in zip(train_seqs, train_labels, strict=True) if y == label], args.order
        )
        for label in (0, 1)
    }
    scored = ("validation", "test")
    odds = {name: part_log_odds(splits[name][0], chains[1], args.order) for name in scored}
    null = {name: part_log_odds(splits[name][0], chains[0], args.order) for name in scored}
    markov = [expit((odds[name] - null[name]).sum(axis=1)) for name in scored]
    reports = {f"Markov chain LLR (order {args.order})": report(splits, *markov)}
    if args.negatives == "substitute":
        generator = [expit(generator_log_odds(odds[name])) for name in scored]
        reports["generator's likelihood ratio"] = report(splits, *generator)
    results = {}
    if args.cnn_seconds > 0:
        started = time.perf_counter()
        validation, test, training = train_cnn(splits, args.cnn_seconds, args.seed)
        training["seconds"] = round(time.perf_counter() - started, 1)
        results["cnn_training"] = training
        reports["CNN, 20 segments"] = report(splits, validation, test)
    results.update(
        negatives=args.negatives,
        draws=args.draws,
        order=args.order,
        sizes={name: len(labels) for name, (_, labels) in splits.items()},
        reports=reports,
    )
    print(f"\n### {args.negatives} negatives\n\n{metrics_table(reports)}")
    if "cnn_training" in results:
        print(f"\nCNN: {results['cnn_training']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
