"""One discipline for output folders: claim, check, resume or overwrite, finish atomically.

Every command that writes a folder (``preprocess``, ``train-tokenizer``, ``tokenize``,
``pretrain``, ``finetune``, ``predict``, ...) goes through :class:`OutputFolder`::

    with OutputFolder(out, stage="tokenize", run={"corpus": sha, "tokenizer": sha}) as folder:
        if folder.complete:                 # same stage, same run: nothing to do
            return folder.manifest
        ...                                 # write files into folder.path, each atomically
        folder.finish(manifest)             # manifest.json last: the folder is now complete

What it guarantees:

- **Claimed before any work.** Entering creates the folder (and its parents) and takes an
  exclusive lock on ``.dnabird.lock`` inside it, so an unwritable destination fails at once
  (one line, exit 2) and a second run into the same folder is refused, naming the process
  that holds it. The lock is released (and its file removed) on exit, also on errors and
  Ctrl-C; a killed process releases it with its file descriptor.
- **Made from these inputs, or refused.** ``run`` (JSON-able: checksums of the inputs and
  every parameter that changes the output) is recorded in ``.dnabird-run.json`` while the
  run is unfinished and in the manifest (``manifest["run"]``) when it is done. A folder
  holding another stage, or the same stage from other inputs or parameters, is refused with
  the differing keys named, unless ``overwrite`` (which clears it) or ``accept_changes``.
- **Resume or redo, never mix.** An interrupted run with the same ``run`` resumes
  (``folder.resuming`` is True; the stage skips what it already wrote); ``resume=False``
  refuses to touch one, ``resume=True`` requires one (as ``pretrain --resume`` does).
- **Complete means complete.** ``manifest.json`` is written last, atomically, and is what
  readers check (:func:`dnabird.manifest.read_manifest`); files inside are written under
  temporary names (:func:`dnabird.files.atomic_path`), so nothing half-written ever looks
  finished. A folder with files dnabird did not make (no manifest, no run record) is never
  cleared, even with ``overwrite``. A run that fails before writing anything (a bad input
  found after the claim) leaves no run record and removes the folder if it created it, so the
  corrected rerun is not refused.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import socket
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dnabird.errors import ConfigError, InputError
from dnabird.files import write_text_atomic
from dnabird.manifest import MANIFEST_NAME, read_manifest, write_manifest

LOCK_NAME = ".dnabird.lock"
RUN_NAME = ".dnabird-run.json"


class OutputFolder:
    """An output folder claimed for one run of ``stage`` (see the module docstring).

    Arguments:
        path: the folder (created with its parents).
        stage: the manifest's ``stage`` (e.g. ``"preprocess"``).
        run: what determines the output (input checksums, parameters), JSON-able; compared
            key by key with what the folder already holds.
        overwrite: clear a folder of this or another dnabird run instead of refusing.
        resume: ``"auto"`` resumes a matching interrupted run, ``True`` requires one,
            ``False`` refuses one (``--resume`` / ``--overwrite`` tell the user what to do).
        accept_changes: resume or reuse even when ``run`` differs (the differences are
            recorded in :attr:`changes`), for stages where a user may deliberately change a
            setting between resumes.
        ignore: dotted ``run`` keys left out of the comparison (e.g. a step count that a
            resumed run may extend).

    Attributes after entering: ``complete`` (the folder already holds this run's result),
    ``manifest`` (its manifest, when complete), ``resuming`` (an interrupted run of the same
    inputs continues), ``changes`` (``{dotted key: (old, new)}`` accepted by
    ``accept_changes``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stage: str,
        run: dict[str, Any],
        *,
        overwrite: bool = False,
        resume: bool | str = "auto",
        accept_changes: bool = False,
        ignore: Collection[str] = (),
    ) -> None:
        if resume not in ("auto", True, False):
            raise ValueError(f"resume must be 'auto', True or False, got {resume!r}")
        self.path = Path(path)
        self.stage = stage
        self.run = json.loads(json.dumps(run))  # a plain-JSON copy, compared as stored
        self.overwrite = overwrite
        self.resume = resume
        self.accept_changes = accept_changes
        self.ignore = frozenset(ignore)
        self.complete = False
        self.resuming = False
        self.manifest: dict[str, Any] | None = None
        self.changes: dict[str, tuple[Any, Any]] = {}
        self._lock: _Lock | None = None
        self._created = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> OutputFolder:
        self._created = not self.path.exists()
        self._lock = _Lock.acquire(self.path)
        try:
            self._inspect()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None and not self.complete:
            self._drop_empty_claim()
        self._release()

    def _drop_empty_claim(self) -> None:
        """After a failure before anything was written (e.g. a bad input found after the
        claim), leave no trace: no run record that would refuse the corrected rerun, and no
        empty folder this run created."""
        if any(p.name not in (LOCK_NAME, RUN_NAME) for p in self.path.iterdir()):
            return
        if self.resuming:  # the record belongs to an earlier, real run
            return
        (self.path / RUN_NAME).unlink(missing_ok=True)
        if self._created:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()

    def finish(self, manifest: dict[str, Any]) -> Path:
        """Write ``manifest.json`` (with ``manifest["run"]`` set to this run) as the last file
        of the folder and drop the run record; return the manifest's path."""
        manifest = {**manifest, "run": self.run}
        if self.changes:
            manifest["accepted_changes"] = {k: list(v) for k, v in self.changes.items()}
        path = write_manifest(self.path, manifest)
        (self.path / RUN_NAME).unlink(missing_ok=True)
        self.complete, self.manifest = True, manifest
        return path

    # ------------------------------------------------------------------ checks
    def _inspect(self) -> None:
        manifest_path = self.path / MANIFEST_NAME
        run_path = self.path / RUN_NAME
        if manifest_path.is_file():
            manifest = read_manifest(self.path)
            if self._usable(manifest.get("stage"), manifest.get("run"), "holds a finished"):
                self.complete, self.manifest = True, manifest
                return
        elif run_path.is_file():
            record = _read_json(run_path)
            if self._usable(record.get("stage"), record.get("run"), "holds an interrupted"):
                if self.resume is False:
                    raise ConfigError(
                        f"{self.path}: holds an interrupted {self.stage} run; resume it "
                        "(--resume) or start again (--overwrite)"
                    )
                self.resuming = True
        elif self._foreign_entries():
            raise ConfigError(
                f"{self.path}: holds files dnabird did not write "
                f"({', '.join(self._foreign_entries()[:3])}); choose an empty or new folder"
            )
        if self.resume is True and not self.resuming:
            raise ConfigError(f"{self.path}: no interrupted {self.stage} run to resume")
        write_text_atomic(
            run_path, json.dumps({"stage": self.stage, "run": self.run}, indent=2) + "\n"
        )

    def _usable(self, stage: Any, run: Any, holds: str) -> bool:
        """Whether what the folder holds (``stage``, ``run``) may be reused or resumed; clear
        it for ``overwrite``; otherwise refuse with what differs."""
        if self.overwrite:
            self._clear()
            return False
        if stage != self.stage:
            raise ConfigError(
                f"{self.path}: {holds} {stage!r} run, not {self.stage!r}; choose another "
                "folder (or --overwrite to replace it)"
            )
        changes = {
            key: pair
            for key, pair in differences(run if isinstance(run, dict) else {}, self.run).items()
            if not any(key == k or key.startswith(k + ".") for k in self.ignore)
        }
        if changes and not self.accept_changes:
            raise ConfigError(
                f"{self.path}: {holds} {self.stage} run made from other inputs or parameters "
                f"({describe_changes(changes)}); use --overwrite to replace it or choose "
                "another folder"
            )
        self.changes = changes
        return True

    def _foreign_entries(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.name != LOCK_NAME)

    def _clear(self) -> None:
        """Remove everything in the folder but the lock (only called on a dnabird folder)."""
        for entry in self.path.iterdir():
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every leaf that differs between two
    nested dicts (a key missing on one side has the value None there)."""
    changed: dict[str, tuple[Any, Any]] = {}

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        elif a != b:
            changed[prefix or "(top)"] = (a, b)

    walk(old, new, "")
    return changed


def describe_changes(changes: dict[str, tuple[Any, Any]], limit: int = 4) -> str:
    """One line for :func:`differences`: ``optim.lr 0.001 -> 0.002, model.preset ...``."""

    def short(value: Any) -> str:
        text = json.dumps(value) if not isinstance(value, str) else value
        return text if len(text) <= 24 else text[:12] + "..." + text[-8:]

    shown = [f"{key} {short(a)} -> {short(b)}" for key, (a, b) in list(changes.items())[:limit]]
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(shown) + more


def check_writable_file(path: str | os.PathLike) -> Path:
    """Fail now (InputError, one line) when a file cannot be created at ``path``: its folder
    is created if needed and a probe file written and removed there. Use it for single-file
    outputs (``-o results.json``) before the work that produces them."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.{os.getpid()}.probe"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise InputError(f"{path}: cannot write here ({_reason(err)})") from None
    return path


def _reason(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, str(err))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


class _Lock:
    """An exclusive ``flock`` on ``FOLDER/.dnabird.lock`` holding who took it (JSON)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, folder: Path) -> _Lock:
        import fcntl

        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder}: exists and is not a folder")
        path = folder / LOCK_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_json(path)
                    os.close(fd)
                    raise ConfigError(
                        f"{folder}: in use by another dnabird run ({_describe_holder(holder)}); "
                        "wait for it to finish or choose another folder"
                    ) from None
                # The previous holder may have removed the file between our open and lock.
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        break
                os.close(fd)
        except OSError as err:
            raise InputError(f"{folder}: cannot write the output folder ({_reason(err)})") from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv[:3]),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        return cls(path, fd)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)  # closing releases the flock


def _describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
        f"{holder.get('started', '?')}: {holder.get('command', '?')}"
    )
