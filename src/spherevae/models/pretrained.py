"""Saving and loading models as a folder: ``config.json`` (the :class:`ModelConfig`) and
``model.safetensors`` (the state dict). No pickled code: loading rebuilds the model from the config and
copies the tensors in.

Both files are written atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted save leaves the previous files intact rather than a truncated one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from .. import __version__
from ..io import atomic_path
from .config import ModelConfig

if TYPE_CHECKING:
    from .autoencoder import AutoEncoder
    from .vae import VAE

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "from_pretrained",
    "load_config",
    "load_weights",
    "pretrained_files",
    "save_pretrained",
    "write_pretrained_files",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def pretrained_files(model: nn.Module, config: ModelConfig) -> dict[str, bytes]:
    """The content of the model folder, ``{file name: bytes}``: ``config.json`` and
    ``model.safetensors`` (the state dict, with the spherevae version in its metadata).

    Serialised once, so that a caller can record the exact bytes (a run's integrity manifest) before
    writing them: safetensors orders its metadata differently from one serialisation to the next.
    """
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    # safetensors refuses non-contiguous tensors (and shared storage, which these models do not use)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "spherevae_version": __version__}
    return {
        CONFIG_NAME: text.encode("utf-8"),
        WEIGHTS_NAME: safetensors_bytes(tensors, metadata=metadata),
    }


def write_pretrained_files(directory: str | os.PathLike[str], files: dict[str, bytes]) -> Path:
    """Write the files of :func:`pretrained_files` into ``directory``, each atomically."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    return folder


def save_pretrained(
    model: nn.Module, config: ModelConfig, directory: str | os.PathLike[str]
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

    Returns:
        The folder as a :class:`~pathlib.Path`.
    """
    return write_pretrained_files(directory, pretrained_files(model, config))


def load_config(directory: str | os.PathLike[str]) -> ModelConfig:
    """Read ``directory/config.json``.

    Raises:
        FileNotFoundError: if the file is missing (naming it).
        ValueError: if it is not valid JSON or not a valid config (naming it).
    """
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"model config not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelConfig.from_dict(data)
    except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"invalid model config in {path}: {err}") from err


def load_weights(
    directory: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> dict[str, Tensor]:
    """Read ``directory/model.safetensors`` onto ``device``.

    Raises:
        FileNotFoundError: if the file is missing (naming it).
        ValueError: if it is truncated or not a safetensors file (naming it).
    """
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path}")
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"corrupt or truncated weights file {path}: {err}") from err


def load_into(model: nn.Module, directory: str | os.PathLike[str]) -> None:
    """Copy the weights in ``directory`` into ``model`` (strict: every key, every shape).

    Raises:
        ValueError: if the file does not match the model built from the config (naming the file).
    """
    device = next(model.parameters()).device
    state = load_weights(directory, device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        path = Path(directory) / WEIGHTS_NAME
        raise ValueError(f"weights in {path} do not match the model in its config: {err}") from err


_KIND_NAMES = {"vae": "a VAE", "autoencoder": "an auto-encoder"}


def load_kind(
    directory: str | os.PathLike[str], kind: str, device: torch.device | str = "cpu"
) -> VAE | AutoEncoder:
    """Rebuild the model in ``directory`` and check that it is of ``kind`` (``"vae"``/``"autoencoder"``).

    Raises:
        ValueError: naming the config file, if the folder holds the other kind.
    """
    config = load_config(directory)
    if config.kind != kind:
        raise ValueError(
            f"{Path(directory) / CONFIG_NAME} describes kind={config.kind!r}, not "
            f"{_KIND_NAMES.get(kind, repr(kind))}; "
            f"use spherevae.models.from_pretrained"
        )
    return from_pretrained(directory, device)


def from_pretrained(
    directory: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> VAE | AutoEncoder:
    """Rebuild the model saved in ``directory``: a ``VAE`` or an ``AutoEncoder`` as its config says."""
    from .autoencoder import AutoEncoder
    from .vae import VAE

    config = load_config(directory)
    model: VAE | AutoEncoder = (VAE if config.kind == "vae" else AutoEncoder)(config)
    model.to(device)
    load_into(model, directory)
    return model
