"""Constraints for hyperspherical distributions (``torch.distributions`` has no sphere constraint)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["ProductSupport", "Sphere", "sphere"]


class Sphere(constraints.Constraint):
    """Unit vectors along the last axis: ``| ||x|| - 1 | <= reltol * eps * sqrt(m)``.

    ``eps`` is the machine epsilon of the coarser of the value's dtype and float32: a vector made unit
    in float32 (an encoder's ``torch.nn.functional.normalize``) and then cast to float64 is unit to
    float32's rounding only, and is accepted as float64, while vectors that are visibly off the
    sphere are not (about ``1e-6`` relative at ``m = 10`` in float64 and float32; float16 and
    bfloat16 values get their own, coarser epsilon).
    """

    event_dim = 1
    reltol = 10.0

    def check(self, value: Tensor) -> Tensor:
        eps = max(torch.finfo(value.dtype).eps, torch.finfo(torch.float32).eps)
        norm = torch.linalg.vector_norm(value, dim=-1)
        ok: Tensor = (norm - 1).abs() <= self.reltol * eps * value.shape[-1] ** 0.5
        return ok

    def __repr__(self) -> str:
        return "Sphere()"


sphere = Sphere()


class ProductSupport(constraints.Constraint):
    """The support of a product of factors with one-dimensional events, concatenated on the last axis.

    ``check`` splits the last axis into blocks of ``lengths``, checks each block against its factor's
    constraint and returns their conjunction, of shape ``value.shape[:-1]``. (``constraints.cat`` is not
    usable here: it concatenates the per-block results, which for event constraints such as the sphere
    have no last axis left to concatenate along.)
    """

    event_dim = 1

    def __init__(self, parts: list[constraints.Constraint], lengths: list[int]) -> None:
        if len(parts) != len(lengths):
            raise ValueError(f"parts and lengths differ in length: {len(parts)} != {len(lengths)}")
        self.parts = parts
        self.lengths = lengths
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        ok = torch.ones(value.shape[:-1], dtype=torch.bool, device=value.device)
        for part, block in zip(self.parts, torch.split(value, self.lengths, dim=-1), strict=True):
            result = part.check(block)
            # a constraint on scalars (event_dim 0) answers per coordinate: all must hold
            ok = ok & (result.all(-1) if part.event_dim == 0 else result)
        return ok

    def __repr__(self) -> str:
        return f"ProductSupport({self.parts}, lengths={self.lengths})"
