"""Constraints for hyperspherical distributions (``torch.distributions`` has no sphere constraint)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["Sphere", "sphere"]


class Sphere(constraints.Constraint):
    """Unit vectors along the last axis: ``| ||x|| - 1 | <= reltol * eps * sqrt(m)``.

    The tolerance is relative to the dtype's machine epsilon, so float32 encoders whose outputs pass
    through ``torch.nn.functional.normalize`` are accepted, while vectors that are visibly off the
    sphere are not.
    """

    event_dim = 1
    reltol = 10.0

    def check(self, value: Tensor) -> Tensor:
        eps = torch.finfo(value.dtype).eps
        norm = torch.linalg.vector_norm(value, dim=-1)
        ok: Tensor = (norm - 1).abs() <= self.reltol * eps * value.shape[-1] ** 0.5
        return ok

    def __repr__(self) -> str:
        return "Sphere()"


sphere = Sphere()
