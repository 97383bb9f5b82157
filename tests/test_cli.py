"""The command line's contract: help, version, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dnabird import __version__, cli
from dnabird.errors import InputError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m dnabird.cli ARGS`` in a fresh process (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "dnabird.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: dnabird" in result.stdout
    for module_name in cli.COMMAND_MODULES:
        assert module_name  # every module registers at least one subcommand below
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        assert name in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"dnabird {__version__}"


def test_unknown_subcommand_is_one_line_exit_2():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dnabird: error:")
    assert "no-such-command" in lines[0]
    assert "Traceback" not in result.stderr


def test_no_subcommand_prints_help_and_exits_2():
    result = run_cli()
    assert result.returncode == 2
    assert "usage: dnabird" in result.stderr


def test_env_command_reports_versions():
    result = run_cli("env")
    assert result.returncode == 0
    assert __version__ in result.stdout
    assert "torch" in result.stdout
    assert "cpu attention kernel" in result.stdout


@pytest.fixture
def failing_command(monkeypatch):
    """Register a subcommand ``boom MODE`` that fails the way MODE says."""

    def run(args):
        if args.mode == "input":
            raise InputError("reads.fa: line 3: unexpected character '!'")
        raise RuntimeError("a bug")

    def register(subparsers):
        parser = subparsers.add_parser("boom")
        parser.add_argument("mode")
        parser.set_defaults(func=run)

    module = type(sys)("boom_commands")
    module.register = register
    monkeypatch.setitem(sys.modules, "boom_commands", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "boom_commands"))


def test_dnabird_error_is_one_line_exit_2(failing_command, capsys):
    assert cli.main(["boom", "input"]) == 2
    err = capsys.readouterr().err
    assert err == "dnabird: error: reads.fa: line 3: unexpected character '!'\n"


def test_debug_flag_shows_traceback(failing_command, capsys):
    assert cli.main(["--debug", "boom", "input"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().endswith("dnabird: error: reads.fa: line 3: unexpected character '!'")


def test_unexpected_exception_propagates(failing_command):
    # Not a DnabirdError: a bug. main() lets it through, so Python prints the traceback
    # and exits 1.
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["boom", "bug"])


def test_unexpected_exception_exits_1_with_traceback(tmp_path):
    script = (
        "import sys; from dnabird import cli\n"
        "cli.COMMAND_MODULES = ()\n"
        "parser_builder = cli.build_parser\n"
        "def build():\n"
        "    p = parser_builder(); s = p._subparsers._group_actions[0]\n"
        "    q = s.add_parser('bug'); q.set_defaults(func=lambda a: 1 / 0); return p\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['bug']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


def test_missing_input_file_is_one_line_exit_2(tmp_path):
    result = run_cli("preprocess", str(tmp_path / "missing.fa"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == f"dnabird: error: {tmp_path / 'missing.fa'}: FASTA file not found\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-progress", "-q", "--debug", "env"],
        ["env", "--no-progress", "-q", "--debug"],
        ["--no-progress", "env", "-q", "--debug"],
    ],
)
def test_global_options_before_or_after_the_subcommand(argv):
    args = cli.build_parser().parse_args(argv)
    assert (args.no_progress, args.quiet, args.debug, args.verbose) == (True, 1, True, 0)


def test_global_options_after_the_subcommand_reach_the_run(monkeypatch, capsys):
    from dnabird import progress

    monkeypatch.setattr(progress, "_enabled", None)
    assert cli.main(["env", "--no-progress"]) == 0
    assert progress.enabled() is False


def test_every_subcommand_help_shows_defaults():
    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                if action.help == "==SUPPRESS==":
                    continue
                assert f"{action.default}" in text, (name, action.dest)
                assert text.count("(default") >= 1, name


def test_an_error_raised_in_a_dataloader_worker_stays_one_line():
    """torch re-raises a worker's exception as the same class with the worker's whole
    traceback as its message; the CLI prints the original message only."""
    from torch.utils.data import DataLoader, IterableDataset

    from dnabird.cli import user_message
    from dnabird.errors import InputError

    class Broken(IterableDataset):
        def __iter__(self):
            raise InputError("data.mat: example 7: label 2 is not 0 or 1")

    loader = DataLoader(Broken(), batch_size=None, num_workers=1)
    with pytest.raises(InputError) as info:
        next(iter(loader))
    assert "\n" in str(info.value)  # as torch delivers it
    assert user_message(info.value) == "data.mat: example 7: label 2 is not 0 or 1"
    assert user_message(InputError("plain")) == "plain"
