"""Local files: the data folder, SHA-256 checks, atomic writes, ``.npz`` caches and ``.mat`` files.

Everything :mod:`spherevae.data` writes goes through :func:`atomic_path`: a temporary file in the
destination folder that is renamed onto the destination only once it is complete (and verified).
A crash or a concurrent reader (e.g. several DDP ranks loading the same dataset) therefore never
sees a half-written file, and two writers of the same verified content cannot corrupt each other.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import missing_extra

try:
    import platformdirs
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None

from ..io import atomic_path
from .errors import DataError

__all__ = [
    "DATA_DIR_ENV",
    "atomic_path",
    "check_recorded_sha256",
    "check_sha256",
    "default_data_dir",
    "load_mat",
    "load_npz",
    "mat_array",
    "resolve_data_dir",
    "save_npz",
    "sha256_bytes",
    "sha256_file",
]

DATA_DIR_ENV = "SPHEREVAE_DATA_DIR"
"""Environment variable that overrides the default data folder."""

_CHUNK = 1 << 20


def default_data_dir() -> Path:
    """The data folder used when no ``data_dir`` is given.

    ``$SPHEREVAE_DATA_DIR`` if set, else the platform's cache folder: on Linux and other Unix
    systems ``$XDG_CACHE_HOME/spherevae``, else ``~/.cache/spherevae`` (the XDG base-directory
    rules, under which a relative ``$XDG_CACHE_HOME`` is ignored); on macOS
    ``~/Library/Caches/spherevae`` and on Windows ``%LOCALAPPDATA%\\spherevae\\Cache``
    (:func:`platformdirs.user_cache_path`). The folder is created only when something is written
    into it.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform in ("darwin", "win32"):
        return platformdirs.user_cache_path("spherevae", appauthor=False)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "spherevae"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` as a :class:`~pathlib.Path` (``~`` expanded), or :func:`default_data_dir`."""
    if data_dir is None:
        return default_data_dir()
    if isinstance(data_dir, bytes) or not isinstance(data_dir, (str, os.PathLike)):
        raise DataError(f"data_dir must be a path or None, got data_dir={data_dir!r}")
    return Path(data_dir).expanduser()


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(actual: str, expected: str, what: str) -> None:
    """Raise :class:`DataError` naming ``what`` and both hashes unless ``actual == expected``."""
    if actual != expected.lower():
        raise DataError(
            f"checksum mismatch for {what}: expected sha256 {expected.lower()}, got {actual}. "
            "The file is corrupt or not the expected release; delete it and load again"
        )


def check_recorded_sha256(path: Path, actual: str, expected: str | None) -> None:
    """Raise :class:`DataError` naming ``path`` when a user's data no longer has the digest a run
    recorded (``expected``; ``None``: nothing recorded, nothing to check)."""
    if expected is not None and actual != expected.lower():
        raise DataError(
            f"{path} changed since the run recorded it (sha256 {expected.lower()}, now {actual}); "
            "restore the data the run used, or train a new run on the new data"
        )


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to an uncompressed ``.npz`` at ``path``, atomically.

    Uncompressed because the cache exists for load speed (MNIST: ~50 ms instead of ~0.5 s).
    """
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        # a file object, not a name: np.savez would append ".npz" to the temporary name
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of the ``.npz`` at ``path``, or ``None`` if it is absent or unreadable.

    An unreadable cache is not an error: callers rebuild it from the original files.
    Pickled objects are refused (``allow_pickle=False``).
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def load_mat(path: Path) -> dict[str, Any]:
    """Read a MATLAB ``.mat`` file (format v4 to v7.2) with :func:`scipy.io.loadmat`.

    SciPy is imported here rather than at module level: only the OMNIGLOT and Caltech loaders need
    it (the ``data`` extra, ``pip install 'spherevae[data]'``).

    Raises:
        DataError: SciPy is missing, or the file is not a readable ``.mat`` file.
    """
    try:
        import scipy.io
        from scipy.io.matlab import MatReadError
    except ImportError as exc:
        raise DataError(
            f"reading {path} needs SciPy (scipy.io.loadmat): pip install 'spherevae[data]'"
        ) from exc
    try:
        return dict(scipy.io.loadmat(str(path)))
    # NotImplementedError: MATLAB v7.3 files (HDF5), which loadmat cannot read
    except (MatReadError, OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path} is not a readable MATLAB .mat file: {exc}") from exc


def mat_array(mat: Mapping[str, Any], key: str, path: Path, *, ndim: int = 2) -> np.ndarray:
    """``mat[key]`` from a :func:`load_mat` result as a numeric array with ``ndim`` dimensions.

    Raises:
        DataError: the key is missing or holds something else (the message lists the keys found).
    """
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path} has no variable {key!r}; it holds {found}")
    array = np.asarray(mat[key])
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.number):
        raise DataError(
            f"{path}: variable {key!r} should be a {ndim}-D numeric array, got dtype "
            f"{array.dtype} and shape {array.shape}"
        )
    return array
