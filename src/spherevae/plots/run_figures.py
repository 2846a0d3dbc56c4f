"""The figures of a run directory, by name: what ``spherevae train`` and ``spherevae plot`` write.

``spherevae plot RUN_DIR [WHAT...]`` draws the named figures into ``RUN_DIR/plots`` (all of them when
none is named); ``spherevae train`` draws :data:`TRAIN_FIGURES` at the end of a run. A figure that does
not apply to the run (a map of ``S^2`` for an ``S^10`` latent, a spiral on an ``S^5`` latent) is
skipped with a line saying why. A conditional model's decoded figures are drawn once per class.
The animations (:data:`ANIMATIONS`) are GIFs, or MP4 videos with ``animation_format="mp4"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..data import DatasetSplits, evaluation_images
from ..models import VAE, AutoEncoder
from ..rundir import LATENTS, MODEL_DIR, PLOTS_DIR, read_metrics
from .animation import (
    ANIMATION_FORMATS,
    interpolation_animation,
    latent_evolution_gif,
    rotating_sphere_gif,
    spiral_decoding_gif,
)
from .basic import image_grid, save_figure
from .curves import training_curves
from .decoded import decoded_grid
from .interpolation import interpolation_strip
from .samplers import sampler_histograms, sampler_spheres
from .sphere import MIN_TSNE_POINTS, latent_figure, sphere_views, tsne_figure
from .why_sphere import why_sphere

__all__ = ["ANIMATIONS", "RUN_FIGURES", "TRAIN_FIGURES", "write_run_figures"]

#: name -> what it shows (file ``RUN_DIR/plots/<name>.png`` or ``.gif``)
RUN_FIGURES: dict[str, str] = {
    "reconstructions": "test images and their reconstructions",
    "prior_samples": "images decoded from prior samples (one row per class if conditional)",
    "latent_means": "test latent means coloured by label, one panel per factor (S^2: the 3-D "
    "view and the Hammer map)",
    "curves": "training and validation objective, reconstruction and KL per epoch",
    "latent_maps": "S^2 latents: shaded sphere, Hammer and Mollweide maps",
    "latent_tsne": "t-SNE of all the latent coordinates (cosine distance on one sphere, "
    "Euclidean otherwise; fixed seed); skipped for 2-D latents",
    "decoded_grid": "images decoded on a grid of the first S^1, S^2 or R^2 factor",
    "interpolation": "decoded geodesic (slerp) path between two test images",
    "samplers": "vMF samplers and Power Spherical on S^2 for kappa in {1, 10, 100}",
    "sampler_histograms": "w = mu.z of each sampler against its exact density, at the latent's m",
    "why_sphere": "unit-ball volume against n; norms of Gaussian samples in 2..100 dimensions",
    "rotation": "GIF: the latent sphere S^2 turning",
    "spiral": "animation: a spiral on S^2 (shaded, with the test points) or R^2 (over the prior's "
    "density) with the decoded image beside the moving point",
    "evolution": "GIF: the latent means of tracked validation images after each epoch",
    "interpolation_animation": "animation: the geodesic between two test images on S^2 or R^2, "
    "drawn as the spiral, with the decoded image beside the moving point",
}
TRAIN_FIGURES = ("reconstructions", "prior_samples", "latent_means", "curves")
#: the figures that are animations (``.gif`` or ``.mp4``)
ANIMATIONS = ("rotation", "spiral", "evolution", "interpolation_animation")


class _Skip(Exception):
    """This figure does not apply to this run."""


def write_run_figures(
    run_dir: Path,
    splits: DatasetSplits,
    dynamic: bool,
    what: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    animation_format: str = "gif",
) -> list[Path]:
    """Draw the figures named in ``what`` (default: all of :data:`RUN_FIGURES`); returns their paths.

    Args:
        animation_format: ``"gif"`` or ``"mp4"`` (needs the optional ``video`` extra), the file
            format of the :data:`ANIMATIONS`.

    Raises:
        ValueError: for an unknown figure name (naming it and the known ones) or format.
        ImportError: ``"mp4"`` without the ``video`` extra.
    """
    from ..models import from_pretrained

    names = list(what) if what else list(RUN_FIGURES)
    unknown = [n for n in names if n not in RUN_FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; known: {', '.join(RUN_FIGURES)}")
    if animation_format not in ANIMATION_FORMATS:
        raise ValueError(
            f"animation_format must be one of {', '.join(ANIMATION_FORMATS)}, got "
            f"{animation_format!r}"
        )
    model = from_pretrained(run_dir / MODEL_DIR)
    model.eval()
    context = _RunContext(run_dir, model, splits, dynamic, read_metrics(run_dir))
    written = []
    for name in names:
        suffix = f".{animation_format}" if name in ANIMATIONS else ".png"
        path = run_dir / PLOTS_DIR / f"{name}{suffix}"
        try:
            with torch.no_grad():
                torch.manual_seed(0)
                _DRAW[name](context, path)
        except _Skip as why:
            log(f"{name}: skipped ({why})")
            continue
        written.append(path)
    return written


class _RunContext:
    def __init__(
        self,
        run_dir: Path,
        model: VAE | AutoEncoder,
        splits: DatasetSplits,
        dynamic: bool,
        history: list[dict[str, float]],
    ) -> None:
        self.run_dir, self.model, self.splits, self.history = run_dir, model, splits, history
        test = splits.test
        self.images = evaluation_images(test.images, dynamic)
        self.labels = test.labels
        self.labelled = splits.info.labelled
        self.conditional = isinstance(model, VAE) and model.n_classes > 0
        # said in the titles of the figures of data: a stand-in is not the data set it replaces
        self.data_note = f" ({splits.info.name} stand-in)" if splits.info.substitute else ""

    def vae(self) -> VAE:
        if not isinstance(self.model, VAE):
            raise _Skip("needs a VAE, this run is an auto-encoder")
        return self.model

    def images_drawn(self) -> None:
        """Skip a figure that draws decoded images when the data are vectors."""
        if len(self.splits.info.image_shape) != 3:
            raise _Skip("draws images, and this data set holds vectors")

    def points(self, n: int = 2000) -> tuple[Tensor, Tensor | None]:
        """Latent modes (``mu`` on spheres) of the first ``n`` test images and their labels."""
        from ..evaluation import latent_modes

        images, labels = self.images[:n], self.labels[:n]
        modes = latent_modes(self.model, images, labels if self.conditional else None, 500)
        return modes, (labels if self.labelled else None)

    def sphere_factor_dim(self) -> int:
        """Ambient size of the first sphere factor (3 when there is none)."""
        spheres = [f.ambient for f in self.model.latent.factors if f.is_sphere]
        return spheres[0] if spheres else 3

    def classes(self) -> list[int] | None:
        """A conditional model's classes (drawn one panel or row each), else ``None``."""
        return list(range(self.vae().n_classes)) if self.conditional else None  # VAEs only

    def pair_of_two_classes(self) -> tuple[int, int]:
        """Test image 0 and the first test image of another label (image 1 without labels)."""
        if len(self.images) < 2:
            raise _Skip("needs two test images")
        if self.labelled:
            others = (self.labels != self.labels[0]).nonzero().flatten()
            if len(others):
                return 0, int(others[0])
        return 0, 1

    def pair_of_class(self, label: int) -> tuple[int, int] | None:
        """The first two test images of ``label`` (``None`` when there are fewer)."""
        found = (self.labels == label).nonzero().flatten()
        return (int(found[0]), int(found[1])) if len(found) >= 2 else None

    def is_s2(self) -> bool:
        return str(self.model.latent) == "S2"


def _reconstructions(c: _RunContext, path: Path) -> None:
    c.images_drawn()
    x = c.images[:10]
    if isinstance(c.model, VAE):
        recon = c.model.reconstruct(x, c.labels[:10] if c.conditional else None)
    else:
        recon = c.model.reconstruct(x)
    title = "test images (top) and reconstructions" + c.data_note
    save_figure(image_grid(torch.cat([x, recon]), ncols=10, title=title), path)


def _prior_samples(c: _RunContext, path: Path) -> None:
    c.images_drawn()
    model = c.vae()
    if c.conditional:
        classes = torch.arange(model.n_classes).repeat_interleave(10)
        figure = image_grid(
            model.generate(len(classes), classes),
            title="samples from the prior, one row per class" + c.data_note,
        )
    else:
        figure = image_grid(model.generate(50), title="samples from the prior" + c.data_note)
    save_figure(figure, path)


def _latent_means(c: _RunContext, path: Path) -> None:
    points, labels = c.points()
    title = "test latent means" + c.data_note
    # each S^2 factor twice: the 3-D view and the Hammer map, which shows the far side too
    figure = latent_figure(
        points, labels, latent=c.model.latent, s2_view=("sphere", "hammer"), title=title
    )
    save_figure(figure, path)


def _curves(c: _RunContext, path: Path) -> None:
    if not c.history:
        raise _Skip("no metrics.csv")
    save_figure(training_curves(c.history), path)


def _latent_maps(c: _RunContext, path: Path) -> None:
    if not c.is_s2():
        raise _Skip(f"needs an S2 latent, this one is {c.model.latent}")
    points, labels = c.points()
    save_figure(sphere_views(points, labels, title="test latent means on S^2"), path)


def _latent_tsne(c: _RunContext, path: Path) -> None:
    d = c.model.latent.ambient_dim
    if d < 3:
        raise _Skip(
            f"latent {c.model.latent} has {d} coordinates, which latent_means draws as they are; "
            f"t-SNE would only distort them"
        )
    points, labels = c.points(500)
    if len(points) < MIN_TSNE_POINTS:
        raise _Skip(f"t-SNE needs at least {MIN_TSNE_POINTS} test images, got {len(points)}")
    figure = tsne_figure(
        points, labels, latent=c.model.latent, seed=0, title="test latent means" + c.data_note
    )
    save_figure(figure, path)


def _decoded_grid(c: _RunContext, path: Path) -> None:
    c.images_drawn()
    model = c.model
    first = model.latent.factors[0]
    if str(first) not in ("S1", "S2", "R2"):
        raise _Skip(f"needs an S1, S2 or R2 first factor, this one is {first}")
    save_figure(decoded_grid(model, classes=c.classes()), path)


def _interpolation(c: _RunContext, path: Path) -> None:
    c.images_drawn()
    model = c.model
    if isinstance(model, VAE) and c.conditional:
        # one row per class: two test images of that class, encoded and decoded with its label
        rows = [c.pair_of_class(k) for k in range(model.n_classes)]
        kept = [(k, pair) for k, pair in enumerate(rows) if pair is not None]
        if not kept:
            raise _Skip("no class has two test images")
        a = torch.stack([c.images[pair[0]] for _, pair in kept])
        b = torch.stack([c.images[pair[1]] for _, pair in kept])
        labels = torch.tensor([k for k, _ in kept])
        save_figure(interpolation_strip(model, a, b, steps=10, labels=labels), path)
        return
    i, j = c.pair_of_two_classes()
    figure = interpolation_strip(model, c.images[i : i + 1], c.images[j : j + 1], steps=10)
    save_figure(figure, path)


def _samplers(c: _RunContext, path: Path) -> None:
    save_figure(sampler_spheres(), path)


def _sampler_histograms(c: _RunContext, path: Path) -> None:
    save_figure(sampler_histograms(m=c.sphere_factor_dim()), path)


def _why_sphere(c: _RunContext, path: Path) -> None:
    save_figure(why_sphere(), path)


def _rotation(c: _RunContext, path: Path) -> None:
    if not c.is_s2():
        raise _Skip(f"needs an S2 latent, this one is {c.model.latent}")
    points, labels = c.points(1000)
    rotating_sphere_gif(points, path, labels)


def _walked_factor(c: _RunContext) -> VAE | AutoEncoder:
    c.images_drawn()
    model = c.model
    first = model.latent.factors[0]
    if str(first) not in ("S2", "R2"):
        raise _Skip(f"needs an S2 or R2 first factor, this one is {first}")
    return model


def _spiral(c: _RunContext, path: Path) -> None:
    model = _walked_factor(c)
    points, labels = c.points(1000)
    spiral_decoding_gif(model, path, points=points, labels=labels, classes=c.classes())


def _interpolation_animation(c: _RunContext, path: Path) -> None:
    model = _walked_factor(c)
    points, labels = c.points(1000)
    i, j = c.pair_of_two_classes()
    y = c.labels[[i, j]] if c.conditional else None
    interpolation_animation(
        model,
        c.images[i],
        c.images[j],
        path,
        y=y,
        points=points,
        labels=labels,
        classes=c.classes(),
    )


def _evolution(c: _RunContext, path: Path) -> None:
    tracked = c.run_dir / LATENTS
    if not tracked.exists():
        raise _Skip("no latents.pt: train with train.track_latents > 0")
    data = torch.load(tracked, weights_only=True)
    latent_evolution_gif(
        data["latents"], path, data["labels"] if c.labelled else None, latent=str(c.model.latent)
    )


_DRAW: dict[str, Callable[[_RunContext, Path], None]] = {
    "reconstructions": _reconstructions,
    "prior_samples": _prior_samples,
    "latent_means": _latent_means,
    "curves": _curves,
    "latent_maps": _latent_maps,
    "latent_tsne": _latent_tsne,
    "decoded_grid": _decoded_grid,
    "interpolation": _interpolation,
    "samplers": _samplers,
    "sampler_histograms": _sampler_histograms,
    "why_sphere": _why_sphere,
    "rotation": _rotation,
    "spiral": _spiral,
    "evolution": _evolution,
    "interpolation_animation": _interpolation_animation,
}
