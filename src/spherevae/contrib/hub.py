"""spherevae models on the Hugging Face Hub (optional extra: ``pip install 'spherevae[hub]'``).

:class:`HubVAE` is a :class:`~spherevae.models.VAE` with ``huggingface_hub``'s
``PyTorchModelHubMixin``: ``push_to_hub("user/repo")``, ``HubVAE.from_pretrained("user/repo")`` and
``save_pretrained``/``from_pretrained`` on a local folder. The folder is spherevae's own model
folder (``config.json`` + ``model.safetensors``, :mod:`spherevae.models.pretrained`) plus the Hub's
``README.md`` model card, so a model on the Hub also loads with
:func:`spherevae.models.from_pretrained` after a download, and a run's ``RUN_DIR/model`` loads with
:meth:`HubVAE.from_pretrained`. Nothing is pickled: a registered network
(:func:`spherevae.models.register_network`) is rebuilt by its name.

Examples:
    >>> from spherevae.models import ModelConfig
    >>> model = HubVAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,)))
    >>> model.push_to_hub("user/my-spherevae")  # doctest: +SKIP
    >>> again = HubVAE.from_pretrained("user/my-spherevae")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..extras import missing_extra

try:
    from huggingface_hub import PyTorchModelHubMixin, snapshot_download
except ModuleNotFoundError as err:  # an optional extra: the error names it
    raise missing_extra(err) from None

from ..models import VAE
from ..models.pretrained import CONFIG_NAME, load_config, load_into, save_pretrained

__all__ = ["HubVAE"]

_WEIGHTS = "model.safetensors"


# the mixin's save_pretrained/from_pretrained (Hub options, model card) replace VAE's on purpose,
# writing the same folder: hence the signatures differ
class HubVAE(  # type: ignore[misc]
    PyTorchModelHubMixin,
    VAE,
    library_name="spherevae",
    tags=["spherevae", "variational-autoencoder", "hyperspherical"],
):
    """A :class:`~spherevae.models.VAE` that saves to and loads from the Hugging Face Hub.

    Built like a VAE (``HubVAE(config)``); ``HubVAE.from_vae(model)`` wraps a trained one.
    ``save_pretrained(folder)`` writes spherevae's model folder and a model card;
    ``from_pretrained(repo_or_folder, map_location="cpu")`` reads one (a Hub repository is
    downloaded first, only its ``config.json`` and ``model.safetensors``).
    """

    @classmethod
    def from_vae(cls, model: VAE) -> HubVAE:
        """A :class:`HubVAE` with ``model``'s configuration and a copy of its weights."""
        hub = cls(model.config)
        hub.load_state_dict(model.state_dict())
        return hub.to(next(model.parameters()).device)

    def _save_pretrained(self, save_directory: Path) -> None:
        save_pretrained(self, self.config, save_directory)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        **model_kwargs: Any,
    ) -> HubVAE:
        folder = Path(model_id)
        if not folder.is_dir():
            folder = Path(
                snapshot_download(
                    repo_id=model_id,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    local_files_only=local_files_only,
                    token=token,
                    allow_patterns=[CONFIG_NAME, _WEIGHTS],
                )
            )
        config = load_config(folder)
        if config.kind != "vae":
            raise ValueError(f"{model_id} holds a model of kind {config.kind!r}, not a VAE")
        model = cls(config)
        load_into(model, folder)
        return model.to(torch.device(map_location))
