"""Weight conversion between dnabird and Hugging Face ``transformers`` BigBird.

``from_hf`` turns a ``transformers.BigBirdModel`` into a :class:`BigBirdEncoder` and a
``transformers.BigBirdForMaskedLM`` into a :class:`BigBirdForMaskedLM`; ``to_hf`` goes the
other way. The layouts match one to one (embeddings with dropout before LayerNorm, post-LN
layers, the masked-LM transform dense + activation + LayerNorm and a decoder tied to the
input embeddings with its own bias; positions 0..L-1, token types default 0).

What does not carry over: HF's pooler (``bert.pooler``, unused by the masked LM; dropped by
``from_hf``, left at HF's initialisation by ``to_hf``); dnabird's ETC global tokens (HF has
none, so ETC models cannot be exported); and random blocks: HF BigBird draws its own random
blocks (and uses block 0 instead in eval mode), so block-sparse outputs agree exactly only
when no random blocks are used (``num_random_blocks=0``) or with ``original_full``.

transformers is imported only inside these functions (``pip install dnabird[hf]``).
"""

from __future__ import annotations

from typing import Any

from dnabird.errors import ConfigError
from dnabird.model.bigbird import ACTIVATIONS, BigBirdEncoder
from dnabird.model.config import BigBirdConfig
from dnabird.model.heads import BigBirdForMaskedLM

#: HF BigBird's fixed block-sparse layout: 2 global blocks (first, last), window of 3.
HF_GLOBAL_BLOCKS = 2
HF_WINDOW_BLOCKS = 3


def config_from_hf(hf_config: Any, **overrides: Any) -> BigBirdConfig:
    """A dnabird config equivalent to a ``transformers.BigBirdConfig`` (ITC, g=2, w=3)."""
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


def from_hf(hf_model: Any, **config_overrides: Any) -> BigBirdEncoder | BigBirdForMaskedLM:
    """Convert ``transformers.BigBirdForMaskedLM`` -> :class:`BigBirdForMaskedLM`, or
    ``transformers.BigBirdModel`` -> :class:`BigBirdEncoder` (weights copied; eval mode
    follows the source). ``config_overrides`` set dnabird-only fields (e.g.
    ``attention_backend``) or change ``attention_type``."""
    import transformers

    masked_lm = isinstance(hf_model, transformers.BigBirdForMaskedLM)
    if not masked_lm and not isinstance(hf_model, transformers.BigBirdModel):
        raise ConfigError(
            f"from_hf converts BigBirdModel or BigBirdForMaskedLM, not {type(hf_model).__name__}"
        )
    config = config_from_hf(hf_model.config, **config_overrides)
    model = BigBirdForMaskedLM(config) if masked_lm else BigBirdEncoder(config)
    hf_state = hf_model.state_dict()
    names = key_map(config.num_hidden_layers, masked_lm)
    state = {ours: hf_state[theirs] for ours, theirs in names.items()}
    model.load_state_dict(state, strict=True)
    return model.train(hf_model.training)


def to_hf(model: BigBirdEncoder | BigBirdForMaskedLM) -> Any:
    """Convert :class:`BigBirdForMaskedLM` -> ``transformers.BigBirdForMaskedLM`` or
    :class:`BigBirdEncoder` -> ``transformers.BigBirdModel`` (without pooler)."""
    import transformers

    masked_lm = isinstance(model, BigBirdForMaskedLM)
    if not masked_lm and not isinstance(model, BigBirdEncoder):
        raise ConfigError(
            f"to_hf converts BigBirdEncoder or BigBirdForMaskedLM, not {type(model).__name__}"
        )
    config = model.config
    hf_config = config_to_hf(config)
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
