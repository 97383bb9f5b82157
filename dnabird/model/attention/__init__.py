"""Block-sparse attention kernels behind one function, :func:`sparse_attention`.

Backends (one module each, never importing each other, all taking a
:class:`~dnabird.model.patterns.BlockPattern`): ``dense`` (readable oracle), ``flex``
(FlexAttention, fused on GPU) and the blocked family on block views, differentiable, O(L)
memory: ``blocked_kernel`` (our compiled CPU kernel), ``blocked_fused`` (PyTorch's fused CPU
op), ``blocked_explicit`` (plain matmul-softmax-matmul). :mod:`.api` chooses; its docstring
says who runs when.
"""

from dnabird.model.attention.api import BACKENDS, choose_backend, sparse_attention

__all__ = ["BACKENDS", "choose_backend", "sparse_attention"]
