"""Models: VAEs (and a plain auto-encoder) with hyperspherical, Euclidean or product latent spaces.

Build from a :class:`ModelConfig`::

    model = VAE(ModelConfig(latent="S10", posterior="vmf"))
    out = model.elbo(x)  # x: (B, 1, 28, 28) -> ElboResult(loss, reconstruction, kl, z)
    out.loss.backward()
    log_px = model.log_marginal_likelihood(x, n_samples=500)  # IWAE estimate, (B,)
    model.save_pretrained("run/model")
    model = VAE.from_pretrained("run/model")

Modules: :mod:`.latent` (latent-space names), :mod:`.config`, :mod:`.networks` (MLP/CNN),
:mod:`.heads` (posteriors), :mod:`.priors`, :mod:`.likelihoods`, :mod:`.vae`, :mod:`.autoencoder`,
:mod:`.pretrained` (save/load).
"""

from .autoencoder import AutoEncoder, AutoEncoderResult
from .config import LIKELIHOOD_FLAGS, ModelConfig
from .heads import (
    GaussianHead,
    PointHead,
    PosteriorHead,
    PowerSphericalHead,
    VonMisesFisherHead,
)
from .latent import LatentFactor, LatentSpec, parse_latent
from .likelihoods import (
    BernoulliLikelihood,
    ContinuousBernoulliLikelihood,
    GaussianLikelihood,
    Likelihood,
    build_likelihood,
)
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, build_networks
from .pretrained import from_pretrained, load_config
from .priors import build_prior
from .registry import register_network
from .vae import VAE, ElboResult

__all__ = [
    "LIKELIHOOD_FLAGS",
    "VAE",
    "AutoEncoder",
    "AutoEncoderResult",
    "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood",
    "ConvDecoder",
    "ConvEncoder",
    "ElboResult",
    "GaussianHead",
    "GaussianLikelihood",
    "LatentFactor",
    "LatentSpec",
    "Likelihood",
    "MLPDecoder",
    "MLPEncoder",
    "ModelConfig",
    "PointHead",
    "PosteriorHead",
    "PowerSphericalHead",
    "VonMisesFisherHead",
    "build_likelihood",
    "build_networks",
    "build_prior",
    "from_pretrained",
    "load_config",
    "parse_latent",
    "register_network",
]
