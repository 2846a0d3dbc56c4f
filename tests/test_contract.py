"""Generic ``torch.distributions`` contract tests over a registry of examples.

In the spirit of torch's ``test/distributions/test_distributions.py``: :data:`EXAMPLES` lists
``(name, constructor, params)`` triples, where ``params(batch_shape, dtype, device)`` returns the keyword
arguments of ``constructor`` (fresh leaf tensors, the floating ones with ``requires_grad=True``), and
every test below runs over every example. Checked: shapes of ``sample``, ``rsample``, ``log_prob``,
``entropy``, ``mean``, ``variance`` and ``mode``; that ``sample`` is detached and ``rsample`` carries
finite gradients to every parameter; dtype and device propagation; ``expand``; ``support``;
``batch_shape`` / ``event_shape``; and the ``ValueError`` messages of the argument validation.

Statistical failure budget: none. These tests make no statistical comparison (samples are only
checked for shape, dtype, device, support and finiteness), so with the fixed seeds they are
deterministic and cannot fail by chance.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import torch
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from spherevae.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
)

# --------------------------------------------------------------------------------------------------
# shared helpers and the registry
# --------------------------------------------------------------------------------------------------

SEED = 20240613
SAMPLERS = ("rejection", "inverse_cdf", "mh")
SAMPLE_SHAPES = [(), (5,), (2, 3)]
BATCH_SHAPES = [(), (4,), (2, 3)]
DTYPES = [torch.float32, torch.float64]
# accelerators are tested where they exist (on a GPU machine the same suite covers "cuda")
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(SEED)


def _gen(batch_shape: tuple[int, ...]) -> torch.Generator:
    """A CPU generator seeded from the batch shape, so that parameters do not depend on test order."""
    return torch.Generator().manual_seed(SEED + 7919 * len(batch_shape) + sum(batch_shape))


def _unit(batch_shape, m, dtype, device, gen) -> torch.Tensor:
    x = torch.randn((*batch_shape, m), generator=gen, dtype=torch.float64)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x.to(dtype=dtype, device=device).requires_grad_()


def _kappa(batch_shape, dtype, device, gen, low=0.5, high=40.0) -> torch.Tensor:
    k = low + (high - low) * torch.rand(tuple(batch_shape), generator=gen, dtype=torch.float64)
    return k.to(dtype=dtype, device=device).requires_grad_()


def _directional_params(m: int):
    """``loc`` and ``concentration`` for a vMF or Power Spherical on ``S^(m-1)``."""

    def params(batch_shape, dtype, device):
        gen = _gen(batch_shape)
        return {
            "loc": _unit(batch_shape, m, dtype, device, gen),
            "concentration": _kappa(batch_shape, dtype, device, gen),
        }

    return params


def _vmf_ctor(sampler: str):
    def ctor(loc, concentration):
        return VonMisesFisher(loc, concentration, sampler=sampler)

    return ctor


def _uniform_params(m: int):
    def params(batch_shape, dtype, device):
        return {"dim": m, "batch_shape": batch_shape, "dtype": dtype, "device": device}

    return params


def _product_vmf_vmf_params(batch_shape, dtype, device):
    gen = _gen(batch_shape)
    return {
        "loc0": _unit(batch_shape, 5, dtype, device, gen),
        "concentration0": _kappa(batch_shape, dtype, device, gen),
        "loc1": _unit(batch_shape, 5, dtype, device, gen),
        "concentration1": _kappa(batch_shape, dtype, device, gen),
    }


def _product_vmf_vmf(loc0, concentration0, loc1, concentration1):
    return ProductDistribution(
        [VonMisesFisher(loc0, concentration0), VonMisesFisher(loc1, concentration1)]
    )


def _product_mixed_params(batch_shape, dtype, device):
    gen = _gen(batch_shape)
    scale = 0.5 + torch.rand((*batch_shape, 2), generator=gen, dtype=torch.float64)
    return {
        "vmf_loc": _unit(batch_shape, 3, dtype, device, gen),
        "vmf_concentration": _kappa(batch_shape, dtype, device, gen),
        "ps_loc": _unit(batch_shape, 4, dtype, device, gen),
        "ps_concentration": _kappa(batch_shape, dtype, device, gen),
        "normal_loc": torch.randn((*batch_shape, 2), generator=gen, dtype=torch.float64)
        .to(dtype=dtype, device=device)
        .requires_grad_(),
        "normal_scale": scale.to(dtype=dtype, device=device).requires_grad_(),
    }


def _product_mixed(vmf_loc, vmf_concentration, ps_loc, ps_concentration, normal_loc, normal_scale):
    return ProductDistribution(
        [
            VonMisesFisher(vmf_loc, vmf_concentration),
            PowerSpherical(ps_loc, ps_concentration),
            Independent(Normal(normal_loc, normal_scale), 1),
        ]
    )


def _product_uniform_params(batch_shape, dtype, device):
    gen = _gen(batch_shape)
    return {
        "loc": _unit(batch_shape, 4, dtype, device, gen),
        "concentration": _kappa(batch_shape, dtype, device, gen),
        "dtype": dtype,
        "device": device,
    }


def _product_uniform(loc, concentration, dtype, device):
    # the uniform factor has batch shape (): the product broadcasts (expands) it
    return ProductDistribution(
        [VonMisesFisher(loc, concentration), HypersphericalUniform(3, dtype=dtype, device=device)]
    )


def _stacked_vmf_params(batch_shape, dtype, device):
    # three factors on S^3, stacked on a trailing batch axis
    return _directional_params(4)((*batch_shape, 3), dtype, device)


def _stacked_vmf(loc, concentration):
    return StackedProduct(VonMisesFisher(loc, concentration))


def _stacked_ps(loc, concentration):
    return StackedProduct(PowerSpherical(loc, concentration))


def _stacked_uniform_params(batch_shape, dtype, device):
    return {"dim": 3, "batch_shape": (*batch_shape, 2), "dtype": dtype, "device": device}


def _stacked_uniform(dim, batch_shape, dtype, device):
    return StackedProduct(
        HypersphericalUniform(dim, batch_shape=batch_shape, dtype=dtype, device=device)
    )


class Example(NamedTuple):
    """One registry entry: ``constructor(**params(batch_shape, dtype, device))`` is the distribution."""

    name: str
    constructor: Callable[..., Distribution]
    params: Callable[[tuple[int, ...], torch.dtype, Any], dict[str, Any]]
    event_size: int
    has_mode: bool = True


EXAMPLES: list[Example] = [
    *(Example(f"vmf5-{s}", _vmf_ctor(s), _directional_params(5), 5) for s in SAMPLERS),
    Example(
        "vmf3-rejection", _vmf_ctor("rejection"), _directional_params(3), 3
    ),  # closed-form m = 3 path
    Example("vmf2-inverse_cdf", _vmf_ctor("inverse_cdf"), _directional_params(2), 2),
    Example("power_spherical4", PowerSpherical, _directional_params(4), 4),
    Example("uniform6", HypersphericalUniform, _uniform_params(6), 6),  # mode: nan
    Example("product-vmf5xvmf5", _product_vmf_vmf, _product_vmf_vmf_params, 10),
    Example("product-vmf3xps4xnormal2", _product_mixed, _product_mixed_params, 9),
    Example("product-vmf4xuniform3", _product_uniform, _product_uniform_params, 7),
    Example("stacked-3xvmf4", _stacked_vmf, _stacked_vmf_params, 12),
    Example("stacked-3xps4", _stacked_ps, _stacked_vmf_params, 12),
    Example("stacked-2xuniform3", _stacked_uniform, _stacked_uniform_params, 6),
]
EXAMPLE_IDS = [e.name for e in EXAMPLES]


def _build(example: Example, batch_shape=(), dtype=torch.float64, device="cpu"):
    params = example.params(tuple(batch_shape), dtype, device)
    return example.constructor(**params), params


def _leaves(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in params.items() if isinstance(v, torch.Tensor) and v.requires_grad}


def _dist_tensors(dist: Distribution) -> dict[str, torch.Tensor]:
    """Every tensor-valued summary of ``dist`` (``mode`` only where the family defines one)."""
    out = {"mean": dist.mean, "variance": dist.variance, "entropy": dist.entropy()}
    with contextlib.suppress(NotImplementedError):
        out["mode"] = dist.mode
    return out


# --------------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_shapes(example, sample_shape, batch_shape):
    dist, _ = _build(example, batch_shape)
    event = (example.event_size,)
    assert dist.batch_shape == torch.Size(batch_shape)
    assert dist.event_shape == torch.Size(event)
    for draw in (dist.sample, dist.rsample):
        x = draw(sample_shape)
        assert x.shape == torch.Size(sample_shape + batch_shape + event)
        assert torch.isfinite(x).all()
        lp = dist.log_prob(x)
        assert lp.shape == torch.Size(sample_shape + batch_shape)
        assert torch.isfinite(lp).all()
    assert dist.entropy().shape == torch.Size(batch_shape)
    assert dist.mean.shape == torch.Size(batch_shape + event)
    assert dist.variance.shape == torch.Size(batch_shape + event)
    if example.has_mode:
        assert dist.mode.shape == torch.Size(batch_shape + event)
    else:
        with pytest.raises(NotImplementedError):
            _ = dist.mode


@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_default_sample_shape(example):
    dist, _ = _build(example, (4,))
    assert dist.sample().shape == torch.Size((4, example.event_size))
    assert dist.rsample().shape == torch.Size((4, example.event_size))


# --------------------------------------------------------------------------------------------------
# gradients: sample detached, rsample differentiable
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", [(), (4,)], ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_sample_is_detached(example, batch_shape):
    dist, params = _build(example, batch_shape)
    x = dist.sample((3,))
    assert not x.requires_grad
    assert x.grad_fn is None
    if _leaves(params):  # the parameters do require grad: sample must still not carry it
        assert all(p.requires_grad for p in _leaves(params).values())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch_shape", [(), (4,)], ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_rsample_gradients_finite(example, batch_shape, dtype):
    dist, params = _build(example, batch_shape, dtype)
    leaves = _leaves(params)
    x = dist.rsample((6,))
    if not leaves:  # the uniform distribution has no parameters
        assert not x.requires_grad
        return
    assert x.requires_grad
    # a generic smooth functional of the sample, touching every coordinate
    weights = torch.linspace(-1.0, 1.0, x.shape[-1], dtype=dtype)
    (x * weights).sum().backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(leaf.grad).all(), f"non-finite gradient for {name}: {leaf.grad}"
    for name in ("concentration", "vmf_concentration", "concentration0", "concentration1"):
        if name in leaves:  # the concentration gradient is not identically zero
            assert leaves[name].grad.abs().sum() > 0, name


@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_moments_differentiable(example):
    """``mean`` and ``variance`` are differentiable functions of the parameters, as in torch.

    A silently detached moment gives a zero gradient to a loss that uses it.
    """
    dist, params = _build(example, (4,))
    leaves = _leaves(params)
    if not leaves:
        return
    for name in ("mean", "variance"):
        value = getattr(dist, name)
        assert value.requires_grad, f"{name} is detached from the parameters"
        grads = torch.autograd.grad(value.sum(), list(leaves.values()), allow_unused=True)
        for (leaf_name, _), g in zip(leaves.items(), grads, strict=True):
            if "concentration" in leaf_name:
                assert g is not None and g.abs().sum() > 0, f"{name} has no gradient in {leaf_name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_log_prob_and_entropy_gradients_finite(example):
    dist, params = _build(example, (4,))
    leaves = _leaves(params)
    if not leaves:
        return
    x = dist.sample((3,))
    (dist.log_prob(x).sum() + dist.entropy().sum()).backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(leaf.grad).all(), f"non-finite gradient for {name}"


# --------------------------------------------------------------------------------------------------
# dtype and device propagation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_dtype_propagation(example, dtype):
    dist, _ = _build(example, (4,), dtype)
    for x in (dist.sample((3,)), dist.rsample((3,))):
        assert x.dtype == dtype
        assert dist.log_prob(x).dtype == dtype
    for name, t in _dist_tensors(dist).items():
        assert t.dtype == dtype, name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_device_propagation(example, device):
    dist, _ = _build(example, (4,), torch.float32, device)
    dev = torch.device(device)
    for x in (dist.sample((3,)), dist.rsample((3,))):
        assert x.device.type == dev.type
        assert dist.log_prob(x).device.type == dev.type
    for name, t in _dist_tensors(dist).items():
        assert t.device.type == dev.type, name


# --------------------------------------------------------------------------------------------------
# expand, support
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_expand(example, batch_shape):
    dist, _ = _build(example, batch_shape)
    new_shape = torch.Size((7, *batch_shape))
    expanded = dist.expand(new_shape)
    assert type(expanded) is type(dist)
    assert expanded.batch_shape == new_shape
    assert expanded.event_shape == dist.event_shape
    x = expanded.sample((2,))
    assert x.shape == torch.Size((2, *new_shape, example.event_size))
    lp = expanded.log_prob(x)
    assert lp.shape == torch.Size((2, *new_shape))
    torch.testing.assert_close(lp, dist.log_prob(x))
    assert expanded.rsample().shape == torch.Size((*new_shape, example.event_size))
    torch.testing.assert_close(expanded.entropy(), dist.entropy().expand(new_shape))
    torch.testing.assert_close(expanded.mean, dist.mean.expand(expanded.mean.shape))


@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
@pytest.mark.parametrize("batch_shape", [(), (4,)], ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_support(example, batch_shape, sample_shape):
    dist, _ = _build(example, batch_shape)
    x = dist.sample(sample_shape)
    ok = dist.support.check(x)
    assert ok.shape == torch.Size(sample_shape + batch_shape)
    assert ok.all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_samples_are_unit_vectors(example, dtype):
    """Each spherical block of a sample has norm 1 to a few ulps (tighter than the support check)."""
    dist, _ = _build(example, (4,), dtype)
    x = dist.sample((50,))
    blocks = dist.sizes if isinstance(dist, ProductDistribution) else [example.event_size]
    comps = dist.components if isinstance(dist, ProductDistribution) else [dist]
    if isinstance(dist, StackedProduct):  # k blocks of one family
        blocks, comps = [dist.factor_size] * dist.k, [dist.base] * dist.k
    eps = torch.finfo(dtype).eps
    for c, part in zip(comps, torch.split(x, blocks, dim=-1), strict=True):
        if isinstance(c, Independent):
            continue
        err = (torch.linalg.vector_norm(part.double(), dim=-1) - 1).abs().max().item()
        assert err <= 4 * eps, (type(c).__name__, err)


@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_log_prob_validates_samples(example):
    """With validation on, a value off the support is rejected (for every spherical family)."""
    dist, _ = _build(example, (4,))
    x = dist.sample()
    bad = x.detach().clone()
    bad[..., 0] += 0.5  # moves the first (spherical) block off the sphere
    with pytest.raises(ValueError):
        dist.log_prob(bad)


# --------------------------------------------------------------------------------------------------
# batch_shape / event_shape values
# --------------------------------------------------------------------------------------------------


def test_shape_values():
    loc = torch.nn.functional.normalize(torch.randn(2, 3, 5, dtype=torch.float64), dim=-1)
    vmf = VonMisesFisher(loc, torch.ones(3, dtype=torch.float64))  # concentration broadcasts
    assert vmf.batch_shape == torch.Size((2, 3))
    assert vmf.event_shape == torch.Size((5,))
    assert vmf.concentration.shape == torch.Size((2, 3))
    ps = PowerSpherical(loc[0], 2.0)
    assert ps.batch_shape == torch.Size((3,))
    assert ps.event_shape == torch.Size((5,))
    u = HypersphericalUniform(7, batch_shape=(4, 1))
    assert u.batch_shape == torch.Size((4, 1))
    assert u.event_shape == torch.Size((7,))
    prod = ProductDistribution([vmf, ps, HypersphericalUniform(2, dtype=torch.float64)])
    assert prod.batch_shape == torch.Size((2, 3))
    assert prod.event_shape == torch.Size((12,))
    assert prod.sizes == [5, 5, 2]
    # scalar parameters
    v = VonMisesFisher(torch.tensor([0.0, 1.0]), 3.0)
    assert v.batch_shape == torch.Size(())
    assert v.event_shape == torch.Size((2,))


# --------------------------------------------------------------------------------------------------
# validation errors
# --------------------------------------------------------------------------------------------------

E3 = torch.tensor([1.0, 0.0, 0.0])


def _raises(match_all: list[str], fn, *args, **kwargs) -> None:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    for part in match_all:
        assert part in msg, f"{part!r} not in error message {msg!r}"


@pytest.mark.parametrize("family", [VonMisesFisher, PowerSpherical], ids=lambda f: f.__name__)
class TestValidation:
    def test_loc_not_unit_norm(self, family):
        _raises(["loc", "2.0"], family, torch.tensor([2.0, 0.0, 0.0]), 1.0)
        _raises(["loc", "0.5"], family, torch.tensor([[1.0, 0.0], [0.5, 0.0]]), 1.0)

    def test_loc_bad_shape(self, family):
        _raises(["loc", "(3, 1)"], family, torch.ones(3, 1), 1.0)
        _raises(["loc", "(1,)"], family, torch.ones(1), 1.0)  # m = 1 < 2
        _raises(["loc", "()"], family, torch.tensor(1.0), 1.0)

    @pytest.mark.parametrize(
        ("value", "text"),
        [(-1.0, "-1.0"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
    )
    def test_bad_concentration(self, family, value, text):
        _raises(["concentration", text], family, E3, value)
        _raises(["concentration", text], family, E3, torch.tensor([1.0, value, 2.0]))

    def test_validate_args_false_skips_norm_check(self, family):
        family(torch.tensor([2.0, 0.0, 0.0]), 1.0, validate_args=False)  # no error


def test_unknown_sampler():
    _raises(["sampler", "'wood'"], VonMisesFisher, E3, 1.0, sampler="wood")


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_mh_steps(steps):
    _raises(["mh_steps", repr(steps)], VonMisesFisher, E3, 1.0, sampler="mh", mh_steps=steps)


@pytest.mark.parametrize("dim", [1, 0, -2])
def test_uniform_bad_dim(dim):
    _raises(["dim", f"dim={dim}"], HypersphericalUniform, dim)


def test_kl_dimension_mismatch():
    vmf = VonMisesFisher(E3, 2.0)  # on S^2, ambient dimension 3
    _raises(["dimension", "3", "5"], kl_divergence, vmf, HypersphericalUniform(5))
    loc5 = torch.nn.functional.normalize(torch.ones(5), dim=-1)
    _raises(["dimension", "3", "5"], kl_divergence, vmf, VonMisesFisher(loc5, 1.0))
    _raises(
        ["dimension", "3", "5"], kl_divergence, PowerSpherical(E3, 1.0), VonMisesFisher(loc5, 1.0)
    )
    _raises(
        ["dimension", "3", "5"], kl_divergence, PowerSpherical(E3, 1.0), HypersphericalUniform(5)
    )


def test_product_validation():
    _raises(["components"], ProductDistribution, [])
    _raises(["components[1]"], ProductDistribution, [VonMisesFisher(E3, 1.0), "not a distribution"])
    loc = torch.nn.functional.normalize(torch.randn(3, 3), dim=-1)
    loc2 = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    _raises(
        ["(3,)", "(4,)"], ProductDistribution, [VonMisesFisher(loc, 1.0), VonMisesFisher(loc2, 1.0)]
    )
