"""Our compiled CPU kernel for the ordinary query blocks: forward and backward in float32, and
a bfloat16 forward on CPUs with AVX-512 BF16.

``sparse_rows_cpu.cpp`` (beside this file) is compiled on first use with the system C++
compiler into ``$DNABIRD_CACHE_DIR/kernels`` (default ``~/.cache/dnabird/kernels``), one
library per source, compiler flags, PyTorch version and CPU, and loaded through ``ctypes``. It
needs no PyTorch headers (builds in about a second): BLAS is the ``sgemm_`` that PyTorch's CPU
library exports and threads are the OpenMP runtime PyTorch has loaded. Where it cannot be
built (no compiler, no OpenMP, a PyTorch without that symbol) ``api.py`` runs another blocked
backend and one warning says why. ``DNABIRD_CPU_KERNEL=0`` turns the kernel off.

Both kernel functions take one argument, a :class:`KernelArgs` struct mirrored field for field
by ``struct SparseRowsArgs`` in the C++ source: the loader compares the two layouts (every
field's offset, the size and a version) once and refuses a library that differs, and the kernel
refuses a call whose struct has another size or version, so a field added, dropped or reordered
on one side only fails loudly instead of reading the wrong memory.

The bfloat16 forward (:func:`sparse_rows_forward` with bfloat16 tensors; inference, as under
``dnabird predict --precision bf16-mixed``) multiplies bfloat16 pairs into float32 with the
CPU's ``vdpbf16ps``, twice the float32 rate per instruction; scores and softmax stay float32.
It is compiled only where ``-march=native`` has AVX-512 BF16 (:func:`has_bfloat16`); elsewhere,
or with ``DNABIRD_CPU_KERNEL_BF16=0``, callers convert to float32 first.

Why a kernel of our own: per ordinary query block it reads each run of consecutive key blocks
(the window, neighbouring random blocks) straight from ``K`` and ``V`` with one ``sgemm`` per
run and no gather copy, with the block's scores kept in cache, and in the backward pass adds the
key and value gradients straight into place; PyTorch's fused CPU attention needs the keys
gathered first (and the gradients scattered back) and tiles 64-row queries by 32
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("sparse_rows_cpu.cpp")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fPIC", "-shared", "-std=c++17")
MAX_SLOTS = 64
"""Key blocks per query block the kernel supports (BigBird uses g + w + r, about 8)."""


def cache_dir() -> Path:
    """Folder for built kernels: ``$DNABIRD_CACHE_DIR/kernels`` or ``~/.cache/dnabird/kernels``;
    a per-user folder under the system temporary folder when that one cannot be written."""
    root = os.environ.get("DNABIRD_CACHE_DIR") or Path.home() / ".cache" / "dnabird"
    folder = Path(root) / "kernels"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    if os.access(folder, os.W_OK):
        return folder
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"dnabird-{user}" / "kernels"


def enabled(variable: str = "DNABIRD_CPU_KERNEL") -> bool:
    """False when the environment variable ``variable`` is set to 0 / false / no / off."""
    setting = os.environ.get(variable, "1").strip().lower()
    return setting not in {"0", "false", "no", "off"}


def _cpu_signature() -> str:
    """What the ``-march=native`` code depends on: the CPU's feature flags (Linux) or model."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_path(compiler: str) -> Path:
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        " ".join(FLAGS).encode(),
        compiler.encode(),
        torch.__version__.encode(),
        _cpu_signature().encode(),
    ):
        key.update(part)
    return cache_dir() / f"sparse_rows_cpu-{key.hexdigest()[:16]}.so"


def _build(compiler: str, target: Path) -> None:
    """Compile :data:`SOURCE` into ``target`` (written under a temporary name, then renamed)."""
    torch_lib = Path(torch.__file__).parent / "lib"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so.partial", dir=target.parent)
    os.close(fd)
    try:
        command = [
            compiler,
            *FLAGS,
            str(SOURCE),
            "-o",
            partial,
            f"-L{torch_lib}",
            "-ltorch_cpu",
            f"-Wl,-rpath,{torch_lib}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            first = next(
                (line for line in result.stderr.splitlines() if "error" in line),
                result.stderr.strip()[:200],
            )
            raise OSError(f"{compiler} failed: {first}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


class KernelArgs(ctypes.Structure):
    """The one argument of both kernel functions: ``struct SparseRowsArgs`` of
    ``sparse_rows_cpu.cpp``, field for field (:func:`_load` compares the two layouts once; the
    kernel refuses a call whose ``size`` or ``version`` differ from its own)."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("version", ctypes.c_uint64),
        *((name, ctypes.c_void_p) for name in ("q", "k", "v", "out", "lse")),
        *((name, ctypes.c_void_p) for name in ("grad_out", "grad_q", "grad_k", "grad_v")),
        *((name, ctypes.c_int64) for name in ("batch_heads", "heads", "length", "dim")),
        *((name, ctypes.c_int64) for name in ("block", "rows", "slots")),
        *((name, ctypes.c_void_p) for name in ("slot_block", "slot_valid", "key_keep")),
        ("scale", ctypes.c_float),
        ("threads", ctypes.c_int32),
    ]


ARGS_VERSION = 1
"""``kArgsVersion`` of ``sparse_rows_cpu.cpp``: raised with any change to the fields."""


def args_layout(struct: type[ctypes.Structure], version: int) -> str:
    """``name:offset,...,sizeof:N,version:V``: what ``dnabird_sparse_rows_args_layout`` of the
    built library returns when it agrees with ``struct``."""
    fields = "".join(f"{name}:{getattr(struct, name).offset}," for name, _ in struct._fields_)
    return f"{fields}sizeof:{ctypes.sizeof(struct)},version:{version}"


@functools.cache
def _load() -> ctypes.CDLL | str:
    """The loaded kernel library (built when needed), or why it cannot be had."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        return "no C++ compiler found (set CXX)"
    try:
        path = _library_path(compiler)
        if not path.exists():
            _build(compiler, path)
        library = ctypes.CDLL(str(path))
        functions = (
            library.dnabird_sparse_rows_forward_f32,
            library.dnabird_sparse_rows_backward_f32,
            library.dnabird_sparse_rows_forward_bf16,
        )
        layout = library.dnabird_sparse_rows_args_layout
        library.dnabird_sparse_rows_has_bf16.restype = ctypes.c_int
    except (OSError, AttributeError) as error:
        return str(error)
    layout.restype, layout.argtypes = ctypes.c_char_p, []
    theirs, ours = layout().decode(), args_layout(KernelArgs, ARGS_VERSION)
    if theirs != ours:
        pairs = itertools.zip_longest(theirs.split(","), ours.split(","), fillvalue="-")
        library_field, python_field = next((a, b) for a, b in pairs if a != b)
        return (
            f"{path.name} takes another argument struct than cpu_kernel.KernelArgs "
            f"(library {library_field}, Python {python_field})"
        )
    for function in functions:
        function.argtypes, function.restype = [ctypes.POINTER(KernelArgs)], ctypes.c_int
    return library


def status() -> str:
    """One line for ``dnabird env``: whether the kernel is used, and why not."""
    if not enabled():
        return "off (DNABIRD_CPU_KERNEL=0)"
    loaded = _load()
    if not isinstance(loaded, ctypes.CDLL):
        return f"unavailable: {loaded}"
    if not loaded.dnabird_sparse_rows_has_bf16():
        bfloat16 = "no (built for a CPU without AVX-512 BF16)"
    elif not enabled("DNABIRD_CPU_KERNEL_BF16"):
        bfloat16 = "off (DNABIRD_CPU_KERNEL_BF16=0)"
    else:
        bfloat16 = "yes"
    return f"built ({loaded._name}); bfloat16 forward: {bfloat16}"


def available() -> bool:
    """Whether the kernel is enabled and built (builds it on first call; warns once if it
    cannot be built)."""
    if not enabled():
        return False
    loaded = _load()
    if isinstance(loaded, ctypes.CDLL):
        return True
    if not _warned:
        _warned.append(loaded)
        warnings.warn(
            f"dnabird: CPU attention kernel unavailable ({loaded}); the blocked attention "
            "backend runs without it (slower)",
            RuntimeWarning,
            stacklevel=2,
        )
    return False


_warned: list[str] = []
"""Non-empty once the "unavailable" warning was given."""


def has_bfloat16() -> bool:
    """Whether the kernel is available with its bfloat16 forward (built for a CPU with
    AVX-512 BF16) and that forward is not turned off (``DNABIRD_CPU_KERNEL_BF16=0``)."""
    return (
        enabled("DNABIRD_CPU_KERNEL_BF16")
        and available()
        and bool(_load().dnabird_sparse_rows_has_bf16())
    )


BFLOAT16_MULTIPLE = 16
"""The bfloat16 forward needs the head width and the block size to be multiples of this (one
vector of 16 float32 lanes)."""


def sparse_rows_forward(
    query: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_rows: torch.Tensor,
    lse: torch.Tensor,
    slot_block: torch.Tensor,
    slot_valid: torch.Tensor,
    key_keep: torch.Tensor | None,
) -> None:
    """Softmax attention of the ordinary query blocks over their key slots, written in place.

    ``query: [B, H, n, b, D]`` and ``out_rows`` (same shape) are views of ``[B, H, L, D]``
    tensors starting at the first ordinary row; ``k, v: [B, H, L, D]`` contiguous; all four
    float32, or all bfloat16 where :func:`has_bfloat16` (``D`` and ``b`` multiples of
    :data:`BFLOAT16_MULTIPLE`; products of bfloat16 pairs summed in float32, probabilities
    rounded to bfloat16 before ``P V``);
    ``lse: [B*H, n, b]`` float32 receives each row's log-sum-exp of its scaled scores;
    ``slot_block: [H, n, S]`` int64 key block of every slot, ``slot_valid: [H, n, S]`` bool
    (invalid slots are skipped); ``key_keep: [B, L]`` bool (True = real token) or None.
    Call only when :func:`available`.
    """
    dtype = query.dtype
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"query must be float32 or bfloat16; got {dtype}")
    _check_full(query, dtype, k=k, v=v, lse=lse)
    _check_rows(k.shape[2], query, dtype, out_rows=out_rows)
    args, _converted = _arguments(
        query, k, slot_block, slot_valid, key_keep, q=query, k=k, v=v, out=out_rows, lse=lse
    )  # _converted: alive till the call returns
    library = _load()
    if dtype == torch.float32:
        _raise_on(library.dnabird_sparse_rows_forward_f32(ctypes.byref(args)))
    else:
        _raise_on(library.dnabird_sparse_rows_forward_bf16(ctypes.byref(args)))


def sparse_rows_backward(
    query: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out_rows: torch.Tensor,
    grad_rows: torch.Tensor,
    lse: torch.Tensor,
    grad_query: torch.Tensor,
    grad_k: torch.Tensor,
    grad_v: torch.Tensor,
    slot_block: torch.Tensor,
    slot_valid: torch.Tensor,
    key_keep: torch.Tensor | None,
) -> None:
    """Gradients of :func:`sparse_rows_forward`: writes ``grad_query`` and adds into
    ``grad_k, grad_v`` (``[B, H, L, D]``, contiguous, zeroed by the caller).

    ``out_rows`` and ``lse`` are the forward pass's; ``grad_rows`` (the output gradient) and
    ``grad_query`` are row views laid out like ``query``; the rest as in
    :func:`sparse_rows_forward`.
    """
    float32 = torch.float32
    _check_full(query, float32, k=k, v=v, lse=lse, grad_k=grad_k, grad_v=grad_v)
    _check_rows(
        k.shape[2], query, float32, out_rows=out_rows, grad_rows=grad_rows, grad_query=grad_query
    )
    args, _converted = _arguments(
        query, k, slot_block, slot_valid, key_keep,
        q=query, k=k, v=v, out=out_rows, lse=lse,
        grad_out=grad_rows, grad_q=grad_query, grad_k=grad_k, grad_v=grad_v,
    )  # fmt: skip
    _raise_on(_load().dnabird_sparse_rows_backward_f32(ctypes.byref(args)))


def _check_rows(length: int, query: torch.Tensor, dtype: torch.dtype, **views: torch.Tensor):
    """``query`` and ``views`` must be ``dtype`` ``[B, H, n, b, D]`` row views of contiguous
    ``[B, H, length, D]`` tensors."""
    batch, heads, _, block, dim = query.shape
    row_strides = (heads * length * dim, length * dim, block * dim, dim, 1)
    for name, tensor in {"query": query, **views}.items():
        strides = zip(tensor.shape, tensor.stride(), row_strides, strict=True)
        laid_out = all(size == 1 or got == want for size, got, want in strides)
        if not laid_out or tensor.shape != query.shape or tensor.dtype != dtype:
            kind = str(dtype).removeprefix("torch.")
            raise ValueError(f"{name} must be a {kind} row view of a contiguous [B, H, L, D]")


def _check_full(query: torch.Tensor, dtype: torch.dtype, **tensors: torch.Tensor) -> None:
    """Shape, dtype (``dtype``; ``lse`` float32) and contiguity of ``k``-like
    ``[B, H, L, D]`` tensors and ``lse``."""
    batch, heads, rows, block, dim = query.shape
    length = tensors["k"].shape[2]
    for name, tensor in tensors.items():
        shape = (batch * heads, rows, block) if name == "lse" else (batch, heads, length, dim)
        want = torch.float32 if name == "lse" else dtype
        if tuple(tensor.shape) != shape or tensor.dtype != want:
            kind = str(want).removeprefix("torch.")
            raise ValueError(
                f"{name} must be {kind} {list(shape)}; got {tensor.dtype} {list(tensor.shape)}"
            )
        if not tensor.is_contiguous():
            raise ValueError(f"{name} must be contiguous")


def _arguments(
    query, k, slot_block, slot_valid, key_keep, /, **pointers: torch.Tensor
) -> tuple[KernelArgs, list[torch.Tensor | None]]:
    """The kernel's argument struct, and the converted tensors it points into (to keep alive
    until the call returns). ``pointers``: the tensors of the struct's pointer fields by name
    (``q``, ``k``, ``v``, ``out``, ``lse``, and for backward ``grad_*``)."""
    batch, heads, rows, block, dim = query.shape
    length = k.shape[2]
    slots = slot_block.shape[-1]
    if slot_block.shape != (heads, rows, slots) or slot_valid.shape != slot_block.shape:
        raise ValueError(f"slot_block and slot_valid must be [H, n, S]; got {slot_block.shape}")
    if slots > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} key blocks per query block; got {slots}")
    visible = slot_block[slot_valid.bool()]
    if len(visible) and (visible.min() < 0 or visible.max() >= length // block):
        raise ValueError(f"slot_block lists blocks outside 0 .. {length // block - 1}")
    if key_keep is not None and key_keep.shape != (batch, length):
        raise ValueError(f"key_keep must be [B, L] = [{batch}, {length}]; got {key_keep.shape}")
    slot_block = slot_block.to(torch.int64).contiguous()
    slot_valid = slot_valid.to(torch.uint8).contiguous()
    keep = None if key_keep is None else key_keep.to(torch.uint8).contiguous()
    args = KernelArgs(
        size=ctypes.sizeof(KernelArgs),
        version=ARGS_VERSION,
        batch_heads=batch * heads,
        heads=heads,
        length=length,
        dim=dim,
        block=block,
        rows=rows,
        slots=slots,
        slot_block=slot_block.data_ptr(),
        slot_valid=slot_valid.data_ptr(),
        key_keep=None if keep is None else keep.data_ptr(),
        scale=dim**-0.5,
        threads=torch.get_num_threads(),
        **{name: tensor.data_ptr() for name, tensor in pointers.items()},
    )
    return args, [slot_block, slot_valid, keep]


_ERRORS = {
    1: f"more than {MAX_SLOTS} key blocks per query block",
    2: "it refused the argument struct (size or version differ from the built library's)",
    3: "a tensor pointer was null",
    4: "this library was built without AVX-512 BF16 (no bfloat16 forward)",
    5: f"the bfloat16 forward needs D and b to be multiples of {BFLOAT16_MULTIPLE}",
}


def _raise_on(code: int) -> None:
    if code != 0:
        why = _ERRORS.get(code, f"code {code}")
        raise RuntimeError(f"CPU attention kernel failed: {why}")
