"""The switch for the compiled kernels of training-size draws, and the wrapper that compiles them.

See :mod:`._fused` for what is compiled and why. Kept apart from it: the switch is public
(``spherevae.distributions.compiled_sampling``), the wrapper is generic.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.distributions import Distribution

__all__ = [
    "compiled_sampling",
    "compiled_sampling_enabled",
    "kernel",
    "on_device",
    "set_compiled_sampling",
]

_state = {"enabled": False, "broken": False}


def compiled_sampling_enabled() -> bool:
    """Whether training-size vMF draws use the compiled kernels (see :func:`compiled_sampling`)."""
    return _state["enabled"] and not _state["broken"]


def set_compiled_sampling(enabled: bool) -> bool:
    """Turn the compiled kernels for training-size vMF draws on or off; returns the previous setting."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False, got enabled={enabled!r}")
    previous = _state["enabled"]
    _state["enabled"] = enabled
    return previous


@contextmanager
def compiled_sampling(enabled: bool = True) -> Iterator[None]:
    """Within the block, von Mises-Fisher draws of up to 32 samples a row on a CPU or a CUDA device
    (except the rejection sampler at ``m = 3``, whose closed form stays) use kernels compiled by
    ``torch.compile`` (see ``spherevae.distributions._fused``): the same law and gradients as the
    eager path, at a fraction of its dispatch cost. The setting before the block is restored after
    it. The setting is one for the whole process (all threads), like torch's own global switches.

    Examples:
        >>> with compiled_sampling():  # doctest: +SKIP
        ...     z = VonMisesFisher(loc, kappa).rsample()
    """
    previous = set_compiled_sampling(enabled)
    try:
        yield
    finally:
        set_compiled_sampling(previous)


def on_device(device: torch.device) -> bool:
    """Whether work on ``device`` takes the compiled kernels now (on, not broken, a CPU or CUDA device)."""
    return compiled_sampling_enabled() and device.type in ("cpu", "cuda")


class _Kernel:
    """A function compiled on its first call (``fullgraph``: no graph breaks), with some of its
    arguments bound as constants (the dimension ``m``, the slope's precision, the number of
    Metropolis-Hastings steps, which gradients are needed): ``torch.compile`` specialises on them
    rather than treating integers as dynamic. Each binding gets its own code object, so that its
    compiled variants do not crowd another's in torch's cache.

    Failures never reach the caller: if the first compile fails (no C++ compiler, a torch or Python
    version without ``torch.compile``), a warning says why, the call runs the function eagerly, and
    the compiled kernels are off for the process; if a later call fails (torch gives up recompiling a
    kernel for new shapes after its limit of 8 variants), that kernel alone runs eagerly from then on.
    """

    def __init__(self, fn: Callable[..., Any], constants: dict[str, Any]) -> None:
        def bound(*args: Any) -> Any:
            return fn(*args, **constants)

        # torch keeps its compiled variants per code object: a fresh one for each binding
        code = bound.__code__.replace(co_name=f"{fn.__name__}_{len(_KERNELS)}")
        self.unique = types.FunctionType(
            code, bound.__globals__, code.co_name, None, bound.__closure__
        )
        self.eager = bound
        self.compiled: Callable[..., Any] | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.eager(*args)
        try:
            if self.compiled is not None:
                return self.compiled(*args)
            # the first call compiles. torch's compiler warns about its own internals while it loads
            # (a deprecation in torch.jit with torch 2.13), which a program that turns warnings into
            # errors (as our test suite does) would otherwise see as a failure to compile
            with warnings.catch_warnings(), _keeping_global_state():
                warnings.filterwarnings("ignore", module=r"torch(\.|$)")
                compiled = torch.compile(self.unique, fullgraph=True)
                out = compiled(*args)
            self.compiled = compiled
            return out
        except Exception as err:
            first = self.compiled is None
            self.failed = True
            if first:  # compiling does not work here: the eager path serves from now on
                _state["broken"] = True
            # the cause is often on the message's second line: all of it, on one line, shortened
            message = " ".join(str(err).split())
            if len(message) > 400:
                message = message[:400] + " ..."
            what = "the eager path is used instead" if first else "this kernel now runs eagerly"
            warnings.warn(
                f"spherevae: compiling the von Mises-Fisher sampling kernels failed "
                f"({type(err).__name__}: {message}); {what} "
                "(train.compiled_sampling: false turns the attempt off)",
                RuntimeWarning,
                stacklevel=3,
            )
            return self.eager(*args)


@contextmanager
def _keeping_global_state() -> Iterator[None]:
    """Undo what loading torch's compiler changes for the whole process: it turns off the argument
    validation of every ``torch.distributions.Distribution`` (``torch._dynamo``'s patches, torch
    2.13), which would silently drop the checks of every distribution the user builds afterwards."""
    validate = Distribution._validate_args
    try:
        yield
    finally:
        Distribution.set_default_validate_args(validate)


_KERNELS: dict[tuple[Any, ...], _Kernel] = {}


def kernel(fn: Callable[..., Any], **constants: Any) -> Callable[..., Any]:
    """``fn`` compiled with the keyword arguments ``constants`` bound (cached per function and values);
    called with ``fn``'s other arguments, positionally."""
    key = (fn, *constants.items())
    if key not in _KERNELS:
        _KERNELS[key] = _Kernel(fn, constants)
    return _KERNELS[key]
