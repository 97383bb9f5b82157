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

``random_mode="hf"`` computes what transformers' BigBird computes in eval mode: inputs of at
most ``config.full_attention_max_tokens`` tokens use full attention, and every random slot of
an ordinary query block holds block 0, which is global already, so its keys count
``1 + r`` times in that row's softmax. Counting a key ``m`` times is adding ``log m`` to its
score; :func:`weigh_first_block` does that with one extra head channel, so every kernel runs
it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dnabird.errors import InputError
from dnabird.model.attention.api import sparse_attention
from dnabird.model.config import ACTIVATIONS, BigBirdConfig
from dnabird.model.patterns import BlockPattern, make_pattern


def make_activation(name: str) -> nn.Module:
    """The activation module for ``config.hidden_act`` (table: :data:`config.ACTIVATIONS`)."""
    class_name, kwargs = ACTIVATIONS[name]
    return getattr(nn, class_name)(**kwargs)


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

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        added: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``input_ids, token_type_ids: [B, L]`` long -> ``[B, L, C]`` (positions 0..L-1);
        ``added: [B, L, C]`` (e.g. :class:`~dnabird.model.bases.BaseFeatures`) joins the sum
        before the LayerNorm."""
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
        if added is not None:
            x = x + added
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
        # random_mode "hf": ordinary query blocks count block 0's keys 1 + r times.
        self.first_block_log_weight = (
            math.log1p(config.num_random_blocks) if config.random_mode == "hf" else 0.0
        )
        self.query = nn.Linear(C, C)
        self.key = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.output = nn.Linear(C, C)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        pattern: BlockPattern | None,
        first_row: bool = False,
    ) -> torch.Tensor:
        """``x: [B, L, C]``, ``key_padding_mask: [B, L]`` bool (True = real; None = no
        padding) -> ``[B, L, C]``. ``pattern``: the layer's BlockPattern, None for full
        attention. ``first_row=True``: position 0's output alone, ``[B, 1, C]``, for a
        position 0 that attends to every key (full attention, or a global block of the
        pattern): one query row against all real keys, which is what the full computation
        gives that row."""
        if first_row:
            return self._first_row(x, key_padding_mask)
        B, L, C = x.shape
        H = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            # Contiguous: every kernel gets the standard [B, H, L, D] layout.
            return t.view(B, L, H, C // H).transpose(1, 2).contiguous()  # (B, H, L, D)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        dropout_p = self.dropout_p if self.training else 0.0
        if pattern is None:
            bias = padding_bias(key_padding_mask, q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        else:
            D = q.shape[-1]
            if self.first_block_log_weight:
                q, k, v = weigh_first_block(q, k, v, pattern, self.first_block_log_weight)
            y = sparse_attention(
                q, k, v, pattern, key_padding_mask, backend=self.backend, dropout_p=dropout_p
            )[..., :D]  # (B, H, L, D)
        y = y.transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        return self.output(y)

    def _first_row(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """``forward(first_row=True)``: ``x: [B, L, C]`` -> ``[B, 1, C]``."""
        B, L, C = x.shape
        H = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, t.shape[1], H, C // H).transpose(1, 2)  # (B, H, rows, D)

        q = heads(self.query(x[:, :1]))  # (B, H, 1, D)
        k, v = heads(self.key(x)), heads(self.value(x))  # (B, H, L, D)
        dropout_p = self.dropout_p if self.training else 0.0
        bias = padding_bias(key_padding_mask, q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        return self.output(y.transpose(1, 2).reshape(B, 1, C))


def padding_bias(key_padding_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive attention bias ``[B, 1, 1, L]`` from ``key_padding_mask: [B, L]`` (True =
    real): 0 on real keys, the dtype's minimum on padding; None without a mask. Additive (not
    boolean) so a row whose keys are all padding stays finite."""
    if key_padding_mask is None:
        return None
    B, L = key_padding_mask.shape
    bias = torch.zeros(B, 1, 1, L, dtype=dtype, device=key_padding_mask.device)
    return bias.masked_fill_(~key_padding_mask[:, None, None, :], torch.finfo(dtype).min)


def weigh_first_block(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockPattern, log_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Add ``log_weight`` to the scores of the keys of block 0 seen from ordinary (non-global)
    query blocks, through one extra channel: ``q, k, v: [B, H, L, D]`` (``L`` =
    ``pattern.seq_len``) -> ``[B, H, L, D + 1]``; keep the first ``D`` output channels.

    The kernels score ``q' . k' / sqrt(D + 1)``. With ``q' = [q * sqrt((D + 1) / D), a]``,
    ``k' = [k, c * sqrt(D + 1)]`` and ``v' = [v, 0]`` that is ``q . k / sqrt(D) + a * c``,
    where ``a`` is 1 on tokens of ordinary query blocks (0 on global ones) and ``c`` is
    ``log_weight`` on the tokens of block 0 (0 elsewhere). Adding ``log m`` to a key's score
    is counting that key ``m`` times in the softmax, which is what transformers' eval mode
    does (all its random slots hold block 0).
    """
    B, H, L, D = q.shape
    b = pattern.block_size
    rows = torch.zeros(L, dtype=q.dtype, device=q.device)  # a
    rows[pattern.num_front_global * b : (pattern.num_blocks - pattern.num_back_global) * b] = 1
    keys = torch.zeros(L, dtype=k.dtype, device=k.device)  # c * sqrt(D + 1)
    keys[:b] = log_weight * math.sqrt(D + 1)
    q = torch.cat([q * math.sqrt((D + 1) / D), rows.expand(B, H, L)[..., None]], dim=-1)
    k = torch.cat([k, keys.expand(B, H, L)[..., None]], dim=-1)
    return q, k, F.pad(v, (0, 1))  # each (B, H, L, D + 1)


class EncoderLayer(nn.Module):
    """One post-LN transformer layer: ``x = LN(x + attn(x)); x = LN(x + ffn(x))``."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(C, config.intermediate_size)
        self.activation = make_activation(config.hidden_act)
        self.output = nn.Linear(config.intermediate_size, C)
        self.output_norm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        pattern: BlockPattern | None,
        first_row: bool = False,
    ) -> torch.Tensor:
        """``x: [B, L, C]``, ``key_padding_mask: [B, L]`` bool or None -> ``[B, L, C]``, or
        ``[B, 1, C]`` with ``first_row=True`` (position 0 alone, when it attends to every
        key: see :meth:`SelfAttention.forward`; the other rows' work is skipped)."""
        a = self.attention(x, key_padding_mask, pattern, first_row)  # (B, R, C)
        x = self.attention_norm((x[:, :1] if first_row else x) + self.dropout(a))
        f = self.output(self.activation(self.intermediate(x)))  # (B, R, C)
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
        first_only: bool = False,
        base_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``input_ids: [B, L]`` long; ``attention_mask: [B, L]`` (1 real, 0 pad; default all
        real); ``token_type_ids: [B, L]`` (default 0) -> hidden states ``[B, L, C]``.
        ``base_features``: a module (or function) mapping the checked, block-padded ids
        ``[B, L']`` to ``[B, L', C]``, added to the token embeddings
        (:mod:`dnabird.model.bases`; the labelled heads own it).

        ``first_only=True`` returns position 0 alone, ``[B, 1, C]`` (what a [CLS] head
        reads): where position 0 attends to every key in the last layer (full attention, or
        ITC with a global first block) that layer computes only that row, a layer's worth of
        projections and feed-forward saved; otherwise every row is computed and cut."""
        config = self.config
        input_ids, token_type_ids = check_inputs(
            config, input_ids, attention_mask, token_type_ids, self.embeddings.word_embeddings
        )
        B, L = input_ids.shape
        # random_mode "hf": short inputs use full attention (transformers' rule).
        sparse = config.attention_type == "block_sparse" and config.full_attention_max_tokens < L
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

        added = None if base_features is None else base_features(input_ids)  # (B, L + pad, C)
        x = self.embeddings(input_ids, token_type_ids, added)  # (B, L + pad, C)
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
        last = len(self.layers) - 1
        first_row_sees_all = G == 0 and (patterns[last] is None or patterns[last].num_front_global)
        for index, (layer, pattern) in enumerate(zip(self.layers, patterns, strict=True)):
            if first_only and index == last and first_row_sees_all:
                return layer(x, mask, pattern, first_row=True)  # (B, 1, C)
            x = layer(x, mask, pattern)  # (B, Lp, C)
        return x[:, G : G + 1] if first_only else x[:, G : G + L]  # (B, 1 or L, C)


def describe_tensor(t: object) -> str:
    """``a tensor of dtype float32 and shape [2, 3]`` (or a non-tensor's type name)."""
    if not isinstance(t, torch.Tensor):
        return type(t).__name__
    return f"a tensor of dtype {str(t.dtype).removeprefix('torch.')} and shape {list(t.shape)}"


def check_inputs(
    config: BigBirdConfig,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    embedding: nn.Embedding,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refuse, with a one-line InputError, inputs the encoder would misread or crash on
    (wrong type, shape, dtype or device; ids outside the vocabulary; type ids outside
    ``type_vocab_size``; mask values other than 0/1; more tokens than positions). Returns
    ``(input_ids, token_type_ids)`` as int64 ``[B, L]`` (type ids default to 0). The value
    checks cost one host-device synchronisation."""

    def is_int(t: torch.Tensor) -> bool:
        return not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)

    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or not is_int(input_ids):
        raise InputError(
            f"input_ids must be a [batch, length] tensor of integer token ids; got "
            f"{describe_tensor(input_ids)}"
        )
    B, L = input_ids.shape
    if B == 0 or L == 0:
        raise InputError(f"input_ids is empty (shape {list(input_ids.shape)}); nothing to encode")
    if config.max_position_embeddings < L:
        raise InputError(
            f"input of {L} tokens is longer than max_position_embeddings "
            f"{config.max_position_embeddings}; cut it into windows"
        )
    device = embedding.weight.device
    for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (B, L):
            raise InputError(
                f"{name} must have the shape of input_ids [{B}, {L}]; got {describe_tensor(t)}"
            )
        if t.device != input_ids.device:
            raise InputError(f"{name} is on {t.device} but input_ids on {input_ids.device}")
    if token_type_ids is not None and not is_int(token_type_ids):
        raise InputError(
            f"token_type_ids must hold integers; got {describe_tensor(token_type_ids)}"
        )
    if input_ids.device != device:
        raise InputError(
            f"input_ids is on {input_ids.device} but the model on {device}; move the inputs "
            f"with .to({str(device)!r})"
        )
    V, T = config.vocab_size, config.type_vocab_size
    flags = [((input_ids < 0) | (input_ids >= V)).any()]
    if token_type_ids is not None:
        flags.append(((token_type_ids < 0) | (token_type_ids >= T)).any())
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        flags.append(((attention_mask != 0) & (attention_mask != 1)).any())
    bad_ids, *rest = torch.stack(flags).tolist()  # one synchronisation
    if bad_ids:
        low, high = int(input_ids.min()), int(input_ids.max())
        raise InputError(
            f"input_ids holds ids from {low} to {high}, outside the vocabulary 0..{V - 1}; "
            "use the tokenizer this model was trained with"
        )
    if token_type_ids is not None and rest.pop(0):
        raise InputError(f"token_type_ids must be in 0..{T - 1} (type_vocab_size {T})")
    if rest and rest.pop(0):
        raise InputError("attention_mask must hold 0 (padding) or 1 (real token) only")
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids, dtype=torch.int64)
    return input_ids.long(), token_type_ids.long()  # no copy when already int64


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
