"""Geometry shared by the distributions on the sphere: surface area, rotations, tangent sampling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution


def broadcast_shapes(*shapes: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes``, with the common cases (equal shapes, and ``()``) answered without it.

    ``torch.broadcast_shapes`` runs Python reference code that costs about 20 microseconds a call, as
    much as several tensor operations; distributions are built at every training step.
    """
    nonempty = [shape for shape in shapes if len(shape) > 0]  # () broadcasts to every shape
    if not nonempty:
        return torch.Size(())
    if all(shape == nonempty[0] for shape in nonempty[1:]):
        return torch.Size(nonempty[0])
    return torch.Size(torch.broadcast_shapes(*shapes))


def check_vector_distribution(dist: object, name: str) -> None:
    """``ValueError`` naming the argument ``name`` unless ``dist`` is a ``Distribution`` whose event is
    one-dimensional (a vector, as the factors of a product are)."""
    if not isinstance(dist, Distribution):
        raise ValueError(f"{name} must be a Distribution, got {type(dist).__name__}")
    if len(dist.event_shape) != 1:
        raise ValueError(
            f"{name} must have a one-dimensional event shape (m,), got "
            f"event_shape={tuple(dist.event_shape)} ({type(dist).__name__})"
        )


def log_sphere_area(m: int) -> float:
    """Log surface area of the unit sphere ``S^{m-1}`` in ``R^m``: ``log 2 + (m/2) log pi - lgamma(m/2)``."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def work_dtype(device: torch.device) -> torch.dtype:
    """Dtype for the scalar numerics (Bessel functions, marginal samplers): float64, or float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64


def normalize(x: Tensor) -> Tensor:
    """``u = x / ||x||`` along the last axis; a zero vector (probability zero for Gaussian draws) stays 0.

    Differentiable, with the gradient ``dL/dx = (g - (g . u) u) / ||x||`` (``g = dL/du``: the tangent
    part of ``g`` at ``u``, scaled) formed in three operations (:class:`_Normalize`). The posterior
    heads call this at every training step; autograd's own derivative of ``x / ||x||`` (as
    ``torch.nn.functional.normalize`` records it) takes fifteen, at a cost in dispatch, not arithmetic,
    for training-size batches.

    Shapes: ``(..., m)`` to ``(..., m)``.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        out: Tensor = _Normalize.apply(x)
        return out
    norm: Tensor = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / norm.clamp(min=torch.finfo(x.dtype).tiny)


class _Normalize(torch.autograd.Function):
    """``u = x / |x|`` with the backward ``(g - (g . u) u) / |x|`` (see :func:`normalize`)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        norm: Tensor = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        norm.clamp_(min=torch.finfo(x.dtype).tiny)
        unit = x / norm
        ctx.save_for_backward(unit, norm)
        return unit

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        unit, norm = ctx.saved_tensors
        radial = torch.linalg.vecdot(grad, unit).unsqueeze(-1)
        out: Tensor = torch.addcmul(grad, radial, unit, value=-1).div_(norm)
        return out


_LARGE = 1 << 16  # elements from which _dot_last's reshaped products beat vecdot's fewer operations


def _dot_last(x: Tensor, y: Tensor) -> Tensor:
    """``sum(x * y, -1)`` for ``x`` ``(n, B, m)`` and ``y`` ``(B, m)`` or ``(n, B, m)``; returns ``(n, B)``.

    Why not ``torch.linalg.vecdot``: on the CPU it multiplies, then reduces along the last axis, and
    that reduction is slow where the axis is short (``m = 3``: 1.7 ms for 100k float64 rows, against
    0.1 ms as a matrix-vector product) and allocates a sample-sized temporary where it is long. One
    direction shared by every row (``B = 1``) is a matrix-vector product; short rows are multiplied and
    then reduced by a product with a vector of ones. Small inputs (a training batch) keep ``vecdot``:
    there the number of operations, not their arithmetic, sets the time.
    """
    m = x.shape[-1]
    out: Tensor
    if x.numel() < _LARGE:
        out = torch.linalg.vecdot(x, y)
    elif y.dim() < x.dim() and y.shape[0] == 1:
        out = (x.reshape(-1, m) @ y.reshape(m)).view(x.shape[:-1])
    elif m <= 32:
        out = (x * y) @ torch.ones(m, dtype=x.dtype, device=x.device)
    else:
        out = torch.linalg.vecdot(x, y)
    return out


def place(
    t: Tensor, loc: Tensor, gauss: Tensor, for_backward: bool
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The forward pass of :class:`PlaceOnSphere`; also its whole work when no gradient is needed.

    Returns ``z`` and, if ``for_backward``, the tensors the backward pass reads (else ``gauss`` is
    overwritten by ``z``: no sample-sized temporary is kept).
    """
    loc_norm = torch.linalg.vector_norm(loc, dim=-1, keepdim=True)  # (B, 1)
    unit = loc / loc_norm
    a = _dot_last(gauss, unit)
    p = torch.addcmul(gauss, a.unsqueeze(-1), unit, value=-1) if for_backward else gauss
    if not for_backward:
        p.addcmul_(a.unsqueeze(-1), unit, value=-1)
    # a second projection removes what rounding left of the first, which is large relative to p where
    # g is nearly parallel to l (at m = 2 that would turn the sample off its circle of latitude)
    p.addcmul_(_dot_last(p, unit).unsqueeze(-1), unit, value=-1)
    r = torch.linalg.vector_norm(p, dim=-1)  # (n, B)
    one_minus_t = 1 - t
    radial = torch.sqrt(t * (2 - t))  # sqrt(1 - w^2), without cancellation at w close to 1
    c = radial / r.clamp(min=torch.finfo(r.dtype).tiny)
    z = p * c.unsqueeze(-1) if for_backward else p.mul_(c.unsqueeze(-1))
    z.addcmul_(one_minus_t.unsqueeze(-1), unit)
    # |z| = 1 in exact arithmetic; rounding leaves it a few ulps off, which one rescaling removes
    z.div_(torch.linalg.vector_norm(z, dim=-1, keepdim=True))
    return z, ((unit, loc_norm, p, a, r, c, radial, one_minus_t) if for_backward else ())


class PlaceOnSphere(torch.autograd.Function):
    """``z = (1 - t) l + sqrt(t (2 - t)) p / |p|``: ``l = loc / |loc|``, ``p`` the part of ``g`` orthogonal to ``l``.

    ``p = g - (g . l) l`` for a standard Gaussian ``g`` in ``R^m``: a Gaussian in the tangent space at
    ``l``, so ``p / |p|`` is uniform on the unit sphere of that space, and ``l . z = 1 - t``, ``|z| = 1``
    for every ``loc`` (``z`` depends on the direction of ``loc`` only). ``p`` is projected twice: the
    second pass removes the rounding error of the first, large relative to ``p`` where ``g`` is nearly
    parallel to ``l``. There is no division by a small number: ``|p|`` is the norm of an
    ``(m-1)``-dimensional Gaussian.

    Gradients (``G = dL/dz``; ``a = g . l``, ``r = |p|``, ``s = sqrt(t (2 - t))``, ``c = s / r``, and
    ``p . l = 0``, ``l . dl = 0`` for the unit ``l``):
    ``dL/dt = -(G . l) + (1 - t) / (s r) (G . p)``, infinite at the poles ``s = 0`` (``t = 0`` or 2),
    where it is set to ``-(G . l)`` (the poles have probability zero; a sample rounded onto one then
    passes a finite gradient); in the angle ``theta = arccos(1 - t)``, ``dL/dtheta = -s (G . l) +
    (1 - t) (G . p) / r``, bounded everywhere;
    ``dL/dl = ((1 - t) - c a) G + c (a (G . p) / r^2 - G . l) p`` up to a multiple of ``l`` (the term
    ``-c (G . l) g`` of the derivative through ``a = g . l`` equals ``-c (G . l) p`` on the tangent
    vectors ``dl``), summed over the samples; ``dL/dloc = (I - l l^T) dL/dl / |loc|``. The final
    rescaling of ``z`` (a rounding correction; ``|z| = 1`` identically) is not differentiated. Not twice
    differentiable. At the batch sizes of training each tensor operation costs microseconds of dispatch,
    more than its arithmetic: the forward pass takes about 20 operations, the backward about 30.

    The samplers whose ``t`` is drawn without a graph (rejection, Metropolis-Hastings, inverse CDF) pass
    the concentration ``kappa`` and the no-grad slope ``dtheta/dkappa`` of every sample: the gradient
    ``dL/dkappa = sum_samples dL/dtheta dtheta/dkappa`` is then formed here, with no surrogate graph
    and no dtype conversions around it. In the angle, not in ``t``: ``dL/dt`` is infinite and
    ``dt/dkappa = s dtheta/dkappa`` is zero at the poles, and a sample rounded onto ``t = 2`` (in
    float32, ``theta`` within ``3e-4`` of ``pi``: common at ``m = 2`` and small ``kappa``) made their
    product overflow.

    Shapes: ``t`` ``(n, B)``, ``loc`` ``(B, m)``, ``gauss`` ``(n, B, m)``, ``kappa`` ``(B,)`` and
    ``slope`` ``(n, B)`` (any floating dtypes; both or neither); returns ``(n, B, m)``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        t: Tensor,
        loc: Tensor,
        gauss: Tensor,
        kappa: Tensor | None = None,
        slope: Tensor | None = None,
        placed: tuple[Tensor, tuple[Tensor, ...]] | None = None,
    ) -> Tensor:
        z, saved = placed if placed is not None else place(t, loc, gauss, for_backward=True)
        ctx.save_for_backward(*saved, slope)
        ctx.kappa_dtype = None if kappa is None else kappa.dtype
        return z

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, Tensor | None, None, None]:
        unit, loc_norm, p, a, r, c, radial, one_minus_t, slope = ctx.saved_tensors
        needs_kappa = slope is not None and ctx.needs_input_grad[3]
        grad_l = _dot_last(grad, unit)  # G . l
        grad_p = _dot_last(grad, p)  # G . p
        grad_t = grad_loc = grad_kappa = None
        if ctx.needs_input_grad[0]:
            den = radial * r
            dc_dt = torch.where(den > 0, one_minus_t / den, 0.0)  # 0 at the poles, see above
            grad_t = torch.addcmul(-grad_l, dc_dt, grad_p)
        if ctx.needs_input_grad[1]:
            ca = c * a
            coef_g = one_minus_t - ca
            coef_p = (a * grad_p / (r * r).clamp(min=torch.finfo(r.dtype).tiny) - grad_l) * c
            per_sample = grad * coef_g.unsqueeze(-1)
            per_sample.addcmul_(coef_p.unsqueeze(-1), p)
            d_unit = _sum_samples(per_sample)  # (B, m)
            radial_part = (d_unit * unit).sum(-1, keepdim=True)
            grad_loc = torch.addcmul(d_unit, radial_part, unit, value=-1).div_(loc_norm)
        if needs_kappa:
            # dL/dtheta = -s (G . l) + (1 - t) (G . p) / r
            scale = one_minus_t / r.clamp(min=torch.finfo(r.dtype).tiny)
            grad_theta = torch.addcmul(grad_p.mul_(scale), grad_l, radial, value=-1)
            grad_kappa = _sum_samples(grad_theta.mul_(slope)).to(ctx.kappa_dtype)
        return (grad_t if ctx.needs_input_grad[0] else None), grad_loc, None, grad_kappa, None, None


def _sum_samples(x: Tensor) -> Tensor:
    """``x.sum(0)``; a view where there is one sample (a sum over one element is a copy, an operation)."""
    return x[0] if x.shape[0] == 1 else x.sum(0)


def place_on_sphere(
    one_minus_w: Tensor,
    loc: Tensor,
    shape: torch.Size,
    kappa: Tensor | None = None,
    slope: Tensor | None = None,
    gauss: Tensor | None = None,
    placed: tuple[Tensor, tuple[Tensor, ...]] | None = None,
) -> Tensor:
    """Points ``z = w loc + sqrt(1 - w^2) v`` with ``v`` uniform on the unit sphere of the tangent space.

    ``v`` is the normalised projection of a standard Gaussian vector onto the tangent space at ``loc``
    (:class:`PlaceOnSphere`); differentiable in ``one_minus_w`` and ``loc`` (and in ``kappa``, see
    below). Without a gradient to keep, ``z`` is written over the Gaussian draw (no autograd node, one
    sample-sized buffer).

    Args:
        one_minus_w: ``shape``, the values ``t = 1 - w`` in ``[0, 2]`` (given as ``1 - w`` because that
            is what keeps digits when ``w`` is close to 1); in ``loc``'s dtype.
        loc: ``batch + (m,)`` unit mean directions.
        shape: ``sample_shape + batch``.
        kappa: optional concentrations ``batch`` that ``t`` depends on, with ``slope`` ``shape``, the
            no-grad derivatives ``dtheta/dkappa`` of the angles ``theta = arccos(1 - t)``: ``kappa``
            then receives the gradient ``sum_samples dL/dtheta dtheta/dkappa`` (``t`` itself carries no
            graph in that use).
        gauss: the standard Gaussian ``(n, B, m)`` in ``loc``'s dtype, if the caller drew it (else
            drawn here).
        placed: ``place(t, loc, gauss, for_backward=True)`` for these ``t`` (clamped to ``[0, 2]``
            in ``loc``'s dtype), ``loc`` and ``gauss``, if the caller computed it (a compiled kernel of
            :mod:`.von_mises_fisher.kernels`): then only the autograd node is added here.

    Returns:
        ``shape + (m,)`` unit vectors, ``| ||z|| - 1 |`` a few ulps.
    """
    m = loc.shape[-1]
    batch = loc.shape[:-1]
    n_batch = batch.numel()
    n_samples = shape.numel() // max(n_batch, 1)
    t = one_minus_w if placed is not None else clamp_one_minus_w(one_minus_w)
    if gauss is None:
        gauss = torch.randn(n_samples, n_batch, m, dtype=loc.dtype, device=loc.device)
    t, loc = _shaped(t, (n_samples, n_batch)), _shaped(loc, (n_batch, m))
    if slope is not None:
        assert kappa is not None
        kappa, slope = _shaped(kappa, (n_batch,)), _shaped(slope, (n_samples, n_batch))
    differentiable = [x for x in (t, loc, kappa) if x is not None and x.requires_grad]
    if torch.is_grad_enabled() and differentiable:
        z: Tensor = PlaceOnSphere.apply(t, loc, gauss, kappa, slope, placed)
    elif placed is not None:
        z = placed[0]
    else:  # no graph: no autograd node, and z is written over the Gaussian draw
        z = place(t, loc, gauss, for_backward=False)[0]
    return _shaped(z, (*shape, m))


def clamp_one_minus_w(t: Tensor) -> Tensor:
    """``t = 1 - w`` clamped to ``[0, 2]``, as :func:`place_on_sphere` places it (NaN stays NaN).

    Not to the smallest normal number: at the largest concentrations ``t`` is of order ``1 / kappa``,
    below it (``kappa`` beyond about ``1e307`` in float64, ``1e37`` in float32), and a floor there
    would put every such sample at one distance from the mode; the placement's backward pass handles
    ``t = 0`` (the pole) on its own.
    """
    return t.clamp(min=0.0, max=2.0)


def _shaped(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``x.reshape(shape)``, skipped (it is an operation) where ``x`` has that shape already."""
    return x if x.shape == shape else x.reshape(shape)


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
        if not all_true(ok):
            norm = first_value(torch.linalg.vector_norm(loc, dim=-1), ~ok)
            raise ValueError(
                f"loc must be unit vectors along its last axis, got a vector of norm {norm}"
            )


def batch_of(loc: Tensor, concentration: Tensor) -> torch.Size:
    """The batch shape of a distribution with mean directions ``loc`` ``(*batch, m)`` and
    ``concentration``: the shape of one of the two, the other broadcasting to it.

    Raises:
        ValueError: naming both shapes, where they would broadcast into a batch larger than either
            (a ``(B, 1)`` concentration with a ``(B, m)`` loc, the layout of other libraries, would
            otherwise silently make a ``(B, B)`` batch).
    """
    loc_batch = loc.shape[:-1]
    shape = broadcast_shapes(loc_batch, concentration.shape)
    if shape != loc_batch and shape != concentration.shape:
        raise ValueError(
            f"concentration of shape {tuple(concentration.shape)} and loc of shape "
            f"{tuple(loc.shape)} would broadcast to the batch {tuple(shape)}, larger than either: "
            f"give concentration the shape of loc's batch {tuple(loc_batch)} (no trailing 1)"
        )
    return shape


def broadcast_parameters(loc: Tensor, concentration: Tensor) -> tuple[Tensor, Tensor]:
    """``loc`` ``batch_shape + (m,)`` and ``concentration`` ``batch_shape`` for the batch of
    :func:`batch_of` (which raises for shapes that would widen the batch). Each parameter is kept
    itself where its shape already fits: an expand is an operation and an autograd node even then,
    and a view is not a graph leaf, which ``copy.deepcopy`` refuses when it requires grad."""
    batch_shape = batch_of(loc, concentration)
    if loc.shape[:-1] != batch_shape:
        loc = loc.expand((*batch_shape, loc.shape[-1]))
    if concentration.shape != batch_shape:
        concentration = concentration.expand(batch_shape)
    return loc, concentration


def check_concentration(concentration: Tensor, validate: bool) -> None:
    """Raise ``ValueError`` naming ``concentration`` if any value is negative or not finite."""
    if validate:
        ok = torch.isfinite(concentration) & (concentration >= 0)
        if not all_true(ok):
            value = first_value(concentration, ~ok)
            raise ValueError(f"concentration must be finite and >= 0, got concentration={value}")


def all_true(ok: Tensor) -> bool:
    """``ok.all()`` as a Python bool, in a way ``torch.func.vmap`` supports (``torch._is_all_true``,
    as ``torch.distributions`` validates its arguments): under ``vmap`` it raises only if some
    batch member fails."""
    return bool(torch._is_all_true(ok))


def first_value(x: Tensor, where: Tensor) -> str:
    """The first element of ``x`` where ``where`` holds, for an error message (``repr`` of the number;
    a description where the value cannot be read, as inside ``torch.func.vmap``)."""
    try:
        return repr(x[where].flatten()[0].item())
    except RuntimeError:
        return "(a value inside a torch.func transform)"


def check_same_sphere(p: Distribution, q: Distribution) -> int:
    dp, dq = int(p.event_shape[0]), int(q.event_shape[0])
    if dp != dq:
        raise ValueError(
            f"KL divergence needs distributions on the same sphere, got p of dimension {dp} "
            f"({type(p).__name__}) and q of dimension {dq} ({type(q).__name__})"
        )
    return dp


def broadcast_to_batch(x: Tensor, q: Distribution) -> Tensor:
    shape = broadcast_shapes(x.shape, q.batch_shape)
    return x if shape == x.shape else x.expand(shape)
