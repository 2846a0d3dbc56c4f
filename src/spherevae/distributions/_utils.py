"""Geometry shared by the distributions on the sphere: surface area, rotations, tangent sampling."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "check_concentration",
    "check_loc",
    "log_sphere_area",
    "normalize",
    "place_on_sphere",
    "rotate_from_first_axis",
    "work_dtype",
]


def log_sphere_area(m: int) -> float:
    """Log surface area of the unit sphere ``S^{m-1}`` in ``R^m``: ``log 2 + (m/2) log pi - lgamma(m/2)``."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def work_dtype(device: torch.device) -> torch.dtype:
    """Dtype for the scalar numerics (Bessel functions, marginal samplers): float64, or float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64


def normalize(x: Tensor) -> Tensor:
    """``x / ||x||`` along the last axis; a zero vector (probability zero for Gaussian draws) stays 0."""
    norm: Tensor = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / norm.clamp(min=torch.finfo(x.dtype).tiny)


def rotate_from_first_axis(x: Tensor, loc: Tensor) -> Tensor:
    """Apply an orthogonal map ``Q`` with ``Q e_1 = loc`` to ``x``.

    ``Q = -s H_u`` with the Householder reflection ``H_u = I - 2 u u^T / |u|^2``, ``u = e_1 + s loc`` and
    ``s = sign(loc_1)`` (``+1`` at 0). This choice keeps ``|u|^2 = 2 (1 + |loc_1|) >= 2``, so there is no
    division by a small number when ``loc`` is close to ``+-e_1`` (the ``u / (|u| + 1e-5)`` trap).

    Args:
        x: ``(..., m)`` vectors in the frame where the mean direction is ``e_1``.
        loc: ``(..., m)`` unit vectors, broadcastable with ``x``.

    Returns:
        ``(..., m)``, the rotated vectors; differentiable in ``x`` and ``loc``.
    """
    sign = torch.where(loc[..., :1] >= 0, 1.0, -1.0).to(loc.dtype)
    u = sign * loc
    u = torch.cat([u[..., :1] + 1, u[..., 1:]], dim=-1)
    coef = 2 * (u * x).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True)
    return -sign * (x - coef * u)


def place_on_sphere(one_minus_w: Tensor, loc: Tensor, shape: torch.Size) -> Tensor:
    """Points ``z = w loc + sqrt(1 - w^2) v`` with ``v`` uniform on the unit sphere of the tangent space.

    Args:
        one_minus_w: ``shape``, the values ``t = 1 - w`` in ``[0, 2]`` (given as ``1 - w`` because that
            is what keeps digits when ``w`` is close to 1); in ``loc``'s dtype.
        loc: ``batch + (m,)`` unit mean directions.
        shape: ``sample_shape + batch``.

    Returns:
        ``shape + (m,)`` unit vectors, renormalised so that ``| ||z|| - 1 |`` is a few ulps.
    """
    m = loc.shape[-1]
    t = one_minus_w.clamp(min=torch.finfo(one_minus_w.dtype).tiny, max=2.0)
    tangent = torch.randn(*shape, m - 1, dtype=loc.dtype, device=loc.device)
    tangent = normalize(tangent)
    radial = torch.sqrt(t * (2 - t)).unsqueeze(-1)
    z_frame = torch.cat([(1 - t).unsqueeze(-1), radial * tangent], dim=-1)
    return normalize(rotate_from_first_axis(z_frame, loc))


def check_loc(loc: Tensor, validate: bool) -> None:
    """Raise ``ValueError`` naming ``loc`` if it is not a batch of unit vectors of dimension ``>= 2``."""
    if loc.dim() < 1 or loc.shape[-1] < 2:
        raise ValueError(
            f"loc must have shape batch_shape + (m,) with ambient dimension m >= 2, "
            f"got shape {tuple(loc.shape)}"
        )
    if not loc.is_floating_point():
        raise ValueError(f"loc must be a floating-point tensor, got dtype {loc.dtype}")
    if validate:
        from .constraints import sphere

        ok = sphere.check(loc)
        if not bool(ok.all()):
            norm = torch.linalg.vector_norm(loc, dim=-1)[~ok].flatten()[0].item()
            raise ValueError(
                f"loc must be unit vectors along its last axis, got a vector of norm {norm!r}"
            )


def check_concentration(concentration: Tensor, validate: bool) -> None:
    """Raise ``ValueError`` naming ``concentration`` if any value is negative or not finite."""
    if validate:
        bad = ~torch.isfinite(concentration) | (concentration < 0)
        if bool(bad.any()):
            value = concentration[bad].flatten()[0].item()
            raise ValueError(f"concentration must be finite and >= 0, got concentration={value!r}")
