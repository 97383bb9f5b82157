"""The BigBird encoder: embeddings -> N post-LN transformer layers -> hidden states.

Data path: ``input_ids [B, L]`` -> :class:`Embeddings` (token + learned absolute position +
token type, dropout, LayerNorm) -> (ETC only) learned global tokens prepended -> padding to a
block multiple (block-sparse only) -> :class:`EncoderLayer` x N -> hidden states cut back to
the ``L`` input positions.

Shapes: ``B`` batch, ``L`` input length in tokens, ``Lp`` length after prepending global
tokens and padding to a block multiple, ``C`` hidden size, ``H`` heads, ``D`` head width
(``C // H``), ``NB`` number of attention blocks (``Lp // block_size``).

Each layer is post-LN, as BERT and BigBird: ``x = LN(x + attn(x)); x = LN(x + ffn(x))``.
The attention *pattern* (which key blocks each query block sees) comes from
:func:`dnabird.model.patterns.make_pattern`, one per layer, cached per (NB, step); the
*kernel* that computes it is :func:`dnabird.model.attention.api.sparse_attention`.
Random blocks are fixed per layer and head and identical in training and evaluation;
with ``random_mode="per_step"`` they are redrawn for every training step given to
:meth:`BigBirdEncoder.set_pattern_step` (evaluation keeps the fixed draw).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from dnabird.errors import InputError
from dnabird.model.attention.api import sparse_attention
from dnabird.model.config import BigBirdConfig
from dnabird.model.patterns import BlockPattern, make_pattern

#: Activation module factories by ``config.hidden_act`` (names as in transformers' ACT2FN).
ACTIVATIONS = {
    "gelu": nn.GELU,  # exact (erf)
    "gelu_new": functools.partial(nn.GELU, approximate="tanh"),
    "relu": nn.ReLU,
}


class Embeddings(nn.Module):
    """Token + learned absolute position + token-type embeddings, then dropout and LayerNorm.

    Dropout comes before the LayerNorm, as in the original BigBird code and transformers'
    ``BigBirdEmbeddings``, so converted models behave identically in training too.
    """

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, C)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, C)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layer_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids, token_type_ids: [B, L]`` long -> ``[B, L, C]`` (positions 0..L-1)."""
        L = input_ids.shape[1]
        # Positions past the table (only block padding can reach them) reuse the last row;
        # padded tokens are never attended, so their embedding does not matter.
        positions = torch.arange(L, device=input_ids.device).clamp_max(
            self.position_embeddings.num_embeddings - 1
        )  # (L,)
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(positions)
        )  # (B, L, C)
        return self.layer_norm(self.dropout(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention: q/k/v projections, a kernel, the output projection.

    The kernel is full scaled-dot-product attention (``original_full``) or BigBird
    block-sparse attention over a :class:`~dnabird.model.patterns.BlockPattern`.
    """

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.backend = config.attention_backend
        self.dropout_p = config.attention_probs_dropout_prob
        self.query = nn.Linear(C, C)
        self.key = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.output = nn.Linear(C, C)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, pattern: BlockPattern | None
    ) -> torch.Tensor:
        """``x: [B, L, C]``, ``key_padding_mask: [B, L]`` bool (True = real; None = no
        padding) -> ``[B, L, C]``. ``pattern``: the layer's BlockPattern, None for full
        attention."""
        B, L, C = x.shape
        H = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            # Contiguous: every kernel gets the standard [B, H, L, D] layout.
            return t.view(B, L, H, C // H).transpose(1, 2).contiguous()  # (B, H, L, D)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        dropout_p = self.dropout_p if self.training else 0.0
        if pattern is None:
            bias = None
            if key_padding_mask is not None:
                # Additive (not boolean) so a row whose keys are all padding stays finite.
                bias = torch.zeros(B, 1, 1, L, dtype=q.dtype, device=q.device)
                bias.masked_fill_(~key_padding_mask[:, None, None, :], torch.finfo(q.dtype).min)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        else:
            y = sparse_attention(
                q, k, v, pattern, key_padding_mask, backend=self.backend, dropout_p=dropout_p
            )  # (B, H, L, D)
        y = y.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        return self.output(y)


class EncoderLayer(nn.Module):
    """One post-LN transformer layer: ``x = LN(x + attn(x)); x = LN(x + ffn(x))``."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(C, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]()
        self.output = nn.Linear(config.intermediate_size, C)
        self.output_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None, pattern: BlockPattern | None
    ) -> torch.Tensor:
        """``x: [B, L, C]``, ``key_padding_mask: [B, L]`` bool or None -> ``[B, L, C]``."""
        a = self.attention(x, key_padding_mask, pattern)  # (B, L, C)
        x = self.attention_norm(x + self.dropout(a))
        f = self.output(self.activation(self.intermediate(x)))  # (B, L, C)
        return self.output_norm(x + self.dropout(f))


class BigBirdEncoder(nn.Module):
    """Embeddings and encoder layers; ``forward`` returns the last hidden states ``[B, L, C]``.

    Inputs may have any length up to ``config.max_position_embeddings``; block-sparse
    attention pads them internally to a block multiple (padded keys are masked) and the
    output is cut back to the input length. With ``global_mode="etc"``,
    ``config.num_global_tokens`` learned global tokens are prepended internally and removed
    from the output, so position 0 of the output is always the first input token ([CLS]).
    """

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        # ETC: learned global tokens in front of the sequence; ITC has none (no unused
        # parameter, which distributed training would reject).
        self.global_tokens = (
            nn.Parameter(torch.empty(config.num_global_tokens, config.hidden_size))
            if config.num_global_tokens
            else None
        )
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.pattern_step: int | None = None
        self._patterns: dict[tuple[int, int | None], list[BlockPattern]] = {}
        self.apply(init_weights(config))

    def set_pattern_step(self, step: int) -> None:
        """Use the random blocks of training step ``step`` (``random_mode="per_step"`` only;
        a no-op for fixed patterns). Evaluation always uses the fixed draw."""
        if self.config.random_mode != "per_step":
            return
        self.pattern_step = int(step)
        # Patterns of earlier steps are never needed again.
        self._patterns = {key: value for key, value in self._patterns.items() if key[1] is None}

    def layer_patterns(self, num_blocks: int) -> list[BlockPattern]:
        """The BlockPattern of every layer for ``num_blocks`` blocks, cached (pure index math)."""
        step = self.pattern_step if self.training else None
        key = (num_blocks, step)
        if key not in self._patterns:
            self._patterns[key] = [
                make_pattern(self.config, num_blocks, layer, step)
                for layer in range(self.config.num_hidden_layers)
            ]
        return self._patterns[key]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``input_ids: [B, L]`` long; ``attention_mask: [B, L]`` (1 real, 0 pad; default all
        real); ``token_type_ids: [B, L]`` (default 0) -> hidden states ``[B, L, C]``."""
        config = self.config
        B, L = input_ids.shape
        if config.max_position_embeddings < L:
            raise InputError(
                f"input of {L} tokens is longer than max_position_embeddings "
                f"{config.max_position_embeddings}; cut it into windows"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        sparse = config.attention_type == "block_sparse"
        pad = (-L) % config.block_size if sparse else 0
        # Key padding mask (B, L), True = real token; None when nothing is padded, which
        # lets full attention use its fastest kernels.
        mask = None if attention_mask is None else attention_mask.bool()
        if pad:
            if mask is None:
                mask = torch.ones_like(input_ids, dtype=torch.bool)
            input_ids = F.pad(input_ids, (0, pad), value=config.pad_token_id)
            token_type_ids = F.pad(token_type_ids, (0, pad), value=0)
            mask = F.pad(mask, (0, pad), value=False)

        x = self.embeddings(input_ids, token_type_ids)  # (B, L + pad, C)
        G = config.num_global_tokens
        if G:
            x = torch.cat([self.global_tokens.expand(B, G, -1), x], dim=1)  # (B, Lp, C)
            if mask is not None:
                mask = F.pad(mask, (G, 0), value=True)  # (B, Lp)

        patterns = (
            self.layer_patterns(x.shape[1] // config.block_size)
            if sparse
            else [None] * len(self.layers)
        )
        for layer, pattern in zip(self.layers, patterns, strict=True):
            x = layer(x, mask, pattern)  # (B, Lp, C)
        return x[:, G : G + L]  # (B, L, C)


def init_weights(config: BigBirdConfig):
    """Return a function for ``module.apply`` that initialises weights as BERT does.

    Linear and embedding weights ~ normal(0, ``initializer_range``), biases zero, LayerNorm
    weight one and bias zero, the padding token's embedding row zero; ETC global tokens and
    head parameters follow the same rules.
    """
    std = config.initializer_range

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, BigBirdEncoder) and module.global_tokens is not None:
            nn.init.normal_(module.global_tokens, mean=0.0, std=std)

    return init
