"""Masked-LM metrics: loss, masked-token accuracy, perplexity and bits per character.

Bits per character (bpc), as in the BigBird paper's DNA table (SRILM 1.57, BERT 1.23,
BigBird 1.12): over the predicted (masked) tokens, the sum of ``-log2 p(true token)``
divided by the number of base pairs those tokens cover (``bp_per_id[token]``, from the
tokenizer). A token of 8 bp predicted with probability 1/16 costs 4 bits, 0.5 bit per bp.

:class:`MaskedLMMetrics` accumulates the sums over batches (and over DDP ranks, through
torchmetrics' sync) so epoch values are exact ratios of sums, not means of batch ratios;
with no predicted token there are no values (:func:`masked_lm_values` is empty), never a
loss or bpc of 0.
For held-out evaluation, :func:`per_sequence_bits` gives the same sums per sequence and
:func:`ratio_standard_error` the standard error of bpc with sequences as the units.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from torchmetrics import Metric

from dnabird.model.config import IGNORE_INDEX

SUMS = ("nll_nats", "correct", "tokens", "bp")
"""The sums behind every masked-LM metric (see :func:`masked_lm_sums`)."""


def masked_lm_sums(
    logits: torch.Tensor, labels: torch.Tensor, bp_per_id: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Sums over predicted positions of one batch.

    ``logits``: [..., V] (any float dtype; computed in float32), ``labels``: [...] with
    ``IGNORE_INDEX`` where not predicted (e.g. [B, L, V] and [B, L], or only the predicted
    rows, [N, V] and [N]), ``bp_per_id``: [V] bp covered by each id.
    Returns float64 scalars: ``nll_nats`` (sum of -ln p), ``correct`` (argmax == label),
    ``tokens`` (predicted positions) and ``bp`` (bp those tokens cover).
    """
    predicted = labels != IGNORE_INDEX
    target = labels[predicted]  # [N]
    scores = logits[predicted].float()  # [N, V]
    nll = torch.nn.functional.cross_entropy(scores, target, reduction="sum")
    return {
        "nll_nats": nll.double(),
        "correct": (scores.argmax(dim=-1) == target).sum().double(),
        "tokens": torch.tensor(target.numel(), dtype=torch.float64, device=logits.device),
        "bp": bp_per_id.to(logits.device)[target].sum().double(),
    }


def masked_lm_values(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss (mean nats per predicted token), accuracy, perplexity and bpc (bits per bp) from
    :func:`masked_lm_sums` (or their total over batches and ranks); an empty dict when no
    token was predicted, since there is then nothing to report (absent, not zero)."""
    if float(sums["tokens"]) <= 0:
        return {}
    loss = sums["nll_nats"] / sums["tokens"]
    return {
        "loss": loss,
        "accuracy": sums["correct"] / sums["tokens"],
        "perplexity": torch.exp(loss),
        "bpc": sums["nll_nats"] / math.log(2) / sums["bp"].clamp(min=1),
    }


def per_sequence_bits(
    logits: torch.Tensor, labels: torch.Tensor, bp_per_id: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sums of one batch: ``logits`` [B, L, V] (any float dtype; scored in
    float32), ``labels`` [B, L] (``IGNORE_INDEX`` where not predicted), ``bp_per_id`` [V].
    Returns float64 ``(bits, bp)``, both [B]: the sum of -log2 p(label) over each row's
    predicted positions, and the bp those tokens cover (0 for a row with none)."""
    predicted = labels != IGNORE_INDEX
    rows = predicted.nonzero()[:, 0]  # [N] row of each predicted position
    target = labels[predicted]  # [N]
    nll = torch.nn.functional.cross_entropy(logits[predicted].float(), target, reduction="none")
    zeros = torch.zeros(labels.shape[0], dtype=torch.float64, device=logits.device)
    bits = zeros.index_add(0, rows, nll.double() / math.log(2))
    bp = zeros.index_add(0, rows, bp_per_id.to(logits.device)[target].double())
    return bits, bp


def ratio_standard_error(numerators: npt.ArrayLike, denominators: npt.ArrayLike) -> float:
    """Standard error of the ratio estimator ``R = sum(x) / sum(y)`` over ``n`` units,
    ``numerators`` x and ``denominators`` y ([n] each; e.g. bits and bp of each sequence,
    R = bpc): ``sqrt(n / (n - 1) * sum((x_i - R y_i)^2)) / sum(y_i)`` (first-order, delta
    method). NaN when there are fewer than 2 units or ``sum(y)`` is not positive."""
    x = np.asarray(numerators, dtype=np.float64)
    y = np.asarray(denominators, dtype=np.float64)
    n, total = x.size, y.sum()
    if n < 2 or total <= 0:
        return math.nan
    residuals = x - x.sum() / total * y
    return math.sqrt(n / (n - 1) * np.sum(residuals**2)) / total


class MaskedLMMetrics(Metric):
    """Accumulates :func:`masked_lm_sums`; ``compute()`` returns :func:`masked_lm_values`
    (empty when no token was predicted: absent, not zero)."""

    full_state_update = False

    def __init__(self, bp_per_id: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("bp_per_id", torch.as_tensor(bp_per_id, dtype=torch.float64))
        for name in SUMS:
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        for name, value in masked_lm_sums(logits, labels, self.bp_per_id).items():
            setattr(self, name, getattr(self, name) + value)

    def sums(self) -> dict[str, torch.Tensor]:
        """The accumulated :func:`masked_lm_sums` of this process (of all ranks inside
        ``sync_context()``)."""
        return {name: getattr(self, name) for name in SUMS}

    def compute(self) -> dict[str, torch.Tensor]:
        """:func:`masked_lm_values` of the sums; empty when nothing was predicted."""
        return masked_lm_values(self.sums())
