"""Base-resolution features of each token, added to its embedding (``base_channels``).

A token id names a piece of 1 to 64 bp, so the bases of a tokenised sequence can be
spelled back from the ids alone. :class:`BaseFeatures` does that inside the model and
gives every token what a token embedding cannot: the bases around it, read at 1 bp
resolution across token boundaries, and its exact bp offset in the sequence (a motif's
position in bp, which the token index only approximates).

For ``input_ids [B, L]``:

1. the pieces' bases are laid end to end: one-hot ``[B, 4, T]`` (``T`` the longest row in
   bp; N, and the bp past a row's end, are all-zero columns);
2. two convolutions (15 then 9 bp wide, ``channels`` each, GELU; zero past the row's end)
   read them;
3. each token takes the mean of the outputs over its own bp span (special tokens, which
   span no bp, take 0), and sin/cos features of its start offset in bp are appended;
4. a linear map to the hidden size, **initialised to zero**, so a model gains the features
   without changing its outputs before training (a pretrained encoder starts where it was).

The encoder adds the result to the token embeddings before their LayerNorm
(``BigBirdEncoder.forward(base_features=...)``). A row's features depend on its own ids
only (not on the batch's other rows or on padding). They are for labelled heads: in
masked-LM pretraining the offsets would give away each masked token's length.

:meth:`BaseFeatures.read` also returns a summary of each row: the maximum and the mean of
every channel of the second convolution over the row's bases, or over each of ``bins``
consecutive segments of them. A classification head can read it beside its pooled hidden
state (``base_pooling``): a motif scanner's view of the sequence that does not pass
through the tokens, and with segments, where along the sequence each motif sits.

The pieces themselves (``piece_codes``, ``piece_lengths``) are buffers saved with the
weights: :meth:`BaseFeatures.set_vocabulary` fills them from the tokenizer once, when the
module is new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dnabird.errors import ConfigError

#: Code of each base in ``piece_codes``; anything else (N, the end of a piece) is 4.
BASE_CODES = {"A": 0, "C": 1, "G": 2, "T": 3}
NO_BASE = 4
#: Sin/cos pairs of the bp offset; wavelengths from 2*pi bp up to 2*pi * 1,000 bp.
OFFSET_FREQUENCIES = 16
LONGEST_WAVELENGTH_BP = 1000.0
#: Widths of the two convolutions.
FIRST_KERNEL_BP, SECOND_KERNEL_BP = 15, 9


class BaseFeatures(nn.Module):
    """``input_ids [B, L]`` -> per-token features ``[B, L, hidden_size]``; see the module
    docstring. ``vocab_size`` ids, pieces up to ``max_piece_bp`` long."""

    def __init__(
        self,
        vocab_size: int,
        max_piece_bp: int,
        hidden_size: int,
        channels: int = 128,
    ) -> None:
        super().__init__()
        for name, value in (("max_piece_bp", max_piece_bp), ("base_channels", channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.register_buffer(
            "piece_codes", torch.full((vocab_size, max_piece_bp), NO_BASE, dtype=torch.uint8)
        )  # (V, P)
        self.register_buffer("piece_lengths", torch.zeros(vocab_size, dtype=torch.long))  # (V,)
        self.channels = channels
        self.convolutions = nn.ModuleList(
            [
                nn.Conv1d(4, channels, FIRST_KERNEL_BP, padding=FIRST_KERNEL_BP // 2),
                nn.Conv1d(channels, channels, SECOND_KERNEL_BP, padding=SECOND_KERNEL_BP // 2),
            ]
        )
        self.projection = nn.Linear(channels + 2 * OFFSET_FREQUENCIES, hidden_size)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)
        steps = torch.arange(OFFSET_FREQUENCIES) / OFFSET_FREQUENCIES
        frequencies = torch.exp(-math.log(LONGEST_WAVELENGTH_BP) * steps)
        self.register_buffer("frequencies", frequencies, persistent=False)  # (F,) radians/bp
        self.vocabulary_set = False
        self.register_load_state_dict_post_hook(_mark_vocabulary_set)

    def set_vocabulary(self, pieces: Sequence[str]) -> None:
        """Spell every id: ``pieces[i]`` is the text of id ``i`` (a tokenizer's ``pieces``);
        special tokens (``[CLS]``, ...) span no bases."""
        vocab_size, max_bp = self.piece_codes.shape
        if len(pieces) != vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(pieces)} pieces but the model {vocab_size} token ids"
            )
        codes = torch.full((vocab_size, max_bp), NO_BASE, dtype=torch.uint8)
        lengths = torch.zeros(vocab_size, dtype=torch.long)
        for i, piece in enumerate(pieces):
            if piece.startswith("["):
                continue
            if len(piece) > max_bp:
                raise ConfigError(f"piece {i} is {len(piece)} bp, longer than {max_bp} bp")
            codes[i, : len(piece)] = torch.tensor([BASE_CODES.get(b, NO_BASE) for b in piece])
            lengths[i] = len(piece)
        self.piece_codes.copy_(codes)
        self.piece_lengths.copy_(lengths)
        self.vocabulary_set = True

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids [B, L]`` -> per-token features ``[B, L, hidden_size]`` (no summary
        computed)."""
        return self._tokens_and_convolved(input_ids)[0]

    def read(self, input_ids: torch.Tensor, bins: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids [B, L]`` -> ``(per-token features [B, L, hidden_size], summary
        [B, 2 * channels * bins])``. The summary holds, per channel of the second
        convolution, its maximum and its mean over each of ``bins`` consecutive segments of
        the row's bases (:func:`segment_bounds`; 0 for a segment without bases): what a
        motif scanner reports, per segment of the sequence (``model.base_pooling`` hands it
        to the classification head). Laid out as ``[maxima [channels, bins], means
        [channels, bins]]`` flattened, so ``bins=1`` is ``[maxima, means]``."""
        tokens, h, row_bp = self._tokens_and_convolved(input_ids)
        return tokens, _summary(h, segment_bounds(row_bp, bins))

    def _tokens_and_convolved(
        self, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids [B, L]`` -> ``(per-token features [B, L, hidden_size], the second
        convolution's output [B, channels, T] (0 past each row's end), bp per row [B])``."""
        if not self.vocabulary_set:
            raise ConfigError(
                "the base features have no vocabulary: call set_vocabulary(tokenizer.pieces) "
                "on a new model, or load a saved one"
            )
        lengths = self.piece_lengths[input_ids]  # (B, L) bp per token
        ends = lengths.cumsum(dim=1)  # (B, L)
        starts = ends - lengths
        one_hot = self._one_hot_bases(input_ids, lengths, starts)  # (B, 4, T)
        # bp past a row's end stay zero after every convolution, as if the row were alone
        inside = torch.arange(one_hot.shape[2], device=input_ids.device) < ends[:, -1:]
        h = one_hot.to(self.convolutions[0].weight.dtype)
        for convolution in self.convolutions:
            h = F.gelu(convolution(h)) * inside[:, None, :]  # (B, channels, T)
        # Mean over each token's span [start, end) from running sums (float32: exact enough
        # over 10^5 bp), an empty span giving 0.
        sums = F.pad(h.float().transpose(1, 2).cumsum(dim=1), (0, 0, 1, 0))  # (B, T + 1, ch)

        def at(offsets: torch.Tensor) -> torch.Tensor:
            return sums.gather(1, offsets[..., None].expand(-1, -1, sums.shape[-1]))

        pooled = (at(ends) - at(starts)) / lengths.clamp_min(1)[..., None]  # (B, L, ch)
        angles = starts[..., None].float() * self.frequencies  # (B, L, F)
        features = torch.cat([pooled, torch.sin(angles), torch.cos(angles)], dim=-1)
        tokens = self.projection(features.to(self.projection.weight.dtype))  # (B, L, hidden)
        return tokens, h, ends[:, -1]

    def _one_hot_bases(
        self, input_ids: torch.Tensor, lengths: torch.Tensor, starts: torch.Tensor
    ) -> torch.Tensor:
        """The bases the ids spell, one-hot ``[B, 4, T]`` float32 (``T``: the longest row in
        bp, at least 1; N and the bp past a row's end are zero columns)."""
        B = input_ids.shape[0]
        T = max(int(lengths.sum(dim=1).max()), 1) if B else 1
        within = torch.arange(self.piece_codes.shape[1], device=input_ids.device)  # (P,)
        real = within < lengths[..., None]  # (B, L, P)
        rows = torch.arange(B, device=input_ids.device)[:, None, None]
        where = (rows * T + starts[..., None] + within)[real]  # flat bp index of each base
        codes = torch.full((B * T,), NO_BASE, dtype=torch.long, device=input_ids.device)
        codes[where] = self.piece_codes[input_ids][real].long()
        return F.one_hot(codes.view(B, T), NO_BASE + 1)[..., :NO_BASE].transpose(1, 2).float()


def check_bins(bins: int) -> None:
    """Raise ConfigError unless ``bins`` (segments of the summary) is a positive integer."""
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ConfigError(f"base_pooling_bins must be a positive integer, got {bins!r}")


def segment_bounds(row_bp: torch.Tensor, bins: int) -> torch.Tensor:
    """Where each row's ``row_bp [B]`` bases are cut into ``bins`` consecutive segments,
    with the boundaries of ``np.array_split`` (the first ``row_bp % bins`` segments one bp
    longer; a row shorter than ``bins`` leaves the last ones empty): ``[B, bins + 1]``
    (long; segment k is bp ``[bounds[:, k], bounds[:, k + 1])``, 0-based half-open)."""
    check_bins(bins)
    k = torch.arange(bins + 1, device=row_bp.device)  # (bins + 1,)
    short, extra = (row_bp // bins)[:, None], (row_bp % bins)[:, None]  # (B, 1) each
    return k * short + torch.minimum(k, extra)


def _summary(h: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Maximum and mean of ``h [B, ch, T]`` over each segment ``bounds [B, bins + 1]``
    gives -> ``[B, 2 * ch * bins]`` (float32, laid out ``[maxima [ch, bins], means [ch,
    bins]]``; zeros for an empty segment). Only the bp inside the segments are read, so a
    row's summary does not depend on the longest row of its batch."""
    h = h.float()
    B, ch, T = h.shape
    bins = bounds.shape[1] - 1
    lengths = bounds.diff(dim=1)  # (B, bins)
    width = max(int(lengths.max()), 1) if B else 1
    within = torch.arange(width, device=h.device)  # (width,) bp within a segment
    real = within < lengths[..., None]  # (B, bins, width)
    # each segment's bp side by side, padded with column T (a zero column added to h)
    where = torch.where(real, bounds[:, :-1, None] + within, T).view(B, 1, bins * width)
    values = F.pad(h, (0, 1)).gather(2, where.expand(B, ch, -1)).view(B, ch, bins, width)
    largest = values.masked_fill(~real[:, None], float("-inf")).amax(dim=3)  # (B, ch, bins)
    largest = largest.masked_fill(lengths[:, None] == 0, 0.0)
    means = values.sum(dim=3) / lengths.clamp_min(1)[:, None]  # the padding adds 0
    return torch.cat([largest, means], dim=1).flatten(1)


def _mark_vocabulary_set(module: nn.Module, incompatible_keys: object) -> None:
    """Loading saved weights brings the pieces with them."""
    module.vocabulary_set = True
