"""A spherevae VAE as a PyTorch Lightning module (optional extra: ``pip install 'spherevae[lightning]'``).

:class:`LightningVAE` wraps a :class:`~spherevae.models.VAE` for a ``lightning.Trainer``: its
training step minimises the model's own objective (:meth:`~spherevae.models.VAE.loss`) with
spherevae's KL schedule (:func:`~spherevae.training.trainer.kl_schedule`, by Lightning's epoch), and
its validation step logs the negative ELBO at KL weight 1, as ``spherevae train`` does. Lightning
then brings its own loops, loggers, callbacks and devices; spherevae's run directory, exact
resumption and figures come with :func:`spherevae.fit` or ``spherevae train`` instead.

Examples:
    >>> import lightning
    >>> from spherevae.models import ModelConfig
    >>> module = LightningVAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,)))
    >>> trainer = lightning.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)  # doctest: +SKIP
    >>> trainer.fit(module, train_dataloaders=loader)  # doctest: +SKIP
    >>> module.model.save_pretrained("my-model")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..extras import missing_extra

try:
    import lightning
except ModuleNotFoundError as err:  # an optional extra: the error names it
    raise missing_extra(err) from None

from ..data import DynamicBinarizer
from ..models import VAE, ModelConfig
from ..training.trainer import kl_schedule

__all__ = ["LightningVAE"]


class LightningVAE(lightning.LightningModule):
    """A :class:`~spherevae.models.VAE` trained by Lightning.

    Batches are ``x`` or ``(x, y, ...)``; a conditional model (``n_classes > 0``) reads the labels
    ``y``, an unconditional one ignores them. Logged: ``train_loss`` (the objective),
    ``train_reconstruction_nll``, ``train_kl`` and ``kl_weight`` per epoch; ``val_negative_elbo``,
    ``val_reconstruction_nll`` and ``val_kl`` per validation epoch (per-example means, in nats). The
    hyperparameters (the model's configuration as a dict among them) go into Lightning's
    checkpoints, so ``LightningVAE.load_from_checkpoint(path)`` rebuilds the model (a registered
    network by its name).

    Args:
        model: the VAE, or its configuration (a :class:`~spherevae.models.ModelConfig` or its
            ``to_dict()``) to build one.
        lr: Adam's learning rate.
        beta: the KL weight after the warm-up.
        kl_warmup: epochs of the linear ramp of the KL weight from 0 to ``beta``.
        kl_freeze: epochs at KL weight 0 before the ramp.
        kl_target: pull the weighted KL towards this value (0: off; see ``VAE.objective``).
        n_samples: latent samples per example in the training objective.
        dynamic_binarize: draw a Bernoulli batch from grey levels at every training step (a
            generator seeded with ``seed``).
        seed: the seed of the binarisation's generator.
    """

    def __init__(
        self,
        model: VAE | ModelConfig | dict[str, Any],
        *,
        lr: float = 1e-3,
        beta: float = 1.0,
        kl_warmup: int = 0,
        kl_freeze: int = 0,
        kl_target: float = 0.0,
        n_samples: int = 1,
        dynamic_binarize: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(model, dict):
            model = ModelConfig.from_dict(model)
        if isinstance(model, ModelConfig):
            model = VAE(model)
        if not isinstance(model, VAE):
            raise TypeError(
                f"model must be a VAE, a ModelConfig or its dict, got {type(model).__name__}"
            )
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got lr={lr}")
        self.model = model
        self.lr, self.beta, self.kl_target, self.n_samples = lr, beta, kl_target, n_samples
        self.kl_warmup, self.kl_freeze = kl_warmup, kl_freeze
        self.binarize = DynamicBinarizer(seed) if dynamic_binarize else None
        # the configuration as plain data, so that a checkpoint rebuilds the model
        self.save_hyperparameters(
            {
                "model": model.config.to_dict(),
                "lr": lr,
                "beta": beta,
                "kl_warmup": kl_warmup,
                "kl_freeze": kl_freeze,
                "kl_target": kl_target,
                "n_samples": n_samples,
                "dynamic_binarize": dynamic_binarize,
                "seed": seed,
            }
        )

    def kl_weight(self) -> float:
        """The KL weight of the current epoch."""
        return kl_schedule(
            self.current_epoch, beta=self.beta, kl_warmup=self.kl_warmup, kl_freeze=self.kl_freeze
        )

    def _unpack(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        x, y = (
            (batch[0], batch[1] if len(batch) > 1 else None)
            if isinstance(batch, list | tuple)
            else (batch, None)
        )
        return x, (y if self.model.n_classes > 0 else None)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The model's objective of the batch at this epoch's KL weight."""
        x, y = self._unpack(batch)
        if self.binarize is not None:
            x = self.binarize(x)
        weight = self.kl_weight()
        out = self.model.loss(
            x, kl_weight=weight, kl_target=self.kl_target, n_samples=self.n_samples, y=y
        )
        size = len(x)
        self.log("train_loss", out.loss, on_step=False, on_epoch=True, batch_size=size)
        self.log(
            "train_reconstruction_nll",
            -out.reconstruction.mean(),
            on_step=False,
            on_epoch=True,
            batch_size=size,
        )
        self.log("train_kl", out.kl.mean(), on_step=False, on_epoch=True, batch_size=size)
        self.log("kl_weight", weight, on_step=False, on_epoch=True, batch_size=size)
        return out.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """The negative ELBO (KL weight 1), its reconstruction term and KL."""
        x, y = self._unpack(batch)
        out = self.model.elbo(x, 1, 1.0, y)
        size = len(x)
        rec, kl = -out.reconstruction.mean(), out.kl.mean()
        self.log("val_negative_elbo", rec + kl, prog_bar=True, batch_size=size)
        self.log("val_reconstruction_nll", rec, batch_size=size)
        self.log("val_kl", kl, batch_size=size)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The posterior mode (``mu`` on spheres) of ``x``: ``(B, latent_dim)``."""
        mode: Tensor = self.model.encode(x, y).mode
        return mode

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam at ``lr``, as ``spherevae train``."""
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)
