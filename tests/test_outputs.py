"""The output-folder discipline: claim and lock, refuse other inputs, resume, overwrite,
finish atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dnabird.errors import ConfigError, InputError
from dnabird.manifest import read_manifest
from dnabird.outputs import (
    LOCK_NAME,
    RUN_NAME,
    OutputFolder,
    check_writable_file,
    describe_changes,
    differences,
)

RUN = {"input_sha256": "abc", "parameters": {"passes": 2, "seed": 0}}


def _interrupt(path, run=RUN, stage="stage") -> None:
    """An interrupted run: it wrote part of its output, then failed."""
    with pytest.raises(RuntimeError), OutputFolder(path, stage, run) as folder:
        (folder.path / "part-0.txt").write_text("half")
        raise RuntimeError


def _finish(folder: OutputFolder, text: str = "result") -> None:
    (folder.path / "part.txt").write_text(text)
    folder.finish({"stage": folder.stage, "counts": 1})


def test_new_folder_is_claimed_finished_and_released(tmp_path):
    out = tmp_path / "a" / "b"
    with OutputFolder(out, "stage", RUN) as folder:
        assert (out / LOCK_NAME).is_file() and (out / RUN_NAME).is_file()
        assert not folder.complete and not folder.resuming
        _finish(folder)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part.txt"]
    assert read_manifest(out)["run"] == RUN


def test_finished_folder_is_reused_without_work(tmp_path):
    with OutputFolder(tmp_path, "stage", RUN) as folder:
        _finish(folder)
    with OutputFolder(tmp_path, "stage", RUN) as again:
        assert again.complete and again.manifest["counts"] == 1


def test_interrupted_run_resumes_and_never_looks_complete(tmp_path):
    with pytest.raises(KeyboardInterrupt), OutputFolder(tmp_path, "stage", RUN) as folder:
        (folder.path / "part-0.txt").write_text("first half")
        raise KeyboardInterrupt
    assert not (tmp_path / "manifest.json").exists()  # nothing claims to be finished
    assert not (tmp_path / LOCK_NAME).exists()  # released on the interrupt
    with pytest.raises(InputError, match="no manifest.json"):
        read_manifest(tmp_path)
    with OutputFolder(tmp_path, "stage", RUN) as folder:
        assert folder.resuming and (tmp_path / "part-0.txt").is_file()
        _finish(folder)
    assert read_manifest(tmp_path)["stage"] == "stage"


def test_other_inputs_are_refused_with_the_differences_named(tmp_path):
    with OutputFolder(tmp_path, "stage", RUN) as folder:
        _finish(folder)
    changed = {**RUN, "parameters": {"passes": 3, "seed": 0}}
    with pytest.raises(ConfigError, match=r"parameters\.passes 2 -> 3.*--overwrite"):
        OutputFolder(tmp_path, "stage", changed).__enter__()
    with pytest.raises(ConfigError, match="'stage' run, not 'other'"):
        OutputFolder(tmp_path, "other", RUN).__enter__()
    assert not (tmp_path / LOCK_NAME).exists()  # a refusal releases the lock too


def test_interrupted_run_of_other_inputs_is_refused(tmp_path):
    _interrupt(tmp_path)
    with pytest.raises(ConfigError, match="interrupted stage run made from other"):
        OutputFolder(tmp_path, "stage", {**RUN, "input_sha256": "def"}).__enter__()


def test_overwrite_clears_a_dnabird_folder(tmp_path):
    with OutputFolder(tmp_path, "stage", RUN) as folder:
        _finish(folder)
    (tmp_path / "sub").mkdir()
    with OutputFolder(tmp_path, "stage", {**RUN, "input_sha256": "x"}, overwrite=True) as f:
        assert not f.complete and not (tmp_path / "part.txt").exists()
        assert not (tmp_path / "sub").exists()
        _finish(f, "new")
    assert (tmp_path / "part.txt").read_text() == "new"


def test_foreign_folder_is_never_cleared(tmp_path):
    (tmp_path / "thesis.docx").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="did not write.*thesis.docx"):
            OutputFolder(tmp_path, "stage", RUN, overwrite=overwrite).__enter__()
    assert (tmp_path / "thesis.docx").read_text() == "precious"


def test_resume_flag_semantics(tmp_path):
    with pytest.raises(ConfigError, match="no interrupted stage run to resume"):
        OutputFolder(tmp_path / "new", "stage", RUN, resume=True).__enter__()
    _interrupt(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"--resume.*--overwrite"):
        OutputFolder(tmp_path / "run", "stage", RUN, resume=False).__enter__()
    with OutputFolder(tmp_path / "run", "stage", RUN, resume=True) as folder:
        assert folder.resuming


def test_accepted_and_ignored_changes(tmp_path):
    _interrupt(tmp_path)
    longer = {**RUN, "parameters": {"passes": 2, "seed": 0, "steps": 9}}
    with OutputFolder(tmp_path, "stage", longer, ignore=["parameters.steps"]) as folder:
        assert folder.resuming and folder.changes == {}
    other = {**RUN, "parameters": {"passes": 5, "seed": 0}}
    with OutputFolder(tmp_path, "stage", other, accept_changes=True) as folder:
        # compared with the last run recorded (the resumed one, with its steps)
        assert folder.changes == {"parameters.passes": (2, 5), "parameters.steps": (9, None)}
        folder.finish({"stage": "stage"})
    accepted = read_manifest(tmp_path)["accepted_changes"]
    assert accepted == {"parameters.passes": [2, 5], "parameters.steps": [9, None]}


def test_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from dnabird.outputs import OutputFolder
        with OutputFolder({str(tmp_path)!r}, "stage", {{}}):
            print("claimed", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(ConfigError, match=rf"in use by another dnabird run \(pid {holder.pid}"):
            OutputFolder(tmp_path, "stage", {}).__enter__()
    finally:
        holder.communicate("\n", timeout=30)
    with OutputFolder(tmp_path, "stage", {}) as folder:  # free again
        assert folder.resuming


def test_killed_holder_releases_the_lock(tmp_path):
    script = f"""
import os
from dnabird.outputs import OutputFolder
OutputFolder({str(tmp_path)!r}, "stage", {{}}).__enter__()
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False)
    assert (tmp_path / LOCK_NAME).exists()  # left behind by the killed process
    with OutputFolder(tmp_path, "stage", {}) as folder:
        assert folder.resuming


def test_unwritable_destination_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        OutputFolder(blocker, "stage", RUN).__enter__()
    with pytest.raises(InputError, match="cannot write the output folder"):
        OutputFolder(blocker / "sub", "stage", RUN).__enter__()
    with pytest.raises(InputError, match="cannot write here"):
        check_writable_file(blocker / "out.json")


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """As root the test cannot make a folder unwritable, so the OS refusal is simulated
    where it would happen (creating the lock file / the probe file)."""
    import dnabird.outputs as outputs

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.os, "open", refuse)
    with pytest.raises(InputError, match=r"^\S+/out: cannot write the output folder "):
        OutputFolder(tmp_path / "out", "s", {}).__enter__()
    monkeypatch.setattr(outputs.Path, "touch", refuse)
    with pytest.raises(InputError, match=r"r\.json: cannot write here \(Permission denied\)"):
        check_writable_file(tmp_path / "r.json")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root user")
def test_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="Permission denied"):
            OutputFolder(locked / "out", "s", {}).__enter__()
        with pytest.raises(InputError, match="Permission denied"):
            check_writable_file(locked / "r.json")
    finally:
        locked.chmod(0o755)


def test_differences_and_their_description():
    old = {"optim": {"lr": 0.001}, "model": {"preset": "tiny"}, "x": 1}
    new = {"optim": {"lr": 0.002}, "model": {"preset": "small"}, "y": 2}
    changes = differences(old, new)
    assert changes == {
        "model.preset": ("tiny", "small"),
        "optim.lr": (0.001, 0.002),
        "x": (1, None),
        "y": (None, 2),
    }
    assert describe_changes(changes, limit=2) == (
        "model.preset tiny -> small, optim.lr 0.001 -> 0.002 and 2 more"
    )
    assert json.dumps(differences(old, old)) == "{}"


def test_failure_before_anything_is_written_leaves_no_claim(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(InputError), OutputFolder(out, "stage", RUN):
        raise InputError("bad input found after the claim")
    assert not out.exists()  # the folder this run created is gone again
    with OutputFolder(out, "stage", {**RUN, "input_sha256": "fixed"}) as folder:
        assert not folder.resuming  # the corrected rerun is not refused
        folder.finish({"stage": "stage"})


def test_failure_in_an_existing_folder_keeps_it(tmp_path):
    with pytest.raises(InputError), OutputFolder(tmp_path, "stage", RUN):
        raise InputError("bad")
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []
