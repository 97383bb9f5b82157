"""Tests of dnabird.tasks.metrics: bits per character, accuracy, perplexity."""

from __future__ import annotations

import math

import pytest
import torch

from dnabird.data.masking import IGNORE_INDEX
from dnabird.tasks.metrics import MaskedLMMetrics, masked_lm_sums


def test_bits_per_character_worked_example() -> None:
    # vocabulary of 16 ids, uniform logits: every prediction costs log2(16) = 4 bits.
    bp_per_id = torch.tensor([0] * 5 + [8] * 11)
    logits = torch.zeros(1, 3, 16)
    labels = torch.tensor([[IGNORE_INDEX, 7, 9]])
    sums = masked_lm_sums(logits, labels, bp_per_id)
    assert sums["tokens"] == 2 and sums["bp"] == 16
    assert sums["nll_nats"].item() == pytest.approx(2 * math.log(16))
    metric = MaskedLMMetrics(bp_per_id)
    metric.update(logits, labels)
    values = metric.compute()
    assert values["bpc"].item() == pytest.approx(8 / 16)  # 2 tokens x 4 bits / 16 bp
    assert values["perplexity"].item() == pytest.approx(16)


def test_accumulates_exact_ratios_over_batches() -> None:
    torch.manual_seed(0)
    bp_per_id = torch.randint(1, 12, (30,))
    logits = torch.randn(6, 20, 30)
    labels = torch.where(torch.rand(6, 20) < 0.3, torch.randint(0, 30, (6, 20)), IGNORE_INDEX)
    metric = MaskedLMMetrics(bp_per_id)
    for i in range(0, 6, 2):
        metric.update(logits[i : i + 2], labels[i : i + 2])
    values = metric.compute()
    picked = labels != IGNORE_INDEX
    logp = torch.log_softmax(logits.double(), dim=-1)[picked]
    target = labels[picked]
    nll = -logp.gather(1, target[:, None]).sum()
    assert values["loss"].item() == pytest.approx((nll / target.numel()).item())
    assert values["bpc"].item() == pytest.approx(
        (nll / math.log(2) / bp_per_id[target].sum()).item()
    )
    accuracy = (logp.argmax(-1) == target).double().mean()
    assert values["accuracy"].item() == pytest.approx(accuracy.item())
