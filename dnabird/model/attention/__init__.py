"""Block-sparse attention kernels behind one function, :func:`sparse_attention`.

Backends (one module each, never importing each other, all taking a
:class:`~dnabird.model.patterns.BlockPattern`): ``dense`` (readable oracle), ``blocked``
(pure PyTorch, differentiable, the CPU path), ``flex`` (FlexAttention, fused on GPU).
"""

from dnabird.model.attention.api import BACKENDS, choose_backend, sparse_attention

__all__ = ["BACKENDS", "choose_backend", "sparse_attention"]
