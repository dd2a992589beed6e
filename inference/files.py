"""Run-folder safety: an exclusive lock, atomic writes, clear disk-full errors, stale temp files.

* :class:`RunLock` - ``fcntl.flock`` on ``<out_dir>/.lock`` for the life of a run; a second run on
  the same folder fails at once with :class:`RunFolderBusyError` naming the holder's pid.
* :func:`atomic_write` - temp file ``.<name>.<pid>.<id>.tmp`` in the same folder, fsync,
  ``os.replace``: a reader (or a process killed mid-write) sees the old file or the new one. A full
  disk raises :class:`DiskFullError` naming the folder and the space needed; the old file stays and
  the temp file is removed.
* :func:`remove_stale_temp_files` - removes only temp files whose writer process is gone.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the lock is a no-op
    fcntl = None

__all__ = [
    "LOCK_NAME",
    "DiskFullError",
    "RunFolderBusyError",
    "RunLock",
    "atomic_write",
    "atomic_write_text",
    "fsync_dir",
    "is_disk_full",
    "disk_full_error",
    "remove_stale_temp_files",
    "temp_path",
]

LOCK_NAME = ".lock"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


class RunFolderBusyError(RuntimeError):
    """Another live process holds the run folder's lock."""


class DiskFullError(OSError):
    """A write failed for lack of space (or a file-size limit); the message names folder and size."""

    def __str__(self) -> str:
        return str(self.strerror)


# --------------------------------------------------------------------------- lock
class RunLock:
    """Exclusive advisory lock on ``folder/.lock`` (``fcntl.flock``), released (and the file
    removed) on :meth:`release`; the kernel drops it when the process dies, so a SIGKILLed run
    leaves at most an unlocked ``.lock`` file that the next run simply locks."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None or self._fd is not None:  # pragma: no cover
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderBusyError(
                    f"out_dir {str(self.path.parent)!r} is in use by another run (pid {holder}); wait for it "
                    "to finish or stop it, or choose another out_dir"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock itself is held, only the pid note is missing
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding the lock, so no one can lock a removed file)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- writes
def is_disk_full(exc: BaseException) -> bool:
    """``True`` for ENOSPC / EDQUOT / EFBIG, also when torch's zip writer wrapped it in a RuntimeError."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("inline_container" in text or "file write failed" in text)


def disk_full_error(path: Path, needed: int, exc: BaseException) -> DiskFullError:
    """The :class:`DiskFullError` for a failed write of about ``needed`` bytes to ``path``."""
    folder = path.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # pragma: no cover
        free = -1
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    err = DiskFullError(
        errno.ENOSPC,
        f"could not write {path.name} in folder {str(folder)!r} ({reason}): it needs about "
        f"{_mb(needed)} free there, {_mb(free) if free >= 0 else 'unknown'} are free (or a file-size "
        "limit applies); the previous file is intact",
    )
    return err


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def temp_path(path: Path) -> Path:
    """``.<name>.<pid>.<random>.tmp`` beside ``path`` (the pid tells whether its writer still lives)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, needed: int = 0) -> Path:
    """Write ``path`` atomically through ``write(file)``; :class:`DiskFullError` when space runs out
    (``needed``: the expected size, for the message). The temp file never outlives a failure."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as f:  # honours the umask, unlike mkstemp's 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(path, needed, exc) from exc
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 ``text``."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), needed=len(data))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temp files of :func:`atomic_write` whose writer process is gone (killed mid-write);
    files of live processes (this one included) are left to their owner. Returns those removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        m = _TEMP.match(tmp.name)
        if m and not _alive(int(m.group(1))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
