"""Geometry shared by the distributions on the sphere: surface area, rotations, tangent sampling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "check_concentration",
    "check_loc",
    "log_sphere_area",
    "normalize",
    "place_on_sphere",
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


class _PlaceOnSphere(torch.autograd.Function):
    """``z = Q [1 - t, c g']`` with ``c = sqrt(t (2 - t)) / |g'|``, a reflection ``Q`` taking ``e_1`` to ``loc``.

    ``Q = -s H_u`` with the Householder reflection ``H_u = I - 2 u u^T / |u|^2``, ``u = e_1 + s loc`` and
    ``s = sign(loc_1)`` (``+1`` at 0). This choice keeps ``|u|^2 = 2 (1 + |loc_1|) >= 2``, so there is no
    division by a small number when ``loc`` is close to ``+-e_1`` (the ``u / (|u| + 1e-5)`` trap).

    Written out, ``z = beta g + k (s u)`` with per-sample scalars ``beta = -s c`` and
    ``k = 2 (u . x) / |u|^2``, ``u . x = u_1 (1 - t) + c s (loc' . g')`` (primes drop the first
    coordinate), and the first coordinate set to ``-s (1 - t) + k s u_1``. The forward pass allocates
    one output the size of the sample (besides the Gaussian draw, which it reads three times); the backward pass below is
    derived by hand and makes two per-sample contractions and two sums over the sample axis, instead of
    the dozen sample-sized temporaries that autograd would keep for the same formula. On a CPU the
    sample-sized passes (and the page faults of fresh allocations) dominate the cost of ``rsample``.

    Gradients (``G = dL/dz``, ``y = Q G``, ``x = [1 - t, c g']``):
    ``dL/dt = -y_1 + (dc/dt) (y' . g')`` with ``dc/dt = (1 - t) / (sqrt(t (2 - t)) |g'|)``;
    ``dL/dloc = sum_samples (2/|u|^2) [(u . x) G + (u . G) x] - (4 (u . G)(u . x) / |u|^4) u``
    (from ``du = s dloc``; ``Q`` is orthogonal for every ``u``, so ``|z| = 1`` whatever ``loc``).
    Not twice differentiable.

    Shapes: ``t`` ``(n, B)``, ``loc`` ``(B, m)``, ``gauss`` ``(n, B, m)`` (its first coordinate is
    unused); returns ``(n, B, m)``.
    """

    @staticmethod
    def forward(ctx: Any, t: Tensor, loc: Tensor, gauss: Tensor) -> Tensor:
        # Everything runs in the sample dtype: the result is a vector in that dtype, and on a CPU every
        # extra (or wider) temporary costs page faults. ``u`` is never built: s u = loc + s e_1, and
        # every product with it is written through ``loc`` and a first-coordinate correction.
        loc_first = loc[:, 0]
        sign = torch.where(loc_first >= 0, 1.0, -1.0).to(loc.dtype)  # (B,)
        abs_first = loc_first.abs()
        u_first = 1 + abs_first
        # |u|^2 = (1 + |loc_1|)^2 + |loc'|^2 = 1 + 2 |loc_1| + |loc|^2
        uu = (loc * loc).sum(-1) + abs_first + u_first
        tangent = gauss[..., 1:]
        nu = torch.linalg.vector_norm(tangent, dim=-1)  # (n, B)
        p = torch.einsum("nbm,bm->nb", tangent, loc[:, 1:])  # loc' . g'
        one_minus_t = 1 - t
        radial = torch.sqrt(t * (2 - t))
        c = radial / nu.clamp(min=torch.finfo(nu.dtype).tiny)
        sign_c = sign * c
        ux = torch.addcmul(u_first * one_minus_t, sign_c, p)  # u . x
        k = ux * (2 / uu)
        z: Tensor = gauss * (-sign_c).unsqueeze(-1)
        z.addcmul_(k.unsqueeze(-1), loc)  # + k s u, first coordinate set below
        z[..., 0] = sign * (k * u_first - one_minus_t)
        # |z| = 1 in exact arithmetic; rounding leaves it a few ulps off, which one rescaling removes
        z.div_(torch.linalg.vector_norm(z, dim=-1, keepdim=True))
        ctx.save_for_backward(t, loc, gauss, u_first, uu, sign, nu, p, c, ux, radial)
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        t, loc, gauss, u_first, uu, sign, nu, p, c, ux, radial = ctx.saved_tensors
        grad_first = grad[..., 0]
        # u . G = u_1 G_1 + s (loc' . G')
        loc_dot_grad = torch.einsum("nbm,bm->nb", grad[..., 1:], loc[:, 1:])
        uG = u_first * grad_first + sign * loc_dot_grad
        scale = 2 / uu
        grad_t = grad_loc = None
        if ctx.needs_input_grad[0]:
            k_grad = scale * uG
            g_tangent = torch.einsum("nbm,nbm->nb", grad[..., 1:], gauss[..., 1:])
            y_first = -sign * (grad_first - k_grad * u_first)
            y_dot_g = -sign * (g_tangent - k_grad * sign * p)
            dc_dt = (1 - t) / (radial * nu).clamp(min=torch.finfo(t.dtype).tiny)
            grad_t = -y_first + dc_dt * y_dot_g
        if ctx.needs_input_grad[1]:
            # dL/dloc = sum_n (2/|u|^2)[(u.x) G + (u.G) x] - (4 (u.G)(u.x)/|u|^4) u,
            # with x = [1 - t, c g'] and u = [u_1, s loc']
            grad_loc = torch.einsum("nb,nbm->bm", scale * ux, grad)
            grad_loc += torch.einsum("nb,nbm->bm", scale * uG * c, gauss)
            u_coef = (4 * uG * ux).sum(0) / (uu * uu)  # (B,)
            grad_loc.addcmul_((-u_coef * sign).unsqueeze(-1), loc)
            # first coordinate: the x-part is (1 - t), not c g_1, and u_1 = 1 + s loc_1
            first = (
                (scale * ux * grad_first).sum(0) + (scale * uG * (1 - t)).sum(0) - u_coef * u_first
            )
            grad_loc[:, 0] = first
        return grad_t, grad_loc, None


def place_on_sphere(one_minus_w: Tensor, loc: Tensor, shape: torch.Size) -> Tensor:
    """Points ``z = w loc + sqrt(1 - w^2) v`` with ``v`` uniform on the unit sphere of the tangent space.

    ``v`` is a normalised Gaussian vector orthogonal to ``e_1``, carried to the tangent space at ``loc``
    by an exact reflection (:class:`_PlaceOnSphere`); differentiable in ``one_minus_w`` and ``loc``.

    Args:
        one_minus_w: ``shape``, the values ``t = 1 - w`` in ``[0, 2]`` (given as ``1 - w`` because that
            is what keeps digits when ``w`` is close to 1); in ``loc``'s dtype.
        loc: ``batch + (m,)`` unit mean directions.
        shape: ``sample_shape + batch``.

    Returns:
        ``shape + (m,)`` unit vectors, ``| ||z|| - 1 |`` a few ulps.
    """
    m = loc.shape[-1]
    batch = loc.shape[:-1]
    n_batch = batch.numel()
    n_samples = shape.numel() // max(n_batch, 1)
    t = one_minus_w.clamp(min=torch.finfo(one_minus_w.dtype).tiny, max=2.0)
    gauss = torch.randn(n_samples, n_batch, m, dtype=loc.dtype, device=loc.device)
    z: Tensor = _PlaceOnSphere.apply(t.reshape(n_samples, n_batch), loc.reshape(n_batch, m), gauss)
    return z.reshape(*shape, m)


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
