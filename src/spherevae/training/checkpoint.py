"""Training checkpoints: everything needed to resume a run and end bit-identical to an uninterrupted one.

A checkpoint is one file written atomically (:mod:`spherevae.io`), loaded with
``torch.load(weights_only=True)``, so it holds tensors and plain Python values only, never pickled code:

- ``format``: :data:`CHECKPOINT_FORMAT`; ``version``: the spherevae version that wrote it;
- ``config``: the resolved run configuration (a dict);
- ``epoch``: the number of completed epochs;
- ``model``, ``optimizer``: the state dicts;
- ``trainer``: the trainer's own state (best validation objective, patience counter, restarts,
  learning rate, metric history);
- ``rng``: the state of every global random-number generator (:func:`~.seed.capture_rng_state`).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..io import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "checkpoint_bytes",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "spherevae-checkpoint-1"
_REQUIRED = ("format", "config", "epoch", "model", "optimizer", "trainer", "rng")


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, or not a spherevae checkpoint."""


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The content of a checkpoint of ``state`` (with the keys listed in the module docstring)."""
    missing = [k for k in _REQUIRED if k not in state and k != "format"]
    if missing:
        raise ValueError(f"checkpoint state is missing {missing}")
    payload = {"format": CHECKPOINT_FORMAT, "version": __version__, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (with the keys listed in the module docstring) to ``path`` atomically."""
    data = checkpoint_bytes(state)
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Raises:
        CheckpointError: naming the file, if it does not exist, cannot be read, is truncated or
            corrupt, or lacks a required entry.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
    ) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {file} is truncated or corrupt ({reason})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file} is not a spherevae checkpoint")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {file} lacks {missing}")
    return state
