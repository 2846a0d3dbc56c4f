"""spherevae's distributions in Pyro programs: sampling sites, shapes, plates, and inference.

The inference problem has a known posterior: N unit vectors x_i drawn from vMF(mu, kappa0) with kappa0
known, and a uniform prior on mu. The posterior of mu is then exactly vMF(s / |s|, kappa0 |s|) with
s = sum_i x_i (the uniform prior is flat, and the likelihood is exp(kappa0 mu . s) up to a constant),
so a von Mises-Fisher guide can match it; SVI must find it under each ELBO.
"""

from __future__ import annotations

import math

import pytest
import torch

pyro = pytest.importorskip(
    "pyro", reason="pyro-ppl is an optional extra: pip install 'spherevae[pyro]'"
)

from pyro import poutine  # noqa: E402
from pyro.distributions import constraints  # noqa: E402
from pyro.distributions.torch_distribution import TorchDistributionMixin  # noqa: E402
from pyro.infer import SVI, JitTrace_ELBO, Predictive, Trace_ELBO, TraceMeanField_ELBO  # noqa: E402

from spherevae import distributions as base  # noqa: E402
from spherevae.contrib.pyro import (  # noqa: E402
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
)

F64 = torch.float64
M = 3
KAPPA0 = 4.0


def _unit(*shape: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=gen, dtype=F64), dim=-1)


def test_the_classes_are_the_spherevae_classes_with_pyro_s_support() -> None:
    loc, kappa = _unit(M, seed=0), torch.tensor(3.0, dtype=F64)
    for dist, parent in [
        (VonMisesFisher(loc, kappa), base.VonMisesFisher),
        (PowerSpherical(loc, kappa), base.PowerSpherical),
        (HypersphericalUniform(M, dtype=F64), base.HypersphericalUniform),
    ]:
        assert isinstance(dist, parent) and isinstance(dist, TorchDistributionMixin)
        assert dist.support is constraints.sphere
        x = dist.sample((5,))
        assert bool(constraints.sphere.check(x).all())
        plain = (
            parent(loc, kappa) if parent is not base.HypersphericalUniform else parent(M, dtype=F64)
        )
        torch.testing.assert_close(dist.log_prob(x), plain.log_prob(x), rtol=0, atol=0)


def test_sample_sites_shapes_plates_and_masks() -> None:
    loc = _unit(4, M, seed=1)
    kappa = torch.linspace(1.0, 10.0, 4, dtype=F64)

    def model() -> None:
        with pyro.plate("rows", 4):
            pyro.sample("z", VonMisesFisher(loc, kappa))
        pyro.sample("u", HypersphericalUniform(M, dtype=F64).expand_by([2, 5]).to_event(1))
        pyro.sample(
            "w", PowerSpherical(loc, kappa).mask(torch.tensor([1, 1, 0, 1]).bool()).to_event(1)
        )

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    z, u, w = (trace.nodes[name] for name in ("z", "u", "w"))
    assert z["value"].shape == (4, M) and z["log_prob"].shape == (4,)
    assert u["value"].shape == (2, 5, M) and u["log_prob"].shape == (2,)
    assert w["value"].shape == (4, M) and w["log_prob"].shape == ()
    want = PowerSpherical(loc, kappa).log_prob(w["value"])
    torch.testing.assert_close(w["log_prob"], want[[0, 1, 3]].sum())  # the masked row counts 0


def test_products_as_sample_sites() -> None:
    loc, kappa = _unit(2, 3, M, seed=2), torch.full((2, 3), 2.0, dtype=F64)
    product = ProductDistribution(
        [VonMisesFisher(loc[0, :, :], kappa[0]), PowerSpherical(loc[1], kappa[1])]
    )
    stacked = StackedProduct(VonMisesFisher(loc.transpose(0, 1), kappa.T))

    def model() -> None:
        with pyro.plate("rows", 3):
            pyro.sample("p", product)
            pyro.sample("s", stacked)

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    assert trace.nodes["p"]["value"].shape == (3, 2 * M)
    assert trace.nodes["s"]["log_prob"].shape == (3,)
    assert bool(product.support.check(trace.nodes["p"]["value"]).all())


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    mu = _unit(M, seed=3)
    torch.manual_seed(4)
    x = base.VonMisesFisher(mu, torch.tensor(KAPPA0, dtype=F64)).sample((n,))
    return x, x.sum(0)


def _model(data: torch.Tensor) -> None:
    mu = pyro.sample("mu", HypersphericalUniform(M, dtype=F64))
    with pyro.plate("data", len(data)):
        pyro.sample("x", VonMisesFisher(mu, torch.tensor(KAPPA0, dtype=F64)), obs=data)


def _vmf_guide(data: torch.Tensor) -> None:
    loc = pyro.param("loc", torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    kappa = pyro.param("kappa", torch.tensor(1.0, dtype=F64), constraint=constraints.positive)
    pyro.sample("mu", VonMisesFisher(loc / loc.norm(), kappa))


def _fit(elbo: pyro.infer.ELBO, guide, steps: int = 800) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """SVI from a fixed start and seed; the learning rate decays (0.1 * 0.995^step) so that the
    parameters settle instead of scattering with the one-sample gradients."""
    pyro.clear_param_store()
    data, _ = _data()
    pyro.set_rng_seed(5)
    svi = SVI(_model, guide, pyro.optim.ClippedAdam({"lr": 0.1, "lrd": 0.995}), elbo)
    for _ in range(steps):
        svi.step(data)
    return {name: value.detach() for name, value in pyro.get_param_store().items()}


_JIT = pytest.param(
    JitTrace_ELBO(num_particles=2, ignore_jit_warnings=True),
    id="JitTrace_ELBO-2-particles",
    marks=[
        # torch.jit.trace, which JitTrace_ELBO uses, warns that it is deprecated (torch 2.13)
        pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning"),
    ],
)


@pytest.mark.parametrize(
    "elbo",
    [Trace_ELBO(), TraceMeanField_ELBO(), _JIT],
    ids=["Trace_ELBO", "TraceMeanField_ELBO", "JitTrace_ELBO-2-particles"],
)
def test_svi_finds_the_known_posterior(elbo: pyro.infer.ELBO) -> None:
    """The exact posterior vMF(s/|s|, kappa0 |s|), kappa0 |s| = 125 here: the guide's direction
    within 1.5 degrees and its concentration within 15% after 800 steps. Over eight seeds of the
    optimiser the ratio of concentrations lay in [0.935, 1.03] and the angle below 0.7 degrees; the
    posterior's own spread is about 5 degrees, and a guide without the concentration's gradient
    stays at its start, 1."""
    _, s = _data()
    params = _fit(elbo, _vmf_guide)
    direction = params["loc"] / params["loc"].norm()
    angle = math.degrees(math.acos(min(1.0, float(direction @ (s / s.norm())))))
    assert angle < 1.5, angle
    want = KAPPA0 * float(s.norm())
    assert abs(float(params["kappa"]) / want - 1) < 0.15, (float(params["kappa"]), want)


def test_mean_field_elbo_uses_the_closed_form_kl() -> None:
    """TraceMeanField_ELBO's loss with one particle is E[log p(x|mu)] - KL(q || uniform) computed
    in closed form: with the KL known, the loss equals a hand-made estimate on the same draw."""
    data, _ = _data()
    pyro.clear_param_store()
    guide_trace = poutine.trace(_vmf_guide).get_trace(data)
    mu = guide_trace.nodes["mu"]["value"]
    q = guide_trace.nodes["mu"]["fn"]
    model_trace = poutine.trace(poutine.replay(_model, trace=guide_trace)).get_trace(data)
    model_trace.compute_log_prob()
    log_lik = model_trace.nodes["x"]["log_prob_sum"]
    kl = torch.distributions.kl_divergence(q, HypersphericalUniform(M, dtype=F64))
    with poutine.block(), poutine.replay(trace=guide_trace):
        loss = TraceMeanField_ELBO().differentiable_loss(_model, _vmf_guide, data)
    torch.testing.assert_close(loss, -(log_lik - kl), rtol=1e-12, atol=1e-12)
    assert bool(constraints.sphere.check(mu))


def test_predictive_draws_from_the_fitted_guide() -> None:
    _fit(Trace_ELBO(), _vmf_guide, steps=50)
    data, _ = _data()
    samples = Predictive(_model, guide=_vmf_guide, num_samples=7, return_sites=["mu", "x"])(data)
    assert samples["mu"].shape == (7, 1, M) or samples["mu"].shape == (7, M)
    assert samples["x"].shape == (7, len(data), M)
    assert bool(constraints.sphere.check(samples["x"]).all())


def test_a_power_spherical_guide_learns_too() -> None:
    def guide(data: torch.Tensor) -> None:
        loc = pyro.param("loc", torch.tensor([1.0, 0.0, 0.0], dtype=F64))
        kappa = pyro.param("kappa", torch.tensor(1.0, dtype=F64), constraint=constraints.positive)
        pyro.sample("mu", PowerSpherical(loc / loc.norm(), kappa))

    _, s = _data()
    params = _fit(Trace_ELBO(), guide)
    direction = params["loc"] / params["loc"].norm()
    assert float(direction @ (s / s.norm())) > math.cos(math.radians(1.5))
    assert float(params["kappa"]) > 20  # concentrated: a vMF(kappa = 125)-like posterior
