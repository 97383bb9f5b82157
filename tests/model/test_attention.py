"""Equivalence tests of the attention backends on the CPU (fp32 and a float64 gradcheck).

The oracle is the dense backend, itself checked against an explicit softmax written here from
the pattern's block lists.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from dnabird.errors import ConfigError
from dnabird.model.attention import choose_backend, cpu_kernel, sparse_attention
from dnabird.model.attention.api import DENSE_MAX_BLOCKS
from dnabird.model.attention.blocked import blocked_attention
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


@pytest.fixture(params=["kernel", "pytorch"])
def cpu_path(request, monkeypatch):
    """Run a blocked-backend test with our compiled CPU kernel and with the pure-PyTorch path.
    Yields the names of the kernel functions called; checks afterwards that the kernel ran
    exactly when asked for."""
    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "1" if request.param == "kernel" else "0")
    if request.param == "kernel" and not cpu_kernel.available():
        if shutil.which("c++") is None and shutil.which("g++") is None:
            pytest.skip("no C++ compiler to build the CPU kernel")
        pytest.fail(f"the CPU kernel did not build: {cpu_kernel.status()}")
    calls = []
    for name in ("sparse_rows_forward", "sparse_rows_backward"):
        function = getattr(cpu_kernel, name)
        monkeypatch.setattr(
            cpu_kernel, name, lambda *a, name=name, f=function: calls.append(name) or f(*a)
        )
    yield calls
    assert ("sparse_rows_forward" in calls) == (request.param == "kernel")


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
def test_blocked_matches_dense_outputs_and_gradients(case, cpu_path):
    num_blocks, mode, g, r, lengths = CASES[case]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r, seed=len(case))
    length = max(lengths)  # may be shorter than the pattern (not a block multiple)
    keep = padding_mask(lengths, length)
    q, k, v = inputs(len(lengths), 3, length, grad=True)
    weights = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for run in (
        lambda: dense_attention(q, k, v, pattern, keep),
        lambda: sparse_attention(q, k, v, pattern, keep, backend="blocked"),
    ):
        out = run()
        outs.append(out * keep[:, None, :, None])
        grads.append(torch.autograd.grad(loss_on_real_rows(out, keep, weights), (q, k, v)))
    torch.testing.assert_close(outs[1], outs[0], atol=ATOL, rtol=0)
    for name, got, want in zip("qkv", grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0, msg=f"grad of {name}")
    assert ("sparse_rows_backward" in cpu_path) == ("sparse_rows_forward" in cpu_path)


def test_blocked_inference_path_matches_dense(cpu_path):
    """Without gradients nothing is saved for backward; same result."""
    num_blocks, mode, g, r, lengths = CASES["etc-padded-batch"]
    pattern = pattern_for(num_blocks, mode=mode, g=g, r=r)
    keep = padding_mask(lengths, max(lengths))
    q, k, v = inputs(len(lengths), 3, max(lengths))
    with torch.inference_mode():
        got = sparse_attention(q, k, v, pattern, keep, backend="blocked")
    want = dense_attention(q, k, v, pattern, keep)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(got[b, :, :n], want[b, :, :n], atol=ATOL, rtol=0)


def test_blocked_handles_many_chunks(monkeypatch):
    """Rows are processed in chunks; a tiny chunk size must not change the result."""
    import dnabird.model.attention.blocked as blocked

    monkeypatch.setenv("DNABIRD_CPU_KERNEL", "0")  # the kernel does not chunk
    pattern = pattern_for(16, r=2)
    q, k, v = inputs(2, 3, 128, grad=True)
    keep = padding_mask([128, 100], 128)
    want = blocked_attention(q, k, v, pattern, keep)
    want_grads = torch.autograd.grad(want.sum(), (q, k, v))
    monkeypatch.setattr(blocked, "_CHUNK_ELEMENTS", 1)
    got = blocked_attention(q, k, v, pattern, keep)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    for a, b in zip(torch.autograd.grad(got.sum(), (q, k, v)), want_grads, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_blocked_accepts_non_contiguous_inputs(cpu_path):
    """Head-transposed views (as a projection's ``[B, L, H, D]`` output gives) work unchanged."""
    pattern = pattern_for(14, r=2)
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in inputs(2, 3, 112))
    keep = padding_mask([112, 90], 112)
    assert not q.is_contiguous()
    got = blocked_attention(q, k, v, pattern, keep)
    want = dense_attention(q, k, v, pattern, keep)
    torch.testing.assert_close(got[0], want[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(got[1, :, :90], want[1, :, :90], atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", ["itc", "etc"])
def test_blocked_gradcheck_float64(mode):
    pattern = pattern_for(6, block_size=2, heads=2, mode=mode, r=1)
    q, k, v = inputs(2, 2, 11, dim=3, dtype=torch.float64, grad=True)
    keep = padding_mask([11, 8], 11)

    def f(q, k, v):
        return sparse_attention(q, k, v, pattern, keep, backend="blocked") * keep[:, None, :, None]

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-6, fast_mode=True)


def test_blocked_dropout_is_reproducible_and_its_gradient_is_exact():
    pattern = pattern_for(6, block_size=2, heads=2, r=1)
    q, k, v = inputs(1, 2, 12, dim=3, dtype=torch.float64, grad=True)

    def f(q, k, v):
        torch.manual_seed(0)
        return blocked_attention(q, k, v, pattern, dropout_p=0.3)

    assert torch.equal(f(q, k, v), f(q, k, v))
    assert not torch.allclose(f(q, k, v), blocked_attention(q, k, v, pattern))
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


def test_auto_uses_blocked_on_cpu_for_long_sequences():
    pattern = pattern_for(DENSE_MAX_BLOCKS + 1)
    q = torch.zeros(1, 3, pattern.seq_len, 4)
    assert choose_backend(q, pattern) == "blocked"
    assert choose_backend(q.requires_grad_(), pattern) == "blocked"
    assert choose_backend(q, pattern_for(DENSE_MAX_BLOCKS)) == "dense"
    assert choose_backend(q, pattern, backend="flex") == "flex"
    with pytest.raises(ConfigError, match="unknown attention backend"):
        choose_backend(q, pattern, backend="fast")


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


def test_flex_refuses_cpu_gradients_and_dropout():
    pattern = pattern_for(9)
    q, k, v = inputs(1, 3, pattern.seq_len, grad=True)
    with pytest.raises(ConfigError, match="no CPU backward"):
        flex_sparse_attention(q, k, v, pattern)
    with pytest.raises(ConfigError, match="dropout"):
        flex_sparse_attention(q, k, v, pattern, dropout_p=0.1)
