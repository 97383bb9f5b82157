"""Model folders: saving, verifying and loading a model with its config and tokenizer.

Two levels:

- ``save_pretrained`` / ``from_pretrained`` (:mod:`dnabird.model.heads`, built on
  :func:`save_weights` / :func:`load_weights`): ``config.json`` + ``model.safetensors``.
  The safetensors metadata records which head class wrote the weights and that head's
  constructor arguments (e.g. ``num_labels``) as JSON, so a folder knows what it holds.
- An exported *model folder* (:func:`write_model_folder`; what ``pretrain`` and
  ``finetune`` export) adds ``tokenizer/`` and a ``manifest.json`` that lists every file
  with its size and sha256. :func:`verify_model_folder` checks them;
  :func:`load_model` verifies, reads the stored head and returns that model;
  :func:`load_tokenizer` returns the folder's tokenizer.

Layout of an exported model folder::

    model/
      config.json          BigBirdConfig
      model.safetensors    weights; metadata: head class and its arguments
      tokenizer/           DNATokenizer.save_pretrained (when a tokenizer was given)
      manifest.json        the exporter's manifest + "files": {path: {"bytes", "sha256"}}

Weights are never pickled; nothing here imports Lightning or sentencepiece until asked
for a tokenizer.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dnabird.errors import ConfigError, InputError
from dnabird.files import atomic_path, sha256_file
from dnabird.manifest import MANIFEST_NAME, read_manifest, write_manifest
from dnabird.model.config import CONFIG_NAME, INFERENCE_PRECISIONS, BigBirdConfig

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from dnabird.model.heads import BigBirdPreTrainedModel
    from dnabird.tokenizer import DNATokenizer

WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


# ---------------------------------------------------------------------- weights level
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

    Returns ``(config, state_dict, head, head_args)``; tensors are on the CPU; ``head`` is
    ``""`` when the file does not record one.
    """
    directory = _existing_folder(directory)
    config = BigBirdConfig.load(directory / CONFIG_NAME)
    path = directory / WEIGHTS_NAME
    metadata = _weights_metadata(path)
    try:
        state_dict = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        head_args = json.loads(metadata.get("head_args", "{}"))
    except json.JSONDecodeError:
        raise InputError(f"{path}: malformed head_args metadata") from None
    return config, state_dict, metadata.get("head", ""), head_args


def stored_head(folder: str | os.PathLike) -> str:
    """Name of the head class that wrote ``folder/model.safetensors`` (reads the header
    only); InputError when the file does not record one."""
    path = _existing_folder(folder) / WEIGHTS_NAME
    head = _weights_metadata(path).get("head", "")
    if not head:
        raise InputError(f"{path}: does not record its head class; name the head to load")
    return head


def _weights_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InputError(f"{path}: model weights not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: not a readable safetensors file ({err})") from None


def _existing_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "not found"
        raise InputError(f"{folder}: model folder {what}")
    return folder


# ---------------------------------------------------------------------- model folders
def write_model_folder(
    folder: str | os.PathLike,
    model: BigBirdPreTrainedModel,
    manifest: dict[str, Any],
    *,
    tokenizer: DNATokenizer | None = None,
) -> Path:
    """Write a self-describing model folder and return its path.

    ``config.json`` + ``model.safetensors`` (``model.save_pretrained``), ``tokenizer/``
    (``tokenizer.save_pretrained``) when given, then ``manifest.json`` = ``manifest`` plus
    ``"files"``: ``{relative POSIX path: {"bytes", "sha256"}}`` of every file written. The
    folder is built under a temporary sibling name and renamed into place when complete;
    an existing folder is replaced only then, and only if it is empty or a model folder
    (holds ``manifest.json`` or ``config.json``), never a folder of other files.
    """
    folder = Path(folder)
    if folder.exists() and not _replaceable(folder):
        raise InputError(
            f"{folder}: exists and is not a model folder; choose a new or empty folder"
        )
    staging = folder.absolute().with_name(f".{folder.absolute().name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging / TOKENIZER_DIR)
        files = {
            path.relative_to(staging).as_posix(): {
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        write_manifest(staging, {**manifest, "files": files})
        _swap_into_place(staging, folder)
    except OSError as err:
        reason = err.strerror or str(err)
        raise InputError(f"{folder}: cannot write the model folder ({reason})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _replaceable(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    names = {entry.name for entry in folder.iterdir()}
    return not names or bool(names & {MANIFEST_NAME, CONFIG_NAME})


def _swap_into_place(staging: Path, folder: Path) -> None:
    """Rename ``staging`` to ``folder``; an existing ``folder`` is moved aside first (and
    back if the rename fails) and removed after it (a folder cannot replace a non-empty
    folder in one rename)."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    old = staging.with_name(staging.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(folder, old)
    try:
        os.replace(staging, folder)
    except OSError:
        os.replace(old, folder)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def verify_model_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """Check every file listed in ``folder/manifest.json`` (size, then sha256) and return
    the manifest; InputError naming the first file that is missing, truncated or changed.
    The manifest must list ``config.json`` and ``model.safetensors``."""
    folder = _existing_folder(folder)
    manifest = read_manifest(folder)
    files = _listed_files(folder, manifest)
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if required not in files:
            raise InputError(
                f"{folder / MANIFEST_NAME}: does not list {required}; export the model again"
            )
    _check_files(folder, files)
    return manifest


def _listed_files(folder: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's ``files`` entries, checked for shape; paths stay inside ``folder``."""
    where = folder / MANIFEST_NAME
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InputError(
            f"{where}: lists no files with checksums (not an exported model folder, or "
            "exported by an older dnabird); export the model again"
        )
    for name, entry in files.items():
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or ".." in parts or not parts:
            raise InputError(f"{where}: file entry {name!r} points outside the folder")
        if not isinstance(entry, dict) or not {"bytes", "sha256"} <= entry.keys():
            raise InputError(f"{where}: file entry {name!r} lacks bytes or sha256")
    return files


def _check_files(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise InputError(
                f"{path}: listed in {MANIFEST_NAME} but missing; copy the folder again"
            )
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise InputError(
                f"{path}: {size} bytes, {MANIFEST_NAME} says {entry['bytes']} (truncated or "
                "replaced); copy or export the model folder again"
            )
        if sha256_file(path) != entry["sha256"]:
            raise InputError(
                f"{path}: sha256 differs from {MANIFEST_NAME} (corrupt or replaced); copy or "
                "export the model folder again"
            )


def load_model(
    folder: str | os.PathLike,
    head: str | type[BigBirdPreTrainedModel] | None = None,
    *,
    verify: bool = True,
    new_head: bool = False,
    config_overrides: dict[str, Any] | None = None,
    **head_args: Any,
) -> BigBirdPreTrainedModel:
    """Open a model folder and return its model (weights on the CPU, train mode as built).

    ``head``: None (the head class stored in the weights' metadata), a head class or its
    name (e.g. ``"BigBirdForSequenceClassification"``). Asking for a different head than
    the one stored is a ConfigError unless ``new_head=True``: then only the encoder is
    loaded and the head is freshly initialised from ``head_args`` (deliberate, e.g. to
    fine-tune a classifier from a pretrained masked LM). ``verify``: check the files against
    the manifest's checksums first (:func:`verify_model_folder`) when the folder has a
    ``manifest.json``; a folder written by ``save_pretrained`` alone has none to check.
    ``config_overrides`` and ``head_args``: as in
    :meth:`~dnabird.model.heads.BigBirdPreTrainedModel.from_pretrained`.
    """
    folder = _existing_folder(folder)
    if verify and (folder / MANIFEST_NAME).is_file():
        verify_model_folder(folder)
    cls = head_class(stored_head(folder) if head is None else head)
    return cls.from_pretrained(
        folder, config_overrides=config_overrides, new_head=new_head, **head_args
    )


def head_class(head: str | type[BigBirdPreTrainedModel]) -> type[BigBirdPreTrainedModel]:
    """The task model class named ``head`` (one of :mod:`dnabird.model.heads`' public
    ``BigBirdFor*`` classes), or ``head`` itself when it is such a class."""
    from dnabird.model import heads

    known = {
        name: value
        for name, value in vars(heads).items()
        if isinstance(value, type)
        and issubclass(value, heads.BigBirdPreTrainedModel)
        and name.startswith("BigBirdFor")
    }
    if isinstance(head, type) and issubclass(head, heads.BigBirdPreTrainedModel):
        return head
    if head not in known:
        raise ConfigError(f"unknown model head {head!r}; choose from {', '.join(sorted(known))}")
    return known[head]


def load_tokenizer(folder: str | os.PathLike, *, verify: bool = True) -> DNATokenizer:
    """The :class:`~dnabird.tokenizer.DNATokenizer` saved in ``folder/tokenizer/``.

    ``verify``: check the tokenizer's files against ``manifest.json`` when there is one.
    InputError when the folder does not exist or holds no tokenizer.
    """
    from dnabird.tokenizer import DNATokenizer

    folder = _existing_folder(folder)
    if not (folder / TOKENIZER_DIR).is_dir():
        raise InputError(
            f"{folder}: model folder has no {TOKENIZER_DIR}/; export it with its tokenizer "
            "(write_model_folder(..., tokenizer=...))"
        )
    if verify and (folder / MANIFEST_NAME).is_file():
        files = _listed_files(folder, read_manifest(folder))
        _check_files(folder, {k: v for k, v in files.items() if k.startswith(TOKENIZER_DIR + "/")})
    return DNATokenizer.from_pretrained(folder / TOKENIZER_DIR)


def check_precision(precision: str) -> str:
    """``precision`` when it is one of
    :data:`~dnabird.model.config.INFERENCE_PRECISIONS`, else ConfigError."""
    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(
            f"unknown precision {precision!r}; choose from {', '.join(INFERENCE_PRECISIONS)}"
        )
    return precision


def inference_autocast(device: torch.device, precision: str = "32-true") -> torch.autocast:
    """The context a forward pass on ``device`` runs in at ``precision`` (one of
    :data:`~dnabird.model.config.INFERENCE_PRECISIONS`; ConfigError otherwise): autocast to
    bfloat16 (embeddings, layer norms, the residual stream and our attention kernel's softmax
    stay float32; on a CPU with AVX-512 BF16 the kernel multiplies in bfloat16 too), or
    disabled."""
    check_precision(precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


M = TypeVar("M", bound=torch.nn.Module)


def for_inference(model: M, device: torch.device, precision: str = "32-true") -> M:
    """``model`` on ``device`` in eval mode, ready to run under
    :func:`inference_autocast` at ``precision``: for ``bf16-mixed`` the linear layers' weights
    are stored in bfloat16 once (autocast would cast them again at every call; half their
    memory); embeddings and layer norms stay float32, so the model then runs only under that
    autocast."""
    check_precision(precision)
    model = model.to(device).eval()
    if precision == "bf16-mixed" and device.type == "cpu" and not cpu_has_bfloat16():
        _warn_emulated_bfloat16()
    if precision == "bf16-mixed":
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    return model


def cpu_has_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX tiles).
    Without them PyTorch emulates bfloat16 matrix products: on an AVX2-only AMD EPYC one
    feed-forward block took 1,231 ms in bfloat16 against 191 ms in float32
    (``benchmarks/RESULTS.md``). True when this PyTorch cannot tell."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    found = [getattr(torch.cpu, name, None) for name in probes]
    if not all(callable(probe) for probe in found):
        return True
    return any(probe() for probe in found)


@functools.cache
def _warn_emulated_bfloat16() -> None:
    """Once per process: bf16-mixed on a CPU without bfloat16 instructions."""
    log.warning(
        "this CPU has no bfloat16 matrix instructions (AVX-512 BF16 or AMX): bf16-mixed "
        "emulates them and runs several times slower than 32-true here"
    )


def resolve_device(device: str | None = None) -> torch.device:
    """The device to run a loaded model on: ``device`` (``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``) checked against this machine, or CUDA when available and else the CPU
    when None. ConfigError (one line) for an unknown name or a GPU this machine lacks."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use cpu")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return chosen
