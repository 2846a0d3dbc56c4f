"""The golden cases of the distributions: one grid and one function that computes every recorded entry.

``tests/golden/make_golden.py`` records what :func:`compute_group` returns into ``distributions.npz``;
``tests/test_golden_distributions.py`` recomputes it with the same function and compares. Nothing
else defines a case, so the two cannot drift apart.

What is recorded, per group (the key is ``group/quantity``):

- ``inputs/m=M/DTYPE``: the mean directions and the fixed points every group at that ``(m, dtype)``
  uses (a second set of directions for the second factor of a KL or a product);
- ``vmf/SAMPLER/m=M/DTYPE``, one batch row per ``kappa`` of :data:`GRID_KAPPA`: a seeded ``rsample``
  (with a gradient to keep) and ``sample`` (without), the acceptance rate where the sampler has one,
  ``log_prob`` of the fixed points, entropy, mean, variance, ``KL(q || uniform)`` after the draw (so
  that it reads the Bessel terms the sampler cached), the gradients in ``kappa`` (and ``loc``) of a
  fixed weighted sum of the log-densities, of the entropy and of the KL, and the reparameterisation
  gradients of the draw: in ``loc`` of a fixed weighted sum of it, in ``kappa`` of each of its
  coordinates (:func:`_draw_d_kappa`);
- ``vmf/SAMPLER/large/m=11/float64``: a draw of 600 samples a row (4200 in all), which takes the
  paths of large draws (the inverse CDF's table of knots, the gradient's tabulated CDF, the rejection
  sampler's per-row choice of proposal): its first samples and their derivatives in ``kappa``, its
  row means, the gradient in ``loc`` of a weighted sum of it;
- ``ps/m=M/DTYPE``: the same for the Power Spherical distribution;
- ``uniform/m=M/DTYPE``: a seeded sample, ``log_prob`` of the fixed points and the entropy;
- ``kl/vmf-vmf/...`` and ``kl/ps-vmf/...``: the registered KL divergences between families, with
  their gradients in both distributions' parameters;
- ``product/...`` and ``stacked/...``: ``S^4 x S^4`` as a :class:`ProductDistribution` of two vMF
  factors (stacked sampling), of a vMF and a Power Spherical factor, and as a
  :class:`StackedProduct` of vMF or Power Spherical factors: draw, ``log_prob``, entropy, mean and
  ``KL`` to the product of uniforms, with gradients.

Every array has the batch row first (a sample ``(n, B, m)`` is stored ``(B, n, m)``), which the test's
tolerance uses (see there). An event axis longer than :data:`COMPACT_M` is stored compactly: its
first :data:`HEAD` coordinates and its projections on :data:`PROJECTIONS` fixed directions, which any
change of a coordinate moves, at a fraction of the size.

Inputs come from numpy's PCG64 generator and are normalised with ``math.fsum`` and ``math.sqrt``
(correctly rounded, so the same on every machine); draws from torch's generator, seeded with
:data:`SEED` before each draw. The compiled sampling kernels are off: they draw different numbers for
the same seed by design, and their arithmetic depends on the machine's compiler.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.distributions import kl_divergence

from spherevae.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
)

__all__ = [
    "GOLDEN_FILE",
    "compute_all",
    "compute_group",
    "dimension",
    "group_of",
    "groups",
    "load",
    "meta",
    "save",
    "term_scales",
]

GOLDEN_FILE = Path(__file__).resolve().parent / "distributions.npz"

GRID_M = (2, 3, 5, 11, 64, 1024)
GRID_KAPPA = (0.0, 1e-3, 0.5, 3.0, 30.0, 1e3, 1e5)
DTYPES = {"float64": torch.float64, "float32": torch.float32}
SAMPLERS = ("rejection", "inverse_cdf", "mh")
SEED = 20240613
N_SAMPLES = 3  # samples a row of the grid's draws
N_POINTS = 4  # fixed points a row for log_prob: loc, one near -loc, two random unit vectors
POINT_WEIGHTS = (1.0, 0.5, -0.25, 0.75)  # of the log-densities of the points, for their gradients
LARGE_M = 11
LARGE_N = 600  # > 64 a row and > 4096 in all (7 rows): the paths of large draws
LARGE_HEAD = 4  # samples of the large draw stored in full, with their derivatives in kappa
LARGE_DTYPE = "float64"
COMPACT_M = 16
HEAD = 8
PROJECTIONS = 4
PRODUCT_M = 5  # factors of the products: S^4 x S^4
# one row per concentration; the second distribution of a KL or a product takes them in reverse,
# so that 0 meets 1e5 and equal concentrations meet only in the middle row
B = len(GRID_KAPPA)


# -- inputs --------------------------------------------------------------------------------------
def _unit_rows(raw: np.ndarray) -> np.ndarray:
    """Rows of ``raw`` (float64) divided by their norms, computed with correctly rounded operations."""
    flat = raw.reshape(-1, raw.shape[-1])
    norms = np.array([math.sqrt(math.fsum(float(v) * float(v) for v in row)) for row in flat])
    return (flat / norms[:, None]).reshape(raw.shape)


@cache
def _inputs64(m: int) -> dict[str, np.ndarray]:
    """Float64 inputs at dimension ``m``: directions ``loc`` and ``loc2`` ``(B, m)``, fixed points
    ``points`` ``(N_POINTS, B, m)``, the weights of the draws' weighted sums (``large_weights`` at
    ``LARGE_M`` only), and the projections of :func:`_compact`."""
    rng = np.random.default_rng([SEED, m])
    loc = _unit_rows(rng.standard_normal((B, m)))
    loc2 = _unit_rows(rng.standard_normal((B, m)))
    random_points = _unit_rows(rng.standard_normal((N_POINTS - 1, B, m)))
    # near the antipode, mu . x about -0.99: not at it, where the Power Spherical density is 0 and
    # whether mu . x rounds to exactly -1 (log_prob -inf) or not (finite) depends on the machine
    near_antipode = _unit_rows(-loc + 0.15 * random_points[0])
    out = {
        "loc": loc,
        "loc2": loc2,
        "points": np.concatenate([loc[None], near_antipode[None], random_points[1:]]),
        "weights": rng.standard_normal((N_SAMPLES, B, m)),
        "projections": _unit_rows(rng.standard_normal((PROJECTIONS, m))).T.copy(),
    }
    if m == LARGE_M:
        out["large_weights"] = rng.standard_normal((LARGE_N, B, m))
    return out


class _Inputs:
    """The inputs of one ``(m, dtype)``, as tensors of that dtype."""

    def __init__(self, m: int, dtype: torch.dtype) -> None:
        raw = _inputs64(m)
        self.m = m
        self.dtype = dtype
        self.projections = raw["projections"]
        self.t = {k: torch.tensor(v, dtype=dtype) for k, v in raw.items() if k != "projections"}
        self.kappa = torch.tensor(GRID_KAPPA, dtype=dtype)
        self.kappa2 = self.kappa.flip(0)
        self.coordinates = _coordinates(m, self.projections, dtype)

    def leaf(self, name: str) -> Tensor:
        """A fresh copy of an input that requires grad."""
        source = {"kappa": self.kappa, "kappa2": self.kappa2}.get(name)
        value = self.t[name] if source is None else source
        return value.detach().clone().requires_grad_(True)


# -- recording -----------------------------------------------------------------------------------
class _Recorder:
    """Collects the entries of one group as numpy arrays, batch row first, long event axes compacted."""

    def __init__(self, group: str, inputs: _Inputs | None = None) -> None:
        self.group = group
        self.inputs = inputs
        self.out: dict[str, np.ndarray] = {}

    def __call__(self, name: str, value: Tensor, *, event: bool = False) -> None:
        key = f"{self.group}/{name}"
        array = value.detach().cpu().numpy().copy()
        if event and self.inputs is not None and array.shape[-1] > COMPACT_M:
            array = _compact(array, self.inputs.projections)
        if key in self.out:
            raise AssertionError(f"{key} recorded twice")
        self.out[key] = array


def _compact(array: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """The first ``HEAD`` coordinates of the last axis and the projections on fixed directions."""
    projected = (array.astype(np.float64) @ projections).astype(array.dtype)
    return np.concatenate([array[..., :HEAD], projected], axis=-1)


def _rows_first(x: Tensor) -> Tensor:
    """``(n, B, ...)`` to ``(B, n, ...)``."""
    return x.transpose(0, 1)


def _grads(value: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    """Gradients of ``value`` in ``inputs``; zeros for an input that ``value`` does not depend on."""
    return torch.autograd.grad(value, inputs, allow_unused=True, materialize_grads=True)


def _coordinates(m: int, projections: np.ndarray, dtype: torch.dtype) -> Tensor:
    """``(C, m)``: the coordinates that are recorded of an event of size ``m``, as linear functionals
    (the unit vectors, or for ``m > COMPACT_M`` the first ``HEAD`` of them and the projections of
    :func:`_compact`)."""
    if m <= COMPACT_M:
        return torch.eye(m, dtype=dtype)
    head = np.eye(m)[:HEAD]
    return torch.tensor(np.concatenate([head, projections.T]), dtype=dtype)


def _draw_d_kappa(
    x: Tensor, leaves: tuple[Tensor, ...], coordinates: Tensor, samples: int
) -> list[Tensor]:
    """The derivative of every recorded coordinate of the first ``samples`` samples of the draw ``x``
    ``(n, B, m)`` in each of ``leaves`` (concentrations ``(B,)``), as ``(B, samples, C)`` each.

    Element by element rather than one weighted sum: a sum of terms of both signs can be small by
    cancellation, and its rounding error is then of the size of the terms, not of the sum; an element
    ``dx_j/dkappa = (tangent)_j dtheta/dkappa`` has none beyond that of its own coordinate, which the
    row's largest element bounds. One backward pass per sample and coordinate.
    """
    out = [torch.empty(x.shape[1], samples, coordinates.shape[0], dtype=x.dtype) for _ in leaves]
    seed = torch.zeros_like(x)
    for s in range(samples):
        for c in range(coordinates.shape[0]):
            seed.zero_()
            seed[s] = coordinates[c]
            grads = torch.autograd.grad(
                x, leaves, seed, retain_graph=True, allow_unused=True, materialize_grads=True
            )
            for o, g in zip(out, grads, strict=True):
                o[:, s, c] = g
    return out


@contextmanager
def _eager() -> Iterator[None]:
    """torch's global generator restored after the block (the recording seeds it; other tests are not
    affected). The distributions here are built with ``compiled=False`` (the default): eager draws."""
    with torch.random.fork_rng(devices=[]):
        yield


def _draw(sampler: Callable[[], Tensor]) -> Tensor:
    torch.manual_seed(SEED)
    return sampler()


# -- the families --------------------------------------------------------------------------------
def _record_inputs(rec: _Recorder, inp: _Inputs) -> None:
    for name in ("loc", "loc2"):
        rec(name, inp.t[name], event=True)
    rec("points", _rows_first(inp.t["points"]), event=True)
    rec("kappa", inp.kappa)


def _sphere_family(
    rec: _Recorder,
    inp: _Inputs,
    make: Callable[[Tensor, Tensor], VonMisesFisher | PowerSpherical],
) -> None:
    """What the vMF and the Power Spherical share: draw, log_prob, entropy, moments, KL to uniform."""
    m, dtype = inp.m, inp.dtype
    uniform = HypersphericalUniform(m, dtype=dtype)
    point_weights = torch.tensor(POINT_WEIGHTS, dtype=dtype)[:, None]

    # the reparameterised draw, then the KL from the same distribution (the sampler's cached terms)
    loc, kappa = inp.leaf("loc"), inp.leaf("kappa")
    q = make(loc, kappa)
    x = _draw(lambda: q.rsample((N_SAMPLES,)))
    rec("rsample", _rows_first(x), event=True)
    rate = getattr(q, "acceptance_rate", None)
    if rate is not None:
        rec("acceptance_rate", rate)
    (d_kappa,) = _draw_d_kappa(x, (kappa,), inp.coordinates, N_SAMPLES)
    rec("d_kappa.rsample", d_kappa)
    (d_loc,) = _grads((x * inp.t["weights"]).sum(), loc)
    rec("d_loc.rsample", d_loc, event=True)
    kl = kl_divergence(q, uniform)
    rec("kl_uniform", kl)
    (d_kappa,) = _grads(kl.sum(), kappa)
    rec("d_kappa.kl_uniform", d_kappa)

    # the draw without a gradient to keep (another path through the samplers), same seed
    with torch.no_grad():
        q = make(inp.t["loc"], inp.kappa)
        rec("sample", _rows_first(_draw(lambda: q.sample((N_SAMPLES,)))), event=True)

    loc, kappa = inp.leaf("loc"), inp.leaf("kappa")
    q = make(loc, kappa)
    lp = q.log_prob(inp.t["points"])
    rec("log_prob", _rows_first(lp))
    d_kappa, d_loc = _grads((lp * point_weights).sum(), kappa, loc)
    rec("d_kappa.log_prob", d_kappa)
    rec("d_loc.log_prob", d_loc, event=True)

    kappa = inp.leaf("kappa")
    q = make(inp.t["loc"], kappa)
    entropy = q.entropy()
    rec("entropy", entropy)
    (d_kappa,) = _grads(entropy.sum(), kappa)
    rec("d_kappa.entropy", d_kappa)

    with torch.no_grad():
        q = make(inp.t["loc"], inp.kappa)
        rec("mean", q.mean, event=True)
        rec("variance", q.variance, event=True)


def _vmf(sampler: str) -> Callable[[Tensor, Tensor], VonMisesFisher]:
    def make(loc: Tensor, kappa: Tensor) -> VonMisesFisher:
        return VonMisesFisher(loc, kappa, sampler=sampler)  # type: ignore[arg-type]

    return make


def _large_draw(rec: _Recorder, inp: _Inputs, sampler: str) -> None:
    loc, kappa = inp.leaf("loc"), inp.leaf("kappa")
    q = VonMisesFisher(loc, kappa, sampler=sampler)  # type: ignore[arg-type]
    x = _draw(lambda: q.rsample((LARGE_N,)))
    rec("rsample_head", _rows_first(x[:LARGE_HEAD]), event=True)
    rec("rsample_mean", x.mean(0), event=True)
    if q.acceptance_rate is not None:
        rec("acceptance_rate", q.acceptance_rate)
    (d_kappa,) = _draw_d_kappa(x, (kappa,), inp.coordinates, LARGE_HEAD)
    rec("d_kappa.rsample_head", d_kappa)
    (d_loc,) = _grads((x * inp.t["large_weights"]).sum(), loc)
    rec("d_loc.rsample", d_loc, event=True)


def _uniform(rec: _Recorder, inp: _Inputs) -> None:
    u = HypersphericalUniform(inp.m, batch_shape=(B,), dtype=inp.dtype)
    rec("sample", _rows_first(_draw(lambda: u.sample((N_SAMPLES,)))), event=True)
    rec("log_prob", _rows_first(u.log_prob(inp.t["points"])))
    rec("entropy", u.entropy())


def _kl_between(rec: _Recorder, inp: _Inputs, family: str) -> None:
    """``KL(p || q)``, ``p`` of ``family`` with the grid's concentrations, ``q`` a vMF with them reversed."""
    loc, kappa = inp.leaf("loc"), inp.leaf("kappa")
    loc2, kappa2 = inp.leaf("loc2"), inp.leaf("kappa2")
    p = VonMisesFisher(loc, kappa) if family == "vmf" else PowerSpherical(loc, kappa)
    kl = kl_divergence(p, VonMisesFisher(loc2, kappa2))
    rec("value", kl)
    grads = _grads(kl.sum(), kappa, loc, kappa2, loc2)
    for name, grad in zip(("d_kappa_p", "d_loc_p", "d_kappa_q", "d_loc_q"), grads, strict=True):
        rec(name, grad, event=name.startswith("d_loc"))


def _product(rec: _Recorder, inp: _Inputs, kind: str, sampler: str | None) -> None:
    """``S^4 x S^4``: ``kind`` is ``vmf-vmf`` or ``vmf-ps`` (ProductDistribution), ``stacked-vmf`` or
    ``stacked-ps`` (StackedProduct); the second factor takes the concentrations reversed."""
    m, dtype = inp.m, inp.dtype
    loc_a, kappa_a = inp.leaf("loc"), inp.leaf("kappa")
    loc_b, kappa_b = inp.leaf("loc2"), inp.leaf("kappa2")
    points = torch.cat([inp.t["points"], inp.t["points"].flip(0)], dim=-1)  # (N_POINTS, B, 2m)
    weights = torch.cat([inp.t["weights"], inp.t["weights"].flip(-1)], dim=-1)
    p: ProductDistribution | StackedProduct
    uniform: ProductDistribution | StackedProduct
    if kind.startswith("stacked"):
        loc = torch.stack([loc_a, loc_b], dim=-2)  # (B, 2, m)
        kappa = torch.stack([kappa_a, kappa_b], dim=-1)  # (B, 2)
        if kind == "stacked-vmf":
            base: VonMisesFisher | PowerSpherical = VonMisesFisher(loc, kappa, sampler=sampler)  # type: ignore[arg-type]
        else:
            base = PowerSpherical(loc, kappa)
        p = StackedProduct(base)
        uniform = StackedProduct(HypersphericalUniform(m, batch_shape=(B, 2), dtype=dtype))
    else:
        first = VonMisesFisher(loc_a, kappa_a, sampler=sampler)  # type: ignore[arg-type]
        second: VonMisesFisher | PowerSpherical = (
            VonMisesFisher(loc_b, kappa_b, sampler=sampler)  # type: ignore[arg-type]
            if kind == "vmf-vmf"
            else PowerSpherical(loc_b, kappa_b)
        )
        p = ProductDistribution([first, second])
        factor = HypersphericalUniform(m, dtype=dtype)
        uniform = ProductDistribution([factor, factor])
    leaves = (kappa_a, loc_a, kappa_b, loc_b)
    names = ("d_kappa_a", "d_loc_a", "d_kappa_b", "d_loc_b")

    def record_grads(what: str, value: Tensor) -> None:
        for name, grad in zip(names, _grads(value, *leaves), strict=True):
            rec(f"{name}.{what}", grad, event=name.startswith("d_loc"))

    x = _draw(lambda: p.rsample((N_SAMPLES,)))
    rec("rsample", _rows_first(x))
    d_kappa = _draw_d_kappa(x, (kappa_a, kappa_b), torch.eye(2 * m, dtype=dtype), N_SAMPLES)
    rec("d_kappa_a.rsample", d_kappa[0])
    rec("d_kappa_b.rsample", d_kappa[1])
    d_loc = _grads((x * weights).sum(), loc_a, loc_b)
    rec("d_loc_a.rsample", d_loc[0])
    rec("d_loc_b.rsample", d_loc[1])
    kl = kl_divergence(p, uniform)
    rec("kl_uniform", kl)
    record_grads("kl_uniform", kl.sum())
    lp = p.log_prob(points)
    rec("log_prob", _rows_first(lp))
    record_grads("log_prob", (lp * torch.tensor(POINT_WEIGHTS, dtype=dtype)[:, None]).sum())
    entropy = p.entropy()
    rec("entropy", entropy)
    record_grads("entropy", entropy.sum())
    rec("mean", p.mean)


# -- groups --------------------------------------------------------------------------------------
def groups() -> list[str]:
    """Every group, in the order of recording."""
    out: list[str] = []
    for dtype in DTYPES:
        for m in GRID_M:
            out.append(f"inputs/m={m}/{dtype}")
            out.extend(f"vmf/{sampler}/m={m}/{dtype}" for sampler in SAMPLERS)
            out.append(f"ps/m={m}/{dtype}")
            out.append(f"uniform/m={m}/{dtype}")
            out.extend(f"kl/{family}-vmf/m={m}/{dtype}" for family in ("vmf", "ps"))
        if dtype == LARGE_DTYPE:
            out.extend(f"vmf/{sampler}/large/m={LARGE_M}/{dtype}" for sampler in SAMPLERS)
        for sampler in SAMPLERS:
            out.extend(
                f"{kind}/{sampler}/m={PRODUCT_M}/{dtype}"
                for kind in ("product/vmf-vmf", "product/vmf-ps", "stacked/vmf")
            )
        out.append(f"stacked/ps/m={PRODUCT_M}/{dtype}")
    return out


def group_of(key: str) -> str:
    """The group of an entry's key (its quantity is the last path component)."""
    return key.rsplit("/", 1)[0]


def compute_group(group: str) -> dict[str, np.ndarray]:
    """The entries of one group (keys ``group/quantity``), computed with the eager samplers."""
    parts = group.split("/")
    inp = _Inputs(dimension(group), DTYPES[parts[-1]])
    rec = _Recorder(group, inp)
    with _eager():
        if parts[0] == "inputs":
            _record_inputs(rec, inp)
        elif parts[0] == "vmf" and parts[2] == "large":
            _large_draw(rec, inp, parts[1])
        elif parts[0] == "vmf":
            _sphere_family(rec, inp, _vmf(parts[1]))
        elif parts[0] == "ps":
            _sphere_family(rec, inp, PowerSpherical)
        elif parts[0] == "uniform":
            _uniform(rec, inp)
        elif parts[0] == "kl":
            _kl_between(rec, inp, parts[1].removesuffix("-vmf"))
        elif parts[0] == "product":
            _product(rec, inp, parts[1], parts[2])
        elif parts[0] == "stacked" and parts[1] == "ps":
            _product(rec, inp, "stacked-ps", None)
        elif parts[0] == "stacked":
            _product(rec, inp, "stacked-vmf", parts[2])
        else:
            raise ValueError(f"unknown group {group!r}")
    return rec.out


def dimension(group: str) -> int:
    """The dimension ``m`` of a group (of each factor, for a product)."""
    return int(group.split("/")[-2].removeprefix("m="))


# -- the size of the terms -----------------------------------------------------------------------
# A closed form that is the difference of larger terms carries their rounding errors, which no
# implementation avoids: the tolerance of such an entry is tied to the size of its terms, given here
# as a function of the case alone (m and the concentrations). A value that is computed without
# cancellation gets none (the vMF's KL to the uniform distribution, which is built to keep its digits
# at small kappa, and its derivatives): there the test holds the relative precision.
def _log_area(m: int) -> float:
    return abs(math.log(2) + (m / 2) * math.log(math.pi) - math.lgamma(m / 2))


def _ps_terms(m: int, kappa: np.ndarray) -> np.ndarray:
    """The size of ``lgamma(alpha + beta)`` and ``kappa digamma(alpha)`` in the Power Spherical's
    normaliser and entropy (``alpha + beta = m - 1 + kappa``)."""
    total = m - 1 + kappa
    return total * (1 + np.log(total)) + kappa


def _ps_slope_terms(m: int, kappa: np.ndarray) -> np.ndarray:
    """A bound on ``kappa trigamma(alpha)``, the terms of the derivative of the Power Spherical's KL."""
    alpha = (m - 1) / 2 + kappa
    return kappa * (1 / alpha + 1 / alpha**2)


def _factor_scales(family: str, m: int, kappa: np.ndarray) -> dict[str, np.ndarray]:
    zero = np.zeros_like(kappa)
    if family == "ps":
        slope = _ps_slope_terms(m, kappa)
        return {
            "entropy": _ps_terms(m, kappa) + 2 * _log_area(m),
            "kl_uniform": _ps_terms(m, kappa) + _log_area(m),
            "d_kappa.entropy": slope,
            "d_kappa.kl_uniform": slope,
        }
    # the vMF: H = log area - KL
    return {"entropy": zero + 2 * _log_area(m)}


def term_scales(group: str) -> dict[str, np.ndarray]:
    """The size of the terms of the entries of ``group`` that are differences of larger terms, per
    batch row ``(B,)``, keyed like the entries (the others are not listed)."""
    parts = group.split("/")
    m = dimension(group)
    kappa = np.array(GRID_KAPPA)
    kappa2 = kappa[::-1]
    out: dict[str, np.ndarray] = {}
    if parts[0] in ("vmf", "ps") and "large" not in parts:
        out.update(_factor_scales(parts[0], m, kappa))
        # sum_p c_p d/dkappa log p(x_p): cos - A for the vMF; log(1 + cos) + d log C/dkappa for the
        # Power Spherical, whose log(1 + cos) is large near the antipode
        cos = (_inputs64(m)["points"] * _inputs64(m)["loc"]).sum(-1)  # (N_POINTS, B)
        weights = np.abs(np.array(POINT_WEIGHTS))[:, None]
        out["d_kappa.log_prob"] = (weights * (2 + np.abs(np.log1p(cos)))).sum(0)
    elif parts[0] == "kl":
        # k1 A1 - k2 A1 (mu1 . mu2) + g(k2) - g(k1), or -H(PS) - k2 (mu2 . E x) + log area + g(k2),
        # with g(k) of the size of k
        first = kappa + 1 if parts[1] == "vmf-vmf" else _ps_terms(m, kappa) + 2 * _log_area(m)
        out["value"] = first + kappa2
    elif parts[0] in ("product", "stacked"):
        families = {
            "vmf-vmf": ("vmf", "vmf"),
            "vmf-ps": ("vmf", "ps"),
            "vmf": ("vmf", "vmf"),
            "ps": ("ps", "ps"),
        }[parts[1]]
        first, second = (
            _factor_scales(f, m, k) for f, k in zip(families, (kappa, kappa2), strict=True)
        )
        for name in ("entropy", "kl_uniform"):
            total = first.get(name, 0 * kappa) + second.get(name, 0 * kappa)
            out[name] = total
            out[f"d_kappa_a.{name}"] = first.get(f"d_kappa.{name}", 0 * kappa)
            out[f"d_kappa_b.{name}"] = second.get(f"d_kappa.{name}", 0 * kappa)
    return {f"{group}/{name}": value for name, value in out.items()}


def meta() -> dict[str, str]:
    """What the file records about the environment that made it (not compared)."""
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def compute_all() -> dict[str, np.ndarray]:
    """Every entry of every group."""
    out: dict[str, np.ndarray] = {}
    for group in groups():
        out.update(compute_group(group))
    return out


# -- the file ------------------------------------------------------------------------------------
# An npz member costs about 300 bytes of zip and npy headers, more than most entries hold; the
# entries are therefore packed into one flat array per dtype, with an index of keys, dtypes, shapes
# and offsets (a JSON string), and unpacked by load().
def save(entries: dict[str, np.ndarray], path: Path = GOLDEN_FILE) -> None:
    """Write ``entries`` (float32 or float64 arrays) and :func:`meta` to ``path``."""
    flat: dict[str, list[np.ndarray]] = {"float64": [], "float32": []}
    offsets = {"float64": 0, "float32": 0}
    index = []
    for key, array in entries.items():
        dtype = array.dtype.name
        if dtype not in flat:
            raise ValueError(f"{key}: dtype {dtype} is neither float64 nor float32")
        index.append([key, dtype, list(array.shape), offsets[dtype]])
        flat[dtype].append(array.ravel())
        offsets[dtype] += array.size
    np.savez_compressed(
        path,
        index=np.array(json.dumps(index)),
        meta=np.array(json.dumps(meta())),
        **{dtype: np.concatenate(parts) for dtype, parts in flat.items()},
    )


def load(path: Path = GOLDEN_FILE) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The entries and the meta data written by :func:`save`."""
    with np.load(path) as data:
        flat = {dtype: data[dtype] for dtype in ("float64", "float32")}
        index = json.loads(str(data["index"]))
        recorded: dict[str, str] = json.loads(str(data["meta"]))
    entries = {}
    for key, dtype, shape, offset in index:
        size = math.prod(shape)
        entries[key] = flat[dtype][offset : offset + size].reshape(shape)
    return entries, recorded
