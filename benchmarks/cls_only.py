"""[CLS]-only last layer: classifiers with ``cls_only=True`` against the full computation.

A sequence or multi-label classifier reads the [CLS] row of the last layer alone; with
``cls_only=True`` that layer computes only that row (it attends to every key there). This
script times both calls on the same model and inputs, in one process, alternating call by
call after one warm-up call each (medians), and checks that they agree:

- ``predict``: forward in ``torch.inference_mode`` (what ``dnabird predict`` runs), the
  ``base`` preset, 2 windows of 1,280 and of 2,688 tokens (8 and 17 kbp at 6.5 bp/token);
- ``train``: forward + backward with labels (what fine-tuning runs), the two-layer shapes of
  the CPU benchmarks: 2 x 128 at 64 tokens, batch 32 (promoters) and 2 x 64 at 4,096 tokens,
  batch 4 (chromatin windows).

Prints one Markdown table (seconds per call, speed-up, max abs difference of the logits and,
for training, of the gradients). Usage::

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=. python benchmarks/cls_only.py --threads 2
    PYTHONPATH=. python benchmarks/cls_only.py --quick      # tiny shapes, seconds (the test)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dnabird.model import (
    BigBirdConfig,
    BigBirdForMultiLabelClassification,
    BigBirdForSequenceClassification,
)

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
CASES = {
    # name: (mode, preset, config overrides, model class, labels, batch, tokens)
    "predict base, 1,280 tokens x 2": ("predict", "base", {}, "multi", 16, 2, 1280),
    "predict base, 2,688 tokens x 2": ("predict", "base", {}, "multi", 16, 2, 2688),
    "train 2 x 128, 64 tokens x 32": (
        "train",
        "tiny",
        {"hidden_size": 128, "intermediate_size": 512, "vocab_size": 2048},
        "sequence",
        2,
        32,
        64,
    ),
    "train 2 x 64, 4,096 tokens x 4": (
        "train",
        "tiny",
        {"max_position_embeddings": 4096},
        "multi",
        16,
        4,
        4096,
    ),
}
QUICK = {
    "predict tiny, 512 tokens x 2": ("predict", "tiny", {}, "multi", 4, 2, 512),
    "train tiny, 512 tokens x 2": ("train", "tiny", {}, "sequence", 2, 2, 512),
}


def measure(mode, preset, overrides, kind, labels, batch, tokens, repeats) -> dict:
    """Seconds per call (medians) of the full and the cls_only call, and their differences."""
    torch.manual_seed(0)
    config = BigBirdConfig.preset(preset, **{**NO_DROPOUT, **overrides})
    if kind == "sequence":
        model = BigBirdForSequenceClassification(config, labels)
        targets = torch.randint(0, labels, (batch,))
    else:
        model = BigBirdForMultiLabelClassification(config, labels)
        targets = torch.randint(0, 2, (batch, labels)).float()
    model.train(mode == "train")
    ids = torch.randint(5, config.vocab_size, (batch, tokens))
    mask = torch.ones_like(ids)

    def call(cls_only: bool):
        if mode == "predict":
            with torch.inference_mode():
                return model(ids, mask, cls_only=cls_only).logits, None
        model.zero_grad(set_to_none=True)
        out = model(ids, mask, labels=targets, cls_only=cls_only)
        out.loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return out.logits.detach(), grads

    outputs = {flag: call(flag) for flag in (False, True)}  # also the warm-up
    times = {False: [], True: []}
    for _ in range(repeats):
        for flag in (False, True):
            started = time.perf_counter()
            call(flag)
            times[flag].append(time.perf_counter() - started)
    (full_logits, full_grads), (fast_logits, fast_grads) = outputs[False], outputs[True]
    result = {
        "full_s": statistics.median(times[False]),
        "cls_only_s": statistics.median(times[True]),
        "logits_diff": float((full_logits - fast_logits).abs().max()),
    }
    result["speedup"] = result["full_s"] / result["cls_only_s"]
    if full_grads is not None:
        result["grads_diff"] = float((full_grads - fast_grads).abs().max())
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (the test)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = QUICK if args.quick else CASES
    results = {name: measure(*case, args.repeats) for name, case in cases.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}"
    )
    print("| case | all rows, ms | cls_only, ms | speed-up | max abs diff logits / gradients |")
    print("|---|---:|---:|---:|---|")
    for name, r in results.items():
        diffs = f"{r['logits_diff']:.1e}" + (
            f" / {r['grads_diff']:.1e}" if "grads_diff" in r else ""
        )
        print(
            f"| {name} | {r['full_s'] * 1e3:,.0f} | {r['cls_only_s'] * 1e3:,.0f} | "
            f"{r['speedup']:.2f}x | {diffs} |"
        )
    return results


if __name__ == "__main__":
    main()
