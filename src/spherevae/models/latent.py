"""Latent spaces named by their manifold: ``S10``, ``R5``, ``S4xS4``, ``S9xR5``.

``S<d>`` is the unit sphere ``S^d = {z in R^(d+1) : |z| = 1}`` (manifold dimension ``d``, ambient size
``d + 1``), ``R<d>`` is the Euclidean space ``R^d``, and ``x`` joins factors of a product space
(Davidson, Tomczak and Gavves 2019). A latent vector is the concatenation of its factors' ambient
coordinates, in the order written: ``S9xR5`` has 15 coordinates, the first 10 on ``S^9``.

Examples:
    >>> spec = parse_latent("S9xR5")
    >>> spec.ambient_dim, spec.manifold_dim, spec.sizes
    (15, 14, (10, 5))
    >>> str(spec)
    'S9xR5'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["LatentFactor", "LatentSpec", "parse_latent"]

FactorKind = Literal["sphere", "euclidean"]

# One factor: a letter and a positive integer without leading zeros, so that str() round-trips.
_FACTOR = re.compile(r"([SR])([1-9][0-9]*)")
_LETTER: dict[str, FactorKind] = {"S": "sphere", "R": "euclidean"}


@dataclass(frozen=True)
class LatentFactor:
    """One factor of a latent space.

    Attributes:
        kind: ``"sphere"`` (``S^dim`` embedded in ``R^(dim+1)``) or ``"euclidean"`` (``R^dim``).
        dim: manifold dimension ``d >= 1``.
    """

    kind: FactorKind
    dim: int

    @property
    def ambient(self) -> int:
        """Number of coordinates of a point: ``dim + 1`` for a sphere, ``dim`` for ``R^dim``."""
        return self.dim + 1 if self.kind == "sphere" else self.dim

    @property
    def is_sphere(self) -> bool:
        return self.kind == "sphere"

    def __str__(self) -> str:
        return ("S" if self.is_sphere else "R") + str(self.dim)


@dataclass(frozen=True)
class LatentSpec:
    """A latent space: a product of one or more spheres and Euclidean spaces.

    Attributes:
        factors: the factors in coordinate order.
    """

    factors: tuple[LatentFactor, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Ambient size of each factor (the split of a latent vector's last axis)."""
        return tuple(f.ambient for f in self.factors)

    @property
    def ambient_dim(self) -> int:
        """Total number of coordinates of a latent vector (``sum(sizes)``)."""
        return sum(self.sizes)

    @property
    def manifold_dim(self) -> int:
        """Total manifold dimension (``sum`` of the factors' ``dim``)."""
        return sum(f.dim for f in self.factors)

    @property
    def has_sphere(self) -> bool:
        return any(f.is_sphere for f in self.factors)

    def sphere_runs(self) -> tuple[tuple[LatentFactor, int], ...]:
        """The factors in coordinate order as ``(factor, copies)``, consecutive equal spheres merged.

        A run of ``copies`` identical sphere factors is one group, so that the posterior head and the
        prior can treat ``S^d x ... x S^d`` as one batched distribution; Euclidean factors, and spheres
        that are not next to an equal one, come with ``copies = 1``. Only neighbours merge, so the
        groups keep the coordinate order: ``S2xR1xS2`` and ``S2xS3`` have three and two groups.

        Examples:
            >>> [(str(f), k) for f, k in parse_latent("S4xS4xR2").sphere_runs()]
            [('S4', 2), ('R2', 1)]
        """
        runs: list[tuple[LatentFactor, int]] = []
        for f in self.factors:
            if runs and f.is_sphere and runs[-1][0] == f:
                runs[-1] = (f, runs[-1][1] + 1)
            else:
                runs.append((f, 1))
        return tuple(runs)

    def __str__(self) -> str:
        return "x".join(str(f) for f in self.factors)


def parse_latent(latent: str) -> LatentSpec:
    """Parse a latent-space name such as ``"S10"``, ``"R10"``, ``"S4xS4"`` or ``"S9xR5"``.

    Args:
        latent: factors ``S<d>`` (sphere ``S^d``, ``d >= 1``; ``S1`` is the circle in ``R^2``) or
            ``R<d>`` (``R^d``, ``d >= 1``) joined by ``x``; no spaces, no leading zeros.

    Returns:
        The :class:`LatentSpec`; ``str(parse_latent(s)) == s``.

    Raises:
        ValueError: naming ``latent`` and its value, for anything else (``"S0"``, ``"R0"``, ``""``,
            ``"S2x"``, ``"T3"``, ``"S-1"``, ...).
    """
    if not isinstance(latent, str):
        raise ValueError(f"latent must be a string such as 'S10' or 'S9xR5', got latent={latent!r}")
    factors = []
    for part in latent.split("x"):
        match = _FACTOR.fullmatch(part)
        if match is None:
            raise ValueError(
                f"latent must be factors S<d> (sphere S^d) or R<d> (R^d) with an integer d >= 1, "
                f"joined by 'x' (e.g. 'S10', 'R10', 'S4xS4', 'S9xR5'); got latent={latent!r} "
                f"(bad factor {part!r})"
            )
        factors.append(LatentFactor(_LETTER[match.group(1)], int(match.group(2))))
    return LatentSpec(tuple(factors))
