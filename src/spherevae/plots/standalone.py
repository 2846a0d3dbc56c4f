"""The figures that need no trained model, by name: what ``spherevae figure NAME`` draws.

Each is a function of a few numbers (concentrations, samplers, dimensions, sample sizes), so it can
be drawn for any choice of them without a run directory; ``spherevae plot RUN_DIR samplers`` draws the
same figures with their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from .samplers import SAMPLER_NAMES, sampler_histograms, sampler_spheres
from .why_sphere import why_sphere

__all__ = ["STANDALONE_FIGURES", "standalone_figure"]

#: name -> what it shows (file ``OUT/<name>.png``)
STANDALONE_FIGURES: dict[str, str] = {
    "samplers": "draws of each sampler on S^2 (mu = north pole), one row per sampler, one column "
    "per kappa",
    "sampler_histograms": "histograms of w = mu.x of each sampler against the exact density",
    "why_sphere": "the unit-ball volume against the dimension, and the norms of Gaussian samples",
}

#: the sample size of each figure when none is given
DEFAULT_N = {"samplers": 400, "sampler_histograms": 20000, "why_sphere": 5000}


def standalone_figure(
    name: str,
    *,
    kappas: Sequence[float] = (1.0, 10.0, 100.0),
    samplers: Sequence[str] = SAMPLER_NAMES,
    n: int | None = None,
    sphere_dim: int = 2,
    dims: Sequence[int] = (2, 10, 20, 100),
    max_dim: int = 30,
    seed: int = 0,
) -> Figure:
    """The figure ``name`` (a key of :data:`STANDALONE_FIGURES`).

    Args:
        kappas: the concentrations (``samplers``, ``sampler_histograms``), each ``> 0``.
        samplers: names from :data:`~spherevae.plots.samplers.SAMPLER_NAMES`.
        n: samples per panel (default :data:`DEFAULT_N` of the figure), ``>= 1``.
        sphere_dim: ``sampler_histograms``: the sphere ``S^sphere_dim`` (``>= 1``); ``samplers``
            always draws ``S^2``.
        dims: ``why_sphere``: the dimensions of the Gaussian norm histograms, each ``>= 1``.
        max_dim: ``why_sphere``: the volume curve runs over ``n = 1 .. max_dim`` (``>= 1``).
        seed: seed of every draw.

    Raises:
        ValueError: an unknown name or sampler, or a value out of range (naming it).
    """
    if name not in STANDALONE_FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(STANDALONE_FIGURES)}")
    count = DEFAULT_N[name] if n is None else n
    _check(count >= 1, f"n must be >= 1, got n={count}")
    if name == "why_sphere":
        _check(len(dims) > 0 and min(dims) >= 1, f"dims must be integers >= 1, got {list(dims)}")
        _check(max_dim >= 1, f"max_dim must be >= 1, got max_dim={max_dim}")
        return why_sphere(max_dim=max_dim, dims=dims, n=count, seed=seed)
    _check(
        len(kappas) > 0 and all(k > 0 and k < float("inf") for k in kappas),
        f"kappas must be finite numbers > 0, got {list(kappas)}",
    )
    unknown = [s for s in samplers if s not in SAMPLER_NAMES]
    _check(
        len(samplers) > 0 and not unknown,
        f"samplers must be among {', '.join(SAMPLER_NAMES)}, got {list(samplers)}",
    )
    if name == "samplers":
        return sampler_spheres(kappas=kappas, samplers=samplers, n=count, seed=seed)
    _check(sphere_dim >= 1, f"sphere_dim must be >= 1, got sphere_dim={sphere_dim}")
    return sampler_histograms(
        m=sphere_dim + 1, kappas=kappas, samplers=samplers, n=count, seed=seed
    )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
