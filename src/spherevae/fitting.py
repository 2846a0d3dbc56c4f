"""Train from Python: ``spherevae.fit(model, train, val, out=RUN_DIR, epochs=..., ...)``.

:func:`fit` writes the same run directory as ``spherevae train`` (:mod:`spherevae.rundir`), so that
``spherevae eval``, ``sample``, ``plot``, ``report``, ``export`` and ``--resume`` work on it. The
data are kept in the run (``data.npz``, its SHA-256 in ``run.json``): a run reloads them from itself,
and can be moved or copied. Calling :func:`fit` again with the same ``out`` resumes the run from its
last checkpoint, bit for bit as if it had not stopped.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .config import RunConfig, TrainConfig, config_from_dict, config_to_dict
from .io import atomic_write
from .models import VAE, AutoEncoder
from .rundir import DATA, RUN_DIR_PREFIX, holds_run, read_run_config

__all__ = ["DEFAULT_MAX_DATA_BYTES", "data_arrays", "fit"]

#: the largest data (train and validation together, as stored) that :func:`fit` keeps in a run
DEFAULT_MAX_DATA_BYTES = 2 * 1024**3
#: the settings of the data section that :func:`fit` takes by name (the rest describe a data source)
_DATA_SETTINGS = ("batch_size", "eval_batch_size", "binarize", "train_limit")
_TRAIN_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig))

Data = Tensor | np.ndarray | tuple[Any, Any] | Dataset[Any] | DataLoader[Any]


def fit(
    model: VAE | AutoEncoder,
    train: Data,
    val: Data | None = None,
    *,
    out: str | os.PathLike[str],
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    log: Callable[[str], None] | None = None,
    **settings: Any,
) -> Path:
    """Train ``model`` on ``train`` and write the run directory ``out``; returns ``out``.

    The data: a tensor or numpy array of examples ``(N, *model.config.image_shape)`` (images in
    ``[0, 1]`` or ``uint8``; vectors of any finite values), a pair ``(x, y)`` with integer labels
    ``(N,)``, a :class:`~torch.utils.data.Dataset` or a :class:`~torch.utils.data.DataLoader`
    yielding ``x`` or ``(x, y)``. They are read once, in order, and stored in ``out/data.npz``
    (``val`` as the validation and the test split); without ``val``, ``train`` is split 80/10/10
    by the fixed-seed rule of ``--dataset npz:`` (:mod:`spherevae.data.npz`). A conditional model
    (``n_classes > 0``) needs labels.

    Resuming: when ``out`` already holds a run, ``fit`` continues it from its last checkpoint
    (bit-identical to a run that was never stopped). The data must be the same as the stored ones
    and the model's configuration the run's; settings may change only where ``--resume`` allows
    (``epochs``, ``lr``, ``beta``, ``patience``, ``device``, ``compiled_sampling``), e.g. a larger
    ``epochs`` trains on. The checkpoint's weights are loaded into ``model``.

    After the call ``model`` holds the last epoch's weights; ``out/model`` holds the best
    (:func:`spherevae.models.from_pretrained`).

    Args:
        model: a :class:`~spherevae.models.VAE` or :class:`~spherevae.models.AutoEncoder`; a
            registered network (:func:`spherevae.models.register_network`) is rebuilt by name.
        train: the training data.
        val: the validation data (also the run's test split).
        out: the run directory.
        max_data_bytes: the largest data (as float32) that ``fit`` stores in the run.
        log: prints one line (default: standard output).
        **settings: training settings by name: any field of
            :class:`~spherevae.config.TrainConfig` (``epochs``, ``lr``, ``beta``, ``kl_warmup``,
            ``kl_target``, ``seed``, ``device``, ...) and ``batch_size``, ``eval_batch_size``,
            ``binarize``, ``train_limit`` of :class:`~spherevae.config.DataConfig`.

    Raises:
        ValueError: an unknown setting, data of the wrong shape or kind, data above
            ``max_data_bytes``, a model that does not fit the data, or a resume with other data,
            another model or a setting a resume cannot change (each naming what is wrong).
    """
    from .training.run import train_run
    from .training.trainer import print_line

    if not isinstance(model, VAE | AutoEncoder):
        raise TypeError(f"model must be a spherevae VAE or AutoEncoder, got {type(model).__name__}")
    unknown = [key for key in settings if key not in _DATA_SETTINGS + _TRAIN_SETTINGS]
    if unknown:
        raise ValueError(
            f"fit got an unknown setting {unknown[0]}={settings[unknown[0]]!r}; known: "
            f"{', '.join(_DATA_SETTINGS + _TRAIN_SETTINGS)}"
        )
    run_dir = Path(out)
    arrays = data_arrays(train, val, model.config.image_shape)
    size = sum(a.nbytes for a in arrays.values())
    if size > max_data_bytes:
        raise ValueError(
            f"the data take {size / 1e9:.2f} GB, more than fit keeps in a run "
            f"(max_data_bytes={max_data_bytes}); raise max_data_bytes, or save them as an .npz file "
            f"and train with `spherevae train --dataset npz:PATH`"
        )
    log = log if log is not None else print_line
    data = {key: settings[key] for key in _DATA_SETTINGS if key in settings}
    train_settings = {key: settings[key] for key in _TRAIN_SETTINGS if key in settings}
    if holds_run(run_dir):
        changes = _resume_changes(run_dir, model, arrays, data, train_settings)
        return train_run(
            None, None, resume=run_dir, settings=changes, log=log, model=model, command=_COMMAND
        )
    raw = config_to_dict(RunConfig(model=model.config))
    raw["data"] = {"dataset": f"npz:{RUN_DIR_PREFIX}{DATA}", **data}
    raw["train"] = train_settings
    config = config_from_dict(raw, source="fit settings")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / DATA, lambda f: f.write(buffer.getbuffer()))
    return train_run(config, run_dir, log=log, model=model, command=_COMMAND)


_COMMAND = "spherevae.fit(...)"


def _resume_changes(
    run_dir: Path,
    model: VAE | AutoEncoder,
    arrays: dict[str, np.ndarray],
    data: dict[str, Any],
    train: dict[str, Any],
) -> dict[str, Any]:
    """The dotted settings that differ from the run's recorded ones (which a resume then checks)."""
    recorded = read_run_config(run_dir)
    if model.config != recorded.model:
        raise ValueError(
            f"{run_dir} holds a run of another model ({recorded.model}); resume it with that "
            f"model's configuration, or give fit another out"
        )
    try:
        with np.load(run_dir / DATA, allow_pickle=False) as stored:
            same = set(stored.files) == set(arrays) and all(
                np.array_equal(stored[key], value) for key, value in arrays.items()
            )
    except OSError as err:
        raise ValueError(f"cannot read {run_dir / DATA}, the run's data: {err}") from None
    if not same:
        raise ValueError(
            f"{run_dir} holds a run on other data ({run_dir / DATA}); resume it with the same "
            f"data, or give fit another out"
        )
    old = config_to_dict(recorded)
    # a setting left out keeps the run's value; a given one that differs is a change to check
    return {
        f"{section}.{key}": value
        for section, given in (("data", data), ("train", train))
        for key, value in given.items()
        if old[section][key] != value
    }


def data_arrays(train: Data, val: Data | None, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The arrays :func:`fit` stores in ``RUN_DIR/data.npz``, in the layout of ``--dataset npz:``.

    ``x`` and ``y`` from ``train``; ``x_val``/``y_val`` and the same as ``x_test``/``y_test`` from
    ``val`` when given (see :func:`fit` for the kinds of data). Saved with ``numpy.savez``, they
    also train from the command line (``spherevae train --dataset npz:PATH``).

    Args:
        train: the training data.
        val: the validation data, or ``None``.
        shape: the shape of one example (``model.config.image_shape``).

    Raises:
        ValueError: examples of another shape, no examples, labels that are not one integer per
            example, or labels for only one of ``train`` and ``val``.
        TypeError: data of an unsupported kind.
    """
    x, y = _examples("train", train, shape)
    arrays = {"x": x, **({"y": y} if y is not None else {})}
    if val is not None:
        x_val, y_val = _examples("val", val, shape)
        if (y is None) != (y_val is None):
            raise ValueError("give labels for both train and val, or for neither")
        for split in ("val", "test"):
            arrays[f"x_{split}"] = x_val
            if y_val is not None:
                arrays[f"y_{split}"] = y_val
    return arrays


def _examples(
    name: str, data: Data, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` of one split as numpy arrays, checked against the model's example shape."""
    if isinstance(data, Tensor | np.ndarray):
        xs, ys = [_array(data)], None
    elif isinstance(data, tuple) and len(data) == 2:
        xs, ys = [_array(data[0])], [_array(data[1])]
    elif isinstance(data, DataLoader | Dataset):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
        xs, ys = _gather(name, loader)
    else:
        raise TypeError(
            f"{name} must be a tensor, a numpy array, a pair (x, y), a Dataset or a DataLoader; "
            f"got {type(data).__name__}"
        )
    x = np.concatenate(xs) if xs else np.zeros((0, *shape), np.float32)
    if x.shape[1:] != tuple(shape) or len(x) == 0:
        raise ValueError(
            f"{name} must hold examples of the model's shape {tuple(shape)} "
            f"(model.config.image_shape), got an array of shape {x.shape}"
        )
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
    if ys is None:
        return x, None
    y = np.concatenate(ys)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{name}: the labels must be {len(x)} integers (one per example), got dtype {y.dtype} "
            f"and shape {y.shape}"
        )
    return x, y.astype(np.int64)


def _gather(name: str, loader: Iterable[Any]) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Every batch of ``loader`` (``x`` or ``(x, y, ...)``), in order."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for batch in loader:
        if isinstance(batch, list | tuple):
            xs.append(_array(batch[0]))
            if len(batch) > 1:
                ys.append(_array(batch[1]))
        else:
            xs.append(_array(batch))
    if ys and len(ys) != len(xs):
        raise ValueError(f"{name}: some batches have labels and some do not")
    return xs, (ys or None)


def _array(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
