"""Saving and loading model folders: ``config.json`` + ``model.safetensors``.

A model folder holds the :class:`~dnabird.model.config.BigBirdConfig` as JSON and the
weights as safetensors (never pickle). The safetensors metadata records which head class
wrote the weights and that head's constructor arguments (e.g. ``num_labels``) as JSON, so
``from_pretrained`` can rebuild the same model, or load only the encoder of a checkpoint
written by another head (pretrained MLM -> fine-tuned classifier).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dnabird.errors import InputError
from dnabird.files import atomic_path
from dnabird.model.config import CONFIG_NAME, BigBirdConfig

WEIGHTS_NAME = "model.safetensors"


def save_weights(
    directory: str | os.PathLike,
    config: BigBirdConfig,
    state_dict: dict[str, torch.Tensor],
    head: str,
    head_args: dict[str, Any],
) -> None:
    """Write ``config.json`` and ``model.safetensors`` (tensors copied to CPU) into
    ``directory``, each atomically; ``head`` and ``head_args`` go into the metadata."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    metadata = {"format": "pt", "head": head, "head_args": json.dumps(head_args)}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    config.save(directory / CONFIG_NAME)


def load_weights(
    directory: str | os.PathLike,
) -> tuple[BigBirdConfig, dict[str, torch.Tensor], str, dict[str, Any]]:
    """Read a folder written by :func:`save_weights`.

    Returns ``(config, state_dict, head, head_args)``; tensors are on the CPU.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: model folder not found")
    config = BigBirdConfig.load(directory / CONFIG_NAME)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise InputError(f"{path}: model weights not found")
    try:
        state_dict = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: not a readable safetensors file ({err})") from None
    head = metadata.get("head", "")
    try:
        head_args = json.loads(metadata.get("head_args", "{}"))
    except json.JSONDecodeError:
        raise InputError(f"{path}: malformed head_args metadata") from None
    return config, state_dict, head, head_args
