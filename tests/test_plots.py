"""Every figure of ``spherevae.plots`` builds, has the expected axes and artists, and saves a non-blank PNG.

Models are tiny and untrained (8 x 8 images, 16 hidden units): the figures' layout is under test, not
what a trained decoder draws. GIFs are checked for their frame count with Pillow.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from PIL import Image

from spherevae.models import VAE, ModelConfig
from spherevae.plots import (
    decoded_grid,
    gaussian_norms,
    image_grid,
    interpolation_strip,
    latent_evolution_gif,
    latent_figure,
    latent_scatter,
    projections,
    result_lines,
    rotating_sphere_gif,
    sampler_histograms,
    sampler_spheres,
    save_figure,
    save_gif,
    seed_band_curves,
    sphere_views,
    spiral_decoding_gif,
    training_curves,
    why_sphere,
)
from spherevae.plots.projections import umap_available


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _model(latent: str) -> VAE:
    posterior = "normal" if "S" not in latent else "vmf"
    return VAE(
        ModelConfig(image_shape=(1, 8, 8), latent=latent, hidden_sizes=(16,), posterior=posterior)
    )


def _unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return g / g.norm(dim=1, keepdim=True)


def _labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


def _check_png(figure: Figure, path: Path) -> None:
    assert isinstance(figure, Figure)
    save_figure(figure, path, dpi=40)
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 10 and pixels.shape[1] > 10
    assert float(pixels[..., :3].var()) > 0


def _scatter_points(figure: Figure) -> int:
    return sum(
        len(c.get_offsets())
        for ax in figure.axes
        for c in ax.collections
        if isinstance(c, PathCollection)
    )


# -- latent points ---------------------------------------------------------------------------------
def test_sphere_views_three_panels(tmp_path: Path) -> None:
    fig = sphere_views(_unit(200, 3), _labels(200), title="S2")
    assert len(fig.axes) == 3
    assert fig.axes[0].name == "3d"
    # every point drawn on each panel (front and back halves on the sphere)
    assert _scatter_points(fig) == 3 * 200
    _check_png(fig, tmp_path / "views.png")


def test_sphere_hides_back_points() -> None:
    fig = sphere_views(_unit(200, 3), hide_back=True)
    n_front = _scatter_points(fig) - 2 * 200
    assert 60 < n_front < 140  # about half of uniform points face the camera


@pytest.mark.parametrize(
    ("latent", "d", "n_axes", "three_d"),
    [
        ("S1", 2, 1, 0),
        ("S2", 3, 1, 1),
        ("S9", 10, 1, 0),
        ("R1", 1, 1, 0),
        ("R2", 2, 1, 0),
        ("R5", 5, 1, 0),
        ("S1xS2xR2", 7, 3, 1),
    ],
)
def test_latent_figure_one_panel_per_factor(
    tmp_path: Path, latent: str, d: int, n_axes: int, three_d: int
) -> None:
    n = 120
    parts = []
    from spherevae.models import parse_latent

    for factor in parse_latent(latent).factors:
        parts.append(
            _unit(n, factor.ambient) if factor.is_sphere else torch.randn(n, factor.ambient)
        )
    points = torch.cat(parts, 1)
    assert points.shape[1] == d
    fig = latent_figure(points, _labels(n), latent=latent)
    assert len(fig.axes) == n_axes
    assert sum(ax.name == "3d" for ax in fig.axes) == three_d
    if latent == "S9":
        assert "principal axes" in fig.axes[0].get_title()
    if latent == "R5":
        assert "PCA" in fig.axes[0].get_title()
    _check_png(fig, tmp_path / f"{latent}.png")


@pytest.mark.parametrize("view", ["hammer", "mollweide"])
def test_latent_figure_s2_maps(view: str) -> None:
    fig = latent_figure(_unit(50, 3), latent="S2", s2_view=view)  # type: ignore[arg-type]
    assert fig.axes[0].name == "rectilinear"
    assert view.capitalize() in fig.axes[0].get_title()


def test_latent_figure_tsne_names_itself(tmp_path: Path) -> None:
    fig = latent_figure(_unit(60, 6), _labels(60), high_dim="tsne")
    assert "t-SNE, cosine" in fig.axes[0].get_title()
    _check_png(fig, tmp_path / "tsne.png")


def test_latent_figure_umap_needs_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "umap_available", lambda: False)
    with pytest.raises(ImportError, match="umap-learn"):
        latent_figure(_unit(30, 6), high_dim="umap")


def test_umap_keeps_clusters_and_names_itself(tmp_path: Path) -> None:
    """UMAP (a dev dependency) embeds three well-separated clusters on S^9 without mixing them.

    Each point's nearest neighbour in the embedding lies in its own cluster for >= 95% of the
    points (chance: about 1/3); the figure says that it shows UMAP, and no warning escapes.
    """
    assert umap_available()
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(3, 10, generator=gen), dim=-1)
    points = torch.nn.functional.normalize(
        centres.repeat_interleave(40, 0) + 0.15 * torch.randn(120, 10, generator=gen), dim=-1
    )
    labels = torch.arange(3).repeat_interleave(40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xy = projections.embed_2d(points.numpy(), "umap", seed=0)
        fig = latent_figure(points, labels, high_dim="umap")
    distances = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    distances[range(120), range(120)] = float("inf")
    nearest = distances.argmin(1)
    same = (labels.numpy()[nearest] == labels.numpy()).mean()
    assert same >= 0.95, same
    assert "UMAP, cosine" in fig.axes[0].get_title()
    _check_png(fig, tmp_path / "umap.png")


def test_latent_figure_rejects_mismatched_space() -> None:
    with pytest.raises(ValueError, match="coordinates"):
        latent_figure(_unit(10, 3), latent="S1")


def test_latent_scatter_keeps_its_signature(tmp_path: Path) -> None:
    fig = latent_scatter(_unit(40, 3), _labels(40), title="t")
    assert fig.axes[0].name == "3d"
    fig = latent_scatter(torch.randn(40, 4), None, title="t", latent="S1xR2")
    assert len(fig.axes) == 2
    _check_png(fig, tmp_path / "scatter.png")


# -- samplers --------------------------------------------------------------------------------------
def test_sampler_spheres_grid(tmp_path: Path) -> None:
    fig = sampler_spheres(kappas=(1.0, 10.0, 100.0), n=60)
    assert len(fig.axes) == 4 * 3
    assert all(ax.name == "3d" for ax in fig.axes)
    assert _scatter_points(fig) == 12 * 60
    _check_png(fig, tmp_path / "spheres.png")


@pytest.mark.parametrize("m", [2, 3, 7])
def test_sampler_histograms_grid(tmp_path: Path, m: int) -> None:
    fig = sampler_histograms(m=m, kappas=(1.0, 50.0), n=2000, bins=20)
    assert len(fig.axes) == 4 * 2
    for ax in fig.axes:
        assert len(ax.patches) == 20 and len(ax.lines) == 1
        assert np.isfinite(ax.lines[0].get_ydata()).all()
    _check_png(fig, tmp_path / "hist.png")


# -- decoded grids and interpolation ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("latent", "factor", "n", "n_images"),
    [
        ("S2", 0, 4, 4 * 8),
        ("S1", 0, 12, 12),
        ("R2", 0, 5, 25),
        ("S1xR2", 1, 3, 9),
        ("S1xS2", 1, 3, 18),
    ],
)
def test_decoded_grid(tmp_path: Path, latent: str, factor: int, n: int, n_images: int) -> None:
    fig = decoded_grid(_model(latent), factor=factor, n=n)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].images) == n_images
    _check_png(fig, tmp_path / "grid.png")


def test_decoded_grid_rejects_other_factors() -> None:
    with pytest.raises(ValueError, match="S\\^1, S\\^2 and R\\^2"):
        decoded_grid(_model("S5"))


@pytest.mark.parametrize("latent", ["S2", "S4xR2", "R3"])
def test_interpolation_strip(tmp_path: Path, latent: str) -> None:
    x = torch.rand(2, 1, 8, 8).round()
    fig = interpolation_strip(_model(latent), x[0], x[1], steps=6)
    assert len(fig.axes) == 1 and len(fig.axes[0].images) == 1
    canvas = fig.axes[0].images[0].get_array()
    assert canvas is not None and canvas.shape == (
        8,
        8 * 8 + 7,
    )  # 6 steps and 2 inputs, 1-pixel gaps
    title = fig.axes[0].get_title()
    assert ("slerp" in title) == ("S" in latent) and ("linear" in title) == ("R" in latent)
    _check_png(fig, tmp_path / "strip.png")


# -- animations ------------------------------------------------------------------------------------
def _frames(path: Path) -> int:
    with Image.open(path) as img:
        return int(getattr(img, "n_frames", 1))


def test_save_gif_frame_count_and_atomic(tmp_path: Path) -> None:
    fig = Figure(figsize=(2, 2))
    ax = fig.add_subplot()
    target = tmp_path / "sub" / "count.gif"

    def draw(i: int) -> None:
        ax.cla()
        ax.plot([0, 1], [0, i])
        ax.set_title(str(i))

    assert save_gif(fig, draw, 7, target) == target
    assert _frames(target) == 7
    assert [p.name for p in target.parent.iterdir()] == ["count.gif"]  # no temporary left behind


def test_rotating_sphere_gif(tmp_path: Path) -> None:
    path = rotating_sphere_gif(_unit(50, 3), tmp_path / "rot.gif", _labels(50), frames=6)
    assert _frames(path) == 6


@pytest.mark.parametrize(("latent", "factor"), [("S2", 0), ("R2", 0), ("S1xR2", 1)])
def test_spiral_decoding_gif(tmp_path: Path, latent: str, factor: int) -> None:
    path = spiral_decoding_gif(_model(latent), tmp_path / "spiral.gif", factor=factor, frames=5)
    assert _frames(path) == 5


@pytest.mark.parametrize(("d", "latent"), [(3, None), (2, None), (6, None), (4, "S1xR2")])
def test_latent_evolution_gif(tmp_path: Path, d: int, latent: str | None) -> None:
    epochs, n = 8, 40
    if latent is None:
        lat = torch.stack([_unit(n, d, seed=e) for e in range(epochs)])
    else:
        lat = torch.cat(
            [torch.stack([_unit(n, 2, seed=e) for e in range(epochs)]), torch.randn(epochs, n, 2)],
            -1,
        )
    path = latent_evolution_gif(lat, tmp_path / "evo.gif", _labels(n), latent=latent, max_frames=5)
    assert _frames(path) == 5


# -- why a sphere, curves --------------------------------------------------------------------------
def test_why_sphere_panels(tmp_path: Path) -> None:
    fig = why_sphere(max_dim=20, dims=(2, 10, 20, 100), n=2000)
    assert len(fig.axes) == 5
    for ax, d in zip(fig.axes[1:], (2, 10, 20, 100), strict=True):
        # one vertical line at sqrt(d) besides the chi density
        xs = [line.get_xdata() for line in ax.lines]
        assert any(len(x) == 2 and np.allclose(np.asarray(x, float), math.sqrt(d)) for x in xs)
    _check_png(fig, tmp_path / "why.png")
    fig = gaussian_norms(dims=(2, 100), n=500)
    assert len(fig.axes) == 2
    _check_png(fig, tmp_path / "norms.png")


def _history(seed: int, epochs: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "epoch": e,
            "train_loss": 100 / e + rng.normal(),
            "val_negative_elbo": 100 / e + rng.normal(),
            "train_reconstruction_nll": 90.0,
            "val_reconstruction_nll": 91.0,
            "train_kl": 5.0,
            "val_kl": 5.5,
        }
        for e in range(1, epochs + 1)
    ]


def test_seed_band_curves(tmp_path: Path) -> None:
    groups = {
        "rejection": [_history(0, 6), _history(1, 6), _history(2, 5)],
        "mh": [_history(3, 6), _history(4, 6)],
    }
    fig = seed_band_curves(groups, keys=("val_negative_elbo", "val_kl"))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 2 and len(ax.collections) == 2  # a mean line and a band per group
    _check_png(fig, tmp_path / "bands.png")


def test_seed_band_curves_with_training_curves(tmp_path: Path) -> None:
    """Training metrics drawn dashed beside the validation ones, in each group's colour."""
    groups = {"rejection": [_history(0, 6), _history(1, 6)], "mh": [_history(3, 6)]}
    fig = seed_band_curves(groups, keys=("val_negative_elbo",), train_keys=("train_loss",))
    (ax,) = fig.axes
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(dashed) == 2 and len(solid) == 2 and len(ax.collections) == 2
    expected = np.mean([[r["train_loss"] for r in h] for h in groups["rejection"]], axis=0)
    np.testing.assert_allclose(dashed[0].get_ydata(), expected)
    assert dashed[0].get_color() == solid[0].get_color()
    _check_png(fig, tmp_path / "bands_train.png")
    with pytest.raises(ValueError, match="train_keys"):
        seed_band_curves(groups, keys=("val_negative_elbo", "val_kl"), train_keys=("train_loss",))


def test_result_lines(tmp_path: Path) -> None:
    """One error-bar line per series (points in x order), references as unconnected markers."""
    panels = {
        "MNIST": {"N-VAE": [(10, -94.0, 0.3), (2, -135.0, 0.5)], "S-VAE": [(2, -132.0, 0.0)]},
        "Fashion": {"S^9": [(1, -240.0, 1.0)]},
    }
    references = {"MNIST": {"published": [(2, -132.5), (10, -93.2)]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = result_lines(panels, xlabel="d", ylabel="log p(x)", references=references)
    mnist, fashion = fig.axes
    assert mnist.get_title() == "MNIST" and fashion.get_title() == "Fashion"
    assert mnist.get_xlabel() == "d" and mnist.get_ylabel() == "log p(x)"
    assert len(mnist.containers) == 2 and len(fashion.containers) == 1  # error bars per series
    n_vae = mnist.containers[0].lines[0]
    np.testing.assert_array_equal(n_vae.get_xdata(), [2, 10])
    np.testing.assert_array_equal(n_vae.get_ydata(), [-135.0, -94.0])
    (marks,) = [line for line in mnist.lines if line.get_marker() == "D"]
    np.testing.assert_array_equal(marks.get_ydata(), [-132.5, -93.2])
    assert {t.get_text() for t in mnist.get_legend().get_texts()} == {"N-VAE", "S-VAE", "published"}
    _check_png(fig, tmp_path / "results.png")
    with pytest.raises(ValueError, match="panels"):
        result_lines({}, xlabel="d", ylabel="y")
    with pytest.raises(ValueError, match="Other"):
        result_lines(panels, xlabel="d", ylabel="y", references={"Other": {}})


def test_training_curves_and_image_grid(tmp_path: Path) -> None:
    fig = training_curves(_history(0, 4))
    assert len(fig.axes) == 3
    _check_png(fig, tmp_path / "curves.png")
    fig = image_grid(torch.rand(7, 1, 8, 8), ncols=3, title="grid")
    assert fig.axes[0].images[0].get_array().shape == (3 * 9 - 1, 3 * 9 - 1)
    _check_png(fig, tmp_path / "grid.png")


def test_library_leaves_pyplot_alone() -> None:
    """Importing and using the package neither imports pyplot nor selects a backend."""
    code = (
        "import sys, torch, spherevae.plots as p;"
        "p.latent_figure(torch.nn.functional.normalize(torch.randn(20, 3), dim=1));"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
