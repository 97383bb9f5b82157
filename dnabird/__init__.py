"""dnabird: BigBird block-sparse attention transformers for DNA."""

__version__ = "0.1.0"

#: Public names loaded on first use, so ``import dnabird`` stays light.
_LAZY = {"DNATokenizer": "dnabird.tokenizer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dnabird' has no attribute {name!r}")
