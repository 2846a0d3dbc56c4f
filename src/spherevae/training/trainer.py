"""The fit loop: Adam, KL schedule, early stopping, a guard against non-finite losses, exact resumption.

One :class:`Trainer` trains one model on in-memory tensors. The objective is the model's own
(:meth:`~spherevae.models.VAE.objective`, given the epoch's KL weight and ``train.kl_target``); the
batches come from :func:`spherevae.data.make_loader` and are binarised by
:class:`spherevae.data.DynamicBinarizer`. What makes a killed run resume to exactly the same weights
and metrics as an uninterrupted one:

- all randomness of an epoch is fixed by the state at its start: the data order and the dynamic
  binarisation come from generators seeded by ``(seed, epoch)``, the latent samples from the global
  torch generator, whose state the checkpoint stores;
- a checkpoint (:mod:`.checkpoint`) is written atomically at the end of an epoch and holds the model,
  the optimiser, the trainer's state and every generator's state; a resumed run restarts at the first
  epoch the checkpoint does not hold and rewrites ``metrics.csv`` from the checkpoint's history.

Non-finite losses or gradients: the epoch is abandoned, the model and optimiser go back to their state
at the start of the epoch (the last good state), the learning rate is multiplied by
``restart_lr_factor`` and the epoch runs again; after ``max_restarts`` restarts the run stops with a
:class:`TrainingError` (the reference code counted restarts but never reloaded anything).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import RunConfig, config_to_dict
from ..data import DynamicBinarizer, evaluation_images, make_loader
from ..io import atomic_write
from ..models import VAE, AutoEncoder
from ..models.heads import set_compiled_sampling
from ..models.pretrained import pretrained_files, write_pretrained_files
from ..progress import Progress
from ..rundir import CHECKPOINT, MODEL_DIR
from .checkpoint import CheckpointError, checkpoint_bytes
from .distributed import DistContext
from .manifest import record_sums
from .seed import capture_rng_state, restore_rng_state

__all__ = ["EpochRecord", "TrainState", "Trainer", "TrainingError", "kl_schedule", "kl_weight"]

Model = VAE | AutoEncoder
# the purposes of the per-epoch generators (see _stream_seed)
_ORDER_STREAM, _BINARIZE_STREAM = 0, 1


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss stayed non-finite after the allowed restarts)."""


def kl_weight(config: RunConfig, epoch: int) -> float:
    """``beta * clip((epoch - kl_freeze) / kl_warmup, 0, 1)``; ``beta`` when there is no warm-up.

    Examples:
        >>> from spherevae.config import config_from_dict
        >>> config = config_from_dict({"train": {"kl_warmup": 4, "kl_freeze": 2}})
        >>> [kl_weight(config, epoch) for epoch in range(8)]
        [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    train = config.train
    return kl_schedule(epoch, beta=train.beta, kl_warmup=train.kl_warmup, kl_freeze=train.kl_freeze)


def kl_schedule(epoch: int, *, beta: float, kl_warmup: int, kl_freeze: int) -> float:
    """The KL weight of 0-based ``epoch``: 0 for ``kl_freeze`` epochs, then a linear ramp to ``beta``
    over ``kl_warmup`` epochs (:func:`kl_weight` with the settings given one by one)."""
    if kl_warmup == 0:
        return beta if epoch >= kl_freeze else 0.0
    return beta * min(max((epoch - kl_freeze) / kl_warmup, 0.0), 1.0)


@dataclass
class EpochRecord:
    """One row of ``metrics.csv``: per-example averages in nats, every term a loss (positive).

    ``train_loss`` is the training objective (the negative ELBO with the KL weight of the epoch);
    ``*_reconstruction_nll`` is ``-E_q[log p(x|z)]``; ``val_negative_elbo`` is ``-ELBO`` at KL
    weight 1; ``val_log_likelihood`` is ``log p(x)`` itself (negative).
    """

    epoch: int
    lr: float
    kl_weight: float
    train_loss: float
    train_reconstruction_nll: float
    train_kl: float
    val_negative_elbo: float = math.nan
    val_reconstruction_nll: float = math.nan
    val_kl: float = math.nan
    val_log_likelihood: float = math.nan
    restarts: int = 0


@dataclass
class TrainState:
    """The trainer's own state, stored in checkpoints."""

    epoch: int = 0  # completed epochs
    best_val: float = math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    restarts: int = 0
    lr: float = 0.0
    finished: bool = False
    stop_reason: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    latents: list[Tensor] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stream_seed(seed: int, epoch: int, stream: int) -> int:
    """The seed of one purpose's generator in one epoch of a run (epoch -1: before training)."""
    return (seed * 1_000_003 + epoch * 7919 + stream) % 2**63


class Trainer:
    """Train ``model`` on ``train_images`` with validation on ``val_images``.

    Args:
        config: the run's configuration.
        model: a :class:`~spherevae.models.VAE` or :class:`~spherevae.models.AutoEncoder`, already on
            ``device``.
        train_images: ``(N, C, H, W)`` float tensor in ``[0, 1]`` (CPU).
        val_images: ``(M, C, H, W)`` float tensor in ``[0, 1]`` (CPU).
        train_labels: ``(N,)`` integer labels, needed by a conditional model only.
        val_labels: ``(M,)`` integer labels, needed by a conditional model only.
        dynamic_binarize: draw a Bernoulli image from the grey levels for every training batch.
        device: where the model lives.
        context: the process's place under ``torchrun`` (default: single process).
        run_dir: where checkpoints and the exported best model go; ``None`` writes nothing.
        track_images: images whose latent means are recorded after every epoch (``track_latents``).
        log: a function that prints one line (only the main process logs).
    """

    def __init__(
        self,
        config: RunConfig,
        model: Model,
        train_images: Tensor,
        val_images: Tensor,
        *,
        dynamic_binarize: bool,
        device: torch.device,
        context: DistContext | None = None,
        run_dir: Path | None = None,
        track_images: Tensor | None = None,
        log: Callable[[str], None] | None = None,
        train_labels: Tensor | None = None,
        val_labels: Tensor | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.train_images = train_images
        self.val_images = val_images
        # a conditional model reads the labels; an unconditional one must not be given any
        self.conditional = isinstance(model, VAE) and model.n_classes > 0
        if self.conditional and (train_labels is None or val_labels is None):
            raise ValueError("a conditional model needs train_labels and val_labels")
        self.train_labels = train_labels if self.conditional else None
        self.val_labels = val_labels if self.conditional else None
        self.dynamic_binarize = dynamic_binarize
        self.device = device
        setting = config.train.compiled_sampling
        # "auto": the compiled kernels serve CPU and CUDA devices
        # (spherevae.distributions.von_mises_fisher.kernels)
        self.compiled_sampling = (
            setting if isinstance(setting, bool) else device.type in ("cpu", "cuda")
        )
        self.context = context or DistContext()
        self.run_dir = run_dir
        self.track_images = track_images
        self.log = log if log is not None else (lambda line: None)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
        self.state = TrainState(lr=config.train.lr)
        self.wrapped: nn.Module = model
        if self.context.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        # fixed validation binarisation: the same Bernoulli images every epoch, so epochs compare
        self.val_targets = evaluation_images(
            val_images, dynamic_binarize, _stream_seed(config.train.seed, -1, _BINARIZE_STREAM)
        )

    # -- resumption ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (see :mod:`.checkpoint`)."""
        return {
            "config": config_to_dict(self.config),
            "epoch": self.state.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": self.state.to_dict(),
            "rng": capture_rng_state(),
        }

    def load_state_dict(self, checkpoint: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore from a checkpoint written by :meth:`save`.

        Raises:
            CheckpointError: naming ``source``, for non-finite weights or a state that does not fit
                this model, optimizer or version (wrong shapes, unknown or malformed entries).
        """
        try:
            self._load_state_dict(checkpoint)
        except CheckpointError as err:
            raise CheckpointError(f"{source}: {err}") from None
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(
                f"{source} does not fit this model or spherevae version: {type(err).__name__}: "
                f"{detail}"
            ) from None

    def _load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint["model"]
        bad = [
            name
            for name, value in saved.items()
            if value.is_floating_point() and not bool(torch.isfinite(value).all())
        ]
        if bad:
            raise CheckpointError(
                f"the checkpoint holds non-finite weights ({bad[0]}); a checkpoint is written only "
                f"after a finite epoch, so the file was changed since"
            )
        self.model.load_state_dict(saved)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.state = TrainState(**checkpoint["trainer"])
        self._set_lr(self.state.lr)
        restore_rng_state(checkpoint["rng"])

    def save(self) -> None:
        """Write ``checkpoints/last.pt`` (main process only), its sum first in the run's manifest."""
        if self.run_dir is not None and self.context.is_main:
            data = checkpoint_bytes(self.state_dict())
            record_sums(self.run_dir, {CHECKPOINT: data})
            atomic_write(self.run_dir / CHECKPOINT, lambda f: f.write(data))

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[Trainer], None] | None = None) -> TrainState:
        """Train until ``epochs`` or early stopping; returns the final :class:`TrainState`.

        ``on_epoch_end`` runs after each epoch's bookkeeping and checkpoint (for metrics files).

        Raises:
            TrainingError: when the loss stays non-finite after ``max_restarts`` restarts.
        """
        train = self.config.train
        while not self.state.finished and self.state.epoch < train.epochs:
            epoch = self.state.epoch
            started = time.perf_counter()
            record = self.train_epoch(epoch)
            if (epoch + 1) % train.val_every == 0 or epoch + 1 == train.epochs:
                self._validate(record)
                self._early_stopping(record)
            if self.track_images is not None:
                tracked_labels = (
                    self.val_labels[: len(self.track_images)]
                    if self.val_labels is not None
                    else None
                )
                self.state.latents.append(self.latent_means(self.track_images, tracked_labels))
            self.state.history.append(record.__dict__.copy())
            self.state.epoch = epoch + 1
            if self.state.epoch >= train.epochs and not self.state.finished:
                self.state.finished, self.state.stop_reason = True, f"reached {train.epochs} epochs"
            if (epoch + 1) % train.print_every == 0 or self.state.finished:
                self.log(_format_record(record, time.perf_counter() - started))
            if self.state.finished or (epoch + 1) % train.save_every == 0:
                self.save()
            if on_epoch_end is not None:
                on_epoch_end(self)
        if not self.state.finished:  # epochs == 0 or a resumed run that was already complete
            self.state.finished = True
            self.state.stop_reason = self.state.stop_reason or f"reached {train.epochs} epochs"
        return self.state

    def train_epoch(self, epoch: int) -> EpochRecord:
        """One pass over the training set (0-based ``epoch``), restarting it on a non-finite loss."""
        train = self.config.train
        good_model = copy.deepcopy(self.model.state_dict())
        good_optimizer = copy.deepcopy(self.optimizer.state_dict())
        while True:
            set_compiled_sampling(self.model, self.compiled_sampling)
            try:
                record = self._train_epoch(epoch)
            finally:  # evaluation and sampling after training draw eagerly, as any user's code does
                set_compiled_sampling(self.model, False)
            if record is not None:
                return record
            self.state.restarts += 1
            if self.state.restarts > train.max_restarts:
                raise TrainingError(
                    f"the training loss was not finite at epoch {epoch + 1} after "
                    f"{train.max_restarts} restarts (train.max_restarts); lower the learning rate "
                    f"(train.lr={train.lr}) or the KL weight"
                )
            self.model.load_state_dict(good_model)
            self.optimizer.load_state_dict(good_optimizer)
            self.state.lr *= train.restart_lr_factor
            self._set_lr(self.state.lr)
            self.log(
                f"non-finite loss at epoch {epoch + 1}: restart {self.state.restarts} of "
                f"{train.max_restarts} from the start of the epoch, lr={self.state.lr:.3g}"
            )

    def _train_epoch(self, epoch: int) -> EpochRecord | None:
        """One pass over the training set; ``None`` if a loss or gradient was not finite."""
        weight = kl_weight(self.config, epoch)
        self.model.train()
        totals = torch.zeros(3, dtype=torch.float64)
        seen = 0
        progress = self._progress(f"epoch {epoch + 1}", len(self.train_images))
        for x, y in progress.track(self._batches(epoch), lambda batch: len(batch[0])):
            n_global = x.shape[0]
            share_slice = self.context.shard(n_global)
            x = x[share_slice].to(self.device, non_blocking=True)
            if y is not None:
                y = y[share_slice].to(self.device, non_blocking=True)
            try:
                reconstruction, kl = self._terms(x, y)
            except ValueError:
                # a step that made the weights non-finite gives the posterior invalid parameters,
                # which the distributions refuse: the same restart as a non-finite loss
                if not _finite_parameters(self.model):
                    return None
                raise
            # this process's share of the global batch's objective (the model's); DDP averages
            # gradients over processes, hence the factor world_size: the update equals a single
            # process's on the same batch
            loss = self.context.world_size * self._objective(reconstruction, kl, weight, n_global)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not (torch.isfinite(loss) and _finite_gradients(self.model)):
                return None
            self.optimizer.step()
            with torch.no_grad():
                rec_sum, kl_sum = reconstruction.sum().double(), kl.sum().double()
                totals += torch.stack([-rec_sum + weight * kl_sum, -rec_sum, kl_sum]).cpu()
            seen += x.shape[0]
        totals = self._all_reduce(totals, seen)
        return EpochRecord(
            epoch=epoch + 1,
            lr=self.state.lr,
            kl_weight=weight,
            train_loss=float(totals[0]),
            train_reconstruction_nll=float(totals[1]),
            train_kl=float(totals[2]),
            restarts=self.state.restarts,
        )

    def _batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Global batches of this epoch, shuffled and binarised by generators seeded with the epoch
        (every process draws the same global batches)."""
        seed = self.config.train.seed
        loader = make_loader(
            self.train_images,
            self.train_labels,
            batch_size=self.config.data.batch_size,
            shuffle=True,
            seed=_stream_seed(seed, epoch, _ORDER_STREAM),
        )
        binarize = DynamicBinarizer(_stream_seed(seed, epoch, _BINARIZE_STREAM))
        for batch in loader:
            x = binarize(batch[0]) if self.dynamic_binarize else batch[0]
            yield x, (batch[1] if len(batch) > 1 else None)

    def _terms(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)`` per example, ``(B,)`` each, through the (possibly DDP) wrapper."""
        if isinstance(self.model, VAE):
            out = self.wrapped(x, self.config.train.n_samples, 1.0, y)
            return out.reconstruction, out.kl
        out = self.wrapped(x)
        return out.reconstruction, torch.zeros_like(out.reconstruction)

    def _objective(
        self, reconstruction: Tensor, kl: Tensor, weight: float, n_global: int
    ) -> Tensor:
        """The model's training objective of this process's share of a global batch of ``n_global``."""
        if isinstance(self.model, VAE):
            return self.model.objective(
                reconstruction,
                kl,
                kl_weight=weight,
                kl_target=self.config.train.kl_target,
                batch_size=n_global,
                sum_over_shares=self._sum_over_processes,
            )
        return self.model.objective(reconstruction, batch_size=n_global)

    @torch.no_grad()
    def _validate(self, record: EpochRecord) -> None:
        """Negative ELBO (KL weight 1), reconstruction and KL on the validation set."""
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64)
        mine = self.context.shard(len(self.val_targets))
        share = self.val_targets[mine]
        labels = self.val_labels[mine] if self.val_labels is not None else None
        batch = self.config.data.eval_batch_size
        k = self.config.train.ll_samples
        progress = self._progress(f"epoch {record.epoch}: validation", len(share))
        for start in progress.track(
            range(0, len(share), batch), lambda s: min(batch, len(share) - s)
        ):
            x = share[start : start + batch].to(self.device)
            y = labels[start : start + batch].to(self.device) if labels is not None else None
            if isinstance(self.model, VAE):
                out = self.model.elbo(x, 1, 1.0, y)
                rec, kl = out.reconstruction, out.kl
            else:
                rec = self.model.loss(x).reconstruction
                kl = torch.zeros_like(rec)
            ll = torch.zeros_like(rec)
            if self.config.train.val_log_likelihood and isinstance(self.model, VAE):
                ll = self.model.log_marginal_likelihood(
                    x, k, chunk_size=max(1, 20000 // len(x)), y=y
                )
            totals += (
                torch.stack([(-rec + kl).sum(), -rec.sum(), kl.sum(), ll.sum()]).double().cpu()
            )
        totals = self._all_reduce(totals, len(share))
        record.val_negative_elbo, record.val_reconstruction_nll, record.val_kl = map(
            float, totals[:3]
        )
        if self.config.train.val_log_likelihood and isinstance(self.model, VAE):
            record.val_log_likelihood = float(totals[3])

    def _progress(self, what: str, total: int) -> Progress:
        """Progress of a loop over ``total`` examples: a bar on a terminal, lines in a log (from the
        main process only)."""
        if self.context.is_main:
            return Progress(what, total, self.log)
        return Progress(what, total, self.log, bar=False, lines=False)

    def _early_stopping(self, record: EpochRecord) -> None:
        """Track the best validation objective after burn-in; export the best model; stop on patience."""
        train = self.config.train
        if record.epoch <= train.burn_in:
            return
        if record.val_negative_elbo < self.state.best_val - train.min_improvement:
            self.state.best_val, self.state.best_epoch = record.val_negative_elbo, record.epoch
            self.state.epochs_without_improvement = 0
            self.export_model()
        else:
            self.state.epochs_without_improvement += 1
            if self.state.epochs_without_improvement >= train.patience:
                self.state.finished = True
                self.state.stop_reason = (
                    f"early stopping: no improvement of the validation objective for "
                    f"{train.patience} epochs (best {self.state.best_val:.4f} at epoch "
                    f"{self.state.best_epoch})"
                )

    def export_model(self) -> None:
        """Write the current model to ``RUN_DIR/model`` (``config.json`` + ``model.safetensors``)."""
        if self.run_dir is not None and self.context.is_main:
            files = pretrained_files(self.model, self.model.config)
            record_sums(self.run_dir, {f"{MODEL_DIR}/{name}": data for name, data in files.items()})
            write_pretrained_files(self.run_dir / MODEL_DIR, files)

    @torch.no_grad()
    def latent_means(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Posterior mean directions (the mode, ``mu`` on spheres) of ``images``, ``(N, latent_dim)``
        on the CPU; a conditional model needs the ``labels``."""
        from ..evaluation import latent_modes

        self.model.eval()
        return latent_modes(self.model, images, labels, self.config.data.eval_batch_size)

    def set_learning_rate(self, lr: float) -> None:
        """Train on at learning rate ``lr`` (a resumed run given a new one)."""
        self.state.lr = lr
        self._set_lr(lr)

    # -- helpers -----------------------------------------------------------------------------------
    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _sum_over_processes(self, value: Tensor) -> Tensor:
        if not self.context.enabled:
            return value
        import torch.distributed as dist

        total = value.clone()
        dist.all_reduce(total)
        return total

    def _all_reduce(self, totals: Tensor, count: int) -> Tensor:
        """Sums over processes divided by the global count: per-example means."""
        packed = torch.cat([totals, torch.tensor([float(count)], dtype=torch.float64)])
        if self.context.enabled:
            import torch.distributed as dist

            dist.all_reduce(packed)
        return packed[:-1] / max(packed[-1].item(), 1.0)


def _finite_parameters(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _finite_gradients(model: nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return bool(torch.isfinite(norm))


def _format_record(record: EpochRecord, seconds: float) -> str:
    # the papers' convention: losses (-ELBO, rec NLL, KL) positive, log p(x) negative, in nats
    line = (
        f"epoch {record.epoch}: train loss {record.train_loss:.3f} "
        f"(rec NLL {record.train_reconstruction_nll:.3f}, KL {record.train_kl:.3f}, "
        f"KL weight {record.kl_weight:.3g})"
    )
    if not math.isnan(record.val_negative_elbo):
        line += f" | val -ELBO {record.val_negative_elbo:.3f}"
    if not math.isnan(record.val_log_likelihood):
        line += f" | val log p(x) {record.val_log_likelihood:.3f}"
    return line + f" | {seconds:.1f} s"


def print_line(line: str) -> None:
    """Default logger: one line on standard output, flushed."""
    print(line, file=sys.stdout, flush=True)
