"""Run-folder files: the lock, atomic writes on a full disk, stale temp files."""

import errno
import io
import os
import subprocess
import sys

import pytest

from dive_pyro.inference.checkpoint import get_rng_state, save_checkpoint
from dive_pyro.inference.files import DiskFullError, RunFolderBusyError, RunLock, remove_stale_temp_files


def _state(step=3):
    return {
        "step": step,
        "variant": "dive",
        "config": {"model": {"hidden": 8}},
        "model": {},
        "guide": {},
        "optimizer": {},
        "scheduler": {},
        "rng": get_rng_state(),
    }


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / f".checkpoint.pt.{_dead_pid()}.abcd0123.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.abcd0123.tmp"  # e.g. a save in progress in another thread
    for p in (dead, live):
        p.write_bytes(b"partial")
    (tmp_path / "keep.txt").write_text("x")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "keep.txt"])


# --------------------------------------------------------------------------- disk full, lock
def _full_disk(monkeypatch, after: int = 0):
    """Writes to files opened with open(..., 'xb') fail with ENOSPC after ``after`` bytes."""
    real_open = open

    class Full(io.FileIO):
        written = 0

        def write(self, b):
            if Full.written + len(b) > after:
                raise OSError(errno.ENOSPC, "No space left on device")
            Full.written += len(b)
            return super().write(b)

    def fake_open(file, mode="r", *args, **kwargs):
        if mode == "xb":
            return io.BufferedWriter(Full(file, "xb"))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)


def test_a_full_disk_is_a_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = save_checkpoint(_state(step=1), tmp_path / "checkpoint.pt")
    before = path.read_bytes()
    _full_disk(monkeypatch, after=100)
    with pytest.raises(DiskFullError, match=rf"could not write checkpoint.pt in folder '{tmp_path}' .*needs about"):
        save_checkpoint(_state(step=2), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_second_lock_on_a_folder_names_the_holder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(
            RunFolderBusyError, match=rf"out_dir '{tmp_path}' is in use by another run \(pid {os.getpid()}\)"
        ):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass


def test_the_lock_dies_with_its_process(tmp_path):
    code = (
        "import sys, time; from dive_pyro.inference.files import RunLock; "
        "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    cmd = [sys.executable, "-c", code, str(tmp_path)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "locked"
            with pytest.raises(RunFolderBusyError, match=f"pid {proc.pid}"):
                RunLock(tmp_path).acquire()
        finally:
            proc.kill()
    RunLock(tmp_path).acquire().release()  # SIGKILL released it
