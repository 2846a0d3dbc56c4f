"""The numerics behind ``spherevae.plots``: map projections, slerp, PCA of spheres, exact densities.

Statistical budget: :func:`test_w_histogram_matches_exact_density` runs 16 chi-square tests (4 samplers
x 4 (m, kappa) cases) of 20000 draws in 20 bins of equal exact probability, each at level 1e-6, so a
correct sampler fails the file with probability below 2e-5 (the seeds are fixed, so the outcome is
deterministic). Every check here was seen to fail with its formula broken on purpose once (Hammer's
``lambda / 2`` as ``lambda``, Mollweide's ``2u - sin(2u)`` as ``u - sin(u)``, the ``(m-3)/2``
exponent as ``(m-2)/2``, slerp's ``sin(t omega)`` as ``t sin(omega)``, the ball volume's
``Gamma(n/2 + 1)`` as ``Gamma(n/2)``, the PCA projection of the centred points).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from spherevae.models import parse_latent
from spherevae.plots import (
    SAMPLER_NAMES,
    chi_log_density,
    geodesic,
    hammer,
    latlon_grid,
    lonlat,
    marginal_log_density,
    mollweide,
    pca_sphere,
    sample_w,
    seed_statistics,
    slerp,
    unit_ball_volume,
)
from spherevae.plots.projections import graticule
from spherevae.plots.samplers import make_distribution

SQ2 = math.sqrt(2)
MAPS = {"hammer": hammer, "mollweide": mollweide}


# -- map projections ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MAPS)
def test_map_known_points(name: str) -> None:
    project = MAPS[name]
    lon = np.array([0.0, 0.0, 0.0, 2.0, -1.0, np.pi, -np.pi])
    lat = np.array([0.0, np.pi / 2, -np.pi / 2, np.pi / 2, -np.pi / 2, 0.0, 0.0])
    x, y = project(lon, lat)
    want_x = [0, 0, 0, 0, 0, 2 * SQ2, -2 * SQ2]
    want_y = [0, SQ2, -SQ2, SQ2, -SQ2, 0, 0]
    np.testing.assert_allclose(x, want_x, atol=1e-12)
    np.testing.assert_allclose(y, want_y, atol=1e-12)


def test_hammer_value_off_axes() -> None:
    # lambda = pi/2 on the equator: x = 2 sqrt2 sin(pi/4) / sqrt(1 + cos(pi/4)) (Snyder 1987, 32-1)
    x, y = hammer(np.pi / 2, 0.0)
    assert float(x) == pytest.approx(2.0 / math.sqrt(1 + math.sqrt(0.5)), rel=1e-14)
    assert float(y) == 0.0


def test_mollweide_parallels_are_horizontal_and_theta_solves_its_equation() -> None:
    lat = np.linspace(-1.5, 1.5, 7)
    for phi in lat:
        _, y = mollweide(np.linspace(-3, 3, 5), np.full(5, phi))
        assert np.ptp(y) == 0.0
        theta = math.asin(float(y[0]) / SQ2)
        assert 2 * theta + math.sin(2 * theta) == pytest.approx(math.pi * math.sin(phi), abs=1e-12)


@pytest.mark.parametrize("name", MAPS)
def test_maps_are_equal_area(name: str) -> None:
    """|d(x, y) / d(lambda, phi)| = cos(phi): the surface element of S^2 (central differences)."""
    project = MAPS[name]
    rng = np.random.default_rng(0)
    lam = rng.uniform(-3.0, 3.0, 200)
    phi = rng.uniform(-1.4, 1.4, 200)
    h = 1e-6
    xl1, yl1 = project(lam + h, phi)
    xl0, yl0 = project(lam - h, phi)
    xp1, yp1 = project(lam, phi + h)
    xp0, yp0 = project(lam, phi - h)
    jac = ((xl1 - xl0) * (yp1 - yp0) - (xp1 - xp0) * (yl1 - yl0)) / (4 * h * h)
    np.testing.assert_allclose(np.abs(jac), np.cos(phi), rtol=1e-6)


@pytest.mark.parametrize("name", MAPS)
def test_map_outline_is_the_ellipse(name: str) -> None:
    x, y = graticule(name)[0]  # type: ignore[arg-type]
    np.testing.assert_allclose((x / (2 * SQ2)) ** 2 + (y / SQ2) ** 2, 1.0, atol=1e-12)


def test_lonlat_inverts_the_latlon_grid() -> None:
    points, lon, lat = latlon_grid(5, 8)
    got_lon, got_lat = lonlat(points.numpy())
    np.testing.assert_allclose(np.degrees(got_lon), lon, atol=1e-10)
    np.testing.assert_allclose(np.degrees(got_lat), lat, atol=1e-10)
    np.testing.assert_allclose(points.norm(dim=1).numpy(), 1.0, atol=1e-15)


# -- slerp -----------------------------------------------------------------------------------------
def _angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return 2 * torch.atan2((u - v).norm(dim=-1), (u + v).norm(dim=-1))


@pytest.mark.parametrize("d", [2, 3, 10])
def test_slerp_unit_norm_exact_ends_constant_speed(d: int) -> None:
    gen = torch.Generator().manual_seed(d)
    a = torch.nn.functional.normalize(torch.randn(4, d, generator=gen, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, d, generator=gen, dtype=torch.float64), dim=-1)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    path = slerp(a, b, t)
    assert path.shape == (11, 4, d)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(11, 4, dtype=torch.float64))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    steps = _angle(path[1:], path[:-1])  # (10, 4)
    torch.testing.assert_close(steps, (_angle(a, b) / 10).expand(10, 4), atol=1e-12, rtol=0)
    # on the great circle through a and b: no component outside span(a, b)
    basis, _ = torch.linalg.qr(torch.stack([a, b], -1))  # (4, d, 2)
    inside = torch.einsum("bdk,bek,tbe->tbd", basis, basis, path)
    torch.testing.assert_close(inside, path, atol=1e-12, rtol=0)


def test_slerp_identical_and_antipodal() -> None:
    a = torch.nn.functional.normalize(torch.tensor([0.3, -0.2, 0.9], dtype=torch.float64), dim=0)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    same = slerp(a, a.clone(), t)
    torch.testing.assert_close(same, a.expand(9, 3), atol=1e-14, rtol=0)
    anti = slerp(a, -a, t)
    torch.testing.assert_close(anti.norm(dim=-1), torch.ones(9, dtype=torch.float64))
    assert torch.equal(anti[-1], -a)
    assert float(anti[4] @ a) == pytest.approx(0.0, abs=1e-12)  # half way: a right angle
    steps = _angle(anti[1:], anti[:-1])
    torch.testing.assert_close(steps, torch.full((8,), math.pi / 8, dtype=torch.float64))
    # a scalar t gives one point
    assert slerp(a, -a, 0.5).shape == (3,)


def test_geodesic_per_factor() -> None:
    spec = parse_latent("S1xR2")
    a = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0, 3.0, 0.0], dtype=torch.float64)
    path = geodesic(a, b, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), spec)
    half = math.sqrt(0.5)
    torch.testing.assert_close(path[1], torch.tensor([half, half, 1.0, 1.0], dtype=torch.float64))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)


# -- PCA of spheres --------------------------------------------------------------------------------
def test_pca_of_a_great_circle_is_the_unit_circle() -> None:
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(12, 2, generator=gen, dtype=torch.float64))
    angle = torch.rand(300, generator=gen, dtype=torch.float64) * 2 * math.pi
    points = torch.stack([angle.cos(), angle.sin()], 1) @ q.T  # on a great circle of S^11
    xy, share = pca_sphere(points.numpy(), k=2)
    np.testing.assert_allclose(np.linalg.norm(xy, axis=1), 1.0, atol=1e-12)
    assert share.sum() == pytest.approx(1.0, abs=1e-12)
    # an isometry of the circle: angles between points are kept
    np.testing.assert_allclose(xy @ xy.T, (points @ points.T).numpy(), atol=1e-10)


def test_pca_to_s2_of_a_great_sphere_keeps_angles() -> None:
    gen = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(8, 3, generator=gen, dtype=torch.float64))
    p = torch.nn.functional.normalize(
        torch.randn(200, 3, generator=gen, dtype=torch.float64), dim=1
    )
    points = (p @ q.T).numpy()
    xyz, share = pca_sphere(points, k=3)
    np.testing.assert_allclose(xyz @ xyz.T, points @ points.T, atol=1e-10)
    assert share.sum() == pytest.approx(1.0, abs=1e-12)


# -- exact densities -------------------------------------------------------------------------------
def _theta_density(
    name: str, m: int, kappa: float, n: int = 40001
) -> tuple[np.ndarray, np.ndarray]:
    """The density of theta = arccos(w), p(cos theta) sin theta, bounded for every m (also m = 2)."""
    dist = make_distribution(name, m, kappa)
    theta = torch.linspace(0, math.pi, n, dtype=torch.float64)
    dens = marginal_log_density(dist, torch.cos(theta)).exp() * torch.sin(theta)
    dens[0], dens[-1] = _ends(name, m, kappa, dens)
    return theta.numpy(), dens.numpy()


def _ends(name: str, m: int, kappa: float, dens: torch.Tensor) -> tuple[float, float]:
    # m = 2: p(cos theta) sin theta has finite limits at theta = 0, pi, which the grid cannot evaluate
    # (inf * 0); extrapolate linearly from the two nearest nodes. m >= 3: the density is 0 there.
    if m != 2:
        return 0.0, 0.0
    return float(2 * dens[1] - dens[2]), float(2 * dens[-2] - dens[-3])


@pytest.mark.parametrize("name", ["rejection", "powerspherical"])
@pytest.mark.parametrize("m", [2, 3, 5, 64])
@pytest.mark.parametrize("kappa", [0.0, 1.0, 10.0, 300.0])
def test_w_density_integrates_to_one(name: str, m: int, kappa: float) -> None:
    theta, dens = _theta_density(name, m, kappa)
    assert np.trapezoid(dens, theta) == pytest.approx(1.0, abs=2e-6)


def test_vmf_w_density_matches_the_closed_form() -> None:
    """m = 3: p(w) = kappa e^{kappa w} / (2 sinh kappa), the textbook special case."""
    dist = make_distribution("rejection", 3, 4.0)
    w = torch.linspace(-0.99, 0.99, 50, dtype=torch.float64)
    want = 4.0 * torch.exp(4.0 * w) / (2 * math.sinh(4.0))
    torch.testing.assert_close(marginal_log_density(dist, w).exp(), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
@pytest.mark.parametrize(("m", "kappa"), [(2, 10.0), (3, 1.0), (3, 100.0), (5, 10.0)])
def test_w_histogram_matches_exact_density(name: str, m: int, kappa: float) -> None:
    n, bins = 20000, 20
    theta, dens = _theta_density(name, m, kappa)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(theta))])
    cdf /= cdf[-1]
    edges = np.interp(np.linspace(0, 1, bins + 1), cdf, theta)  # equal exact mass per bin
    edges[0], edges[-1] = 0.0, math.pi
    samples = np.arccos(np.clip(sample_w(name, m, kappa, n, seed=7).numpy(), -1, 1))
    counts, _ = np.histogram(samples, edges)
    expected = n / bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert stat < chi2.ppf(1 - 1e-6, bins - 1), (stat, counts)


# -- why a sphere ----------------------------------------------------------------------------------
def test_unit_ball_volume() -> None:
    np.testing.assert_allclose(
        unit_ball_volume(np.array([0, 1, 2, 3, 4])),
        [1.0, 2.0, math.pi, 4 * math.pi / 3, math.pi**2 / 2],
        rtol=1e-14,
    )
    n = np.arange(2, 40)
    np.testing.assert_allclose(
        unit_ball_volume(n), 2 * math.pi / n * unit_ball_volume(n - 2), rtol=1e-12
    )
    assert int(np.argmax(unit_ball_volume(np.arange(1, 30)))) + 1 == 5


@pytest.mark.parametrize("d", [1, 2, 10, 100])
def test_chi_density_integrates_to_one(d: int) -> None:
    r = np.linspace(0, math.sqrt(d) + 12, 200001)
    assert np.trapezoid(np.exp(chi_log_density(r, d)), r) == pytest.approx(1.0, abs=1e-8)


# -- curves over seeds -----------------------------------------------------------------------------
def test_seed_statistics_aligns_epochs_and_skips_nan() -> None:
    runs = [
        [{"epoch": 1, "val_negative_elbo": 3.0}, {"epoch": 2, "val_negative_elbo": 1.0}],
        [
            {"epoch": 1, "val_negative_elbo": 5.0},
            {"epoch": 2, "val_negative_elbo": math.nan},
            {"epoch": 3, "val_negative_elbo": 0.5},
        ],
    ]
    epochs, mean, std, count = seed_statistics(runs, "val_negative_elbo")
    np.testing.assert_array_equal(epochs, [1, 2, 3])
    np.testing.assert_allclose(mean, [4.0, 1.0, 0.5])
    np.testing.assert_allclose(std, [math.sqrt(2), 0.0, 0.0])
    np.testing.assert_array_equal(count, [2, 1, 1])
