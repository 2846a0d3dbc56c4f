r"""Interpolation between latent points along geodesics: great circles on spheres, lines on ``R^d``.

Spherical linear interpolation (Shoemake 1985) between unit vectors ``a`` and ``b`` at angle
``omega = angle(a, b)``::

    slerp(a, b, t) = cos(t omega) a + sin(t omega) u,   u = (b - (a . b) a) / |b - (a . b) a|

which equals the textbook ``(sin((1-t) omega) a + sin(t omega) b) / sin(omega)`` but has no division
by ``sin(omega)``, so it stays accurate for nearly identical and nearly antipodal points. It is the
constant-speed great-circle arc: ``|slerp| = 1`` and ``angle(slerp(t), slerp(s)) = |t - s| omega``.
Between antipodal points every great circle is a geodesic; a deterministic one is chosen (through the
coordinate axis least aligned with ``a``). On a product space each factor is interpolated on its own
(the geodesics of a product are the products of geodesics, all factors run at constant speed).
Linear interpolation in a Gaussian latent space passes through low-norm points that the prior rarely
produces (the "soap bubble" effect, see :mod:`spherevae.plots.why_sphere`); on a sphere every point
of the path is a typical point.

References:
    K. Shoemake (1985), Animating rotation with quaternion curves, SIGGRAPH.
    T. White (2016), Sampling generative networks, arXiv:1609.04468.
    T. R. Davidson et al. (2018), Hyperspherical variational auto-encoders, UAI.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..models import LatentSpec, parse_latent
from ._common import Model, decode_images, encode_points, image_canvas, imshow_pixels

__all__ = ["geodesic", "interpolation_strip", "slerp"]


def _unit(x: Tensor) -> Tensor:
    norm: Tensor = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / norm.clamp(min=torch.finfo(x.dtype).tiny)


def _unit_or_same(x: Tensor) -> Tensor:
    """``x`` itself where it is a unit vector to rounding (so end points come back bit for bit)."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.where((norm - 1).abs() <= 8 * torch.finfo(x.dtype).eps, x, _unit(x))


def slerp(a: Tensor, b: Tensor, t: Tensor | float) -> Tensor:
    """Great-circle interpolation from ``a`` (``t = 0``) to ``b`` (``t = 1``) on the unit sphere.

    Args:
        a: the start, ``(..., d)`` with ``d >= 2``: unit vectors (others are normalised first).
        b: the end, as ``a``.
        t: ``(T,)`` or a number; values outside ``[0, 1]`` extrapolate along the same great circle.

    Returns:
        ``(T, ..., d)`` for a 1-D ``t`` (``(..., d)`` for a number) of unit vectors, equal to ``a`` at
        ``t = 0`` and to ``b`` at ``t = 1`` exactly (bit for bit for unit inputs).

    Examples:
        >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
        >>> path = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
        >>> [[round(x, 4) for x in point] for point in path.tolist()]
        [[1.0, 0.0], [0.7071, 0.7071], [0.0, 1.0]]
    """
    a, b = torch.broadcast_tensors(_unit_or_same(a), _unit_or_same(b))
    t_tensor = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    scalar = t_tensor.dim() == 0
    tt = t_tensor.reshape(-1, *([1] * a.dim()))  # (T, 1, ..., 1)
    # angle from |a - b| and |a + b|: accurate at every angle, unlike acos(a . b) near 0 and pi
    omega = 2 * torch.atan2(
        torch.linalg.vector_norm(a - b, dim=-1, keepdim=True),
        torch.linalg.vector_norm(a + b, dim=-1, keepdim=True),
    )
    dot = (a * b).sum(-1, keepdim=True)
    tangent = b - dot * a
    t_norm = torch.linalg.vector_norm(tangent, dim=-1, keepdim=True)
    # nearly antipodal (or identical) points leave no usable tangent direction in b; for antipodal
    # points take the axis least aligned with a, made orthogonal to a (identical points need none:
    # omega = 0 makes the tangent's weight sin(0) = 0)
    axis = torch.zeros_like(a).scatter_(-1, a.abs().argmin(-1, keepdim=True), 1.0)
    fallback = axis - (axis * a).sum(-1, keepdim=True) * a
    eps = torch.finfo(a.dtype).eps
    u = torch.where(t_norm > 64 * eps, tangent, fallback)
    u = _unit(u)
    out = torch.cos(tt * omega) * a + torch.sin(tt * omega) * u
    out = _unit(out)
    # exact end points (the formula reproduces b only to rounding)
    out = torch.where(tt == 0, a, out)
    out = torch.where(tt == 1, b, out)
    return out[0] if scalar else out


def geodesic(a: Tensor, b: Tensor, t: Tensor, latent: LatentSpec | str) -> Tensor:
    """Per-factor geodesic: slerp on sphere factors, ``(1 - t) a + t b`` on Euclidean ones.

    Args:
        a: the start, ``(..., latent_dim)``.
        b: the end, ``(..., latent_dim)``.
        t: ``(T,)``.
        latent: the latent space (splits the coordinates by ``sizes``).

    Returns:
        ``(T, ..., latent_dim)``.
    """
    spec = parse_latent(latent) if isinstance(latent, str) else latent
    if a.shape[-1] != spec.ambient_dim or b.shape[-1] != spec.ambient_dim:
        raise ValueError(
            f"a and b must have {spec.ambient_dim} coordinates for {spec}, "
            f"got {a.shape[-1]} and {b.shape[-1]}"
        )
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).reshape(-1)
    parts = []
    for factor, pa, pb in zip(
        spec.factors, a.split(spec.sizes, -1), b.split(spec.sizes, -1), strict=True
    ):
        if factor.is_sphere:
            parts.append(slerp(pa, pb, t))
        else:
            tt = t.reshape(-1, *([1] * pa.dim()))
            pa, pb = torch.broadcast_tensors(pa, pb)
            parts.append((1 - tt) * pa + tt * pb)
    return torch.cat(parts, -1)


def _path_name(spec: LatentSpec) -> str:
    names = []
    for f in spec.factors:
        names.append(f"slerp on S^{f.dim}" if f.is_sphere else f"linear on R^{f.dim}")
    return " x ".join(names)


def interpolation_strip(
    model: Model,
    x_a: Tensor,
    x_b: Tensor,
    *,
    steps: int = 10,
    title: str | None = None,
    labels: Tensor | None = None,
) -> Figure:
    """Decoded images along the geodesic between the encodings of ``x_a`` and ``x_b``.

    Each image row starts at ``x_a`` and ends at ``x_b`` (the inputs, framed by their reconstructions
    at ``t = 0`` and ``t = 1``); the latent path is :func:`geodesic` between the posterior modes.

    Args:
        x_a: the start images, ``(C, H, W)`` or a batch ``(B, C, H, W)`` (one row per pair).
        x_b: the end images, shaped as ``x_a``.
        steps: number of points on the path, ends included (``>= 2``).
        labels: a conditional model's class of each row ``(B,)``: both ends are encoded, and the
            path decoded, with it (required for a conditional model, refused for others).

    Returns:
        A figure with one axes holding one image (the strip), ``B`` rows of ``steps + 2`` tiles.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got steps={steps}")
    xa = x_a.unsqueeze(0) if x_a.dim() == 3 else x_a
    xb = x_b.unsqueeze(0) if x_b.dim() == 3 else x_b
    za, zb = encode_points(model, xa, labels).double(), encode_points(model, xb, labels).double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64)
    path = geodesic(za, zb, t, model.latent)  # (T, B, d)
    y = None if labels is None else labels.repeat_interleave(steps)  # row-major, as the path
    decoded = decode_images(model, path.transpose(0, 1).reshape(-1, path.shape[-1]), y)
    rows = decoded.reshape(len(xa), steps, *decoded.shape[1:])
    tiles = torch.cat([xa.float().cpu().unsqueeze(1), rows, xb.float().cpu().unsqueeze(1)], 1)
    canvas = image_canvas(tiles.reshape(-1, *tiles.shape[2:]), ncols=steps + 2)
    figure = Figure(figsize=(0.7 * (steps + 2) + 0.4, 0.7 * len(xa) + 0.7))
    ax = figure.add_subplot()
    imshow_pixels(ax, canvas, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(
        title
        if title is not None
        else f"input, {steps} decoded points ({_path_name(model.latent)}), input"
        + ("" if labels is None else "; one row per class, decoded with its label"),
        fontsize="small",
    )
    return figure
