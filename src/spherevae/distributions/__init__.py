"""Distributions on spheres and products of spheres, following the ``torch.distributions`` contract.

Importing this package registers the KL divergences in ``torch.distributions.kl``; each is defined
beside the class of its first argument. Layout: :mod:`.sphere` (geometry and argument checks that the
families share), :mod:`.constraints`, :mod:`.uniform`, :mod:`.von_mises_fisher` (a package, one module
per role), :mod:`.power_spherical`, :mod:`.product` and :mod:`.stacked`.
"""

from .constraints import sphere
from .power_spherical import PowerSpherical
from .product import ProductDistribution
from .sphere import normalize
from .stacked import StackedProduct
from .uniform import HypersphericalUniform
from .von_mises_fisher import VonMisesFisher

__all__ = [
    "HypersphericalUniform",
    "PowerSpherical",
    "ProductDistribution",
    "StackedProduct",
    "VonMisesFisher",
    "normalize",
    "sphere",
]
