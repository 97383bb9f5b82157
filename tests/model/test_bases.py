"""Base-resolution token features (dnabird.model.bases) against a direct computation on the
spelled-out bases; batch and padding independence; zero start; save/load; the heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnabird.errors import ConfigError
from dnabird.model import (
    BigBirdConfig,
    BigBirdForMultiLabelClassification,
    BigBirdForSequenceClassification,
    BigBirdForTokenClassification,
)
from dnabird.model.bases import BaseFeatures, segment_bounds
from dnabird.tokenizer import DNATokenizer


@pytest.fixture(scope="module")
def tokenizer() -> DNATokenizer:
    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(100)]
    return DNATokenizer.train(sentences, vocab_size=60)


def features(tokenizer: DNATokenizer, channels: int = 8) -> BaseFeatures:
    """Base features over ``tokenizer``'s pieces, hidden size 16, random projection."""
    torch.manual_seed(0)
    module = BaseFeatures(len(tokenizer.pieces), int(tokenizer.bp_per_id.max()), 16, channels)
    module.set_vocabulary(tokenizer.pieces)
    torch.nn.init.normal_(module.projection.weight)
    return module


def direct(module: BaseFeatures, tokenizer: DNATokenizer, ids: list[int]) -> torch.Tensor:
    """The features of one row computed the plain way: spell its bases (tokenizer.decode),
    one-hot them (N all zero), convolve, average over each token's span
    (tokenizer.offsets), append sin/cos of the span's start, project: ``[L, hidden]``."""
    bases = tokenizer.decode(ids)
    one_hot = torch.zeros(4, max(len(bases), 1))
    for i, base in enumerate(bases):
        if base in "ACGT":
            one_hot[("ACGT").index(base), i] = 1
    h = one_hot[None]
    for convolution in module.convolutions:
        h = F.gelu(convolution(h))
    h = h[0].T  # (T, channels)
    rows = []
    for start, end in tokenizer.offsets(ids):
        pooled = h[start:end].mean(0) if end > start else torch.zeros(h.shape[1])
        angles = start * module.frequencies
        rows.append(torch.cat([pooled, torch.sin(angles), torch.cos(angles)]))
    return module.projection(torch.stack(rows))


def test_features_match_the_bases_spelled_out(tokenizer):
    module = features(tokenizer)
    rows = ["ACGTTGCANNNNNACGGT" * 4, "TTTTACGCGA"]
    batch = tokenizer(rows)  # [CLS] ... [SEP] [PAD]...
    with torch.no_grad():
        got = module(batch["input_ids"])
        for r, ids in enumerate(batch["input_ids"].tolist()):
            torch.testing.assert_close(got[r], direct(module, tokenizer, ids), atol=1e-5, rtol=0)


def test_a_row_does_not_depend_on_its_batch_or_its_padding(tokenizer):
    module = features(tokenizer)
    alone = tokenizer(["ACGTACGGTCA"])["input_ids"]
    batch = tokenizer(["ACGTACGGTCA", "A" * 200])["input_ids"]
    with torch.no_grad():
        a = module(alone)[0]
        b = module(batch)[0, : alone.shape[1]]
        padded = module(F.pad(alone, (0, 7)))[0, : alone.shape[1]]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a, padded, atol=1e-5, rtol=0)


def direct_summary(
    module: BaseFeatures, tokenizer: DNATokenizer, ids: list[int], bins: int = 1
) -> torch.Tensor:
    """The summary of one row computed alone, on its own bases: per channel of the second
    convolution, the maximum and the mean over each of ``bins`` segments of the row's bp
    (``torch.tensor_split``'s, which are ``np.array_split``'s; 0 for an empty one):
    ``[2 * channels * bins]``."""
    bases = tokenizer.decode(ids)
    one_hot = torch.zeros(1, 4, len(bases))
    for i, base in enumerate(bases):
        if base in "ACGT":
            one_hot[0, "ACGT".index(base), i] = 1
    h = one_hot
    for convolution in module.convolutions:
        h = F.gelu(convolution(h))
    segments = torch.tensor_split(h[0], bins, dim=1)  # each (channels, bp)
    zero = torch.zeros(h.shape[1])
    largest = [s.amax(dim=1) if s.shape[1] else zero for s in segments]
    means = [s.mean(dim=1) if s.shape[1] else zero for s in segments]
    return torch.cat([torch.stack(largest, dim=1), torch.stack(means, dim=1)]).flatten()


@pytest.mark.parametrize("bins", [1, 3, 16])
def test_the_summary_is_the_maximum_and_mean_over_the_rows_own_bases(tokenizer, bins):
    """Over the whole row (1), over segments, and over more segments than a 10 bp row has
    bases (the last ones empty)."""
    module = features(tokenizer)
    # Every output of the second convolution negative (GELU of -3 bias, tiny weights): a
    # maximum that let the zeros past a short row's end in would read 0 there.
    with torch.no_grad():
        module.convolutions[1].weight.mul_(1e-3)
        module.convolutions[1].bias.fill_(-3.0)
    rows = ["ACGTTGCANNNNNACGGT" * 4, "TTTTACGCGA"]
    batch = tokenizer(rows)["input_ids"]
    size = 2 * 8 * bins
    with torch.no_grad():
        tokens, summary = module.read(batch, bins)
        alone = module.read(batch[1:, :8], bins)[1][0]
        torch.testing.assert_close(tokens, module(batch))
        assert summary.shape == (2, size)
        assert bool((summary[0] < 0).all())  # the long row fills every segment
        for r, ids in enumerate(batch.tolist()):
            expected = direct_summary(module, tokenizer, ids, bins)
            torch.testing.assert_close(summary[r], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(alone, summary[1], atol=1e-6, rtol=0)
        empty = module.read(torch.tensor([[tokenizer.cls_token_id, tokenizer.sep_token_id]]), bins)
    assert torch.equal(empty[1], torch.zeros(1, size))  # no bases: zeros, not -inf


def test_segments_are_those_of_array_split():
    rows = [0, 1, 7, 10, 15, 300, 301]
    got = segment_bounds(torch.tensor(rows), 4)
    for r, n in enumerate(rows):
        sizes = [len(part) for part in np.array_split(np.arange(n), 4)]
        np.testing.assert_array_equal(got[r].numpy(), np.cumsum([0, *sizes]))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="base_pooling_bins must be a positive integer"):
            segment_bounds(torch.tensor(rows), bad)


def test_vocabulary_must_be_set_and_fit(tokenizer):
    module = BaseFeatures(len(tokenizer.pieces), 64, 16)
    with pytest.raises(ConfigError, match="no vocabulary"):
        module(torch.tensor([[2, 3]]))
    with pytest.raises(ConfigError, match="pieces but the model"):
        module.set_vocabulary(tokenizer.pieces[:-1])
    with pytest.raises(ConfigError, match="longer than"):
        BaseFeatures(len(tokenizer.pieces), 1, 16).set_vocabulary(tokenizer.pieces)
    with pytest.raises(ConfigError, match="base_channels"):
        BaseFeatures(len(tokenizer.pieces), 64, 16, channels=0)


def config(tokenizer: DNATokenizer) -> BigBirdConfig:
    return BigBirdConfig.preset(
        "tiny",
        vocab_size=len(tokenizer.pieces),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@pytest.mark.parametrize(
    "head", [BigBirdForSequenceClassification, BigBirdForMultiLabelClassification]
)
def test_a_new_classifier_starts_with_the_outputs_it_had_without_them(tokenizer, head):
    torch.manual_seed(0)
    plain = head(config(tokenizer), 3).eval()
    with_bases = head(config(tokenizer), 3, base_channels=8, max_piece_bp=64).eval()
    with_bases.load_state_dict(plain.state_dict(), strict=False)
    with_bases.bases.set_vocabulary(tokenizer.pieces)
    batch = tokenizer(["ACGTTGCA" * 30, "GGGCCA"])  # long enough for block-sparse attention
    with torch.no_grad():
        torch.testing.assert_close(with_bases(**batch).logits, plain(**batch).logits)
    labels = (
        torch.tensor([1, 2])
        if head is BigBirdForSequenceClassification
        else torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    )
    with_bases(**batch, labels=labels).loss.backward()
    assert with_bases.bases.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("head", "bins"),
    [
        (BigBirdForSequenceClassification, 1),
        (BigBirdForSequenceClassification, 5),
        (BigBirdForMultiLabelClassification, 1),
    ],
)
def test_base_pooling_reads_the_summary_and_keeps_rows_independent(tokenizer, tmp_path, head, bins):
    """``base_pooling=True``: the classifier's input is [pooled state, summary] (with
    ``bins`` segments); a row's logits do not depend on its batch (block-sparse attention
    included); save/load keep it; it needs base features, and segments need it."""
    torch.manual_seed(0)
    model = head(
        config(tokenizer),
        2,
        base_pooling=True,
        base_pooling_bins=bins,
        base_channels=8,
        max_piece_bp=64,
    )
    model.bases.set_vocabulary(tokenizer.pieces)
    torch.nn.init.normal_(model.bases.projection.weight)
    model.eval()
    size = 16 * bins
    assert model.head.classifier.in_features == model.config.hidden_size + size
    short = tokenizer(["TATAAAGGC"])
    batch = tokenizer(["TATAAAGGC", "ACGTTGCA" * 40])  # long enough for block-sparse attention
    with torch.no_grad():
        alone = model(**short).logits
        together = model(**batch).logits
        # the summary's weights move the logits: the head does read it
        model.head.classifier.weight[:, -size:].add_(1.0)
        moved = model(**short).logits
        model.head.classifier.weight[:, -size:].sub_(1.0)
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(moved, alone)
    model.save_pretrained(tmp_path)
    loaded = head.from_pretrained(tmp_path).eval()
    assert loaded.head_args()["base_pooling"] is True
    assert loaded.head_args()["base_pooling_bins"] == bins
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, together)
    with pytest.raises(ConfigError, match="base_pooling needs base features"):
        head(config(tokenizer), 2, base_pooling=True)
    bases = {"base_channels": 8, "max_piece_bp": 64}
    with pytest.raises(ConfigError, match="base_pooling_bins=5 segments the summary"):
        head(config(tokenizer), 2, base_pooling_bins=5, **bases)
    with pytest.raises(ConfigError, match="base_pooling_bins must be a positive integer"):
        head(config(tokenizer), 2, base_pooling=True, base_pooling_bins=0, **bases)


def test_a_folder_saved_before_segments_loads_with_one(tokenizer, tmp_path):
    """Model folders written before ``base_pooling_bins`` existed have no such head
    argument: they load with the one segment they were trained with."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = BigBirdForSequenceClassification(
        config(tokenizer), 2, base_pooling=True, base_channels=8, max_piece_bp=64
    )
    model.bases.set_vocabulary(tokenizer.pieces)
    model.eval().save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    head_args = json.loads(metadata["head_args"])
    del head_args["base_pooling_bins"]
    save_file(load_file(path), path, {**metadata, "head_args": json.dumps(head_args)})
    loaded = BigBirdForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.head_args() == model.head_args()
    batch = tokenizer(["TATAAAGGC", "ACGTTGCA" * 40])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)


def test_save_and_load_keep_the_pieces_and_the_outputs(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = BigBirdForTokenClassification(config(tokenizer), 2, base_channels=8, max_piece_bp=64)
    model.bases.set_vocabulary(tokenizer.pieces)
    torch.nn.init.normal_(model.bases.projection.weight)
    model.eval().save_pretrained(tmp_path)
    loaded = BigBirdForTokenClassification.from_pretrained(tmp_path).eval()
    assert loaded.head_args() == {"num_labels": 2, "base_channels": 8, "max_piece_bp": 64}
    torch.testing.assert_close(loaded.bases.piece_lengths, model.bases.piece_lengths)
    batch = tokenizer(["ACGTNNACGGT", "TTGACA"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)
