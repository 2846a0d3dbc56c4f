"""Figures of latent spaces, samplers and runs, built with matplotlib's object-oriented API.

Every function returns a :class:`matplotlib.figure.Figure` (or writes a GIF and returns its path) and
never calls ``plt.show()`` or touches pyplot's global state: figures are built on a fresh ``Figure``,
so they work under any backend, the CLI's Agg included, and the library never calls
``matplotlib.use``. :func:`save_figure` writes a PNG atomically.

Modules, one concept each:

* :mod:`~spherevae.plots.basic`: image grids, latent scatter, PNG writing (used by ``spherevae train``);
* :mod:`~spherevae.plots.projections`: Hammer and Mollweide maps, PCA / t-SNE / UMAP of spheres;
* :mod:`~spherevae.plots.sphere`: latent points by label, per factor of the latent space;
* :mod:`~spherevae.plots.samplers`: vMF samplers and Power Spherical on ``S^2``; ``w = mu . x`` histograms
  against the exact density;
* :mod:`~spherevae.plots.decoded`: decoded latitude-longitude, ring and square grids;
* :mod:`~spherevae.plots.interpolation`: slerp and geodesic image strips;
* :mod:`~spherevae.plots.animation`: GIF or MP4 animations (rotating sphere, spiral and interpolation
  walks over the prior, latents over epochs);
* :mod:`~spherevae.plots.why_sphere`: unit-ball volume and Gaussian norm concentration;
* :mod:`~spherevae.plots.curves`: training curves, mean and spread over seeds;
* :mod:`~spherevae.plots.standalone`: the figures that need no model, by name (``spherevae figure``).
"""

from ..extras import missing_extra

try:
    import matplotlib  # noqa: F401  (every figure of this package draws with it)
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None

from ._common import display_pixels
from .animation import (
    interpolation_animation,
    latent_evolution_gif,
    latent_walk_animation,
    plane_spiral,
    rotating_sphere_gif,
    save_animation,
    save_gif,
    sphere_spiral,
    spiral_decoding_gif,
)
from .basic import image_grid, latent_scatter, save_figure
from .curves import result_lines, seed_band_curves, seed_statistics, training_curves
from .decoded import decode_factor_grid, decoded_grid, latlon_grid, ring_points, square_grid
from .interpolation import geodesic, interpolation_strip, slerp
from .projections import embed_2d, hammer, lonlat, mollweide, pca_sphere, project_map
from .samplers import (
    SAMPLER_NAMES,
    marginal_log_density,
    sample_w,
    sampler_histograms,
    sampler_spheres,
)
from .sphere import latent_figure, sphere_views, tsne_figure
from .standalone import STANDALONE_FIGURES, standalone_figure
from .why_sphere import chi_log_density, gaussian_norms, unit_ball_volume, why_sphere

__all__ = [
    "SAMPLER_NAMES",
    "STANDALONE_FIGURES",
    "chi_log_density",
    "decode_factor_grid",
    "decoded_grid",
    "display_pixels",
    "embed_2d",
    "gaussian_norms",
    "geodesic",
    "hammer",
    "image_grid",
    "interpolation_animation",
    "interpolation_strip",
    "latent_evolution_gif",
    "latent_figure",
    "latent_scatter",
    "latent_walk_animation",
    "latlon_grid",
    "lonlat",
    "marginal_log_density",
    "mollweide",
    "pca_sphere",
    "plane_spiral",
    "project_map",
    "result_lines",
    "ring_points",
    "rotating_sphere_gif",
    "sample_w",
    "sampler_histograms",
    "sampler_spheres",
    "save_animation",
    "save_figure",
    "save_gif",
    "seed_band_curves",
    "seed_statistics",
    "slerp",
    "sphere_spiral",
    "sphere_views",
    "spiral_decoding_gif",
    "square_grid",
    "standalone_figure",
    "training_curves",
    "tsne_figure",
    "unit_ball_volume",
    "why_sphere",
]
