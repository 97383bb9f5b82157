"""Our compiled CPU attention kernel against an explicit softmax written here, its build cache,
its fallback and its argument struct. (Equivalence with the dense backend through
``sparse_attention`` is in ``test_attention.py``, which runs every blocked backend.)"""

from __future__ import annotations

import ctypes
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from dnabird.model.attention import cpu_kernel

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="no C++ compiler to build the CPU kernel",
)


def explicit_rows(q, k, v, block, first_row, slot_block, slot_valid, keep):
    """Output ``[B, H, n, b, D]`` and log-sum-exp ``[B*H, n, b]`` of the ordinary query blocks
    ``first_row ..``, one block at a time: a softmax over the tokens of its valid key blocks
    (a block listed twice counts once), padded keys left out."""
    batch, heads, _, dim = q.shape
    rows = slot_block.shape[1]
    out = torch.zeros(batch, heads, rows, block, dim, dtype=torch.float64)
    lse = torch.zeros(batch * heads, rows, block, dtype=torch.float64)
    for bi in range(batch):
        for h in range(heads):
            for row in range(rows):
                blocks = sorted(set(slot_block[h, row][slot_valid[h, row]].tolist()))
                tokens = torch.cat([torch.arange(j * block, (j + 1) * block) for j in blocks])
                if keep is not None:
                    tokens = tokens[keep[bi, tokens]]
                i = first_row + row
                query = q[bi, h, i * block : (i + 1) * block].double()
                scores = query @ k[bi, h, tokens].double().T / dim**0.5
                out[bi, h, row] = torch.softmax(scores, -1) @ v[bi, h, tokens].double()
                lse[bi * heads + h, row] = torch.logsumexp(scores, -1)
    return out, lse


def run_kernel(q, k, v, block, first_row, slot_block, slot_valid, keep):
    """The forward of the ordinary rows (float32 or bfloat16, as ``q``): output ``[B, H, L, D]``
    (NaN outside those rows) and log-sum-exp."""
    batch, heads, length, dim = q.shape
    rows = slot_block.shape[1]
    out = torch.full_like(q, float("nan"))
    lse = torch.empty(batch * heads, rows, block)
    span = slice(first_row * block, (first_row + rows) * block)
    view = (batch, heads, rows, block, dim)
    cpu_kernel.sparse_rows_forward(
        q[:, :, span].view(view), k, v, out[:, :, span].view(view), lse,
        slot_block, slot_valid, keep,
    )  # fmt: skip
    return out, lse


def random_case(batch, heads, blocks, block, dim, slots, padded, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, blocks * block, dim, generator=gen) for _ in range(3))
    first_row, rows = 1, blocks - 2
    slot_block = torch.randint(0, blocks, (heads, rows, slots), generator=gen)
    slot_block[..., 0] = torch.arange(first_row, first_row + rows)  # own block, always valid
    slot_block[..., 1] = slot_block[..., 0] + 1  # a run of two consecutive blocks
    slot_block[..., 2] = slot_block[..., 3]  # a duplicate
    slot_valid = torch.rand(heads, rows, slots, generator=gen) > 0.3
    slot_valid[..., 0] = True
    keep = None
    if padded:
        keep = torch.ones(batch, blocks * block, dtype=torch.bool)
        keep[0, -block - 3 :] = False  # padded tail, cutting into a block
        keep[-1, block + 1 : 2 * block] = False
    return (q, k, v, block, first_row, slot_block, slot_valid, keep)


@pytest.mark.parametrize(
    "shape",
    [
        # batch, heads, blocks, block, dim, slots, padded
        (1, 2, 8, 8, 16, 6, False),
        (2, 3, 9, 8, 24, 8, True),
        (2, 2, 7, 64, 64, 8, True),
        (1, 1, 5, 16, 8, 4, False),
    ],
)
def test_kernel_matches_explicit_softmax(shape):
    case = random_case(*shape, seed=sum(shape))
    q, block, first_row, rows = case[0], case[3], case[4], case[5].shape[1]
    want_out, want_lse = explicit_rows(*case)
    got_out, got_lse = run_kernel(*case)
    span = slice(first_row * block, (first_row + rows) * block)
    got_rows = got_out[:, :, span].reshape(want_out.shape)
    torch.testing.assert_close(got_rows.double(), want_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_lse.double(), want_lse, atol=1e-5, rtol=1e-6)
    outside = torch.cat([got_out[:, :, : span.start], got_out[:, :, span.stop :]], dim=2)
    assert outside.isnan().all(), "the kernel wrote outside the ordinary rows"
    assert q.shape == got_out.shape


def require_bfloat16_kernel(dtype: torch.dtype = torch.bfloat16) -> None:
    """Skip a bfloat16 case where the kernel has no bfloat16 forward (checked when the test
    runs, not at collection: that would build the kernel)."""
    if dtype == torch.bfloat16 and not cpu_kernel.has_bfloat16():
        pytest.skip(f"no bfloat16 kernel: {cpu_kernel.status()}")


@pytest.mark.parametrize(
    "shape",
    [
        # batch, heads, blocks, block, dim, slots, padded
        (2, 3, 9, 16, 32, 8, True),
        (2, 2, 7, 64, 64, 8, True),
        (1, 2, 6, 48, 80, 6, False),  # tiles of 3 key vectors; a channel group of 1 vector
        (1, 1, 5, 128, 16, 4, True),  # two key tiles per block
    ],
)
def test_bfloat16_kernel_matches_explicit_softmax_to_bfloat16_rounding(shape):
    """The bfloat16 forward against the float64 softmax of the same bfloat16 values: the
    log-sum-exp to float32 accuracy (scores are exact sums of bfloat16 products), the output
    to the rounding of the probabilities and of the output to bfloat16 (8 significant bits),
    and nothing written outside the ordinary rows."""
    require_bfloat16_kernel()
    q, k, v, block, first_row, slot_block, slot_valid, keep = random_case(*shape, seed=11)
    q, k, v = (t.bfloat16() for t in (q, k, v))
    case = (q, k, v, block, first_row, slot_block, slot_valid, keep)
    want_out, want_lse = explicit_rows(*case)
    got_out, got_lse = run_kernel(*case)
    rows = slot_block.shape[1]
    span = slice(first_row * block, (first_row + rows) * block)
    assert got_out.dtype == torch.bfloat16
    got_rows = got_out[:, :, span].reshape(want_out.shape).double()
    torch.testing.assert_close(got_lse.double(), want_lse, atol=1e-4, rtol=1e-5)
    error = (got_rows - want_out).abs()
    assert error.max() <= 2**-8 * want_out.abs().max() + 2e-3, float(error.max())
    assert error.mean() < 1e-3  # rounding errors, not a wrong key here and there
    outside = torch.cat([got_out[:, :, : span.start], got_out[:, :, span.stop :]], dim=2)
    assert outside.isnan().all(), "the kernel wrote outside the ordinary rows"


def test_bfloat16_forward_is_built_exactly_for_cpus_with_avx512_bf16(monkeypatch):
    monkeypatch.delenv("DNABIRD_CPU_KERNEL_BF16", raising=False)
    assert cpu_kernel.available()
    built = bool(cpu_kernel._load().dnabird_sparse_rows_has_bf16())
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux: the CPU's own flags, independently of the compiler
        assert built == ("avx512_bf16" in cpuinfo.read_text().split())
    assert cpu_kernel.has_bfloat16() == built
    want = "yes" if built else "no (built for a CPU without AVX-512 BF16)"
    assert cpu_kernel.status().endswith(f"; bfloat16 forward: {want}")
    monkeypatch.setenv("DNABIRD_CPU_KERNEL_BF16", "0")
    assert not cpu_kernel.has_bfloat16()
    if built:
        assert cpu_kernel.status().endswith("; bfloat16 forward: off (DNABIRD_CPU_KERNEL_BF16=0)")


def test_bfloat16_kernel_refuses_widths_it_cannot_tile():
    require_bfloat16_kernel()
    case = list(random_case(1, 2, 6, 16, 24, 4, False, 1))  # D = 24: not a multiple of 16
    case[:3] = (t.bfloat16() for t in case[:3])
    with pytest.raises(RuntimeError, match="needs D and b to be multiples of 16"):
        run_kernel(*case)


@pytest.mark.parametrize(
    "shape",
    [
        # batch, heads, blocks, block, dim, slots, padded
        (2, 3, 9, 8, 24, 8, True),
        (1, 2, 7, 64, 64, 8, False),
    ],
)
def test_kernel_gradients_match_autograd_of_explicit_softmax(shape):
    q, k, v, block, first_row, slot_block, slot_valid, keep = random_case(*shape, seed=7)
    rows, (batch, heads, _, dim) = slot_block.shape[1], q.shape
    span = slice(first_row * block, (first_row + rows) * block)
    view = (batch, heads, rows, block, dim)
    weights = torch.randn(view, generator=torch.Generator().manual_seed(3))
    leaves = [t.double().requires_grad_() for t in (q, k, v)]
    want_out, _ = explicit_rows(*leaves, block, first_row, slot_block, slot_valid, keep)
    want = torch.autograd.grad((want_out * weights).sum(), leaves)

    out, lse = run_kernel(q, k, v, block, first_row, slot_block, slot_valid, keep)
    grad_out = torch.zeros_like(q)
    grad_out[:, :, span] = weights.reshape(batch, heads, -1, dim)
    grad_q = torch.full_like(q, float("nan"))
    grad_k, grad_v = torch.zeros_like(k), torch.zeros_like(v)
    cpu_kernel.sparse_rows_backward(
        *(t[:, :, span].view(view) for t in (q,)), k, v,
        *(t[:, :, span].view(view) for t in (out, grad_out)), lse,
        grad_q[:, :, span].view(view), grad_k, grad_v, slot_block, slot_valid, keep,
    )  # fmt: skip
    torch.testing.assert_close(grad_q[:, :, span].double(), want[0][:, :, span], atol=1e-5, rtol=0)
    torch.testing.assert_close(grad_k.double(), want[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(grad_v.double(), want[2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_uses_every_thread_count_alike(dtype):
    """The same bits whatever the thread count (the bfloat16 forward packs one head per
    thread at a time: 4 threads over 6 heads leave a partial round)."""
    require_bfloat16_kernel(dtype)
    case = list(random_case(2, 3, 10, 16, 32, 7, True, seed=5))
    case[:3] = (t.to(dtype) for t in case[:3])
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 4):
            torch.set_num_threads(count)
            results.append(run_kernel(*case))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        torch.testing.assert_close(other[0], results[0][0], atol=0, rtol=0, equal_nan=True)
        torch.testing.assert_close(other[1], results[0][1], atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_query_rows_with_no_visible_key_stay_finite(dtype):
    require_bfloat16_kernel(dtype)
    q, k, v, block, first_row, slot_block, slot_valid, _ = random_case(1, 1, 4, 16, 16, 4, False, 3)
    slot_block[:] = 1
    slot_valid[:] = False
    slot_valid[..., 0] = True
    keep = torch.ones(1, 64, dtype=torch.bool)
    keep[0, 16:32] = False  # every visible key is padding
    q, k, v = (t.to(dtype) for t in (q, k, v))
    out, lse = run_kernel(q, k, v, block, first_row, slot_block, slot_valid, keep)
    assert torch.isfinite(out[:, :, 16:48]).all() and torch.isfinite(lse).all()


def test_kernel_refuses_views_it_cannot_read():
    q, k, v, block, first_row, slot_block, slot_valid, keep = random_case(
        1, 2, 6, 8, 16, 4, False, 1
    )
    rows = slot_block.shape[1]
    lse = torch.empty(2, rows, block)
    wrong = q.transpose(1, 2).contiguous().transpose(1, 2)[:, :, 8:40].reshape(1, 2, rows, 8, 16)
    with pytest.raises(ValueError, match="query must be a float32 row view"):
        cpu_kernel.sparse_rows_forward(wrong, k, v, wrong, lse, slot_block, slot_valid, keep)


def kernel_arguments(case):
    """A valid argument struct for a forward call on ``case`` (and what it points into)."""
    q, k, v, block, first_row, slot_block, slot_valid, keep = case
    batch, heads, _, dim = q.shape
    rows = slot_block.shape[1]
    span = slice(first_row * block, (first_row + rows) * block)
    view = (batch, heads, rows, block, dim)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((batch * heads, rows, block), float("nan"))
    query, out_rows = q[:, :, span].view(view), out[:, :, span].view(view)
    args, alive = cpu_kernel._arguments(
        query, k, slot_block, slot_valid, keep, q=query, k=k, v=v, out=out_rows, lse=lse
    )
    return args, (alive, out, lse)


@pytest.mark.parametrize(
    ("field", "change", "code"),
    [
        ("size", -8, 2),  # a caller whose struct lacks a field
        ("size", +8, 2),  # ... or has one more
        ("version", +1, 2),  # same size, another meaning
        ("q", None, 3),  # a null tensor pointer
    ],
)
def test_kernel_refuses_an_argument_struct_it_does_not_know(field, change, code):
    assert cpu_kernel.available()
    forward = cpu_kernel._load().dnabird_sparse_rows_forward_f32
    args, (alive, out, lse) = kernel_arguments(random_case(1, 2, 6, 8, 16, 4, True, 1))
    assert forward(ctypes.byref(args)) == 0 and not lse.isnan().any()  # valid as built
    out.fill_(float("nan"))
    lse.fill_(float("nan"))
    setattr(args, field, None if change is None else getattr(args, field) + change)
    assert forward(ctypes.byref(args)) == code
    assert out.isnan().all() and lse.isnan().all(), "a refused call wrote"


def test_kernel_wrapper_raises_when_the_struct_is_refused(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "ARGS_VERSION", cpu_kernel.ARGS_VERSION + 1)
    with pytest.raises(RuntimeError, match="refused the argument struct"):
        run_kernel(*random_case(1, 2, 6, 8, 16, 4, False, 1))


def test_a_library_with_another_struct_layout_is_not_loaded(monkeypatch):
    """Two fields swapped on the Python side only (same size and version) are caught when the
    library is loaded, and the pure-PyTorch backends run instead."""
    fields = list(cpu_kernel.KernelArgs._fields_)
    at = [name for name, _ in fields].index("k")
    fields[at], fields[at + 1] = fields[at + 1], fields[at]  # k and v

    class Swapped(ctypes.Structure):
        _fields_ = fields

    assert ctypes.sizeof(Swapped) == ctypes.sizeof(cpu_kernel.KernelArgs)
    monkeypatch.setattr(cpu_kernel, "KernelArgs", Swapped)
    monkeypatch.setattr(cpu_kernel, "_warned", ["already"])
    cpu_kernel._load.cache_clear()
    try:
        assert not cpu_kernel.available()
        assert "takes another argument struct than cpu_kernel.KernelArgs (library k:24, " in (
            cpu_kernel.status()
        )
    finally:
        cpu_kernel._load.cache_clear()


def test_build_is_cached_and_a_broken_compiler_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("DNABIRD_CACHE_DIR", str(tmp_path))
    cpu_kernel._load.cache_clear()
    try:
        assert cpu_kernel.available()
        built = list((tmp_path / "kernels").glob("*.so"))
        assert len(built) == 1 and not list((tmp_path / "kernels").glob("*.partial"))
        stamp = built[0].stat().st_mtime_ns
        cpu_kernel._load.cache_clear()
        assert cpu_kernel.available() and built[0].stat().st_mtime_ns == stamp  # reused

        monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
        monkeypatch.setattr(cpu_kernel, "_warned", [])
        cpu_kernel._load.cache_clear()
        with pytest.warns(RuntimeWarning, match="CPU attention kernel unavailable"):
            assert not cpu_kernel.available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once only
            assert not cpu_kernel.available()
        assert cpu_kernel.status().startswith("unavailable: false failed")
        assert not list((tmp_path / "kernels").glob("*.partial"))
    finally:
        cpu_kernel._load.cache_clear()


def test_kernel_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "0")
    assert not cpu_kernel.available()
    assert cpu_kernel.status() == "off (DNABIRD_CPU_KERNEL=0)"
