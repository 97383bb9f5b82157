"""Tests of dnabird.tasks.metrics: bits per character, accuracy, perplexity, and the
per-sequence sums and standard error of held-out evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from dnabird.data.masking import IGNORE_INDEX
from dnabird.tasks.metrics import (
    MaskedLMMetrics,
    masked_lm_sums,
    masked_lm_values,
    per_sequence_bits,
    ratio_standard_error,
)


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


def test_per_sequence_bits_add_up_to_the_batch_sums() -> None:
    torch.manual_seed(1)
    bp_per_id = torch.randint(1, 12, (30,))
    logits = torch.randn(4, 20, 30)
    labels = torch.where(torch.rand(4, 20) < 0.3, torch.randint(0, 30, (4, 20)), IGNORE_INDEX)
    labels[2] = IGNORE_INDEX  # a row with no predicted token
    bits, bp = per_sequence_bits(logits, labels, bp_per_id)
    assert bits.shape == bp.shape == (4,) and bits[2] == 0 and bp[2] == 0
    for row in range(4):
        sums = masked_lm_sums(logits[row], labels[row], bp_per_id)
        assert bits[row].item() == pytest.approx(sums["nll_nats"].item() / math.log(2))
        assert bp[row].item() == sums["bp"].item()


def test_ratio_standard_error_by_hand() -> None:
    bits = [10.0, 14.0, 9.0]
    bp = [5.0, 6.0, 5.0]
    # R = 33 / 16; residuals 10 - 5R, 14 - 6R, 9 - 5R = -0.3125, 1.625, -1.3125
    ratio = 33 / 16
    squares = (10 - 5 * ratio) ** 2 + (14 - 6 * ratio) ** 2 + (9 - 5 * ratio) ** 2
    assert squares == pytest.approx(4.4609375)  # 0.3125^2 + 1.625^2 + 1.3125^2
    expected = math.sqrt(3 / 2 * squares) / 16
    assert ratio_standard_error(bits, bp) == pytest.approx(expected)
    assert ratio_standard_error(bits, bp) == pytest.approx(0.16167, abs=1e-5)
    # units with the same ratio: no spread
    assert ratio_standard_error([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == 0
    assert math.isnan(ratio_standard_error([3.0], [2.0]))
    assert math.isnan(ratio_standard_error([0.0, 0.0], [0.0, 0.0]))


def test_no_predicted_token_means_no_values_not_zeros() -> None:
    bp_per_id = torch.tensor([0] * 5 + [8] * 11)
    labels = torch.full((1, 3), IGNORE_INDEX)
    assert masked_lm_values(masked_lm_sums(torch.zeros(1, 3, 16), labels, bp_per_id)) == {}
    metric = MaskedLMMetrics(bp_per_id)
    metric.update(torch.zeros(1, 3, 16), labels)
    assert metric.compute() == {}
