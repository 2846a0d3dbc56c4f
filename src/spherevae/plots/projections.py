r"""Maps of the sphere onto the plane, and projections of high-dimensional spheres to ``S^1``/``S^2``.

Equal-area maps of ``S^2`` (longitude ``lambda`` in ``[-pi, pi]``, latitude ``phi`` in
``[-pi/2, pi/2]``); both send the whole sphere onto an ellipse with semi-axes ``2 sqrt 2`` and
``sqrt 2`` (area ``4 pi``, the area of the sphere), and both have Jacobian
``|d(x, y) / d(lambda, phi)| = cos(phi)``, so equal areas on the sphere stay equal on the map and a
density of latent points can be read off the map:

* Hammer (1892), from Lambert's azimuthal equal-area projection of a hemisphere stretched twice
  horizontally (Snyder 1987, eq. 32-1 ... 32-2 with ``R = 1``)::

      D = sqrt(1 + cos(phi) cos(lambda / 2))
      x = 2 sqrt 2 cos(phi) sin(lambda / 2) / D,   y = sqrt 2 sin(phi) / D

* Mollweide (1805), parallels as straight lines (Snyder 1987, eq. 31-4 ... 31-6)::

      2 theta + sin(2 theta) = pi sin(phi)   (solved for theta)
      x = (2 sqrt 2 / pi) lambda cos(theta),   y = sqrt 2 sin(theta)

Higher-dimensional spheres are shown through a projection that the figures name in their titles:
principal axes of the unit vectors (:func:`pca_sphere`), or t-SNE / UMAP with the cosine distance
(:func:`embed_2d`).

References:
    E. Hammer (1892), Über die Planisphäre von Aitow und verwandte Entwürfe, insbesondere neue
    flächentreue ähnlicher Art, Petermanns Geographische Mitteilungen 38.
    J. P. Snyder (1987), Map projections: a working manual, U.S. Geological Survey professional paper
    1395, pp. 249-257 (Mollweide, chapter 31; Hammer, chapter 32).
    L. van der Maaten, G. Hinton (2008), Visualizing data using t-SNE, JMLR 9.
    L. McInnes, J. Healy, J. Melville (2018), UMAP: uniform manifold approximation and projection,
    arXiv:1802.03426.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAP_HALF_HEIGHT",
    "MAP_HALF_WIDTH",
    "embed_2d",
    "graticule",
    "hammer",
    "lonlat",
    "mollweide",
    "pca_sphere",
    "project_map",
]

FloatArray = NDArray[np.float64]
MapName = Literal["hammer", "mollweide"]

MAP_HALF_WIDTH = 2 * math.sqrt(2)
"""Half the width of both maps (the equator from ``lambda = -pi`` to ``pi``)."""
MAP_HALF_HEIGHT = math.sqrt(2)
"""Half the height of both maps (pole to equator)."""


def lonlat(points: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Longitude ``atan2(z_1, z_0)`` in ``[-pi, pi]`` and latitude ``asin(z_2)`` of points on ``S^2``.

    Args:
        points: ``(..., 3)``; normalised here, so any non-zero vectors are accepted.

    Returns:
        ``lon``, ``lat`` of shape ``(...)``, in radians. The north pole is ``z = e_2``.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"points on S^2 must have 3 coordinates, got shape {p.shape}")
    p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    lon = np.arctan2(p[..., 1], p[..., 0])
    # arctan2 of the height against the horizontal radius keeps digits near the poles (asin does not)
    lat = np.arctan2(p[..., 2], np.hypot(p[..., 0], p[..., 1]))
    return lon, lat


def hammer(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Hammer equal-area map ``(lambda, phi) -> (x, y)`` (radians; see the module docstring).

    ``(0, 0) -> (0, 0)``, poles ``-> (0, +-sqrt 2)``, ``(+-pi, 0) -> (+-2 sqrt 2, 0)``.
    """
    lam = np.asarray(lon, dtype=np.float64)
    phi = np.asarray(lat, dtype=np.float64)
    d = np.sqrt(1 + np.cos(phi) * np.cos(lam / 2))
    x = 2 * math.sqrt(2) * np.cos(phi) * np.sin(lam / 2) / d
    y = math.sqrt(2) * np.sin(phi) / d
    return x, y


def _x_minus_sin(x: FloatArray) -> FloatArray:
    """``x - sin(x)`` for ``x >= 0`` without cancellation: its Taylor series below 0.5."""
    x2 = x * x
    # x^3/3! - x^5/5! + ... + x^13/13!: the next term is below 1e-16 relative for x < 0.5
    series = (
        x**3 / 6 * (1 - x2 / 20 * (1 - x2 / 42 * (1 - x2 / 72 * (1 - x2 / 110 * (1 - x2 / 156)))))
    )
    out: FloatArray = np.where(x < 0.5, series, x - np.sin(x))
    return out


def _mollweide_colatitude(phi: FloatArray) -> FloatArray:
    """``u = pi/2 - |theta|`` where ``2 theta + sin(2 theta) = pi sin(phi)`` (Snyder 1987, eq. 31-4).

    In ``u`` the equation reads ``2u - sin(2u) = pi (1 - sin|phi|) = 2 pi sin^2(pi/4 - |phi|/2)``,
    both sides formed without cancellation, so ``u`` (hence ``cos(theta) = sin(u)``, the width of
    the parallel) keeps its relative accuracy near the poles, where ``theta`` itself is flat in the
    equation and Newton's iteration (Snyder's eq. 31-8) slows down. The left side increases in ``u``
    on ``[0, pi/2]``, so bisection converges everywhere; 64 halvings reach double precision.
    """
    target = 2 * np.pi * np.sin(np.pi / 4 - np.abs(phi) / 2) ** 2
    lo = np.zeros_like(phi)
    hi = np.full_like(phi, np.pi / 2)
    for _ in range(64):
        mid = (lo + hi) / 2
        below = _x_minus_sin(2 * mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    out: FloatArray = (lo + hi) / 2
    return out


def mollweide(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mollweide equal-area map ``(lambda, phi) -> (x, y)`` (radians; see the module docstring).

    ``(0, 0) -> (0, 0)``, poles ``-> (0, +-sqrt 2)``, ``(+-pi, 0) -> (+-2 sqrt 2, 0)``.
    """
    lam = np.asarray(lon, dtype=np.float64)
    phi = np.asarray(lat, dtype=np.float64)
    u = _mollweide_colatitude(phi)  # theta = sign(phi) (pi/2 - u)
    x = 2 * math.sqrt(2) / math.pi * lam * np.sin(u)
    y = math.sqrt(2) * np.sign(phi) * np.cos(u)
    return x, y


def project_map(points: ArrayLike, kind: MapName) -> tuple[FloatArray, FloatArray]:
    """Points on ``S^2`` ``(N, 3)`` to map coordinates ``x``, ``y`` ``(N,)`` (``"hammer"`` or ``"mollweide"``)."""
    lon, lat = lonlat(points)
    if kind == "hammer":
        return hammer(lon, lat)
    if kind == "mollweide":
        return mollweide(lon, lat)
    raise ValueError(f"kind must be 'hammer' or 'mollweide', got kind={kind!r}")


def graticule(
    kind: MapName, step_deg: float = 30.0, n: int = 181
) -> list[tuple[FloatArray, FloatArray]]:
    """Meridians and parallels every ``step_deg`` degrees as map polylines; the first is the outline.

    The outline is the meridian pair ``lambda = +-pi``, which both maps send onto the bounding ellipse.
    """
    phi = np.linspace(-np.pi / 2, np.pi / 2, n)
    lam = np.linspace(-np.pi, np.pi, n)
    project = hammer if kind == "hammer" else mollweide
    edge_x, edge_y = project(
        np.concatenate([np.full(n, np.pi), np.full(n, -np.pi)]), np.r_[phi, phi[::-1]]
    )
    lines = [(np.r_[edge_x, edge_x[:1]], np.r_[edge_y, edge_y[:1]])]
    k = round(180 / step_deg)
    for i in range(-k + 1, k):
        lines.append(project(np.full(n, math.radians(i * step_deg)), phi))
    for i in range(-(k // 2) + 1, k // 2):
        lines.append(project(lam, np.full(n, math.radians(i * step_deg))))
    return lines


def pca_sphere(points: ArrayLike, k: int = 2) -> tuple[FloatArray, FloatArray]:
    """Project unit vectors onto their ``k`` principal axes through the origin, then renormalise.

    The axes are the top eigenvectors of the second-moment matrix ``Z^T Z / N`` (no centring: the
    centre of the sphere is the natural origin, and a great circle or great sphere through the data
    then maps onto the unit circle (``k = 2``) or the unit sphere ``S^2`` (``k = 3``) exactly).
    The renormalisation keeps the direction within the principal subspace and discards the length,
    which tells how far a point lies out of that subspace.

    Args:
        points: ``(N, d)``, ``d >= k``.
        k: 2 (points on ``S^1``) or 3 (points on ``S^2``).

    Returns:
        ``(N, k)`` unit vectors, and the fraction of the second moment (``sum |z|^2``) that the ``k``
        axes keep, ``(k,)`` per axis.
    """
    z = np.asarray(points, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < k:
        raise ValueError(f"points must have shape (N, d) with d >= {k}, got {z.shape}")
    _, s, vh = np.linalg.svd(z, full_matrices=False)
    proj = z @ vh[:k].T
    # a point orthogonal to the whole subspace has no direction in it; leave it at the origin
    norm = np.linalg.norm(proj, axis=1, keepdims=True)
    unit: FloatArray = np.where(norm > 1e-12, proj / np.maximum(norm, 1e-12), 0.0)
    energy = s**2
    share: FloatArray = energy[:k] / max(float(energy.sum()), 1e-300)
    return unit, share


def embed_2d(
    points: ArrayLike,
    method: Literal["tsne", "umap"] = "tsne",
    seed: int = 0,
    metric: Literal["cosine", "euclidean"] = "cosine",
) -> FloatArray:
    """A 2-D embedding with the cosine distance ``1 - z_i . z_j / (|z_i| |z_j|)`` (or, with
    ``metric="euclidean"``, the Euclidean one, e.g. for products of spheres).

    ``"tsne"`` uses scikit-learn's t-SNE (van der Maaten and Hinton 2008), perplexity
    ``min(30, (N - 1) / 3)``, exact gradients up to 500 points and Barnes-Hut beyond; ``"umap"``
    needs the optional ``umap-learn`` package (McInnes et al. 2018).
    Neither preserves distances or densities: only which points are near each other.

    Returns:
        ``(N, 2)`` coordinates (arbitrary units).
    """
    z = np.asarray(points, dtype=np.float64)
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got metric={metric!r}")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(max(1.0, min(30.0, (len(z) - 1) / 3)))
        # exact gradients below 500 points: O(N^2) is cheap there, and the Barnes-Hut code's OpenMP
        # threads spin for seconds on a machine whose cores are busy (measured: 0.1 s against 7-30 s)
        tsne = TSNE(
            n_components=2,
            metric=metric,
            init="random",
            perplexity=perplexity,
            random_state=seed,
            method="exact" if len(z) <= 500 else "barnes_hut",
        )
        out: FloatArray = np.asarray(tsne.fit_transform(z), dtype=np.float64)
        return out
    if method == "umap":
        if not umap_available():
            raise ImportError("method='umap' needs the umap-learn package (pip install umap-learn)")
        with warnings.catch_warnings():
            # umap-learn warns on import that TensorFlow (for ParametricUMAP, unused here) is
            # missing, and that a fixed random_state runs single-threaded: neither concerns the user
            warnings.filterwarnings("ignore", message=".*Tensorflow not installed.*")
            warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
            import umap

            reducer = umap.UMAP(n_components=2, metric=metric, random_state=seed)
            return np.asarray(reducer.fit_transform(z), dtype=np.float64)
    raise ValueError(f"method must be 'tsne' or 'umap', got method={method!r}")


def umap_available() -> bool:
    """Whether the optional ``umap`` package is importable."""
    return importlib.util.find_spec("umap") is not None
