"""Subcommands of the ``dnabird`` CLI, one module per area.

Every module here exposes ``register(subparsers)``, which adds its argparse parser(s) and
sets ``func`` to a callable taking the parsed namespace. Modules import nothing heavy at
the top (``dnabird --help`` must stay instant); they import the work when it runs.
:mod:`dnabird.cli` discovers them; :data:`ORDER` fixes the order ``--help`` lists them in.
"""

ORDER = (
    "demo",
    "genome",
    "tokenizer",
    "dataset",
    "pretrain",
    "evaluate",
    "finetune",
    "predict",
    "env",
)
