"""dnabird: BigBird block-sparse attention transformers for DNA."""

__version__ = "0.1.0"
