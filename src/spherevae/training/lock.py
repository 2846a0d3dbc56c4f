"""One writer per run directory: an advisory lock held while a process trains into it.

``RUN_DIR/.lock`` is opened and locked with the operating system's advisory file lock (``flock`` on
POSIX, ``msvcrt.locking`` on Windows). The system releases the lock when its process ends, however
it ends (SIGKILL, a crash, a lost machine), so a lock can never outlive its writer and block a run
for good. The file also records who holds it (process id, host, start time), which a refused second
writer reports. A lock file that is present but unlocked was left by a writer that died: the next
writer takes it over and says so. The holder removes the file when it releases the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..rundir import LOCK

__all__ = ["LOCK_FILE", "RunLockedError", "run_lock"]

LOCK_FILE = LOCK


class RunLockedError(ValueError):
    """Another process holds the run directory's lock."""


def _try_lock(fd: int) -> bool:
    """Take the advisory lock of ``fd`` without waiting; ``False`` if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    """Who the lock file says holds it, in words (or that it does not say)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet recorded itself"


@contextlib.contextmanager
def run_lock(run_dir: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block.

    ``run_dir`` (and its missing parents) are created for the lock file and removed again at the end
    if nothing else was written into them, so a run refused before its first write leaves no trace.

    Raises:
        RunLockedError: if another process holds the lock; the message names it.
    """
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            os.close(fd)
            _remove_if_empty(created)
            raise RunLockedError(
                f"{run_dir} is in use by another spherevae process ({_holder(path)}); wait for "
                f"it to finish or stop it, then run again"
            )
        # the file may have been removed (and a new one locked) by a holder that released it between
        # our open and our lock: our lock is then on a file nobody else sees; try again
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        left = os.read(fd, 4096)
        if left.strip():
            log(f"{run_dir}: taking over a lock left by a process that ended ({_holder(path)})")
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        yield
    finally:
        # remove the file before unlocking it, so that no one locks it in between (see above)
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        _remove_if_empty(created)


def _remove_if_empty(directories: list[Path]) -> None:
    """Remove the directories this lock created (deepest first) where they stayed empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:  # not empty (the run wrote there), or already gone
            return
