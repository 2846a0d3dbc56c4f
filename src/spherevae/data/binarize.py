"""Binarisation of grey images for Bernoulli decoders: dynamic (a fresh draw per batch) and static.

Dynamic binarisation (Salakhutdinov & Murray 2008; standard since Burda et al. 2016) treats each
grey level ``p`` in ``[0, 1]`` as the probability of a black pixel and draws a new binary image every
time the image is used, which acts as data augmentation and keeps the Bernoulli likelihood of the
decoder a proper likelihood. Static binarisation draws once with a fixed seed, so that every run
and every evaluation sees the same binary dataset.

References:
    R. Salakhutdinov, I. Murray, "On the quantitative analysis of deep belief networks", ICML 2008.
    H. Larochelle, I. Murray, "The neural autoregressive distribution estimator", AISTATS 2011.
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .errors import DataError

__all__ = ["DynamicBinarizer", "dynamic_binarize", "evaluation_images", "static_binarize"]

#: seed of the one fixed binarisation of evaluation images (eval, report, figures, experiments)
EVALUATION_SEED = 0


def dynamic_binarize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One Bernoulli draw per pixel: ``out[i] = 1`` with probability ``images[i]``.

    Args:
        images: intensities in ``[0, 1]``, any shape (e.g. a batch ``(B, 1, H, W)``), floating
            dtype; values outside ``[0, 1]`` make :func:`torch.bernoulli` raise.
        generator: random generator on ``images.device`` (``None``: torch's global generator).

    Returns:
        A tensor of ``images``' shape, dtype and device with values in ``{0, 1}``; its mean over
        many draws is ``images``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> dynamic_binarize(torch.tensor([0.0, 1.0]), g).tolist()
        [0.0, 1.0]
    """
    if not images.dtype.is_floating_point:
        raise DataError(f"images must be a floating tensor of intensities, got {images.dtype}")
    return torch.bernoulli(images, generator=generator)


def evaluation_images(images: Tensor, dynamic: bool, seed: int = EVALUATION_SEED) -> Tensor:
    """The images a model is evaluated on: one fixed binary draw if it trained on dynamic binarisation.

    A model trained on fresh Bernoulli draws of grey images is scored on one draw of the test images,
    made with a generator seeded with ``seed``, so that every evaluation, report, figure and experiment
    of that model sees the same binary test set (``spherevae eval`` records the seed). Images of a
    model that did not binarise (binary data sets, Gaussian likelihoods) are returned unchanged.

    Args:
        images: ``(N, C, H, W)`` intensities in ``[0, 1]`` (CPU).
        dynamic: whether the model was trained with dynamic binarisation.
        seed: the generator's seed (default :data:`EVALUATION_SEED`).
    """
    if not dynamic:
        return images
    return dynamic_binarize(images, torch.Generator().manual_seed(seed))


class DynamicBinarizer:
    """Reproducible dynamic binarisation for a training loop: ``batch = binarizer(batch)``.

    Each call draws a new binary batch from a generator seeded with ``seed``, one generator per
    device (created on first use, since a CPU generator cannot sample CUDA tensors). The same seed
    and the same sequence of batches give the same binary batches; consecutive calls give
    independent draws. :meth:`state_dict` / :meth:`load_state_dict` let a checkpoint resume the
    exact stream. In distributed training give each rank its own seed (e.g. ``seed + rank``).

    Args:
        seed: seed of every per-device generator.

    Examples:
        >>> binarize = DynamicBinarizer(seed=0)
        >>> batch = torch.full((2, 1, 3, 3), 0.5)
        >>> first = binarize(batch)
        >>> sorted(first.unique().tolist())
        [0.0, 1.0]
        >>> torch.equal(DynamicBinarizer(seed=0)(batch), first)
        True
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise DataError(f"seed must be an integer, got seed={seed!r}")
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The generator used for tensors on ``device``."""
        key = str(torch.device(device))
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=key).manual_seed(self.seed)
        return self._generators[key]

    def __call__(self, images: Tensor) -> Tensor:
        """A fresh binary draw of ``images`` (see :func:`dynamic_binarize`)."""
        return dynamic_binarize(images, self.generator(images.device))

    def state_dict(self) -> dict[str, Tensor]:
        """``{device: generator state}`` for every device used so far (CPU byte tensors)."""
        return {key: gen.get_state() for key, gen in self._generators.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the generators saved by :meth:`state_dict`."""
        for key, value in state.items():
            self.generator(key).set_state(value)


def static_binarize(intensities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One fixed Bernoulli draw: ``out = 1`` where ``u < p`` with ``u ~ U[0, 1)`` (float32).

    Args:
        intensities: probabilities ``p`` in ``[0, 1]``, any shape, floating dtype.
        rng: the numpy generator to draw ``u`` from (e.g. ``np.random.default_rng(0)``); it is
            advanced by ``intensities.size`` float32 draws, so successive calls on one generator
            continue one reproducible stream.

    Returns:
        ``uint8`` array of ``intensities``' shape with values in ``{0, 1}``.
    """
    p = np.asarray(intensities)
    if not np.issubdtype(p.dtype, np.floating):
        raise DataError(f"intensities must be floating probabilities, got dtype={p.dtype}")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise DataError(f"intensities must lie in [0, 1], got values in [{p.min()}, {p.max()}]")
    u = rng.random(p.shape, dtype=np.float32)
    return (u < p).astype(np.uint8)
