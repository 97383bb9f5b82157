"""Blocked backend, fused CPU path: PyTorch's fused FlashAttention op over gathered key slots.

Each chunk of ``c`` ordinary query blocks is one call of the CPU op
``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu`` on ``[B*H, c, b, D]`` queries
and the gathered ``[B*H, c, T, D]`` key and value slots, the rows of the chunk acting as heads,
with the ``[B*H, c, 1, T]`` slot bias as mask; backward is one call of its ``_backward`` op per
chunk, and the slot gradients are scattered back. CPU only, no attention dropout; float32,
float64 and bfloat16 alike. Shapes and the shared machinery: :mod:`~dnabird.model.attention.slots`.

The two ops are private to PyTorch and may change or vanish in any release: :func:`available`
checks once per process that both exist and that a tiny probe call agrees with an explicit
softmax, forward and gradients. When they do not, ``api.py`` runs ``blocked_explicit`` instead
and :func:`status` says why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from dnabird.errors import ConfigError
from dnabird.model.attention.slots import ChunkPlan, SlotTable, attend_blocks, flat
from dnabird.model.patterns import BlockPattern

FORWARD_OP = "_scaled_dot_product_flash_attention_for_cpu"
BACKWARD_OP = "_scaled_dot_product_flash_attention_for_cpu_backward"

Ops = tuple[Callable, Callable]


def blocked_fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: BlockPattern,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Block-sparse attention ``[B, H, L, D]`` with ``L == pattern.seq_len``."""
    reason = unsupported(q, pattern, dropout_p)
    if reason is not None:
        raise ConfigError(f"attention backend blocked_fused: {reason}; use blocked")
    return attend_blocks(q, k, v, pattern, key_padding_mask, dropout_p, _FusedRows, "blocked_fused")


def unsupported(q: torch.Tensor, pattern: BlockPattern, dropout_p: float) -> str | None:
    """Why this backend cannot run these inputs, or None when it can."""
    if q.device.type != "cpu":
        return f"runs on the CPU only, not {q.device.type}"
    if dropout_p > 0.0:
        return "has no attention dropout"
    ops = _ops()
    return ops if isinstance(ops, str) else None


def available() -> bool:
    """Whether the private ops exist and passed the probe (checked once per process)."""
    return not isinstance(_ops(), str)


def status() -> str:
    """One line: ``available``, or ``unavailable: <why>``."""
    ops = _ops()
    return f"unavailable: {ops}" if isinstance(ops, str) else "available"


@functools.cache
def _ops() -> Ops | str:
    """This torch's ops, or why they cannot be used: :func:`find_ops`, once per process."""
    return find_ops(torch.ops.aten)


def find_ops(namespace) -> Ops | str:
    """The forward and backward op found in ``namespace`` (``torch.ops.aten``), or why they
    cannot be used: missing, or a probe call failed or disagreed with an explicit softmax."""
    for name in (FORWARD_OP, BACKWARD_OP):
        if not hasattr(namespace, name):
            return f"torch {torch.__version__} has no torch.ops.aten.{name}"
    ops = getattr(namespace, FORWARD_OP), getattr(namespace, BACKWARD_OP)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            _probe(ops)
    except Exception as error:  # a changed op can fail in any way (TypeError, RuntimeError...)
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return f"torch.ops.aten.{FORWARD_OP} failed a probe call: {type(error).__name__}: {first}"
    return ops


def _probe(ops: Ops) -> None:
    """Run both ops as :class:`_FusedRows` does on a tiny chunk (2 rows of 4 queries, 12 keys,
    some masked) and compare with an explicit softmax and its autograd gradients; raise on any
    difference."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, 4, 8, generator=gen, requires_grad=True)  # [N, c, b, D]
    k, v = (torch.randn(3, 2, 12, 8, generator=gen, requires_grad=True) for _ in "kv")
    grad_out = torch.randn(3, 2, 4, 8, generator=gen)
    keep = torch.rand(3, 2, 1, 12, generator=gen) > 0.3
    keep[..., 0] = True
    bias = torch.zeros(keep.shape).masked_fill_(~keep, torch.finfo(torch.float32).min)
    scale = 8**-0.5
    scores = (q @ k.transpose(-1, -2)) * scale + bias
    want_out = torch.softmax(scores, -1) @ v
    want_grads = torch.autograd.grad(want_out, (q, k, v), grad_out)
    with torch.no_grad():
        out, lse = _forward(ops, q, k, v, bias, scale)
        grads = _backward(ops, grad_out, q, k, v, out, lse, bias, scale)
        checks = {"output": (out, want_out), "log-sum-exp": (lse, torch.logsumexp(scores, -1))}
        for name, got, want in zip(("grad_q", "grad_k", "grad_v"), grads, want_grads, strict=True):
            checks[name] = (got, want)
        for name, (got, want) in checks.items():
            if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
                raise ValueError(f"{name} differs from an explicit softmax")


def _forward(ops: Ops, query, keys, values, bias, scale):
    """Output ``[N, c, b, D]`` and log-sum-exp ``[N, c, b]`` of queries ``[N, c, b, D]`` over
    keys and values ``[N, c, T, D]`` with additive ``bias: [N, c, 1, T]``."""
    return ops[0](query, keys, values, attn_mask=bias, scale=scale)


def _backward(ops: Ops, grad_out, query, keys, values, out, lse, bias, scale):
    """Gradients of queries, keys and values of :func:`_forward`."""
    return ops[1](grad_out, query, keys, values, out, lse, 0.0, False, attn_mask=bias, scale=scale)


class _FusedRows:
    """The ordinary rows chunk by chunk (a :class:`~dnabird.model.attention.slots.Rows`)."""

    def __init__(
        self,
        table: SlotTable,
        q: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        dropout_p: float,
    ) -> None:
        self.plan = ChunkPlan(table, q, key_padding_mask)
        self.ops: Ops = _ops()  # available: checked by blocked_fused_attention

    def forward(self, query, k, v, out_rows, lse) -> None:
        scale = query.shape[-1] ** -0.5
        rows_query, rows_out = flat(query), flat(out_rows)  # [B*H, n, b, D]
        for chunk, keys, values in self.plan.gather(k, v):  # [B*H, c, T, D]
            lo, hi = chunk.lo, chunk.hi
            chunk_out, chunk_lse = _forward(
                self.ops, rows_query[:, lo:hi], keys, values, chunk.bias, scale
            )  # [B*H, c, b, D], [B*H, c, b]
            rows_out[:, lo:hi] = chunk_out
            lse[:, lo:hi] = chunk_lse

    def backward(self, query, k, v, out_rows, grad_rows, lse, grad_query, grad_k, grad_v):
        scale = query.shape[-1] ** -0.5
        rows_query, rows_out = flat(query), flat(out_rows)  # [B*H, n, b, D]
        rows_grad, rows_grad_query = flat(grad_rows), flat(grad_query)
        for chunk, keys, values in self.plan.gather(k, v):  # [B*H, c, T, D]
            lo, hi = chunk.lo, chunk.hi
            grads = _backward(
                self.ops,
                rows_grad[:, lo:hi],
                rows_query[:, lo:hi],
                keys,
                values,
                rows_out[:, lo:hi],
                lse[:, lo:hi],
                chunk.bias,
                scale,
            )  # [B*H, c, b, D], [B*H, c, T, D], [B*H, c, T, D]
            rows_grad_query[:, lo:hi] = grads[0]
            self.plan.scatter(grad_k, grads[1], chunk)
            self.plan.scatter(grad_v, grads[2], chunk)
