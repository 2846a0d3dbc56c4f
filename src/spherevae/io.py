"""Atomic file writes: a reader, or a run killed at any moment, sees the old file or the new one, never half.

Every file spherevae writes (checkpoints, exported weights, configs, metrics, figures) goes through
:func:`atomic_write`: the content is written to a temporary file in the same directory, flushed and
synced, then moved over the target with :func:`os.replace`, which is atomic on POSIX and Windows when
source and target are on the same file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "PART_SUFFIX",
    "atomic_path",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "remove_partial_files",
]

# the suffix of the temporary files of atomic writes
PART_SUFFIX = ".part"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    For writers that insist on a file name (``safetensors``, ``matplotlib``'s ``savefig``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # not tempfile.mkstemp, which creates files with mode 0600: run directories and data folders are
    # often shared, so the file gets the permissions of the user's umask (os.open applies it to 0o666)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        mode = os.stat(tmp).st_mode & 0o777
    except OSError as err:
        raise _naming(err, target) from None
    try:
        yield tmp
        # some writers replace the file with one of their own making (safetensors creates it with
        # mode 0600): give it back the mode the user's umask gave ours
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _naming(err, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _naming(err: OSError, target: Path) -> OSError:
    """The same error about ``target``: the temporary file's name means nothing to the user."""
    return type(err)(err.errno, err.strerror or str(err), str(target))


def remove_partial_files(directory: Path) -> list[Path]:
    """Remove the temporary files that writers killed mid-write left under ``directory``.

    Only safe while no other process writes there (a run's writer holds its lock).
    """
    removed = []
    for path in directory.rglob(f".*{PART_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(f)`` on a temporary binary file, then move it over ``path`` in one step."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON (with a final newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
