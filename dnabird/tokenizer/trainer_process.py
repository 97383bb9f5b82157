"""SentencePiece training in a child process: a status line while it runs, and Ctrl-C
stops it at once.

``SentencePieceTrainer.train`` runs in C++ without returning to Python, so in-process a
Ctrl-C waits for the whole training (tens of seconds to minutes). :func:`run_trainer`
therefore trains in a fresh Python process (its own session, so a terminal's Ctrl-C reaches
only us) and kills it when this process is interrupted; on Linux the child also dies with
its parent. The child logs SentencePiece's progress to a file that we follow to update a
:mod:`dnabird.progress` status line (elapsed time and the current phase). The model is the
same bytes as an in-process training with the same sentences, options and seed.

Data path: sentences -> ``WORK/sentences.txt`` (one per line) + ``WORK/spec.json``
(trainer options, seed) -> child -> ``WORK/model`` (serialized model) or ``WORK/error.txt``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnabird.errors import ConfigError

_POLL_SECONDS = 0.2
_SENTENCEPIECE_FAILED = 3  # the child's exit status when SentencePiece raised an error
_EM_STEP = re.compile(r"EM sub_iter=\d+ size=(\d+)")
_BPE_STEP = re.compile(r"merges=(\d+)")


class SentencePieceError(RuntimeError):
    """SentencePiece refused the training; ``str(err)`` is its message (without the C++
    source location)."""


def run_trainer(
    sentences: Sequence[str], options: dict[str, Any], seed: int, desc: str = "sentencepiece"
) -> bytes:
    """Train SentencePiece on ``sentences`` (no newlines inside) with trainer ``options``
    (keyword arguments of ``SentencePieceTrainer.train`` without ``sentence_iterator`` and
    ``model_writer``) and random seed ``seed``; return the serialized model.

    Raises SentencePieceError when SentencePiece rejects the input or options, ConfigError
    when the child is killed (out of memory), KeyboardInterrupt within a poll interval
    (0.2 s) of Ctrl-C, after killing the child.
    """
    from dnabird.progress import progress

    vocab_size = int(options.get("vocab_size", 0))
    with tempfile.TemporaryDirectory(prefix="dnabird-sentencepiece-") as tmp:
        work = Path(tmp)
        (work / "sentences.txt").write_text("\n".join(sentences), encoding="ascii")
        spec = {"options": {**options, "minloglevel": 0}, "seed": seed}
        (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        log_path = work / "log.txt"
        with (
            open(log_path, "wb") as log,
            open(log_path, encoding="utf-8", errors="replace") as tail,
        ):
            child = _start_child(work, log)
            try:
                with progress(
                    total=None, desc=desc, bar_format="{desc} [{elapsed}]{postfix}"
                ) as bar:
                    while not _finished(child):
                        status = _latest_status(tail, vocab_size)
                        if status:
                            bar.set_postfix_str(status, refresh=False)
                        bar.refresh()
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if child.returncode == 0:
            return (work / "model").read_bytes()
        if child.returncode == _SENTENCEPIECE_FAILED:
            raise SentencePieceError((work / "error.txt").read_text(encoding="utf-8"))
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            cause = "; out of memory?" if name == "SIGKILL" else ""
            raise ConfigError(
                f"SentencePiece training was killed ({name}{cause}); train on a smaller "
                "sample (--sample-bp) or a smaller vocabulary"
            )
        raise RuntimeError(
            f"SentencePiece training process failed (exit {child.returncode}): "
            f"{_last_line(log_path)}"
        )


def _start_child(work: Path, log: Any) -> subprocess.Popen:
    """Start the training process, with this dnabird importable and its output in ``log``."""
    import dnabird

    root = str(Path(dnabird.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = "from dnabird.tokenizer.trainer_process import child_main; child_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, str(work), str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,
    )


def _finished(child: subprocess.Popen) -> bool:
    try:
        child.wait(timeout=_POLL_SECONDS)
    except subprocess.TimeoutExpired:
        return False
    return True


def _latest_status(tail: Any, vocab_size: int) -> str | None:
    """The phase shown by the newest complete log lines (None when nothing new)."""
    status = None
    for line in tail.readlines():
        if match := _EM_STEP.search(line):
            status = f"unigram EM: {int(match[1]):,} pieces, pruning to {vocab_size:,}"
        elif match := _BPE_STEP.search(line):
            status = f"BPE: {int(match[1]):,} merges"
        elif "Extracting seed" in line:
            status = "extracting seed pieces"
        elif "Normalizing sentences" in line:
            status = "reading sentences"
    return status


def _last_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def child_main() -> None:
    """Entry point of the training process: ``-c ... WORK PARENT_PID``."""
    import io

    work, parent = Path(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    import sentencepiece as spm

    spec = json.loads((work / "spec.json").read_text(encoding="utf-8"))
    sentences = (work / "sentences.txt").read_text(encoding="ascii").split("\n")
    writer = io.BytesIO()
    spm.set_random_generator_seed(spec["seed"])
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=writer, **spec["options"]
        )
    except RuntimeError as err:
        message = str(err).strip()
        # "INTERNAL: src/x.cc(638) [check] Message." -> "Message."
        message = message.rsplit("] ", 1)[-1] if "] " in message else message
        (work / "error.txt").write_text(message, encoding="utf-8")
        sys.exit(_SENTENCEPIECE_FAILED)
    (work / "model").write_bytes(writer.getvalue())


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``),
    so a killed dnabird leaves no training behind; exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
