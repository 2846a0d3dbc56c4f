"""Posterior heads, priors and their KL divergences (``spherevae.models.heads``, ``.priors``).

Statistical failure budget: ``test_kl_matches_monte_carlo`` makes one comparison per example and case,
``|MC mean of log q - log p  -  KL| <= 4 SE`` (two-sided normal tail 6.3e-5 each; 9 cases x 6 examples
= 54 checks, so about 3.4e-3 for the file if the seeds were not fixed). With the fixed seeds the
results are deterministic. Everything else is exact (shapes, types, norms, formulas).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from spherevae.distributions import (
    HypersphericalUniform,
    PowerSpherical,
    ProductDistribution,
    StackedProduct,
    VonMisesFisher,
)
from spherevae.models import (
    GaussianHead,
    PointHead,
    PosteriorHead,
    PowerSphericalHead,
    VonMisesFisherHead,
    build_prior,
    parse_latent,
)
from spherevae.models.heads import build_factor_head
from spherevae.models.priors import factor_prior

SEED = 31337
F_IN = 16  # feature size
B = 6  # batch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(SEED)


def _features(scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(B, F_IN)


# latent, posterior, covariance, expected component types (in coordinate order); a run of k equal
# spheres is one StackedProduct, written (base type, k)
CASES = [
    ("S10", "vmf", "diagonal", [VonMisesFisher]),
    ("S1", "vmf", "diagonal", [VonMisesFisher]),
    ("S2", "powerspherical", "diagonal", [PowerSpherical]),
    ("R10", "normal", "diagonal", [Independent]),
    ("R4", "normal", "single", [Independent]),
    ("R4", "normal", "full", [MultivariateNormal]),
    ("S4xS4", "vmf", "diagonal", [(VonMisesFisher, 2)]),
    ("S2xS2xS2", "powerspherical", "diagonal", [(PowerSpherical, 3)]),
    ("S4xS4xR2", "vmf", "diagonal", [(VonMisesFisher, 2), Independent]),
    ("S2xR1xS2", "powerspherical", "single", [PowerSpherical, Independent, PowerSpherical]),
    ("S9xR5", "vmf", "diagonal", [VonMisesFisher, Independent]),
    ("S9xR5", "powerspherical", "full", [PowerSpherical, MultivariateNormal]),
    ("R2xS3", "vmf", "single", [Independent, VonMisesFisher]),
]
IDS = [f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]


def _components(q):
    return q.components if isinstance(q, ProductDistribution) else [q]


def _kind(c):
    return (type(c.base), c.k) if isinstance(c, StackedProduct) else type(c)


@pytest.mark.parametrize(("latent", "posterior", "covariance", "types"), CASES, ids=IDS)
def test_head_distribution_types_and_shapes(latent, posterior, covariance, types):
    spec = parse_latent(latent)
    head = PosteriorHead(F_IN, spec, posterior, "rejection", covariance)
    q = head(_features())
    # a single group gives its plain distribution, never a 1-factor product
    assert isinstance(q, ProductDistribution) == (len(types) > 1)
    assert [_kind(c) for c in _components(q)] == types
    assert q.batch_shape == (B,)
    assert q.event_shape == (spec.ambient_dim,)
    sizes = [f.ambient * k for f, k in spec.sphere_runs()]
    assert [c.event_shape[0] for c in _components(q)] == sizes
    z = q.rsample((3,))
    assert z.shape == (3, B, spec.ambient_dim)
    for factor, block in zip(spec.factors, torch.split(z, list(spec.sizes), -1), strict=True):
        if factor.is_sphere:
            torch.testing.assert_close(block.norm(dim=-1), torch.ones(3, B), atol=1e-5, rtol=0)
    assert q.log_prob(z).shape == (3, B)


@pytest.mark.parametrize(("latent", "posterior", "covariance", "types"), CASES, ids=IDS)
def test_rsample_differentiable_wrt_encoder(latent, posterior, covariance, types):
    spec = parse_latent(latent)
    encoder = torch.nn.Sequential(torch.nn.Linear(5, F_IN), torch.nn.Tanh())
    head = PosteriorHead(F_IN, spec, posterior, "rejection", covariance)
    q = head(encoder(torch.randn(B, 5)))
    target = torch.randn(spec.ambient_dim)
    (q.rsample((4,)) * target).sum().backward()
    assert encoder[0].weight.grad is not None and encoder[0].weight.grad.abs().sum() > 0
    for sub in head.factors:
        # direction/mean and concentration/scale layers both get a gradient through the sample
        for p in sub.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
            assert p.grad.abs().sum() > 0, f"no gradient reaches {type(sub).__name__}"


@pytest.mark.parametrize("sampler", ["rejection", "inverse_cdf", "mh"])
def test_vmf_sampler_passed_through(sampler):
    q = VonMisesFisherHead(F_IN, 5, sampler)(_features())
    assert isinstance(q, VonMisesFisher) and q.sampler == sampler
    spec = parse_latent("S4xR2")
    q = PosteriorHead(F_IN, spec, "vmf", sampler)(_features())
    assert q.components[0].sampler == sampler
    q = PosteriorHead(F_IN, parse_latent("S4xS4"), "vmf", sampler)(_features())
    assert q.base.sampler == sampler


@pytest.mark.parametrize("head_cls", [VonMisesFisherHead, PowerSphericalHead])
@pytest.mark.parametrize("m", [2, 3, 11, 51])
def test_sphere_head_parametrisation(head_cls, m):
    head = head_cls(F_IN, m)
    q = head(_features(scale=30.0))
    torch.testing.assert_close(q.loc.norm(dim=-1), torch.ones(B))
    # kappa = softplus(.) + 1 >= 1 whatever the features (Davidson et al. 2018)
    assert (q.concentration >= 1).all()
    # moderate start: kappa = m for zero features
    kappa0 = head(torch.zeros(1, F_IN)).concentration
    torch.testing.assert_close(kappa0, torch.tensor([float(m)]))
    # the formula, recomputed from the layers
    h = _features()
    q = head(h)
    torch.testing.assert_close(q.loc, torch.nn.functional.normalize(head.direction(h), dim=-1))
    kappa = torch.nn.functional.softplus(head.concentration(h)).squeeze(-1) + 1
    torch.testing.assert_close(q.concentration, kappa)


@pytest.mark.parametrize("head_cls", [VonMisesFisherHead, PowerSphericalHead])
def test_sphere_head_copies(head_cls):
    m, k = 5, 3
    head = head_cls(F_IN, m, copies=k)
    assert head.direction.weight.shape == (k * m, F_IN) and head.concentration.weight.shape == (
        k,
        F_IN,
    )
    h = _features(scale=30.0)
    q = head(h)
    family = VonMisesFisher if head_cls is VonMisesFisherHead else PowerSpherical
    assert isinstance(q, StackedProduct) and q.k == k and type(q.base) is family
    assert q.base.loc.shape == (B, k, m) and q.base.concentration.shape == (B, k)
    # factor j uses rows j m .. (j + 1) m - 1 of the direction map and row j of the concentration map
    for j in range(k):
        rows = slice(j * m, (j + 1) * m)
        direction = h @ head.direction.weight[rows].T + head.direction.bias[rows]
        torch.testing.assert_close(
            q.base.loc[:, j], torch.nn.functional.normalize(direction, dim=-1)
        )
        raw = h @ head.concentration.weight[j] + head.concentration.bias[j]
        torch.testing.assert_close(
            q.base.concentration[:, j], torch.nn.functional.softplus(raw) + 1
        )
    # every copy starts at kappa = m for zero features
    kappa0 = head(torch.zeros(1, F_IN)).base.concentration
    torch.testing.assert_close(kappa0, torch.full((1, k), float(m)))


GROUPS = [
    ("S4xS4", [("S4", 2)]),
    ("S2xS2xS2", [("S2", 3)]),
    ("S1xS1xS1xS1xS1", [("S1", 5)]),
    ("S19xS19", [("S19", 2)]),
    ("S2xR1xS2", [("S2", 1), ("R1", 1), ("S2", 1)]),
    ("S2xS3", [("S2", 1), ("S3", 1)]),
    ("S4xS4xR2", [("S4", 2), ("R2", 1)]),
    ("R2xR2", [("R2", 1), ("R2", 1)]),
    ("S9xR5", [("S9", 1), ("R5", 1)]),
]


@pytest.mark.parametrize(("latent", "groups"), GROUPS, ids=[g[0] for g in GROUPS])
def test_consecutive_equal_spheres_share_a_head(latent, groups):
    spec = parse_latent(latent)
    assert [(str(f), k) for f, k in spec.sphere_runs()] == groups
    head = PosteriorHead(F_IN, spec)
    assert len(head.factors) == len(groups)
    for sub, (name, k) in zip(head.factors, groups, strict=True):
        if name.startswith("S"):
            assert isinstance(sub, VonMisesFisherHead) and sub.copies == k
        else:
            assert isinstance(sub, GaussianHead)
    # the prior has the same groups, so the KL pairs them one to one
    prior = build_prior(spec)
    parts = _components(prior)
    assert len(parts) == len(groups)
    for part, (_, k) in zip(parts, groups, strict=True):
        if k > 1:
            assert isinstance(part, StackedProduct) and part.k == k
            assert isinstance(part.base, HypersphericalUniform) and part.base.batch_shape == (k,)
        else:
            assert not isinstance(part, StackedProduct)


def test_grouped_head_has_the_parameters_of_one_head_per_factor():
    spec = parse_latent("S4xS4")
    grouped = PosteriorHead(F_IN, spec)
    separate = [VonMisesFisherHead(F_IN, 5) for _ in range(2)]
    count = sum(p.numel() for p in grouped.parameters())
    assert (
        count
        == sum(p.numel() for h in separate for p in h.parameters())
        == 2 * (5 + 1) * (F_IN + 1)
    )


def test_gaussian_covariance_modes():
    h = _features()
    d = 4
    diag = GaussianHead(F_IN, d, "diagonal")(h)
    assert isinstance(diag, Independent) and isinstance(diag.base_dist, Normal)
    assert diag.base_dist.scale.shape == (B, d)
    assert (diag.base_dist.scale[:, 0] != diag.base_dist.scale[:, 1]).all()

    single = GaussianHead(F_IN, d, "single")(h)
    scale = single.base_dist.scale
    assert scale.shape == (B, d)
    # one variance per example, shared by the d coordinates, different between examples
    torch.testing.assert_close(scale, scale[:, :1].expand(B, d))
    assert scale[:, 0].unique().numel() == B

    head = GaussianHead(F_IN, d, "full")
    full = head(h)
    assert isinstance(full, MultivariateNormal)
    tril = full.scale_tril
    assert tril.shape == (B, d, d)
    torch.testing.assert_close(tril, tril.tril())
    assert (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
    rows, cols = torch.tril_indices(d, d, -1)
    assert (tril[:, rows, cols] != 0).all()  # the entries below the diagonal are free
    torch.testing.assert_close(full.covariance_matrix, tril @ tril.transpose(-1, -2))
    # at the start the scales are about 1 (the prior's) for zero features
    start = head(torch.zeros(1, F_IN)).scale_tril[0]
    torch.testing.assert_close(start, torch.eye(d), atol=1e-6, rtol=0)

    with pytest.raises(ValueError, match="covariance='spherical'"):
        GaussianHead(F_IN, d, "spherical")


def test_full_covariance_off_diagonal_is_learned():
    head = GaussianHead(F_IN, 3, "full")
    q = head(_features())
    (q.rsample((8,)) ** 2).sum().backward()
    assert head.scale.weight.grad[3:].abs().sum() > 0  # the off-diagonal rows


def test_normal_posterior_on_sphere_factor_is_an_error():
    with pytest.raises(ValueError, match=r"posterior='normal'.*S3"):
        build_factor_head(parse_latent("S3").factors[0], F_IN, "normal", "rejection", "diagonal")
    with pytest.raises(ValueError, match="posterior='gauss'"):
        build_factor_head(parse_latent("S3").factors[0], F_IN, "gauss", "rejection", "diagonal")


def test_point_head():
    spec = parse_latent("S2xR3xS1")
    z = PointHead(F_IN, spec)(_features(scale=10.0))
    assert z.shape == (B, 3 + 3 + 2)
    s2, r3, s1 = torch.split(z, [3, 3, 2], -1)
    torch.testing.assert_close(s2.norm(dim=-1), torch.ones(B))
    torch.testing.assert_close(s1.norm(dim=-1), torch.ones(B))
    assert not torch.allclose(r3.norm(dim=-1), torch.ones(B))


# ---------------------------------------------------------------------------------------------------
# priors
# ---------------------------------------------------------------------------------------------------


def _log_area(m: int) -> float:
    return math.log(2) + m / 2 * math.log(math.pi) - math.lgamma(m / 2)


def test_priors_types_and_densities():
    p = build_prior(parse_latent("S2"))
    assert isinstance(p, HypersphericalUniform) and p.event_shape == (3,) and p.batch_shape == ()
    z = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    torch.testing.assert_close(p.log_prob(z), torch.full((5,), -math.log(4 * math.pi)))

    p = build_prior(parse_latent("S1"))
    z = torch.nn.functional.normalize(torch.randn(5, 2), dim=-1)
    torch.testing.assert_close(p.log_prob(z), torch.full((5,), -math.log(2 * math.pi)))

    p = build_prior(parse_latent("R3"))
    assert isinstance(p, Independent) and p.event_shape == (3,) and p.batch_shape == ()
    r = torch.randn(5, 3)
    expected = -0.5 * (r**2).sum(-1) - 1.5 * math.log(2 * math.pi)
    torch.testing.assert_close(p.log_prob(r), expected)

    p = build_prior(parse_latent("R3"), "full")
    assert isinstance(p, MultivariateNormal)
    torch.testing.assert_close(p.log_prob(r), expected)

    p = build_prior(parse_latent("S9xR5"))
    assert isinstance(p, ProductDistribution) and p.event_shape == (15,)
    assert [type(c) for c in p.components] == [HypersphericalUniform, Independent]
    z = torch.cat(
        [torch.nn.functional.normalize(torch.randn(5, 10), dim=-1), torch.randn(5, 5)], -1
    )
    expected = -_log_area(10) - 0.5 * (z[:, 10:] ** 2).sum(-1) - 2.5 * math.log(2 * math.pi)
    torch.testing.assert_close(p.log_prob(z), expected)


def test_factor_prior_groups_spheres_only():
    """``copies = k`` equal spheres: the stacked product of ``k`` uniforms; a Euclidean factor is never
    grouped (``ValueError`` naming ``copies``)."""
    p = factor_prior(parse_latent("S4").factors[0], copies=3)
    assert isinstance(p, StackedProduct) and p.event_shape == (15,) and p.batch_shape == ()
    with pytest.raises(ValueError, match="copies=2"):
        factor_prior(parse_latent("R3").factors[0], copies=2)


def test_prior_dtype():
    p = build_prior(parse_latent("S2xR2"), dtype=torch.float64)
    assert p.sample((3,)).dtype == torch.float64


# ---------------------------------------------------------------------------------------------------
# KL(q || p) for every posterior/prior pair the models use
# ---------------------------------------------------------------------------------------------------

KL_CASES = [
    ("S10", "vmf", "diagonal"),  # vMF || uniform
    ("S2", "vmf", "diagonal"),  # vMF || uniform, m = 3 (closed-form sampler)
    ("S4", "powerspherical", "diagonal"),  # PS || uniform
    ("R5", "normal", "diagonal"),  # Independent(Normal) || Independent(Normal)
    ("R5", "normal", "single"),
    ("R4", "normal", "full"),  # MultivariateNormal || MultivariateNormal
    ("S9xR5", "vmf", "full"),  # product || product
    ("S2xS2xR3", "powerspherical", "diagonal"),  # stacked || stacked inside product || product
    ("S4xS4", "vmf", "diagonal"),  # stacked || stacked
]


@pytest.mark.parametrize(("latent", "posterior", "covariance"), KL_CASES)
def test_kl_matches_monte_carlo(latent, posterior, covariance):
    spec = parse_latent(latent)
    head = PosteriorHead(F_IN, spec, posterior, "rejection", covariance)
    with torch.no_grad():
        q = head(_features(scale=3.0))
        p = build_prior(spec, covariance)
        kl = kl_divergence(q, p)  # raises NotImplementedError if a pair were not registered
        assert kl.shape == (B,)
        n = 20000
        z = q.sample((n,))
        diff = (q.log_prob(z) - p.log_prob(z)).double()
        est, se = diff.mean(0), diff.std(0) / math.sqrt(n)
    assert (kl > 0).all()
    assert ((est - kl.double()).abs() <= 4 * se + 1e-4).all(), (est, kl, se)
