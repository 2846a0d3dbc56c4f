"""Helpers for code that runs under torch's transforms: ``torch.compile``, ``torch.jit.trace`` and
``torch.func`` (``vmap``, ``grad``, ``jvp``, ...).

Whether code may read tensor values on the host to choose what to compute:
The distributions and Bessel functions pick, on the CPU, only the branches a batch needs (by reading
its extremes, which costs no wait there). That choice cannot be made while ``torch.compile`` or
``torch.jit.trace`` records the code (it would be frozen into the graph), nor inside a
``torch.func`` transform (``vmap`` cannot read a batch as one value); there, every branch is
evaluated and merged by ``torch.where``, as on accelerators. The results are the same either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "batched_elementwise",
    "builds_constants",
    "is_compiling",
    "may_be_differentiated",
    "values_can_be_read",
]

# torch.compiler.is_compiling exists from torch 2.3 on; before it the eager forms are traced
_IS_COMPILING = getattr(torch.compiler, "is_compiling", None)


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the caller (``torch.compiler.is_compiling``; ``False`` on a
    torch without it)."""
    return bool(_IS_COMPILING()) if _IS_COMPILING is not None else False


def values_can_be_read(x: Tensor) -> bool:
    """Whether the values of ``x`` may be read on the host to choose a path: not while
    ``torch.compile`` or ``torch.jit.trace`` records the caller, nor when ``x`` is transformed by
    ``torch.func`` (``vmap``, ``grad``, ``jvp``, ...)."""
    if is_compiling() or torch.jit.is_tracing():  # type: ignore[attr-defined]
        return False
    # torch.func wraps the tensors it transforms; torch has no public test for the wrapper
    return not torch._C._functorch.is_functorch_wrapped_tensor(x)


def batched_elementwise(
    batch_size: int, tensors: tuple[Tensor, ...], dims: tuple[int | None, ...]
) -> tuple[Tensor, ...]:
    """The arguments of an elementwise function in the ``vmap`` rule of a custom autograd function:
    each tensor with its batch axis (``dims``, ``None`` if unbatched) moved first, broadcast to one
    shape ``(batch_size, *broadcast of the rest)``. The function applied to them returns its result
    with the batch axis first."""
    moved = [
        t.movedim(d, 0) if d is not None else t.unsqueeze(0)
        for t, d in zip(tensors, dims, strict=True)
    ]
    rank = max(t.dim() for t in moved)
    # align the per-example axes on the right, as broadcasting does without the batch axis
    moved = [t.reshape(t.shape[0], *([1] * (rank - t.dim())), *t.shape[1:]) for t in moved]
    rest = torch.broadcast_shapes(*(t.shape[1:] for t in moved))
    return tuple(t.expand(batch_size, *rest) for t in moved)


def may_be_differentiated(x: Tensor) -> bool:
    """Whether a derivative of ``x`` may be asked for: ``x`` requires grad with grad mode on, carries
    a forward-mode tangent, or is transformed by ``torch.func`` (where ``requires_grad`` does not
    tell). Code that has a cheaper no-grad path takes it only when this is ``False``."""
    if torch.is_grad_enabled() and x.requires_grad:
        return True
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return True
    return torch.autograd.forward_ad.unpack_dual(x).tangent is not None


def builds_constants(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn``, which builds tensors that a cache keeps (quadrature rules, series coefficients), as
    if no ``torch.func`` transform were active: inside ``grad`` every new tensor is wrapped for that
    transform, and a cached wrapper would leak into every later call. Decorate the builder itself
    (below ``functools.lru_cache``, or the build of a dict cache), so that a cache hit costs nothing."""

    @functools.wraps(fn)
    def build(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with torch._C._DisableFuncTorch():
            return fn(*args, **kwargs)

    return build
