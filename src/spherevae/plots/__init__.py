"""Figures of a run: image grids, training curves, latent means coloured by label.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``; figures are
built with the object-oriented API on a fresh ``Figure`` (no global pyplot state), so they work under
any backend, the CLI's Agg included. :func:`save_figure` writes a PNG atomically.
"""

from .basic import image_grid, latent_scatter, save_figure, training_curves

__all__ = ["image_grid", "latent_scatter", "save_figure", "training_curves"]
