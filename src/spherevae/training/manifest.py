"""The integrity manifest of a run directory: a SHA-256 sum for every file a run is rebuilt from.

``RUN_DIR/manifest.json`` records the sums of ``config.yaml``, ``checkpoints/last.pt``,
``model/config.json`` and ``model/model.safetensors``. Every reader of a run (``--resume``, ``eval``,
``sample``, ``plot``, ``report``, the experiments) checks the files it uses against it first, so a
flipped byte or a hand-edited file is reported, naming the file, instead of silently used.

The sum is recorded *before* the file is written, and the entry keeps the sum of the version it
replaces as well: the pair ``[new, previous]``. Both writes are atomic (:mod:`spherevae.io`), but not
together, and a run killed between them leaves either the previous file (it matches ``previous``)
or the new one (it matches ``new``), never a false alarm. A file the manifest does not list (a run
written before manifests existed) is not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..data.files import sha256_file
from ..io import atomic_write_json
from ..rundir import MANIFEST

__all__ = ["MANIFEST_FILE", "IntegrityError", "record_sums", "verify_files"]

MANIFEST_FILE = MANIFEST
_FORMAT = "spherevae-manifest-1"


class IntegrityError(ValueError):
    """A file of a run directory does not match the sum its manifest recorded."""


def _read(run_dir: Path) -> dict[str, list[str]]:
    path = run_dir / MANIFEST_FILE
    if not path.exists():
        return {}
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("format") != _FORMAT or not isinstance(files, dict):
            raise ValueError("not a spherevae manifest")
        return {str(k): [str(s) for s in v] for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise IntegrityError(f"unreadable integrity manifest {path}: {err}") from None


def record_sums(run_dir: Path, contents: Mapping[str, bytes]) -> None:
    """Record the sums of files about to be written (``relative path -> content``), keeping each
    file's previous sum beside its new one. Call it before writing the files."""
    files = _read(run_dir)
    for name, data in contents.items():
        new = hashlib.sha256(data).hexdigest()
        previous = files.get(name, [])
        files[name] = [new] + [s for s in previous[:1] if s != new]
    atomic_write_json(run_dir / MANIFEST_FILE, {"format": _FORMAT, "files": files})


def verify_files(run_dir: Path, names: Iterable[str]) -> None:
    """Check the files ``names`` (relative to ``run_dir``) against the manifest.

    Raises:
        IntegrityError: naming the first file that is listed but missing or does not match, or an
            unreadable manifest.
    """
    files = _read(run_dir)
    for name in names:
        accepted = files.get(name)
        if accepted is None:
            continue
        path = run_dir / name
        if not path.is_file():
            raise IntegrityError(f"{path} is missing (the run's manifest lists it)")
        if sha256_file(path) not in accepted:
            raise IntegrityError(
                f"{path} was changed or damaged since the run wrote it (its SHA-256 does not match "
                f"{MANIFEST_FILE}); restore it, or start a new run"
            )
