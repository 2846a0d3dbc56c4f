"""Walk animations (spiral, interpolation) over the prior, per class for conditional models, as GIF
or MP4; the decoded figures of conditional models drawn per class.

Models are tiny and untrained (8 x 8 images): what is drawn where is under test, not what a trained
decoder draws. Frames are read back with Pillow (GIF) or the ffmpeg of imageio-ffmpeg (MP4).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image

from spherevae.models import VAE, AutoEncoder, ModelConfig
from spherevae.plots import animation, decoded_grid, interpolation_strip
from spherevae.plots.animation import (
    VIDEO_EXTRA_MESSAGE,
    interpolation_animation,
    save_animation,
    spiral_decoding_gif,
)

ORANGE = np.array([0xFF, 0x7F, 0x0E])  # the colour of label 1


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _model(latent: str, n_classes: int = 0) -> VAE:
    posterior = "vmf" if "S" in latent else "normal"
    config = ModelConfig(
        image_shape=(1, 8, 8),
        latent=latent,
        hidden_sizes=(16,),
        posterior=posterior,
        n_classes=n_classes,
    )
    return VAE(config).eval()


def _gif_frames(path: Path) -> list[np.ndarray]:
    frames = []
    with Image.open(path) as img:
        for i in range(img.n_frames):
            img.seek(i)
            frames.append(np.asarray(img.convert("RGB"), dtype=np.int64))
    return frames


def _left(frame: np.ndarray) -> np.ndarray:
    return frame[:, : frame.shape[1] // 2]


def test_plane_spiral_is_drawn_over_the_prior_density(tmp_path: Path) -> None:
    path = spiral_decoding_gif(_model("R2"), tmp_path / "spiral.gif", frames=6)
    frames = _gif_frames(path)
    assert len(frames) == 6
    left = _left(frames[0])
    shaded = (np.abs(left - 255).sum(-1) > 30).mean()
    assert shaded > 0.15, shaded  # a blank plane with the path on it is < 5% ink
    # the shading is darkest at the origin (the density's peak) and fades outwards
    blue = left[..., 2] - left[..., 0]
    h, w = blue.shape
    rows, cols = np.nonzero(blue > blue.max() - 10)
    assert abs(rows.mean() - h / 2) < h / 6 and abs(cols.mean() - w * 0.45) < w / 5
    # the marker moves: consecutive frames differ on the left
    assert (np.abs(_left(frames[0]) - _left(frames[1])).sum(-1) > 60).sum() > 10


def test_sphere_spiral_shows_the_encoded_points_in_label_colours(tmp_path: Path) -> None:
    points = torch.randn(300, 3)
    points = points / points.norm(dim=1, keepdim=True)
    labels = torch.ones(300, dtype=torch.long)
    with_points = spiral_decoding_gif(
        _model("S2"), tmp_path / "a.gif", frames=3, points=points, labels=labels
    )
    without = spiral_decoding_gif(_model("S2"), tmp_path / "b.gif", frames=3)

    def orange(path: Path) -> int:
        left = _left(_gif_frames(path)[0])
        return int((np.abs(left - ORANGE).sum(-1) < 60).sum())

    assert orange(with_points) > 100
    assert orange(without) == 0


@pytest.mark.parametrize("latent", ["S2", "R2", "S2xS3"])
def test_interpolation_animation(tmp_path: Path, latent: str) -> None:
    model = _model(latent)
    x = torch.rand(2, 1, 8, 8)
    path = interpolation_animation(model, x[0], x[1], tmp_path / "i.gif", frames=7)
    frames = _gif_frames(path)
    assert len(frames) == 7
    # the right half holds the image decoded at the moving point: the path's ends decode differently
    right = [f[:, f.shape[1] // 2 :] for f in frames]
    assert np.abs(right[0] - right[-1]).sum() > 0


def test_walks_need_a_two_dimensional_factor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="S\\^2 or R\\^2 factor"):
        spiral_decoding_gif(_model("S3"), tmp_path / "x.gif", frames=2)
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="S\\^2 or R\\^2 factor"):
        interpolation_animation(_model("R5"), x[0], x[1], tmp_path / "x.gif", frames=2)
    with pytest.raises(ValueError, match=r"factor must be in 0\.\.1, got factor=2"):
        spiral_decoding_gif(_model("S2xR2"), tmp_path / "x.gif", factor=2, frames=2)
    with pytest.raises(ValueError, match="frames must be >= 1, got frames=0"):
        spiral_decoding_gif(_model("R2"), tmp_path / "x.gif", frames=0)
    with pytest.raises(ValueError, match="frames must be >= 2"):
        interpolation_animation(_model("R2"), x[0], x[1], tmp_path / "x.gif", frames=1)
    assert not (tmp_path / "x.gif").exists()


def test_mp4_has_every_frame(tmp_path: Path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = spiral_decoding_gif(_model("R2"), tmp_path / "spiral.mp4", frames=9)
    assert path.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert n_frames == 9


def test_mp4_without_the_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(animation, "video_available", lambda: False)
    figure = matplotlib.figure.Figure()
    with pytest.raises(ImportError, match=r"spherevae\[video\]"):
        save_animation(figure, lambda i: None, 3, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        save_animation(figure, lambda i: None, 3, tmp_path / "a.avi")
    assert not list(tmp_path.iterdir())
    assert "imageio-ffmpeg" in VIDEO_EXTRA_MESSAGE


# -- conditional models, per class ------------------------------------------------------------------
def test_conditional_decoded_grid_has_one_panel_per_class() -> None:
    model = _model("S2", n_classes=4)
    figure = decoded_grid(model, n=3, classes=[0, 1, 2, 3])
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [f"class {k}" for k in range(4)]
    assert all(len(ax.images) == 3 * 6 for ax in panels)
    # the same grid decoded with another label draws other images
    first = [im.get_array() for im in panels[0].images]
    second = [im.get_array() for im in panels[1].images]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="per class"):
        decoded_grid(model)
    with pytest.raises(ValueError, match="not"):
        decoded_grid(_model("S2"), classes=[0])


def test_conditional_interpolation_strip_one_row_per_class() -> None:
    model = _model("R2", n_classes=3)
    x = torch.rand(3, 1, 8, 8)
    figure = interpolation_strip(model, x, x.flip(0), steps=4, labels=torch.tensor([0, 1, 2]))
    (image,) = figure.axes[0].images
    height = image.get_array().shape[0]
    assert height == 3 * 8 + 2  # three rows of 8-pixel tiles, 1-pixel gaps
    with pytest.raises(ValueError, match="labels y"):
        interpolation_strip(model, x, x)


def test_conditional_spiral_decodes_each_class(tmp_path: Path) -> None:
    model = _model("S2", n_classes=10)
    path = spiral_decoding_gif(model, tmp_path / "c.gif", frames=3, classes=range(10))
    assert len(_gif_frames(path)) == 3
    with pytest.raises(ValueError, match="per class"):
        spiral_decoding_gif(model, tmp_path / "d.gif", frames=3)


def test_auto_encoder_walks(tmp_path: Path) -> None:
    config = ModelConfig(image_shape=(1, 8, 8), latent="R2", hidden_sizes=(16,), kind="autoencoder")
    model = AutoEncoder(config).eval()
    path = spiral_decoding_gif(model, tmp_path / "ae.gif", frames=3)
    assert len(_gif_frames(path)) == 3


# -- latent means as maps, t-SNE --------------------------------------------------------------------
def _clusters(n_per: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three tight clusters of unit vectors in R^d around the first three axes."""
    g = torch.Generator().manual_seed(5)
    centres = torch.eye(d)[:3]
    labels = torch.arange(3).repeat_interleave(n_per)
    z = centres[labels] + 0.05 * torch.randn(len(labels), d, generator=g)
    return z / z.norm(dim=1, keepdim=True), labels


def test_latent_means_sphere_beside_its_hammer_map() -> None:
    from mpl_toolkits.mplot3d.axes3d import Axes3D

    from spherevae.plots import latent_figure

    z, labels = _clusters(20, 3)
    figure = latent_figure(z, labels, latent="S2", s2_view=("sphere", "hammer"))
    sphere, hammer = figure.axes
    assert isinstance(sphere, Axes3D) and not isinstance(hammer, Axes3D)
    assert "Hammer" in hammer.get_title()
    assert sum(len(c.get_offsets()) for c in hammer.collections) == 60  # every point, far side too
    product = latent_figure(
        torch.cat([z, torch.randn(60, 2)], 1), latent="S2xR2", s2_view=("sphere", "hammer")
    )
    assert len(product.axes) == 3
    with pytest.raises(ValueError, match="s2_view"):
        latent_figure(z, latent="S2", s2_view=("globe",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("latent", "d", "metric"), [("S4", 5, "cosine"), ("S2xS1", 5, "euclidean")]
)
def test_tsne_figure_embeds_all_coordinates(latent: str, d: int, metric: str) -> None:
    from spherevae.plots import tsne_figure

    z, labels = _clusters(15, d)
    if latent == "S2xS1":  # two unit blocks
        z = torch.cat(
            [
                z[:, :3] / z[:, :3].norm(dim=1, keepdim=True),
                z[:, 3:] / z[:, 3:].norm(dim=1, keepdim=True),
            ],
            1,
        )
    figure = tsne_figure(z, labels, latent=latent)
    (ax,) = [a for a in figure.axes if a.collections]
    title = ax.get_title()
    assert f"t-SNE of all {d} coordinates of {latent}" in title and metric in title
    xy = np.asarray(ax.collections[0].get_offsets())
    assert xy.shape == (45, 2)
    # the embedding, not the raw coordinates, and it keeps the clusters: 1-NN labels agree
    assert not np.allclose(xy, z[:, :2].numpy())
    distance = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(45) * 1e9
    assert (labels.numpy()[distance.argmin(1)] == labels.numpy()).mean() > 0.9


def test_tsne_figure_refuses_two_coordinates_and_few_points() -> None:
    from spherevae.plots import tsne_figure

    with pytest.raises(ValueError, match="at least 3 coordinates"):
        tsne_figure(torch.randn(50, 2), latent="R2")
    with pytest.raises(ValueError, match="at least 10 points"):
        tsne_figure(torch.randn(5, 4))
