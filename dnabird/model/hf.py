"""Weight conversion between dnabird and Hugging Face ``transformers`` BigBird.

``from_hf`` turns a ``transformers.BigBirdModel`` into a :class:`BigBirdEncoder` and a
``transformers.BigBirdForMaskedLM`` into a :class:`BigBirdForMaskedLM`; ``to_hf`` goes the
other way. The layouts match one to one (embeddings with dropout before LayerNorm, post-LN
layers, the masked-LM transform dense + activation + LayerNorm and a decoder tied to the
input embeddings with its own bias; positions 0..L-1, token types default 0).

Which attention transformers computes (``BigBirdModel.forward``, ``BigBirdBlockSparseAttention``
in ``modeling_big_bird.py``), and how dnabird matches it:

- ``original_full``: full attention; the same in both, at every length.
- ``block_sparse`` (2 global blocks, window 3, ``r`` random blocks, block size ``b``): inputs of
  at most ``(5 + 2r) * b`` tokens use full attention instead (transformers switches the
  model to ``original_full``, and keeps it there for every later call). In eval mode every
  random slot holds block 0 (``rand_attn`` is all zeros), so ordinary query blocks count the
  keys of block 0 ``1 + r`` times. In training mode it draws random blocks at every forward
  from NumPy's global generator seeded with the layer index (the same draw for a given length).

``from_hf`` gives models ``random_mode="hf"``, which computes the eval-mode rule above (short
inputs full, block 0 counted ``1 + r`` times) in evaluation *and* training, so an imported
checkpoint (e.g. GENA-LM's BigBird) scores exactly as transformers scores it in eval mode, at
every length. What still differs: transformers' training-mode random blocks (and its
block-sparse attention has no attention dropout), and its switch to full attention lasting
after the first short input (dnabird decides per input, as a freshly loaded model does).

``to_hf`` is exact (eval mode, every length) for ``original_full`` models and for
``random_mode="hf"`` models with random blocks. Our own block-sparse models (``random_mode``
``fixed`` or ``per_step``) attend to random blocks that transformers cannot use: it would put
block 0 in their place and use full attention for short inputs; and transformers cannot run
block-sparse attention without random blocks (``num_random_blocks=0``) above its
full-attention length. Outputs then agree only at the lengths :func:`hf_differences` states;
``to_hf`` refuses such models unless ``exact=False`` (then it warns with the same sentence).

What does not carry over: HF's pooler (``bert.pooler``, unused by the masked LM; dropped by
``from_hf``, left at HF's initialisation by ``to_hf``) and dnabird's ETC global tokens (HF
has none, so ETC models cannot be exported).

transformers is imported only inside these functions (``pip install dnabird[hf]``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from dnabird.errors import ConfigError
from dnabird.model.bigbird import BigBirdEncoder
from dnabird.model.config import ACTIVATIONS, HF_GLOBAL_BLOCKS, HF_WINDOW_BLOCKS, BigBirdConfig
from dnabird.model.heads import BigBirdForMaskedLM
from dnabird.model.patterns import block_grid, make_pattern


def config_from_hf(hf_config: Any, **overrides: Any) -> BigBirdConfig:
    """A dnabird config equivalent to a ``transformers.BigBirdConfig``: ITC, g=2, w=3 and
    ``random_mode="hf"`` (transformers' eval-mode attention); ``overrides`` win."""
    if getattr(hf_config, "rescale_embeddings", False):
        raise ConfigError("HF BigBird config: rescale_embeddings=True is not supported")
    if not getattr(hf_config, "use_bias", True):
        raise ConfigError("HF BigBird config: use_bias=False is not supported")
    if getattr(hf_config, "is_decoder", False):
        raise ConfigError("HF BigBird config: decoder models (is_decoder=True) are not supported")
    if hf_config.hidden_act not in ACTIVATIONS:
        raise ConfigError(
            f"HF BigBird config: hidden_act {hf_config.hidden_act!r} is not one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    fields = {
        name: getattr(hf_config, name)
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "layer_norm_eps",
            "initializer_range",
            "pad_token_id",
            "attention_type",
            "block_size",
            "num_random_blocks",
        )
    }
    fields.update(
        num_global_blocks=HF_GLOBAL_BLOCKS,
        num_window_blocks=HF_WINDOW_BLOCKS,
        global_mode="itc",
        random_mode="hf",
    )
    return BigBirdConfig(**{**fields, **overrides})


def config_to_hf(config: BigBirdConfig) -> Any:
    """A ``transformers.BigBirdConfig`` for a dnabird config (ITC only; block-sparse needs
    HF's fixed g=2, w=3)."""
    import transformers

    if config.global_mode != "itc":
        raise ConfigError("HF BigBird has no ETC global tokens; only global_mode itc converts")
    if config.attention_type == "block_sparse" and (
        config.num_global_blocks != HF_GLOBAL_BLOCKS or config.num_window_blocks != HF_WINDOW_BLOCKS
    ):
        raise ConfigError(
            f"HF BigBird block_sparse has {HF_GLOBAL_BLOCKS} global and {HF_WINDOW_BLOCKS} "
            f"window blocks; this model has {config.num_global_blocks} and "
            f"{config.num_window_blocks} (convert with attention_type original_full)"
        )
    fields = config.to_dict()
    for name in (  # dnabird-only fields
        "num_global_blocks",
        "num_window_blocks",
        "global_mode",
        "random_mode",
        "random_seed",
        "attention_backend",
    ):
        fields.pop(name)
    return transformers.BigBirdConfig(
        **fields,
        rescale_embeddings=False,
        use_bias=True,
        bos_token_id=None,
        eos_token_id=None,
        sep_token_id=None,
    )


def key_map(num_layers: int, masked_lm: bool) -> dict[str, str]:
    """dnabird parameter name -> HF parameter name.

    For a masked LM, names are those of the head models (``encoder.*``, ``head.*``) and
    HF's ``BigBirdForMaskedLM`` (``bert.*``, ``cls.*``); otherwise those of
    :class:`BigBirdEncoder` and HF's ``BigBirdModel``.
    """
    pairs = [
        ("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"),
        ("embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight"),
        ("embeddings.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight"),
        ("embeddings.layer_norm.weight", "embeddings.LayerNorm.weight"),
        ("embeddings.layer_norm.bias", "embeddings.LayerNorm.bias"),
    ]
    for i in range(num_layers):
        ours, theirs = f"layers.{i}.", f"encoder.layer.{i}."
        for param in ("weight", "bias"):
            pairs += [
                (f"{ours}attention.query.{param}", f"{theirs}attention.self.query.{param}"),
                (f"{ours}attention.key.{param}", f"{theirs}attention.self.key.{param}"),
                (f"{ours}attention.value.{param}", f"{theirs}attention.self.value.{param}"),
                (f"{ours}attention.output.{param}", f"{theirs}attention.output.dense.{param}"),
                (f"{ours}attention_norm.{param}", f"{theirs}attention.output.LayerNorm.{param}"),
                (f"{ours}intermediate.{param}", f"{theirs}intermediate.dense.{param}"),
                (f"{ours}output.{param}", f"{theirs}output.dense.{param}"),
                (f"{ours}output_norm.{param}", f"{theirs}output.LayerNorm.{param}"),
            ]
    if not masked_lm:
        return dict(pairs)
    mapping = {f"encoder.{ours}": f"bert.{theirs}" for ours, theirs in pairs}
    mapping.update(
        {
            "head.dense.weight": "cls.predictions.transform.dense.weight",
            "head.dense.bias": "cls.predictions.transform.dense.bias",
            "head.layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
            "head.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
            "head.bias": "cls.predictions.bias",
        }
    )
    return mapping


def hf_differences(config: BigBirdConfig) -> str | None:
    """Where transformers' BigBird (eval mode) computes other attention than a model with
    ``config``, as one sentence; None when the two agree at every length.

    transformers uses full attention for inputs of at most ``X = (5 + 2r) * b`` tokens and,
    above, block 0 in every random slot; without random blocks (``r = 0``) it cannot run
    above ``X`` at all (a reshape error). A ``random_mode="hf"`` model computes exactly that;
    another block-sparse model agrees below ``X`` only while its pattern covers every block
    pair (checked on the pattern of every layer) and never above ``X``.
    """
    if config.attention_type == "original_full":
        return None
    b, r = config.block_size, config.num_random_blocks
    full_up_to = min((5 + 2 * r) * b, config.max_position_embeddings)
    if config.random_mode == "hf":
        if r:
            return None
        covered = full_up_to
    else:
        covered = 0  # ours is full attention for inputs of up to `covered` tokens
        for num_blocks in range(1, math.ceil(full_up_to / b) + 1):
            layers = range(config.num_hidden_layers)
            if not all(block_grid(make_pattern(config, num_blocks, i)).all() for i in layers):
                break
            covered = min(num_blocks * b, full_up_to)
    if r:
        above = f"in eval mode, block 0 in place of this model's {r} random blocks above"
    else:
        above = "fails on longer inputs without random blocks (num_random_blocks 0)"
    return (
        f"transformers' BigBird uses full attention for inputs of at most {full_up_to} tokens "
        f"and {above} (this model: random_mode {config.random_mode!r}), so outputs agree "
        f"only for inputs of at most {covered} tokens"
    )


def from_hf(hf_model: Any, **config_overrides: Any) -> BigBirdEncoder | BigBirdForMaskedLM:
    """Convert ``transformers.BigBirdForMaskedLM`` -> :class:`BigBirdForMaskedLM`, or
    ``transformers.BigBirdModel`` -> :class:`BigBirdEncoder` (weights copied; eval mode
    follows the source). The model gets ``random_mode="hf"``, so in eval mode it computes
    what the source computes at every length (see the module docstring).
    ``config_overrides`` set dnabird-only fields (e.g. ``attention_backend``) or change
    ``attention_type`` or ``random_mode``."""
    import transformers

    masked_lm = isinstance(hf_model, transformers.BigBirdForMaskedLM)
    if not masked_lm and not isinstance(hf_model, transformers.BigBirdModel):
        raise ConfigError(
            f"from_hf converts BigBirdModel or BigBirdForMaskedLM, not {type(hf_model).__name__}"
        )
    config = config_from_hf(hf_model.config, **config_overrides)
    live = (hf_model.bert if masked_lm else hf_model).attention_type
    if live != hf_model.config.attention_type:
        warnings.warn(
            f"from_hf: this transformers model switched to {live} after a short input and "
            f"stays there; the converted model follows its config ({config.attention_type}, "
            f"full attention only up to {config.full_attention_max_tokens} tokens), as the "
            "checkpoint does when freshly loaded",
            UserWarning,
            stacklevel=2,
        )
    model = BigBirdForMaskedLM(config) if masked_lm else BigBirdEncoder(config)
    hf_state = hf_model.state_dict()
    names = key_map(config.num_hidden_layers, masked_lm)
    state = {ours: hf_state[theirs] for ours, theirs in names.items()}
    model.load_state_dict(state, strict=True)
    return model.train(hf_model.training)


def to_hf(model: BigBirdEncoder | BigBirdForMaskedLM, *, exact: bool = True) -> Any:
    """Convert :class:`BigBirdForMaskedLM` -> ``transformers.BigBirdForMaskedLM`` or
    :class:`BigBirdEncoder` -> ``transformers.BigBirdModel`` (without pooler).

    The converted model computes what ``model`` computes in eval mode at every length when
    :func:`hf_differences` finds nothing (``original_full``, or ``random_mode="hf"``).
    Otherwise ``exact=True`` refuses with a ConfigError saying where outputs would differ;
    ``exact=False`` converts anyway and warns the same.
    """
    import transformers

    masked_lm = isinstance(model, BigBirdForMaskedLM)
    if not masked_lm and not isinstance(model, BigBirdEncoder):
        raise ConfigError(
            f"to_hf converts BigBirdEncoder or BigBirdForMaskedLM, not {type(model).__name__}"
        )
    config = model.config
    hf_config = config_to_hf(config)
    differences = hf_differences(config)
    if differences and exact:
        raise ConfigError(
            f"to_hf: {differences}; convert a model with random_mode hf or attention_type "
            "original_full, or pass exact=False to convert anyway"
        )
    if differences:
        warnings.warn(f"to_hf: {differences}", UserWarning, stacklevel=2)
    if masked_lm:
        hf_model = transformers.BigBirdForMaskedLM(hf_config)
    else:
        hf_model = transformers.BigBirdModel(hf_config, add_pooling_layer=False)
    state = model.state_dict()
    names = key_map(config.num_hidden_layers, masked_lm)
    hf_state = {theirs: state[ours] for ours, theirs in names.items()}
    if masked_lm:  # the decoder is tied: input embeddings and the output bias
        embedding = state["encoder.embeddings.word_embeddings.weight"]
        hf_state["cls.predictions.decoder.weight"] = embedding
        hf_state["cls.predictions.decoder.bias"] = state["head.bias"]
    result = hf_model.load_state_dict(hf_state, strict=False)
    missing = [name for name in result.missing_keys if not name.startswith("bert.pooler.")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"to_hf: layouts differ (missing {missing}, unexpected {result.unexpected_keys})"
        )
    return hf_model.train(model.training)
