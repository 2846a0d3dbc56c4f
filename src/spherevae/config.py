"""Typed run configuration: what to train on, which model, how to train. Loaded from YAML, validated.

A run is described by :class:`RunConfig`, three sections deep::

    data:   {dataset: mnist, batch_size: 100, ...}        # DataConfig
    model:  {latent: S2, posterior: vmf, ...}              # spherevae.models.ModelConfig
    train:  {epochs: 200, lr: 0.001, kl_warmup: 0, ...}    # TrainConfig

Every section is a dataclass; :func:`load_config` and :func:`config_from_dict` validate types and
ranges with pydantic and reject unknown keys, naming them by their dotted path (``train.epchs``), so a
typo in a config file is an error, never a silently ignored setting. Defaults follow the papers'
MNIST setting (Davidson et al. 2018): MLP 784-256-128, Adam at 1e-3, batch 100, early stopping on
the validation objective.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Literal

from .extras import missing_extra

try:
    import pydantic
    import yaml
    from pydantic import ConfigDict, Field, TypeAdapter
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None

from .models.config import ModelConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "read_config_file",
]

_STRICT_KEYS = ConfigDict(extra="forbid")

Binarize = Literal["auto", "dynamic", "static", "none"]


class ConfigError(ValueError):
    """A configuration file or dict is malformed: unknown key, wrong type or value out of range."""


@pydantic.dataclasses.dataclass(config=_STRICT_KEYS)
class DataConfig:
    """Where the data comes from and how it is batched.

    Attributes:
        dataset: ``mnist``, ``fashion_mnist``, ``static_mnist``, ``omniglot``, ``caltech``, ``digits``
            or ``synthetic``; or your own data: ``npz:PATH``, ``folder:PATH`` (PNG/JPEG images) or
            ``csv:PATH`` (see :func:`spherevae.data.load_dataset`).
        data_dir: cache directory for downloaded files (default: the user's cache directory).
        binarize: ``dynamic`` draws a fresh Bernoulli image from the grey levels for every batch,
            ``static`` uses a fixed binarisation, ``none`` keeps grey levels; ``auto`` is ``dynamic``
            for grey-level data under a Bernoulli likelihood and ``none`` otherwise.
        batch_size: training batch size (global: split across processes under ``torchrun``).
        eval_batch_size: batch size for validation and evaluation.
        train_limit: use only the first ``train_limit`` training images (quick runs); ``None``: all.
        allow_substitute: when a data set's files cannot be had, train on its stand-in instead of
            stopping with an error (``static_mnist``: a fixed-seed binarisation of MNIST, whose
            likelihoods are not comparable with published ones). Every output of such a run says
            so (``run.json``'s ``dataset_substitute``, ``eval``, the report, figure titles).
        image_size: ``[H, W]``: resize the images of a ``folder:PATH`` data set to this size;
            ``None``: they must share one size.
        label_column: the column of integer labels of a ``csv:PATH`` data set; ``None``:
            unlabelled.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    binarize: Binarize = "auto"
    batch_size: int = Field(default=100, ge=1)
    eval_batch_size: int = Field(default=500, ge=1)
    train_limit: int | None = Field(default=None, ge=1)
    allow_substitute: bool = False
    image_size: tuple[int, int] | None = None
    label_column: str | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and min(self.image_size) < 1:
            raise ValueError(f"image_size must be [H, W] >= 1, got {list(self.image_size)}")


@pydantic.dataclasses.dataclass(config=_STRICT_KEYS)
class TrainConfig:
    """Optimisation, KL schedule, early stopping and bookkeeping.

    The KL weight at epoch ``e`` (0-based) is ``beta * clip((e - kl_freeze) / kl_warmup, 0, 1)``
    (``beta`` from the start when ``kl_warmup == 0``), and the loss is
    ``reconstruction + |weight * KL - kl_target|`` (with ``kl_target = 0`` the plain beta-ELBO), as in
    the product-space reference code.

    Early stopping: after ``burn_in`` epochs, the run keeps the model with the best validation
    objective (negative ELBO) and stops when ``patience`` epochs pass without an improvement of at
    least ``min_improvement``.

    Attributes:
        epochs: maximum number of epochs.
        lr: Adam learning rate.
        beta: final KL weight.
        kl_warmup: epochs of linear KL warm-up (0: none).
        kl_freeze: epochs at KL weight 0 before the warm-up starts.
        kl_target: KL target of the ``|weight * KL - target|`` term.
        burn_in: epochs before the best model is tracked.
        patience: epochs without improvement before stopping (the reference's look-ahead).
        min_improvement: smallest decrease of the validation objective that counts.
        max_restarts: non-finite losses tolerated; each reloads the last good state and multiplies
            the learning rate by ``restart_lr_factor``; one more ends the run with an error.
        restart_lr_factor: learning-rate factor applied at each restart.
        n_samples: latent samples per example in the training ELBO.
        seed: seed of every random number generator.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        val_every: validate every this many epochs.
        save_every: write a resumable checkpoint every this many epochs.
        print_every: log a line every this many epochs.
        val_log_likelihood: also estimate the validation log-likelihood (``ll_samples`` importance samples).
        ll_samples: importance samples for log-likelihoods (evaluation and ``val_log_likelihood``).
        track_latents: number of validation images whose latent means are stored after each epoch
            (for the animation of the latent space over training; 0: none).
        compiled_sampling: draw the von Mises-Fisher latents of the training steps with kernels
            compiled by ``torch.compile`` (the ``compiled`` argument of :class:`~spherevae.distributions.VonMisesFisher`): the
            same law and gradients in less time a step. ``auto`` (the default) and ``true``: on for
            CPU and CUDA devices (elsewhere, as on Apple's MPS, the eager code serves either way);
            ``false``: off. The first steps compile the kernels (seconds, cached on disk by torch; about
            a minute and a half once on a machine whose cache is empty); a CPU needs a C++
            compiler, without which a warning says so and the eager path serves.
    """

    epochs: int = Field(default=200, ge=0)
    lr: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    beta: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    kl_warmup: int = Field(default=0, ge=0)
    kl_freeze: int = Field(default=0, ge=0)
    kl_target: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    burn_in: int = Field(default=0, ge=0)
    patience: int = Field(default=50, ge=1)
    min_improvement: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    max_restarts: int = Field(default=20, ge=0)
    restart_lr_factor: float = Field(default=0.5, gt=0, le=1)
    n_samples: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    val_every: int = Field(default=1, ge=1)
    save_every: int = Field(default=1, ge=1)
    print_every: int = Field(default=1, ge=1)
    val_log_likelihood: bool = False
    ll_samples: int = Field(default=500, ge=1)
    track_latents: int = Field(default=0, ge=0)
    compiled_sampling: bool | Literal["auto"] = "auto"


@pydantic.dataclasses.dataclass(config=_STRICT_KEYS)
class RunConfig:
    """A whole run: :class:`DataConfig`, :class:`~spherevae.models.ModelConfig`, :class:`TrainConfig`."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


_ADAPTER = TypeAdapter(RunConfig)


SECTIONS = ("data", "model", "train")


def _field_types(section: str) -> dict[str, str]:
    """The annotation of every key of a section, as written in its dataclass."""
    cls = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}[section]
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def _check_shape(raw: dict[str, Any], source: str) -> None:
    """Refuse what pydantic would coerce or choke on: a section that is empty (``train:`` alone) or
    not a mapping, and ``true``/``false`` where a number is meant (pydantic reads ``true`` as 1)."""
    for section in SECTIONS:
        if section not in raw:
            continue
        values = raw[section]
        if values is None:
            raise ConfigError(
                f"{source}: {section}: empty section; give its keys or leave the section out"
            )
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: {section}: expected a mapping of settings, got {type(values).__name__}"
            )
        types = _field_types(section)
        for key, value in values.items():
            annotation = types.get(str(key), "bool")  # unknown keys are reported by pydantic
            items = value if isinstance(value, list) else [value]
            if "bool" not in annotation and any(isinstance(v, bool) for v in items):
                raise ConfigError(
                    f"{source}: {section}.{key}: expected {annotation}, got {str(value).lower()}"
                )


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> RunConfig:
    """Validate a nested dict (missing keys take their defaults).

    Raises:
        ConfigError: one line per problem, ``source: dotted.path: message``; also for an empty
            section or one that is not a mapping, and for ``true``/``false`` given for a number.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    _check_shape(raw, source)
    try:
        return _ADAPTER.validate_python(raw)
    except pydantic.ValidationError as err:
        problems = []
        for e in err.errors():
            path = ".".join(str(p) for p in e["loc"]) or "(top level)"
            if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
                problems.append(f"{path}: unknown key")
            else:
                message = e["msg"].removeprefix("Value error, ")
                problems.append(f"{path}: {message}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML leaves it to the reader;
    PyYAML silently keeps the last, so a second ``epochs:`` further down would win unseen)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"key {key!r} given twice (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | os.PathLike[str], *, complete: bool = False) -> dict[str, Any]:
    """The mapping of a YAML configuration file, checked but not yet validated.

    ``complete=True`` is for a run directory's ``config.yaml``, which records every setting: a file
    that lacks a section or a key (empty, truncated, edited by hand) is refused rather than read as
    defaults, which would describe another run.

    Raises:
        ConfigError: the file cannot be read, is not YAML, has a duplicate key, is not a mapping of
            sections, or (with ``complete``) lacks a setting; the message names the file.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {file}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {file} is not UTF-8 text") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except ConfigError as err:
        raise ConfigError(f"config file {file}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(
            f"config file {file} is not valid YAML: {' '.join(str(err).split())}"
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {file} must hold a mapping, got {type(raw).__name__}")
    _check_shape(raw, str(file))
    if complete:
        for section in SECTIONS:
            values = raw.get(section)
            missing = [
                k for k in _field_types(section) if not isinstance(values, dict) or k not in values
            ]
            if missing:
                raise ConfigError(
                    f"config file {file} is incomplete (a run's config records every setting): "
                    f"{section}.{missing[0]} is missing"
                )
    return raw


def load_config(path: str | os.PathLike[str], *, complete: bool = False) -> RunConfig:
    """Read and validate a YAML run configuration (see :func:`read_config_file` for ``complete``).

    Raises:
        ConfigError: if the file is missing, is not YAML, or does not validate (the message names
            the file and the dotted path of every bad key).
    """
    return config_from_dict(read_config_file(path, complete=complete), source=str(Path(path)))


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain JSON/YAML types (tuples become lists), the inverse of :func:`config_from_dict`."""
    out: dict[str, Any] = _ADAPTER.dump_python(config, mode="json")
    return out
