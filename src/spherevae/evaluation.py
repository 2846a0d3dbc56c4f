"""Evaluation of a trained model: ELBO, importance-weighted log-likelihood, active units, kNN accuracy.

Every number says how it was computed: the log-likelihood carries its number of importance samples
``K`` (the literature uses anything from 10 to 5000, often without saying), the kNN accuracy its
``k``, metric and number of labelled examples.

- Negative ELBO, reconstruction NLL ``-E_q[log p(x|z)]`` and KL: one reparameterised sample per
  image, KL in closed form. All three are losses, positive; ``log p(x)`` is negative (the papers'
  convention).
- ``log p(x)``: ``logsumexp_k w_k - log K`` with ``w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)``,
  ``z_k ~ q(z|x)`` the trained encoder (Burda et al. 2016); a lower bound in expectation that tightens
  as ``K`` grows. Batched over images and samples: the decoder sees ``chunk`` images at once.
- Active units (Burda et al. 2016): coordinate ``u`` is active when ``Cov_x(E_q[z_u | x]) > 0.01``.
- kNN accuracy (Davidson et al. 2018 use it to compare latent spaces): a k-nearest-neighbour
  classifier fitted on the latent means of labelled training images, scored on the test images;
  cosine distance on sphere latents, Euclidean otherwise.
- A deterministic auto-encoder has no ELBO nor ``log p(x)``: :func:`evaluate_autoencoder` gives its
  reconstruction NLL ``-log p(x|z(x))`` (positive, as above), the mean squared error of ``E[x|z(x)]``,
  active units and the kNN accuracy on its codes.

References:
    Y. Burda, R. Grosse, R. Salakhutdinov (2016), Importance weighted autoencoders, ICLR.
    T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .models import VAE, AutoEncoder
from .progress import Progress

__all__ = [
    "AutoEncoderEvaluation",
    "EvaluationResult",
    "active_units",
    "evaluate",
    "evaluate_autoencoder",
    "knn_accuracy",
    "latent_means",
]

ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass
class EvaluationResult:
    """Per-image averages over a data set (``nan`` where not computed).

    Attributes:
        negative_elbo: ``-ELBO`` (nats, positive).
        reconstruction_nll: ``-E_q[log p(x|z)]`` (nats, positive).
        kl: ``KL(q(z|x) || p(z))`` (nats).
        log_likelihood: importance-weighted ``log p(x)`` with ``ll_samples`` samples (nats).
        ll_samples: ``K``.
        active_units: number of active latent coordinates.
        knn_accuracy: kNN accuracy on latent means; ``knn_k`` and ``knn_labelled`` say how.
        n_images: images evaluated.
    """

    negative_elbo: float
    reconstruction_nll: float
    kl: float
    log_likelihood: float
    ll_samples: int
    active_units: int
    knn_accuracy: float = math.nan
    knn_k: int = 0
    knn_labelled: int = 0
    n_images: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class AutoEncoderEvaluation:
    """Per-image averages of a deterministic auto-encoder over a data set (``nan`` where not computed).

    Attributes:
        reconstruction_nll: ``-log p(x|z(x))`` summed over pixels (nats, positive), the training loss.
        reconstruction_mse: ``|x - E[x|z(x)]|^2`` averaged over pixels.
        active_units: number of latent coordinates whose code varies across the images.
        knn_accuracy: kNN accuracy on the codes; ``knn_k`` and ``knn_labelled`` say how.
        n_images: images evaluated.
    """

    reconstruction_nll: float
    reconstruction_mse: float
    active_units: int
    knn_accuracy: float = math.nan
    knn_k: int = 0
    knn_labelled: int = 0
    n_images: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.no_grad()
def latent_means(
    model: VAE, images: Tensor, labels: Tensor | None = None, batch_size: int = 1000
) -> Tensor:
    """``E_q[z|x]`` for every image, ``(N, latent_dim)`` on the CPU (inside the ball for spheres);
    a conditional model needs the ``labels``."""
    return _posterior_statistic(model, images, labels, batch_size, "mean")


@torch.no_grad()
def latent_modes(
    model: VAE | AutoEncoder, images: Tensor, labels: Tensor | None = None, batch_size: int = 1000
) -> Tensor:
    """The posterior's mode per image (the mean direction ``mu`` on spheres), ``(N, latent_dim)`` on
    the CPU; for an auto-encoder, its latent point. A conditional model needs the ``labels``."""
    return _posterior_statistic(model, images, labels, batch_size, "mode")


def _posterior_statistic(
    model: VAE | AutoEncoder, images: Tensor, labels: Tensor | None, batch_size: int, name: str
) -> Tensor:
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        if isinstance(model, AutoEncoder):  # a deterministic code is its own mean and mode
            out.append(model.encode(x).cpu())
        else:
            y = _condition(model, labels, i, i + batch_size, device)
            out.append(getattr(model.encode(x, y), name).cpu())
    return torch.cat(out)


def _condition(
    model: VAE, labels: Tensor | None, start: int, stop: int, device: torch.device
) -> Tensor | None:
    """The labels of images ``start:stop`` for a conditional model, else ``None``."""
    if model.n_classes == 0:
        return None
    if labels is None:
        raise ValueError("a conditional model is evaluated with the images' labels")
    return labels[start:stop].to(device)


def active_units(means: Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of coordinates whose posterior mean varies across the data: ``Var_x(E[z_u|x]) > threshold``.

    Args:
        means: ``(N, latent_dim)`` posterior means, ``N >= 2``.

    Examples:
        >>> means = torch.tensor([[0.0, 1.0, 0.5], [0.0, -1.0, 0.5], [0.0, 0.0, 0.5]])
        >>> active_units(means)  # only the second coordinate varies across the images
        1
    """
    if means.shape[0] < 2:
        raise ValueError(f"active_units needs at least 2 images, got {means.shape[0]}")
    return int((means.double().var(0) > threshold).sum())


def knn_accuracy(
    train_z: Tensor,
    train_y: Tensor,
    test_z: Tensor,
    test_y: Tensor,
    *,
    k: int = 5,
    metric: str = "euclidean",
) -> float:
    """Accuracy of a ``k``-nearest-neighbour classifier fitted on ``(train_z, train_y)``.

    Args:
        train_z: ``(N, d)`` latent points of the labelled set.
        train_y: ``(N,)`` integer labels of ``train_z``.
        test_z: ``(M, d)`` latent points to classify.
        test_y: ``(M,)`` integer labels of ``test_z``.
        k: neighbours.
        metric: ``"euclidean"`` or ``"cosine"`` (for points on spheres).
    """
    from sklearn.neighbors import KNeighborsClassifier

    if k < 1 or k > len(train_z):
        raise ValueError(f"k must be in [1, {len(train_z)}] (labelled points), got k={k}")
    classifier = KNeighborsClassifier(n_neighbors=k, metric=metric)
    classifier.fit(train_z.double().numpy(), train_y.numpy())
    return float(classifier.score(test_z.double().numpy(), test_y.numpy()))


@torch.no_grad()
def evaluate(
    model: VAE,
    images: Tensor,
    *,
    ll_samples: int = 500,
    batch_size: int = 100,
    max_decoded: int = 50_000,
    labels: Tensor | None = None,
    train_images: Tensor | None = None,
    train_labels: Tensor | None = None,
    knn_k: int = 5,
    knn_labelled: int = 10_000,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on ``images`` (already binarised if the model expects binary data).

    Args:
        model: a trained VAE (put in eval mode here).
        images: ``(N, C, H, W)``.
        ll_samples: ``K`` importance samples for ``log p(x)`` (0 skips it).
        batch_size: images per batch.
        max_decoded: images decoded at once (``batch_size * samples`` per chunk), bounding memory.
        labels: ``(N,)`` labels of ``images``, for the kNN accuracy (skipped when ``labels``,
            ``train_images`` or ``train_labels`` is missing); required by a conditional model,
            which is conditioned on them.
        train_images: the labelled images the kNN classifier is fitted on (the first
            ``knn_labelled`` of them).
        train_labels: the labels of ``train_images``.
        knn_k: neighbours of the kNN classifier.
        knn_labelled: at most this many training images are encoded for the kNN classifier.
        log: prints one line; given, the evaluation shows its progress (a bar on a terminal, a
            line every :data:`~spherevae.progress.PROGRESS_SECONDS` seconds in a log).
    """
    if ll_samples < 0:
        raise ValueError(f"ll_samples must be >= 0, got ll_samples={ll_samples}")
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(4, dtype=torch.float64)
    chunk = max(1, max_decoded // batch_size)
    progress = _progress(len(images), log)
    starts = range(0, len(images), batch_size)
    for start in progress.track(starts, lambda s: min(batch_size, len(images) - s)):
        x = images[start : start + batch_size].to(device)
        y = _condition(model, labels, start, start + batch_size, device)
        out = model.elbo(x, 1, 1.0, y)
        ll = (
            model.log_marginal_likelihood(x, ll_samples, chunk_size=chunk, y=y).sum()
            if ll_samples > 0
            else torch.zeros(())
        )
        sums = [-(out.reconstruction - out.kl).sum(), -out.reconstruction.sum(), out.kl.sum(), ll]
        totals += torch.stack([s.double().cpu() for s in sums])
    n = max(len(images), 1)
    means = latent_means(model, images, labels)
    result = EvaluationResult(
        negative_elbo=float(totals[0]) / n,
        reconstruction_nll=float(totals[1]) / n,
        kl=float(totals[2]) / n,
        log_likelihood=float(totals[3]) / n if ll_samples > 0 else math.nan,
        ll_samples=ll_samples,
        active_units=active_units(means) if len(images) >= 2 else 0,
        n_images=len(images),
    )
    _add_knn(result, model, images, None, labels, train_images, train_labels, knn_k, knn_labelled)
    return result


@torch.no_grad()
def evaluate_autoencoder(
    model: AutoEncoder,
    images: Tensor,
    *,
    batch_size: int = 100,
    labels: Tensor | None = None,
    train_images: Tensor | None = None,
    train_labels: Tensor | None = None,
    knn_k: int = 5,
    knn_labelled: int = 10_000,
    log: Callable[[str], None] | None = None,
) -> AutoEncoderEvaluation:
    """Evaluate a deterministic auto-encoder on ``images`` (already binarised if it expects binary data).

    Args:
        model: a trained :class:`~spherevae.models.AutoEncoder` (put in eval mode here).
        images: ``(N, C, H, W)``, ``N >= 1``.
        batch_size: images per batch.
        labels: ``(N,)`` labels of ``images``, for the kNN accuracy (skipped when ``labels``,
            ``train_images`` or ``train_labels`` is missing).
        train_images: the labelled images the kNN classifier is fitted on (the first
            ``knn_labelled`` of them), through their codes ``z(x)``; cosine distance on sphere
            latents, Euclidean otherwise.
        train_labels: the labels of ``train_images``.
        knn_k: neighbours of the kNN classifier.
        knn_labelled: at most this many training images are encoded for the kNN classifier.
        log: prints one line; given, the evaluation shows its progress.
    """
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got 0")
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(2, dtype=torch.float64)
    progress = _progress(len(images), log)
    starts = range(0, len(images), batch_size)
    for start in progress.track(starts, lambda s: min(batch_size, len(images) - s)):
        x = images[start : start + batch_size].to(device)
        params = model.decode(model.encode(x))
        nll = -model.log_likelihood(x, params).sum()
        squared = (x - model.likelihood.mean(params)).pow(2).flatten(1).mean(1).sum()
        totals += torch.stack([nll.double().cpu(), squared.double().cpu()])
    codes = latent_modes(model, images)
    result = AutoEncoderEvaluation(
        reconstruction_nll=float(totals[0]) / len(images),
        reconstruction_mse=float(totals[1]) / len(images),
        active_units=active_units(codes) if len(images) >= 2 else 0,
        n_images=len(images),
    )
    _add_knn(result, model, images, codes, labels, train_images, train_labels, knn_k, knn_labelled)
    return result


def _progress(n_images: int, log: Callable[[str], None] | None) -> Progress:
    """The evaluation's progress: shown through ``log`` when given, else silent."""
    if log is not None:
        return Progress("evaluation", n_images, log)
    return Progress("evaluation", n_images, print, bar=False, lines=False)


def _add_knn(
    result: EvaluationResult | AutoEncoderEvaluation,
    model: VAE | AutoEncoder,
    images: Tensor,
    codes: Tensor | None,
    labels: Tensor | None,
    train_images: Tensor | None,
    train_labels: Tensor | None,
    knn_k: int,
    knn_labelled: int,
) -> None:
    """Set ``result``'s kNN accuracy of the latent modes of ``images`` (``codes`` if already
    computed), fitted on at most ``knn_labelled`` of ``train_images``: cosine distance on sphere
    latents, Euclidean otherwise. Nothing without ``labels``, ``train_images`` or ``train_labels``."""
    if labels is None or train_images is None or train_labels is None:
        return
    labelled = min(knn_labelled, len(train_images))
    result.knn_accuracy = knn_accuracy(
        latent_modes(model, train_images[:labelled], train_labels[:labelled]),
        train_labels[:labelled],
        latent_modes(model, images, labels) if codes is None else codes,
        labels,
        k=knn_k,
        metric="cosine" if model.latent.has_sphere else "euclidean",
    )
    result.knn_k, result.knn_labelled = knn_k, labelled
