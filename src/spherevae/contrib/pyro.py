"""spherevae's distributions as Pyro distributions (``pip install 'spherevae[pyro]'``).

Each class here is the :mod:`spherevae.distributions` class of the same name with Pyro's
``TorchDistributionMixin``, the way Pyro wraps ``torch.distributions`` itself: the same parameters,
shapes, samplers, densities and registered KL divergences, plus what Pyro expects of a distribution,
so that it works in a Pyro program::

    import pyro
    from spherevae.contrib.pyro import HypersphericalUniform, VonMisesFisher

    def model(data):                                   # data: (N, 3) unit vectors
        mu = pyro.sample("mu", HypersphericalUniform(3))
        with pyro.plate("data", len(data)):
            pyro.sample("x", VonMisesFisher(mu, torch.tensor(5.0)), obs=data)

    def guide(data):
        loc = pyro.param("loc", torch.tensor([0.0, 0.0, 1.0]))
        kappa = pyro.param("kappa", torch.tensor(1.0), constraint=constraints.positive)
        pyro.sample("mu", VonMisesFisher(loc / loc.norm(), kappa))

- calling a distribution draws a sample; ``.to_event``, ``.expand_by``, ``.mask``, plates, ``poutine``
  handlers and ``pyro.infer.Predictive`` work as for Pyro's own distributions;
- the support of the spheres is Pyro's own ``constraints.sphere`` (products: the product of their
  factors' supports);
- samples are reparameterised (``has_rsample``), so ``Trace_ELBO`` uses pathwise gradients, with the
  unbiased concentration gradients of the von Mises-Fisher samplers;
- ``TraceMeanField_ELBO`` uses the closed-form KL divergences registered for the spherevae classes
  (von Mises-Fisher and Power Spherical against the uniform, between von Mises-Fisher distributions,
  products factor by factor).

Products keep working when their factors are these classes or spherevae's own.
"""

from __future__ import annotations

from ..extras import missing_extra

try:
    from pyro.distributions import constraints as pyro_constraints
    from pyro.distributions.torch_distribution import TorchDistributionMixin
except ModuleNotFoundError as err:  # an optional extra: the error names it
    raise missing_extra(err) from None

from .. import distributions as base

# For the type checker: Pyro's mixin declares expand() for its own classes, and the spherevae
# classes type their support as spherevae's sphere constraint; both are as intended here (Pyro wraps
# torch's own distributions the same way), hence the ignores on the class lines and supports below.

__all__ = [
    "HypersphericalUniform",
    "PowerSpherical",
    "ProductDistribution",
    "StackedProduct",
    "VonMisesFisher",
]


class VonMisesFisher(base.VonMisesFisher, TorchDistributionMixin):  # type: ignore[misc]
    """:class:`spherevae.distributions.VonMisesFisher` as a Pyro distribution."""

    support = pyro_constraints.sphere  # type: ignore[assignment]


class PowerSpherical(base.PowerSpherical, TorchDistributionMixin):  # type: ignore[misc]
    """:class:`spherevae.distributions.PowerSpherical` as a Pyro distribution."""

    support = pyro_constraints.sphere  # type: ignore[assignment]


class HypersphericalUniform(base.HypersphericalUniform, TorchDistributionMixin):  # type: ignore[misc]
    """:class:`spherevae.distributions.HypersphericalUniform` as a Pyro distribution."""

    support = pyro_constraints.sphere  # type: ignore[assignment]


class ProductDistribution(base.ProductDistribution, TorchDistributionMixin):  # type: ignore[misc, override]
    """:class:`spherevae.distributions.ProductDistribution` as a Pyro distribution."""


class StackedProduct(base.StackedProduct, TorchDistributionMixin):  # type: ignore[misc, override]
    """:class:`spherevae.distributions.StackedProduct` as a Pyro distribution."""
