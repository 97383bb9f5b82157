"""The attention backends on the CPU: equivalence (fp32, and a float64 gradcheck) and choice.

The oracle is the dense backend, itself checked against an explicit softmax written here from
the pattern's block lists. Every blocked backend (our kernel, PyTorch's fused op, the explicit
path) is checked against it, outputs and input gradients, and so is the fallback when this
torch lacks the fused op; ``choose_backend`` is checked case by case.
"""

from __future__ import annotations

import shutil
import types
import warnings

import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.model import config
from dnabird.model.attention import (
    BACKENDS,
    blocked_fused,
    choose_backend,
    cpu_kernel,
    flex,
    slots,
    sparse_attention,
)
from dnabird.model.attention.api import DENSE_MAX_BLOCKS
from dnabird.model.attention.dense import dense_attention
from dnabird.model.attention.flex import build_block_mask, flex_sparse_attention
from dnabird.model.patterns import build_pattern, dense_mask, global_block_indices

ATOL = 1e-5


def pattern_for(num_blocks, block_size=8, heads=3, mode="itc", g=2, r=3, seed=0):
    glob = global_block_indices(num_blocks, g, mode)
    return build_pattern(num_blocks, block_size, heads, glob, 3, r, seed=[seed])


def inputs(batch, heads, length, dim=16, dtype=torch.float32, grad=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, heads, length, dim, generator=gen, dtype=dtype).requires_grad_(grad)
        for _ in range(3)
    ]


def padding_mask(lengths, total):
    """``[B, total]`` bool, True for the first ``lengths[b]`` tokens of each row."""
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


def reference(q, k, v, pattern, keep):
    """Explicit softmax attention; the mask comes from a loop over the block lists."""
    b, length = pattern.block_size, q.shape[-2]
    allowed = torch.zeros(pattern.num_heads, pattern.seq_len, pattern.seq_len, dtype=torch.bool)
    for h in range(pattern.num_heads):
        for i in range(pattern.num_blocks):
            for j in pattern.kv_blocks[h, i, : pattern.kv_counts[h, i]].tolist():
                allowed[h, i * b : (i + 1) * b, j * b : (j + 1) * b] = True
    allowed = allowed[None, :, :length, :length] & keep[:, None, None, :]
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


BLOCKED = ("blocked_kernel", "blocked_fused", "blocked_explicit")


def require_kernel():
    """Build the CPU kernel; skip without a compiler, fail if it does not build with one."""
    if not cpu_kernel.available():
        if shutil.which("c++") is None and shutil.which("g++") is None:
            pytest.skip("no C++ compiler to build the CPU kernel")
        pytest.fail(f"the CPU kernel did not build: {cpu_kernel.status()}")


def spy_on_blocked_paths(monkeypatch) -> list[str]:
    """Record every call of the CPU kernel's functions and of the fused private ops."""
    calls = []
    for name in ("sparse_rows_forward", "sparse_rows_backward"):
        function = getattr(cpu_kernel, name)
        monkeypatch.setattr(
            cpu_kernel, name, lambda *a, name=name, f=function: calls.append(name) or f(*a)
        )
    ops = blocked_fused._ops()
    if not isinstance(ops, str):
        spied = tuple(
            lambda *a, name=name, f=op, **kw: calls.append(name) or f(*a, **kw)
            for name, op in zip(("fused_forward", "fused_backward"), ops, strict=True)
        )
        monkeypatch.setattr(blocked_fused, "_ops", lambda: spied)
    return calls


@pytest.fixture(params=BLOCKED)
def blocked_path(request, monkeypatch):
    """Run a test with each blocked backend (yields its name); checks afterwards that the CPU
    kernel ran exactly for ``blocked_kernel`` and the fused ops exactly for ``blocked_fused``."""
    if request.param == "blocked_kernel":
        require_kernel()
    if request.param == "blocked_fused" and not blocked_fused.available():
        pytest.skip(f"fused CPU op {blocked_fused.status()}")
    calls = spy_on_blocked_paths(monkeypatch)
    yield request.param
    assert ("sparse_rows_forward" in calls) == (request.param == "blocked_kernel")
    assert ("fused_forward" in calls) == (request.param == "blocked_fused")


def loss_on_real_rows(out, keep, weights):
    """A scalar that depends on every real (unpadded) query row of ``out``."""
    return (out * weights * keep[:, None, :, None]).sum()


def test_dense_oracle_matches_explicit_softmax():
    pattern = pattern_for(10)
    q, k, v = inputs(2, 3, 75)
    keep = padding_mask([75, 60], 75)
    out = dense_attention(q, k, v, pattern, keep)
    ref = reference(q, k, v, pattern, keep)
    torch.testing.assert_close(out[1, :, :60], ref[1, :, :60], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[0], ref[0], atol=ATOL, rtol=0)


CASES = {
    # name: (num_blocks, mode, g, r, lengths)
    "itc": (12, "itc", 2, 3, [96, 96]),
    "etc": (12, "etc", 2, 3, [96, 96]),
    "itc-padded-batch": (12, "itc", 2, 3, [91, 50]),
    "etc-padded-batch": (11, "etc", 2, 3, [85, 30]),
    "no-random": (12, "itc", 2, 0, [96, 70]),
    "one-global": (12, "itc", 1, 2, [93, 77]),
    "no-global": (10, "itc", 0, 2, [80, 80]),
    "few-blocks": (5, "itc", 2, 3, [37, 21]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_blocked_matches_dense_outputs_and_gradients(case, blocked_path):
    num_blocks, mode, g, r, lengths = CASES[case]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r, seed=len(case))
    length = max(lengths)  # may be shorter than the pattern (not a block multiple)
    keep = padding_mask(lengths, length)
    q, k, v = inputs(len(lengths), 3, length, grad=True)
    weights = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for run in (
        lambda: dense_attention(q, k, v, pattern, keep),
        lambda: sparse_attention(q, k, v, pattern, keep, backend=blocked_path),
    ):
        out = run()
        outs.append(out * keep[:, None, :, None])
        grads.append(torch.autograd.grad(loss_on_real_rows(out, keep, weights), (q, k, v)))
    torch.testing.assert_close(outs[1], outs[0], atol=ATOL, rtol=0)
    for name, got, want in zip("qkv", grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0, msg=f"grad of {name}")


def test_blocked_inference_path_matches_dense(blocked_path):
    """Without gradients nothing is saved for backward; same result."""
    num_blocks, mode, g, r, lengths = CASES["etc-padded-batch"]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r)
    keep = padding_mask(lengths, max(lengths))
    q, k, v = inputs(len(lengths), 3, max(lengths))
    with torch.inference_mode():
        got = sparse_attention(q, k, v, pattern, keep, backend=blocked_path)
    want = dense_attention(q, k, v, pattern, keep)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(got[b, :, :n], want[b, :, :n], atol=ATOL, rtol=0)


@pytest.mark.parametrize("backend", ["blocked_fused", "blocked_explicit"])
def test_blocked_handles_many_chunks(backend, monkeypatch):
    """Rows are processed in chunks; a tiny chunk size must not change the result."""
    if backend == "blocked_fused" and not blocked_fused.available():
        pytest.skip(f"fused CPU op {blocked_fused.status()}")
    pattern = pattern_for(16, r=2)
    q, k, v = inputs(2, 3, 128, grad=True)
    keep = padding_mask([128, 100], 128)

    def run():
        out = sparse_attention(q, k, v, pattern, keep, backend=backend)
        return out, torch.autograd.grad(out.sum(), (q, k, v))

    want, want_grads = run()
    monkeypatch.setattr(slots, "_CHUNK_ELEMENTS", 1)
    got, got_grads = run()
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_blocked_accepts_non_contiguous_inputs(blocked_path):
    """Head-transposed views (as a projection's ``[B, L, H, D]`` output gives) work unchanged."""
    pattern = pattern_for(14, r=2)
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in inputs(2, 3, 112))
    keep = padding_mask([112, 90], 112)
    assert not q.is_contiguous()
    got = sparse_attention(q, k, v, pattern, keep, backend=blocked_path)
    want = dense_attention(q, k, v, pattern, keep)
    torch.testing.assert_close(got[0], want[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(got[1, :, :90], want[1, :, :90], atol=ATOL, rtol=0)


@pytest.mark.parametrize("backend", ["blocked_fused", "blocked_explicit"])
@pytest.mark.parametrize("mode", ["itc", "etc"])
def test_blocked_gradcheck_float64(mode, backend):
    if backend == "blocked_fused" and not blocked_fused.available():
        pytest.skip(f"fused CPU op {blocked_fused.status()}")
    pattern = pattern_for(6, block_size=2, heads=2, mode=mode, r=1)
    q, k, v = inputs(2, 2, 11, dim=3, dtype=torch.float64, grad=True)
    keep = padding_mask([11, 8], 11)

    def f(q, k, v):
        return sparse_attention(q, k, v, pattern, keep, backend=backend) * keep[:, None, :, None]

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-6, fast_mode=True)


def test_blocked_dropout_is_reproducible_and_its_gradient_is_exact():
    pattern = pattern_for(6, block_size=2, heads=2, r=1)
    q, k, v = inputs(1, 2, 12, dim=3, dtype=torch.float64, grad=True)

    def f(q, k, v, dropout_p=0.3):
        torch.manual_seed(0)
        return sparse_attention(q, k, v, pattern, backend="blocked", dropout_p=dropout_p)

    assert choose_backend(q, pattern, "blocked", dropout_p=0.3) == "blocked_explicit"
    assert torch.equal(f(q, k, v), f(q, k, v))
    assert not torch.allclose(f(q, k, v), f(q, k, v, dropout_p=0.0))
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-6, fast_mode=True)


def test_short_sequences_fall_back_to_dense_and_match_blocked():
    pattern = pattern_for(7, r=3)  # every block sees every block
    assert pattern.density() == 1.0
    q, k, v = inputs(2, 3, 52, grad=True)
    keep = padding_mask([52, 41], 52)
    assert choose_backend(q, pattern) == "dense"
    auto = sparse_attention(q, k, v, pattern, keep)
    blocked = sparse_attention(q, k, v, pattern, keep, backend="blocked")
    torch.testing.assert_close(auto[0], blocked[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(auto[1, :, :41], blocked[1, :, :41], atol=ATOL, rtol=0)
    partial = pattern_for(DENSE_MAX_BLOCKS, r=0)  # sparse, still short: masked dense
    assert choose_backend(q, partial) == "dense" and partial.density() < 1.0
    torch.testing.assert_close(
        sparse_attention(q, k, v, partial, keep)[0],
        sparse_attention(q, k, v, partial, keep, backend="blocked")[0],
        atol=ATOL,
        rtol=0,
    )


def test_backend_names_are_defined_once():
    assert BACKENDS is config.ATTENTION_BACKENDS
    assert {"auto", "dense", "flex", "blocked", *BLOCKED} == set(BACKENDS)


def fake_q(pattern, device="cpu", dtype=torch.float32, requires_grad=True):
    """What ``choose_backend`` reads of ``q``: its device, dtype and whether it takes gradients
    (CUDA without a GPU)."""
    return types.SimpleNamespace(
        device=torch.device(device), dtype=dtype, requires_grad=requires_grad
    )


@pytest.mark.parametrize(
    ("device", "dtype", "dropout_p", "backend", "kernel", "fused", "want"),
    [
        # CPU, float32, no dropout: our kernel (under auto, and for the blocked family)
        ("cpu", torch.float32, 0.0, "auto", True, True, "blocked_kernel"),
        ("cpu", torch.float32, 0.0, "blocked", True, True, "blocked_kernel"),
        # bfloat16 (e.g. under autocast): the kernel too, computing in float32
        ("cpu", torch.bfloat16, 0.0, "blocked", True, True, "blocked_kernel"),
        # no kernel (off, or no compiler), or float64: the fused private op
        ("cpu", torch.float32, 0.0, "auto", False, True, "blocked_fused"),
        ("cpu", torch.float64, 0.0, "auto", True, True, "blocked_fused"),
        ("cpu", torch.bfloat16, 0.0, "blocked", False, True, "blocked_fused"),
        # dropout, or no fused op in this torch: explicit softmax
        ("cpu", torch.float32, 0.1, "auto", True, True, "blocked_explicit"),
        ("cpu", torch.float32, 0.0, "auto", False, False, "blocked_explicit"),
        ("cpu", torch.float64, 0.0, "blocked", True, False, "blocked_explicit"),
        # CUDA (q takes gradients): flex, or explicit with dropout or when the blocked family
        # is asked for
        ("cuda", torch.bfloat16, 0.0, "auto", True, True, "flex"),
        ("cuda", torch.float32, 0.1, "auto", True, True, "blocked_explicit"),
        ("cuda", torch.float32, 0.0, "blocked", True, True, "blocked_explicit"),
        # a named backend is taken as it is
        ("cpu", torch.float32, 0.0, "flex", True, True, "flex"),
        ("cpu", torch.float32, 0.1, "blocked_kernel", True, True, "blocked_kernel"),
        ("cpu", torch.float32, 0.0, "blocked_explicit", True, True, "blocked_explicit"),
        ("cpu", torch.float32, 0.0, "dense", True, True, "dense"),
    ],
)
def test_choose_backend_picks_each_path(
    device, dtype, dropout_p, backend, kernel, fused, want, monkeypatch
):
    monkeypatch.setattr(cpu_kernel, "available", lambda: kernel)
    if not fused:
        monkeypatch.setattr(blocked_fused, "_ops", lambda: "no such op (test)")
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q = fake_q(pattern, device, dtype)
    assert choose_backend(q, pattern, backend, dropout_p) == want
    if backend == "auto":  # short sequences: dense, whatever else holds
        assert choose_backend(q, pattern_for(DENSE_MAX_BLOCKS), backend, dropout_p) == "dense"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_on_cuda_takes_the_blocked_path_not_flex(dtype):
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    with torch.no_grad():  # gradients off: no backward can follow
        assert choose_backend(fake_q(pattern, "cuda", dtype), pattern) == "blocked_explicit"
    no_grad_q = fake_q(pattern, "cuda", dtype, requires_grad=False)
    assert choose_backend(no_grad_q, pattern) == "blocked_explicit"  # e.g. frozen inputs
    assert choose_backend(fake_q(pattern, "cuda", dtype), pattern) == "flex"  # training


def test_choose_backend_with_the_real_kernel_and_fused_op(monkeypatch):
    """Unpatched: the kernel when it builds, the fused op when it is off."""
    require_kernel()
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q = torch.zeros(1, 3, pattern.seq_len, 4)
    assert choose_backend(q, pattern) == "blocked_kernel"
    assert choose_backend(q.requires_grad_(), pattern, "blocked") == "blocked_kernel"
    assert choose_backend(q.double(), pattern) == "blocked_fused"
    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "0")
    assert choose_backend(q, pattern) == "blocked_fused"
    with pytest.raises(ConfigError, match="unknown attention backend 'fast'; choose from"):
        choose_backend(q, pattern, backend="fast")


def test_kernel_computes_bfloat16_inputs_in_float32():
    """bfloat16 in (as under autocast): the float32 kernel's result on the same values, cast
    to bfloat16, and gradients that reach the bfloat16 inputs; the dense oracle agrees to
    bfloat16 rounding."""
    require_kernel()
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q, k, v = (t.bfloat16().requires_grad_() for t in inputs(2, 3, pattern.seq_len))
    mask = padding_mask([pattern.seq_len, pattern.seq_len - 5], pattern.seq_len)
    out = sparse_attention(q, k, v, pattern, mask, backend="blocked_kernel")
    wide = sparse_attention(
        q.float(), k.float(), v.float(), pattern, mask, backend="blocked_kernel"
    )
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, wide.bfloat16())
    oracle = sparse_attention(q.float(), k.float(), v.float(), pattern, mask, backend="dense")
    real = mask[:, None, :, None].expand_as(out)
    assert (out.float() - oracle)[real].abs().max() < 2e-2
    out.float().square().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in (q, k, v))


@pytest.mark.parametrize("num_blocks", [DENSE_MAX_BLOCKS + 2, cpu_kernel.MAX_SLOTS + 1])
def test_bfloat16_inference_runs_the_bfloat16_kernel(monkeypatch, num_blocks):
    """bfloat16 with no backward to follow runs the kernel's bfloat16 forward where the CPU has
    one (every query block in one call up to MAX_SLOTS blocks, the global ones by SDPA
    beyond): the dense oracle agrees to bfloat16 rounding, and the result is not the float32
    kernel's. With gradients recorded, or the bfloat16 forward turned off, the float32 kernel
    runs."""
    require_kernel()
    if not cpu_kernel.has_bfloat16():
        pytest.skip(f"no bfloat16 kernel: {cpu_kernel.status()}")
    pattern = pattern_for(num_blocks, block_size=16)
    q, k, v = (t.bfloat16() for t in inputs(2, 3, pattern.seq_len, dim=32))
    mask = padding_mask([pattern.seq_len, pattern.seq_len - 21], pattern.seq_len)
    wide = [t.float() for t in (q, k, v)]
    oracle = sparse_attention(*wide, pattern, mask, backend="dense")
    float32 = sparse_attention(*wide, pattern, mask, backend="blocked_kernel")
    dtypes = []
    forward = cpu_kernel.sparse_rows_forward
    monkeypatch.setattr(
        cpu_kernel, "sparse_rows_forward", lambda *a: dtypes.append(a[0].dtype) or forward(*a)
    )
    with torch.inference_mode():
        out = sparse_attention(q, k, v, pattern, mask, backend="blocked_kernel")
    real = mask[:, None, :, None].expand_as(out)
    assert out.dtype == torch.bfloat16 and dtypes == [torch.bfloat16]
    assert (out.float() - oracle)[real].abs().max() < 2e-2
    assert not torch.equal(out, float32.bfloat16())
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    sparse_attention(*leaves, pattern, mask, backend="blocked_kernel").sum().backward()
    assert dtypes[1:] == [torch.float32]
    monkeypatch.setenv("DNABIRD_CPU_KERNEL_BF16", "0")
    with torch.inference_mode():
        off = sparse_attention(q, k, v, pattern, mask, backend="blocked_kernel")
    assert dtypes[2:] == [torch.float32]
    assert torch.equal(off, float32.bfloat16())


def test_kernel_is_skipped_for_more_slots_than_it_takes(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "available", lambda: True)
    glob = global_block_indices(70, 2, "itc")
    pattern = build_pattern(70, 1, 1, glob, 3, cpu_kernel.MAX_SLOTS, seed=[0])  # S = 69
    q = torch.zeros(1, 1, pattern.seq_len, 4)
    assert choose_backend(q, pattern) == "blocked_fused"
    with pytest.raises(ConfigError, match="at most 64 key blocks per query block, not 69"):
        sparse_attention(q, q, q, pattern, backend="blocked_kernel")


@pytest.mark.parametrize(
    ("backend", "dtype", "dropout_p", "message"),
    [
        ("blocked_kernel", torch.float32, 0.1, "blocked_kernel: has no attention dropout"),
        (
            "blocked_kernel",
            torch.float64,
            0.0,
            "blocked_kernel: needs float32, bfloat16 or float16 CPU",
        ),
        ("blocked_fused", torch.float32, 0.1, "blocked_fused: has no attention dropout"),
    ],
)
def test_a_named_backend_refuses_inputs_it_cannot_run(backend, dtype, dropout_p, message):
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q, k, v = inputs(1, 3, pattern.seq_len, dtype=dtype)
    with pytest.raises(ConfigError, match=message):
        sparse_attention(q, k, v, pattern, backend=backend, dropout_p=dropout_p)


def test_a_kernel_switched_off_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "0")
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q, k, v = inputs(1, 3, pattern.seq_len)
    with pytest.raises(ConfigError, match=r"CPU kernel off \(DNABIRD_CPU_KERNEL=0\); use blocked"):
        sparse_attention(q, k, v, pattern, backend="blocked_kernel")


@pytest.fixture
def fused_ops_missing(monkeypatch):
    """A torch without the private fused CPU ops (as any release may be): the real detection
    looks for an op name that does not exist."""
    monkeypatch.setattr(blocked_fused, "FORWARD_OP", "_dnabird_no_such_op")
    blocked_fused._ops.cache_clear()
    yield
    blocked_fused._ops.cache_clear()  # detect afresh once the name is restored


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_missing_fused_ops_fall_back_to_explicit_matching_dense(
    dtype, fused_ops_missing, monkeypatch
):
    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "0")  # float32 would take the kernel otherwise
    assert not blocked_fused.available()
    assert "has no torch.ops.aten._dnabird_no_such_op" in blocked_fused.status()
    calls = spy_on_blocked_paths(monkeypatch)
    num_blocks, mode, g, r, lengths = CASES["itc-padded-batch"]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r)
    keep = padding_mask(lengths, max(lengths))
    q, k, v = inputs(len(lengths), 3, max(lengths), dtype=dtype, grad=True)
    weights = torch.randn(q.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert choose_backend(q, pattern) == "blocked_explicit"
    outs, grads = [], []
    for backend in ("dense", "auto"):
        out = sparse_attention(q, k, v, pattern, keep, backend=backend)
        outs.append(out * keep[:, None, :, None])
        grads.append(torch.autograd.grad(loss_on_real_rows(out, keep, weights), (q, k, v)))
    torch.testing.assert_close(outs[1], outs[0], atol=ATOL, rtol=0)
    for name, got, want in zip("qkv", grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0, msg=f"grad of {name}")
    assert calls == []  # neither the kernel nor the fused ops ran
    with pytest.raises(ConfigError, match="blocked_fused: torch .* has no torch.ops.aten"):
        sparse_attention(q, k, v, pattern, keep, backend="blocked_fused")


def test_fused_op_detection_probes_the_ops():
    """Ops that exist but fail or disagree with an explicit softmax are not used."""
    forward, backward = blocked_fused.find_ops(torch.ops.aten)  # this torch has working ops

    def namespace(**ops):
        names = {"forward": blocked_fused.FORWARD_OP, "backward": blocked_fused.BACKWARD_OP}
        return types.SimpleNamespace(**{names[key]: op for key, op in ops.items()})

    def wrong_numbers(q, k, v, **kwargs):
        out, lse = forward(q, k, v, **kwargs)
        return out * 1.01, lse

    def changed_signature(q, k, v, mask, scale):
        return forward(q, k, v, attn_mask=mask, scale=scale)

    assert "has no torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward" in (
        blocked_fused.find_ops(namespace(forward=forward))
    )
    found = blocked_fused.find_ops(namespace(forward=wrong_numbers, backward=backward))
    assert found.endswith("ValueError: output differs from an explicit softmax")
    found = blocked_fused.find_ops(namespace(forward=changed_signature, backward=backward))
    assert "failed a probe call: TypeError" in found
    assert blocked_fused.find_ops(namespace(forward=forward, backward=backward)) == (
        forward,
        backward,
    )
    with torch.inference_mode():  # the probe also works where models run inference
        assert not isinstance(blocked_fused.find_ops(torch.ops.aten), str)


def test_bad_shapes_are_rejected():
    pattern = pattern_for(4)
    q, k, v = inputs(1, 3, 32)
    with pytest.raises(ValueError, match="pattern covers"):
        sparse_attention(*inputs(1, 3, 40), pattern)
    with pytest.raises(ValueError, match="key_padding_mask"):
        sparse_attention(q, k, v, pattern, torch.ones(1, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="one shape"):
        sparse_attention(q, k, v[:, :, :16], pattern)


@pytest.mark.parametrize("tile", [1, 2])
@pytest.mark.parametrize("full_tiles", [True, False])
def test_flex_block_mask_lists_exactly_the_pattern(tile, full_tiles):
    """Listed tiles cover every allowed pair; full tiles need no mask_mod; absent ones are empty.

    ``tile=2`` is the coarse tiling used on CUDA for block sizes below 128.
    """
    pattern = pattern_for(11, block_size=4, mode="itc", r=2)
    keep = padding_mask([44, 30], 44)
    mask = build_block_mask(pattern, keep, 2, torch.device("cpu"), tile, full_tiles)
    size = tile * 4
    length = mask.seq_lengths[0]
    assert length % size == 0 and length >= 44
    want = torch.zeros(2, 3, length, length, dtype=torch.bool)
    want[:, :, :44, :44] = dense_mask(pattern)[None] & keep[:, None, None, :]
    idx = torch.arange(length)
    mod = torch.stack(
        [
            torch.stack([mask.mask_mod(b, h, idx[:, None], idx[None, :]) for h in range(3)])
            for b in range(2)
        ]
    )
    assert torch.equal(mod, want), "mask_mod must encode the whole pattern"
    got = torch.zeros_like(want)
    for b in range(2):
        for h in range(3):
            for i in range(length // size):
                rows = slice(i * size, (i + 1) * size)
                n = int(mask.kv_num_blocks[b, h, i])
                for j in mask.kv_indices[b, h, i, :n].tolist():
                    cols = slice(j * size, (j + 1) * size)
                    assert want[b, h, rows, cols].any(), "partial tile with nothing to attend"
                    got[b, h, rows, cols] |= mod[b, h, rows, cols]
                if mask.full_kv_num_blocks is None:
                    continue
                n = int(mask.full_kv_num_blocks[b, h, i])
                for j in mask.full_kv_indices[b, h, i, :n].tolist():
                    cols = slice(j * size, (j + 1) * size)
                    assert want[b, h, rows, cols].all(), "full tile with a masked pair"
                    got[b, h, rows, cols] = True
    assert torch.equal(got, want)
    assert (mask.full_kv_num_blocks is not None) == full_tiles


@pytest.mark.parametrize("case", ["etc-padded-batch", "itc-padded-batch", "no-random"])
def test_uncompiled_flex_matches_dense(case):
    num_blocks, mode, g, r, lengths = CASES[case]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r, seed=2)
    keep = padding_mask(lengths, pattern.seq_len)
    q, k, v = inputs(len(lengths), 3, pattern.seq_len)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile"
        with torch.no_grad():
            got = flex_sparse_attention(q, k, v, pattern, keep, compiled=False)
    want = dense_attention(q, k, v, pattern, keep)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(got[b, :, :n], want[b, :, :n], atol=ATOL, rtol=0)


def run_compiled_flex_case(case):
    num_blocks, mode, g, r, lengths = CASES[case]
    pattern = pattern_for(num_blocks, block_size=16, mode=mode, g=g, r=r, seed=4)
    length = max(lengths) * 2  # not a block multiple: exercises the API's padding
    keep = padding_mask([n * 2 for n in lengths], length)
    q, k, v = inputs(len(lengths), 3, length, dim=16)
    with torch.no_grad():
        got = sparse_attention(q, k, v, pattern, keep, backend="flex")
    want = dense_attention(q, k, v, pattern, keep)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(got[b, :, : 2 * n], want[b, :, : 2 * n], atol=ATOL, rtol=0)


def test_compiled_flex_matches_dense():
    run_compiled_flex_case("itc-padded-batch")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["etc-padded-batch", "no-random", "no-global"])
def test_compiled_flex_matches_dense_more_cases(case):
    run_compiled_flex_case(case)


MASK_TENSORS = [
    f"{side}{name}"
    for side in ("", "full_")
    for name in ("kv_num_blocks", "kv_indices", "q_num_blocks", "q_indices")
]


def assert_same_block_mask(got, want):
    """Equal block lists (partial and full, kv and q sides), sizes and ``mask_mod``."""
    assert got.seq_lengths == want.seq_lengths and got.BLOCK_SIZE == want.BLOCK_SIZE
    for name in MASK_TENSORS:
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and torch.equal(a, b), name
    idx = torch.arange(got.seq_lengths[0])
    for b_idx in range(got.kv_num_blocks.shape[0]):
        for h in range(got.kv_num_blocks.shape[1]):
            mods = [m.mask_mod(b_idx, h, idx[:, None], idx[None, :]) for m in (got, want)]
            assert torch.equal(*mods)


@pytest.mark.parametrize(("tile", "full_tiles"), [(1, False), (1, True), (2, True)])
def test_cached_block_mask_equals_a_fresh_build(tile, full_tiles):
    """One pattern, two padding masks: the cached pattern part gives the fresh build's mask."""
    flex.clear_pattern_cache()
    pattern = pattern_for(11, block_size=4, mode="itc", r=2)
    cpu = torch.device("cpu")
    for keep in (padding_mask([44, 30], 44), padding_mask([17, 44], 44), None):
        cached = build_block_mask(pattern, keep, 2, cpu, tile, full_tiles)
        fresh = build_block_mask(pattern, keep, 2, cpu, tile, full_tiles, cache=False)
        assert_same_block_mask(cached, fresh)
    assert len(flex._pattern_cache) == 1


def test_cached_block_mask_gives_the_fresh_output():
    """Compiled flex (which reads the block lists) on the cached and on a fresh mask: the same
    output, for two padding masks of one pattern (the shape of the compiled test above)."""
    flex.clear_pattern_cache()
    pattern = pattern_for(12, block_size=16, mode="itc", g=2, r=3, seed=4)
    q, k, v = inputs(2, 3, pattern.seq_len, dim=16)
    kernel = flex._flex_function(compiled=True)
    with torch.no_grad():
        for keep in (padding_mask([182, 100], 192), padding_mask([192, 57], 192)):
            got = flex_sparse_attention(q, k, v, pattern, keep)
            fresh = build_block_mask(pattern, keep, 2, q.device, 1, False, cache=False)
            assert_same_block_mask(build_block_mask(pattern, keep, 2, q.device, 1, False), fresh)
            assert torch.equal(got, kernel(q, k, v, block_mask=fresh))
            want = dense_attention(q, k, v, pattern, keep)
            for b, n in enumerate(keep.sum(-1).tolist()):
                torch.testing.assert_close(got[b, :, :n], want[b, :, :n], atol=ATOL, rtol=0)


def test_pattern_part_is_built_once_per_pattern(monkeypatch):
    """A second call with the same pattern object reads the cache: no new ``block_grid``."""
    calls = []
    original = flex.block_grid
    monkeypatch.setattr(flex, "block_grid", lambda p: calls.append(p) or original(p))
    flex.clear_pattern_cache()
    pattern = pattern_for(9)
    cpu = torch.device("cpu")
    for keep in (padding_mask([72, 40], 72), padding_mask([10, 72], 72), None):
        build_block_mask(pattern, keep, 2, cpu)
    assert calls == [pattern]
    build_block_mask(pattern, None, 2, cpu, tile=2)  # another tiling: another entry
    build_block_mask(pattern_for(9), None, 2, cpu)  # an equal but new pattern: rebuilt
    build_block_mask(pattern, None, 2, cpu, cache=False)  # uncached: built, not stored
    assert len(calls) == 4 and len(flex._pattern_cache) == 3


def test_pattern_cache_is_bounded_and_drops_the_least_recently_used():
    flex.clear_pattern_cache()
    cpu = torch.device("cpu")
    first = pattern_for(3, heads=1)
    build_block_mask(first, None, 1, cpu)
    for _ in range(flex.PATTERN_CACHE_SIZE + 5):
        build_block_mask(pattern_for(3, heads=1), None, 1, cpu)
        build_block_mask(first, None, 1, cpu)  # kept in use: never dropped
        assert len(flex._pattern_cache) <= flex.PATTERN_CACHE_SIZE
    assert len(flex._pattern_cache) == flex.PATTERN_CACHE_SIZE
    assert any(entry.pattern is first for entry in flex._pattern_cache.values())
    flex.clear_pattern_cache()
    assert not flex._pattern_cache


def test_pattern_cache_built_in_inference_mode_serves_autograd():
    """Entries are normal tensors even when first built under ``torch.inference_mode`` (a
    prediction before training must not leave inference tensors for the backward to save)."""
    flex.clear_pattern_cache()
    pattern = pattern_for(5)
    with torch.inference_mode():
        build_block_mask(pattern, padding_mask([40], 40), 1, torch.device("cpu"))
        (entry,) = flex._pattern_cache.values()
    assert not any(t.is_inference() for t in (entry.any_block, entry.all_blocks, entry.block_table))


def test_flex_refuses_cpu_gradients_and_dropout():
    pattern = pattern_for(9)
    q, k, v = inputs(1, 3, pattern.seq_len, grad=True)
    with pytest.raises(ConfigError, match="no CPU backward"):
        flex_sparse_attention(q, k, v, pattern)
    with pytest.raises(ConfigError, match="dropout"):
        flex_sparse_attention(q, k, v, pattern, dropout_p=0.1)
