"""BigBirdConfig: presets, validation, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import pydoc
import subprocess
import sys

import pytest

from dnabird.docstrings import field_docs
from dnabird.errors import ConfigError
from dnabird.model.config import PRESETS, BigBirdConfig


def test_base_preset_is_the_papers_genomics_model():
    config = BigBirdConfig.preset("base")
    assert (
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
        config.max_position_embeddings,
    ) == (12, 768, 12, 3072, 4096)
    # Paper Table 8: block 64, 2 global blocks (ITC), window 3, 3 random blocks.
    assert (config.block_size, config.num_global_blocks, config.num_window_blocks) == (64, 2, 3)
    assert config.num_random_blocks == 3 and config.global_mode == "itc"
    assert config.head_dim == 64


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_overrides_apply(name):
    config = BigBirdConfig.preset(name, hidden_dropout_prob=0.0, random_seed=7)
    assert config.hidden_dropout_prob == 0.0 and config.random_seed == 7
    assert config.hidden_size % config.num_attention_heads == 0


def test_num_global_tokens_only_for_etc():
    itc = BigBirdConfig.preset("tiny")
    etc = BigBirdConfig.preset("tiny", global_mode="etc", num_global_blocks=3)
    assert itc.num_global_tokens == 0
    assert etc.num_global_tokens == 3 * etc.block_size


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 65}, "not divisible"),
        ({"hidden_size": True}, "hidden_size must be a positive integer"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob"),
        ({"attention_probs_dropout_prob": -0.1}, "attention_probs_dropout_prob"),
        ({"num_window_blocks": 2}, "odd"),
        ({"num_random_blocks": -1}, "num_random_blocks"),
        ({"num_random_blocks": 1.5}, "num_random_blocks must be an integer"),
        ({"random_seed": -3}, "random_seed"),
        ({"pad_token_id": 512}, "pad_token_id"),
        ({"attention_type": "sparse"}, "attention_type must be one of"),
        ({"attention_backend": "triton"}, "attention_backend must be one of"),
        ({"global_mode": "both"}, "global_mode must be one of"),
        ({"random_mode": "always"}, "random_mode must be one of"),
        ({"hidden_act": "swish"}, "hidden_act must be one of"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        # Wrong types (e.g. strings in a hand-edited config.json) were TypeError tracebacks.
        ({"hidden_dropout_prob": "0.1"}, "hidden_dropout_prob must be a finite number"),
        ({"layer_norm_eps": None}, "layer_norm_eps must be a finite number"),
        ({"initializer_range": float("inf")}, "initializer_range must be a finite number"),
        ({"hidden_act": ["gelu"]}, "hidden_act must be a string"),
        ({"attention_type": 1}, "attention_type must be a string"),
    ],
)
def test_invalid_fields_raise_one_line_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        BigBirdConfig.preset("tiny", **overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_unknown_fields_are_errors():
    with pytest.raises(ConfigError, match="unknown model preset"):
        BigBirdConfig.preset("huge")
    with pytest.raises(ConfigError, match="unknown field.*hiden_size"):
        BigBirdConfig.from_dict({"hiden_size": 64})
    with pytest.raises(ConfigError, match="expected a mapping"):
        BigBirdConfig.from_dict([1, 2])


def test_json_round_trip_to_file_and_folder(tmp_path):
    config = BigBirdConfig.preset("tiny", global_mode="etc", random_mode="per_step")
    config.save(tmp_path)  # a folder: writes config.json
    assert BigBirdConfig.load(tmp_path) == config
    config.save(tmp_path / "other.json")
    assert BigBirdConfig.load(tmp_path / "other.json") == config
    assert json.loads((tmp_path / "config.json").read_text())["global_mode"] == "etc"
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "other.json"}  # no temp files


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config not found"):
        BigBirdConfig.load(tmp_path)
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{bad}: not valid JSON"):
        BigBirdConfig.load(bad)


@pytest.mark.parametrize(
    "overrides",
    [{"global_mode": "etc"}, {"num_global_blocks": 4}, {"num_window_blocks": 5}],
)
def test_random_mode_hf_needs_transformers_layout(overrides):
    with pytest.raises(ConfigError, match="random_mode hf needs transformers' layout"):
        BigBirdConfig.preset("tiny", random_mode="hf", **overrides)


def test_full_attention_max_tokens_is_transformers_rule_in_hf_mode_only():
    # transformers: block_sparse falls back to full attention when
    # seq_length <= (5 + 2 * num_random_blocks) * block_size.
    assert BigBirdConfig.preset("tiny", random_mode="hf").full_attention_max_tokens == 11 * 16
    hf = BigBirdConfig.preset("tiny", random_mode="hf", num_random_blocks=0, block_size=64)
    assert hf.full_attention_max_tokens == 5 * 64
    assert BigBirdConfig.preset("tiny").full_attention_max_tokens == 0
    assert BigBirdConfig.preset("tiny", random_mode="per_step").full_attention_max_tokens == 0


def normalised(text: str) -> str:
    """Words of ``text`` joined by single spaces, without pydoc's `` |  `` line margins."""
    return " ".join(" ".join(line.lstrip(" |") for line in text.splitlines()).split())


def test_help_shows_every_field_with_its_docstring():
    """help()/pydoc show each field's attribute docstring (Python drops those at run time;
    the class docstring now carries them). Checked against hand-copied texts and for every
    field."""
    rendered = normalised(pydoc.render_doc(BigBirdConfig, renderer=pydoc.plaintext))
    assert "block_size (int, default 64) Tokens per attention block (b)." in rendered
    assert (
        "hidden_dropout_prob (float, default 0.1) Dropout on embeddings and on each "
        "sub-layer's output, in [0, 1)." in rendered
    )
    docs = field_docs(BigBirdConfig)
    for field in dataclasses.fields(BigBirdConfig):
        assert docs.get(field.name), f"{field.name} has no docstring"
        assert f"{field.name} ({field.type}, default {field.default!r})" in rendered
        assert normalised(docs[field.name]) in rendered, field.name


def test_configs_are_read_without_torch():
    """dnabird.model loads names on first use: reading and validating a model config needs
    no torch (a run config is checked before any work, and quickly)."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from dnabird.model import PRESETS, BigBirdConfig\n"
        "import dnabird.model.config\n"
        "print(BigBirdConfig.preset('tiny', random_mode='hf').full_attention_max_tokens)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "176"
