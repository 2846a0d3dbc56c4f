"""spherevae: variational auto-encoders with hyperspherical latent spaces.

``spherevae.fit(model, train, val, out=RUN_DIR, ...)`` trains a model from Python and writes a run
directory (:mod:`spherevae.fitting`); it is imported on first use, so that ``import spherevae`` stays
light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "fit"]

if TYPE_CHECKING:
    from .fitting import fit


def __getattr__(name: str) -> Any:
    if name == "fit":
        from .fitting import fit

        return fit
    raise AttributeError(f"module 'spherevae' has no attribute {name!r}")
