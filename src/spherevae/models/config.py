"""``ModelConfig``: everything needed to rebuild a model, as a small typed dataclass.

The config is the only thing saved next to the weights (``config.json``), so a model is rebuilt from
it with no pickled code (the model/config split of pythae). ``to_dict`` gives plain JSON types;
``from_dict`` rejects unknown keys, naming them, so a typo in a config file cannot be ignored.

Examples:
    >>> cfg = ModelConfig(latent="S9xR5", posterior="vmf")
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .latent import LatentSpec, parse_latent
from .registry import BUILT_IN_NETWORKS, is_known_network, unknown_network_message

__all__ = [
    "COVARIANCES",
    "LIKELIHOODS",
    "LIKELIHOOD_FLAGS",
    "MAX_IMAGE_VALUES",
    "MAX_MLP_WEIGHTS",
    "MAX_WIDTH",
    "MODEL_KINDS",
    "NETWORKS",
    "POSTERIORS",
    "SAMPLERS",
    "ModelConfig",
]

Posterior = Literal["vmf", "powerspherical", "normal"]
Sampler = Literal["rejection", "inverse_cdf", "mh"]
Covariance = Literal["diagonal", "single", "full"]
Likelihood = Literal["bernoulli", "gaussian", "continuous_bernoulli"]
ModelKind = Literal["vae", "autoencoder"]

POSTERIORS: tuple[str, ...] = get_args(Posterior)
SAMPLERS: tuple[str, ...] = get_args(Sampler)
COVARIANCES: tuple[str, ...] = get_args(Covariance)
NETWORKS: tuple[str, ...] = BUILT_IN_NETWORKS
LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)

# Sizes beyond which a config is refused before anything is allocated (a mistyped ``-hd 1e8`` or
# ``--latent S100000000``, or a crafted config.json, would otherwise ask for gigabytes to terabytes)
#: the largest latent ambient dimension (all factors together) and the widest hidden layer
MAX_WIDTH = 65_536
#: the most values in one input image (an 8192 x 8192 grey image)
MAX_IMAGE_VALUES = 2**26
#: the most weights of an MLP encoder and decoder together (4 GiB of float32)
MAX_MLP_WEIGHTS = 2**30

#: The reference run-file's ``-lf {bce,mse}`` flag in terms of likelihood names.
LIKELIHOOD_FLAGS: dict[str, str] = {"bce": "bernoulli", "mse": "gaussian"}


@dataclass(frozen=True)
class ModelConfig:
    """Description of a whole model (VAE or plain auto-encoder).

    Attributes:
        image_shape: ``(C, H, W)`` of one input image, or ``(D,)`` for vectors (MLP or a
            registered network).
        latent: latent space name (see :func:`~spherevae.models.latent.parse_latent`), e.g. ``"S10"``.
        posterior: family of ``q(z|x)`` on the sphere factors: ``"vmf"`` (von Mises-Fisher,
            Davidson et al. 2018), ``"powerspherical"`` (De Cao and Aziz 2020) or ``"normal"`` (only
            for purely Euclidean latents). Euclidean factors always get a Gaussian posterior.
        sampler: von Mises-Fisher sampler, ``"rejection"``, ``"inverse_cdf"`` or ``"mh"`` (ignored by
            the other families).
        covariance: Gaussian posterior covariance on Euclidean factors: ``"diagonal"``, ``"single"``
            (one variance per example, shared by all coordinates) or ``"full"`` (learned Cholesky factor),
            as the reference run-file's ``-cvm``.
        network: ``"mlp"`` (any image size, and vectors), ``"cnn"`` (28x28 images only), or the
            name of a network registered with :func:`~spherevae.models.register_network`.
        hidden_sizes: MLP hidden layer widths from the input side; the decoder mirrors them. The CNN
            uses ``hidden_sizes[0]`` as the width of its dense layer.
        likelihood: ``"bernoulli"``, ``"gaussian"`` or ``"continuous_bernoulli"``
            (:data:`LIKELIHOOD_FLAGS` maps ``-lf bce/mse``).
        gaussian_std: fixed standard deviation of the Gaussian likelihood; ``None`` learns one global
            scale (see :class:`~spherevae.models.likelihoods.GaussianLikelihood`).
        kind: ``"vae"`` or ``"autoencoder"`` (what :func:`~spherevae.models.from_pretrained` builds).
        n_classes: ``0`` for an unconditional model; ``k > 0`` makes a class-conditional VAE (Sohn et
            al. 2015) whose encoder head and decoder also receive the one-hot label in ``0..k-1``.
    """

    image_shape: tuple[int, ...] = (1, 28, 28)
    latent: str = "S10"
    posterior: Posterior = "vmf"
    sampler: Sampler = "rejection"
    covariance: Covariance = "diagonal"
    network: str = "mlp"
    hidden_sizes: tuple[int, ...] = field(default=(256, 128))
    likelihood: Likelihood = "bernoulli"
    gaussian_std: float | None = None
    kind: ModelKind = "vae"
    n_classes: int = 0

    def __post_init__(self) -> None:
        # JSON gives lists: store tuples so that configs compare (and hash) by value
        object.__setattr__(self, "image_shape", _int_tuple("image_shape", self.image_shape))
        if len(self.image_shape) not in (1, 3):
            raise ValueError(
                f"image_shape must be (C, H, W) for images or (D,) for vectors, got "
                f"image_shape={self.image_shape!r}"
            )
        object.__setattr__(self, "hidden_sizes", _int_tuple("hidden_sizes", self.hidden_sizes))
        spec = parse_latent(self.latent)
        _choice("posterior", self.posterior, POSTERIORS)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("covariance", self.covariance, COVARIANCES)
        if not is_known_network(self.network):
            raise ValueError(unknown_network_message(self.network))
        if self.network == "cnn" and len(self.image_shape) != 3:
            raise ValueError(
                f"network='cnn' needs images (C, H, W), got image_shape={self.image_shape!r}; use "
                f"network='mlp' for vectors"
            )
        _choice("likelihood", self.likelihood, LIKELIHOODS)
        _choice("kind", self.kind, MODEL_KINDS)
        if self.posterior == "normal" and spec.has_sphere:
            raise ValueError(
                f"posterior='normal' needs a Euclidean latent (e.g. 'R10'), got latent={self.latent!r} "
                f"with sphere factors; use posterior='vmf' or 'powerspherical'"
            )
        if not self.hidden_sizes:
            raise ValueError("hidden_sizes must hold at least one layer width, got hidden_sizes=()")
        _check_sizes(self.image_shape, self.hidden_sizes, spec, self.latent, self.network)
        if self.gaussian_std is not None and (
            isinstance(self.gaussian_std, bool)
            or not isinstance(self.gaussian_std, int | float)
            or not self.gaussian_std > 0
        ):
            raise ValueError(
                f"gaussian_std must be a positive number or None, got gaussian_std={self.gaussian_std!r}"
            )
        if (
            isinstance(self.n_classes, bool)
            or not isinstance(self.n_classes, int)
            or self.n_classes < 0
        ):
            raise ValueError(f"n_classes must be an integer >= 0, got n_classes={self.n_classes!r}")
        if self.n_classes > 0 and self.kind != "vae":
            raise ValueError(
                f"conditional models (n_classes={self.n_classes}) are VAEs; kind={self.kind!r} "
                f"is not supported"
            )

    @property
    def latent_spec(self) -> LatentSpec:
        """The parsed :attr:`latent`."""
        return parse_latent(self.latent)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["image_shape"] = list(self.image_shape)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict`'s output; missing keys take their defaults.

        Raises:
            ValueError: for a key that is not a field (naming it) or an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown model config key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        return cls(**data)


def _check_sizes(
    image_shape: tuple[int, ...],
    hidden_sizes: tuple[int, ...],
    spec: LatentSpec,
    latent: str,
    network: str,
) -> None:
    """Refuse sizes that no machine holds, naming the setting (see :data:`MAX_WIDTH` and others)."""
    if spec.ambient_dim > MAX_WIDTH:
        raise ValueError(
            f"latent={latent!r} has {spec.ambient_dim} coordinates; at most {MAX_WIDTH} are supported"
        )
    if max(hidden_sizes) > MAX_WIDTH:
        raise ValueError(
            f"hidden_sizes must be at most {MAX_WIDTH} wide, got hidden_sizes={hidden_sizes!r}"
        )
    values = math.prod(image_shape)
    if values > MAX_IMAGE_VALUES:
        raise ValueError(
            f"image_shape={image_shape!r} has {values} values; at most {MAX_IMAGE_VALUES} are supported"
        )
    if network == "mlp":
        widths = (values, *hidden_sizes)
        weights = 2 * sum(a * b for a, b in itertools.pairwise(widths))
        weights += (
            2 * hidden_sizes[-1] * spec.ambient_dim
        )  # the posterior head and the decoder's input
        if weights > MAX_MLP_WEIGHTS:
            raise ValueError(
                f"an MLP for image_shape={image_shape!r} with hidden_sizes={hidden_sizes!r} has "
                f"about {weights:.3g} weights; at most {MAX_MLP_WEIGHTS} are supported"
            )


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {name}={value!r}")


def _int_tuple(name: str, value: object, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, tuple | list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    )
    if not ok or (length is not None and len(value) != length):  # type: ignore[arg-type]
        what = f"{length} positive integers" if length else "positive integers"
        raise ValueError(f"{name} must be a sequence of {what}, got {name}={value!r}")
    return tuple(value)  # type: ignore[arg-type]
