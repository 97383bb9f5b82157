"""The one ``dnabird`` command.

Subcommands live in :mod:`dnabird.commands`, one small module per area, each exposing
``register(subparsers)``; this module discovers them, parses, sets up logging and progress
bars, runs the chosen command and maps errors to exit codes.

Exit status: 0 on success; 2 for a :class:`~dnabird.errors.DnabirdError` (printed as one
line, ``dnabird: error: <message>``, with the traceback only under ``--debug``) and for
bad command-line usage; 1 for any other exception (a bug), with its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from dnabird import __version__, commands
from dnabird.errors import DnabirdError


def _discover_command_modules() -> tuple[str, ...]:
    """Names of the modules in :mod:`dnabird.commands`, in ``commands.ORDER``."""
    names = [
        info.name
        for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")  # helpers such as commands._types
    ]
    rank = {name: i for i, name in enumerate(commands.ORDER)}
    names.sort(key=lambda name: (rank.get(name, len(rank)), name))
    return tuple(f"{commands.__name__}.{name}" for name in names)


#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = _discover_command_modules()


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default in ``--help`` (unless its help text already states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "default" in text.lower()
        if shown or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _OneLineErrorParser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit status 2, and whose
    help lists defaults."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"dnabird: error: {message} (see '{self.prog} --help')\n")


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """``-v/-q``, ``--no-progress`` and ``--debug``: accepted before the subcommand and after
    it (``dnabird preprocess ... --no-progress``). In a subcommand they default to SUPPRESS, so
    a value given before the subcommand is kept unless it is given again after it."""
    unset = {"default": argparse.SUPPRESS} if in_subcommand else {}
    group = parser.add_argument_group("global options") if in_subcommand else parser
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", help="more log output", **(unset or {"default": 0})
    )
    verbosity.add_argument(
        "-q", "--quiet", action="count", help="less log output", **(unset or {"default": 0})
    )
    group.add_argument(
        "--no-progress", action="store_true", help="never draw progress bars", **unset
    )
    group.add_argument("--debug", action="store_true", help="show tracebacks for errors", **unset)


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``dnabird`` argument parser with every registered subcommand."""
    parser = _OneLineErrorParser(
        prog="dnabird",
        description="BigBird block-sparse transformers for DNA: preprocess a genome, train a "
        "tokenizer, pretrain, fine-tune and predict.",
    )
    parser.add_argument("--version", action="version", version=f"dnabird {__version__}")
    _add_global_options(parser, in_subcommand=False)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_OneLineErrorParser
    )
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for subparser in subparsers.choices.values():
        _add_global_options(subparser, in_subcommand=True)
    return parser


def _configure_logging(verbose: int, quiet: int) -> None:
    level = max(logging.DEBUG, min(logging.INFO + 10 * (quiet - verbose), logging.CRITICAL))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # libraries that set their own logger
        handler.setLevel(level)  # levels (Lightning) still obey -v/-q


def user_message(err: DnabirdError) -> str:
    """The one-line message of ``err``. An error raised in a DataLoader worker process
    reaches the main process re-raised as the same class, its message the worker's whole
    traceback ("Caught InputError in DataLoader worker process 0. Original Traceback ...");
    its last line holds the original message."""
    message = str(err)
    if "\n" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return last.removeprefix(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dnabird`` command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
    if args.no_progress:
        from dnabird.progress import set_enabled

        set_enabled(False)
    try:
        args.func(args)
    except DnabirdError as err:
        if args.debug:
            traceback.print_exc()
        print(f"dnabird: error: {user_message(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("dnabird: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
