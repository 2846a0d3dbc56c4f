"""Your own encoder and decoder under a name: :func:`register_network`, then ``ModelConfig(network=name)``.

A registered network is built from the model's :class:`~spherevae.models.ModelConfig` like the
built-in ones: ``encoder(config)`` returns a module mapping ``x`` ``(B, *image_shape)`` to features
``(B, F)`` and exposing ``out_features = F``; ``decoder(config, latent_size)`` returns a module mapping
``z`` ``(..., latent_size)`` to the likelihood's parameters ``(..., *image_shape)``. ``latent_size`` is
the latent's ambient size, plus the number of classes for a conditional model, whose one-hot label is
appended to the decoder's input (and to the encoder's features before the posterior head), as for the
built-in networks.

Only the name is saved with a model (``config.json``), never code: a model with a registered network
is rebuilt by :func:`~spherevae.models.from_pretrained` in a process that has registered the same
name (import the module that registers it first). Names are looked up when a config is made, so an
unregistered name is an error that says how to register it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .config import ModelConfig

__all__ = [
    "BUILT_IN_NETWORKS",
    "NetworkFactories",
    "is_known_network",
    "network_factories",
    "register_network",
    "unknown_network_message",
]

#: The networks spherevae builds itself (:mod:`spherevae.models.networks`).
BUILT_IN_NETWORKS = ("mlp", "cnn")


@dataclass(frozen=True)
class NetworkFactories:
    """How to build a registered network's encoder and decoder."""

    encoder: Callable[[ModelConfig], nn.Module]
    decoder: Callable[[ModelConfig, int], nn.Module]


_REGISTERED: dict[str, NetworkFactories] = {}


def register_network(
    name: str,
    *,
    encoder: Callable[[ModelConfig], nn.Module],
    decoder: Callable[[ModelConfig, int], nn.Module],
) -> None:
    """Register ``encoder`` and ``decoder`` factories under ``name`` (registering a name again
    replaces its factories, as re-running a notebook cell does).

    Raises:
        ValueError: for a name of a built-in network or one that is not a non-empty identifier-like
            string (letters, digits, ``_``, ``-``, ``.``), or factories that are not callable.
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(
            f"a network name must be a non-empty string of letters, digits, '_', '-' or '.', "
            f"got name={name!r}"
        )
    if name in BUILT_IN_NETWORKS:
        raise ValueError(f"network name={name!r} is built in; choose another name")
    for role, factory in (("encoder", encoder), ("decoder", decoder)):
        if not callable(factory):
            raise ValueError(f"{role} must be a callable that builds a module, got {factory!r}")
    _REGISTERED[name] = NetworkFactories(encoder, decoder)


def network_factories(name: str) -> NetworkFactories:
    """The factories registered under ``name``.

    Raises:
        ValueError: if ``name`` is neither built in nor registered, saying how to register it.
    """
    try:
        return _REGISTERED[name]
    except KeyError:
        raise ValueError(unknown_network_message(name)) from None


def is_known_network(name: Any) -> bool:
    """Whether ``name`` is a built-in or a registered network."""
    return isinstance(name, str) and (name in BUILT_IN_NETWORKS or name in _REGISTERED)


def unknown_network_message(name: Any) -> str:
    """The error for an unknown network name: what is known, and how to register it."""
    registered = ", ".join(sorted(_REGISTERED)) or "none"
    return (
        f"network={name!r} is neither built in ({', '.join(BUILT_IN_NETWORKS)}) nor registered in "
        f"this process (registered: {registered}); register it first with "
        f"spherevae.models.register_network({name!r}, encoder=..., decoder=...), e.g. by importing "
        f"the module that does"
    )
