"""The run directory: every file in it, who writes it and how it is read.

A run directory is what ``spherevae train --out RUN_DIR`` and :func:`spherevae.fit` write, and what
``--resume``, ``eval``, ``sample``, ``plot``, ``report``, ``export`` and the experiments read. This
module names its files and holds their plain readers and writers; the modules that compose the
content import the names from here::

    RUN_DIR/
      config.yaml          CONFIG: every setting, defaults included (training writes it at the start
                           of every run and resume; read by resume, eval, sample, plot, report,
                           export and the experiments through read_run_config)
      command.txt          COMMAND: the command lines that trained the run, one a line (training)
      run.json             RUN_INFO: versions, commits, status, stop reason, the data's record (name,
                           source, SHA-256, split sizes and rule, class names), whether batches were
                           binarised (training writes it at the start and end; read_run_info)
      metrics.csv          METRICS: one row per epoch (training rewrites it after every epoch from the
                           checkpoint's history; read_metrics, by plots, report and experiments)
      timing.csv           TIMING: seconds per epoch, apart from metrics.csv because wall times differ
                           between identical runs (training; append_timing)
      checkpoints/last.pt  CHECKPOINT: everything a bit-identical resume needs
                           (:mod:`spherevae.training.checkpoint`; the trainer writes it)
      manifest.json        MANIFEST: SHA-256 of config.yaml, the checkpoint and the model files,
                           checked by every reader first (:mod:`spherevae.training.manifest`)
      model/               MODEL_DIR: the best model, config.json + model.safetensors (the trainer)
                           and the model card README.md (:mod:`spherevae.training.model_card`);
                           read with :func:`spherevae.models.from_pretrained`
      plots/               PLOTS_DIR: figures by name (:mod:`spherevae.plots.run_figures`; training
                           draws a few, ``spherevae plot`` any)
      latents.pt           LATENTS: latent means of tracked validation examples per epoch
                           (training with ``train.track_latents > 0``; the evolution figure)
      data.npz             DATA: the arrays :func:`spherevae.fit` was given; the configuration's
                           dataset is then ``npz:RUN_DIR/data.npz`` (:func:`resolve_dataset`)
      eval_<split>.json    eval_file(split): ``spherevae eval`` scores (read by report, model card)
      tensorboard/         TENSORBOARD: event files, when TensorBoard is installed (training)
      .lock                LOCK: held while a process trains into the run (:mod:`spherevae.training.lock`)

Every file is written atomically (:mod:`spherevae.io`), so a run killed at any moment leaves the
previous version of each file intact.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import atomic_write_text

if TYPE_CHECKING:
    from .config import RunConfig

__all__ = [
    "CHECKPOINT",
    "COMMAND",
    "CONFIG",
    "DATA",
    "LATENTS",
    "LOCK",
    "MANIFEST",
    "METRICS",
    "MODEL_DIR",
    "PLOTS_DIR",
    "RUN_DIR_PREFIX",
    "RUN_INFO",
    "TENSORBOARD",
    "TIMING",
    "append_timing",
    "eval_file",
    "holds_run",
    "read_metrics",
    "read_run_config",
    "read_run_info",
    "resolve_dataset",
    "write_metrics",
]

CONFIG = "config.yaml"
COMMAND = "command.txt"
RUN_INFO = "run.json"
METRICS = "metrics.csv"
TIMING = "timing.csv"
CHECKPOINT = "checkpoints/last.pt"
MANIFEST = "manifest.json"
MODEL_DIR = "model"
PLOTS_DIR = "plots"
LATENTS = "latents.pt"
DATA = "data.npz"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
#: a dataset path starting with this names a file inside the run directory itself
RUN_DIR_PREFIX = "RUN_DIR/"


def eval_file(split: str) -> str:
    """The name of ``spherevae eval``'s scores of ``split`` (``eval_test.json``)."""
    return f"eval_{split}.json"


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run (its configuration or a checkpoint), finished or not."""
    return (run_dir / CONFIG).exists() or (run_dir / CHECKPOINT).parent.exists()


def read_run_config(run_dir: Path) -> RunConfig:
    """The resolved configuration of a run directory (``config.yaml``, every setting present).

    Raises:
        ConfigError: naming the file, for a missing, unreadable or incomplete configuration.
    """
    from .config import load_config

    return load_config(run_dir / CONFIG, complete=True)


def read_run_info(run_dir: Path) -> dict[str, Any] | None:
    """``run.json`` as a dict; ``None`` when the run has none.

    Raises:
        ValueError: ``run.json`` is there but not readable as a JSON object (naming it).
    """
    path = run_dir / RUN_INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return info


def resolve_dataset(dataset: str, run_dir: Path | None) -> str:
    """``dataset`` with a path inside the run (``npz:RUN_DIR/data.npz``) made a real path.

    A run whose data are a file in the run directory (:func:`spherevae.fit` given arrays) names it
    relative to the run, so that the run can be moved or copied. Any other name is returned as is.

    Raises:
        ValueError: such a name without a run directory to resolve it in.
    """
    prefix, _, path = dataset.partition(":")
    if not path.startswith(RUN_DIR_PREFIX):
        return dataset
    if run_dir is None:
        raise ValueError(f"dataset {dataset!r} names a file of a run directory, but none was given")
    return f"{prefix}:{run_dir / path[len(RUN_DIR_PREFIX) :]}"


def write_metrics(
    run_dir: Path, history: Sequence[dict[str, float]], columns: Sequence[str]
) -> None:
    """Rewrite ``metrics.csv``: a header of ``columns``, one row per epoch (nan as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _csv_value(row.get(k, math.nan)) for k in columns})
    atomic_write_text(run_dir / METRICS, buffer.getvalue())


def _csv_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if math.isnan(value) else repr(float(value))


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``RUN_DIR/metrics.csv`` (empty cells as nan; no file: no rows).

    Raises:
        ValueError: naming the file and line, for a row that is cut short or not numbers.
    """
    path = run_dir / METRICS
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                if None in row or None in row.values():
                    raise ValueError("wrong number of columns")
                rows.append({k: float(v) if v != "" else math.nan for k, v in row.items()})
            except ValueError as err:
                raise ValueError(f"{path}, line {line}: not a metrics row ({err})") from None
    return rows


def append_timing(run_dir: Path, epoch: int, seconds: float) -> None:
    """Record ``seconds`` for ``epoch`` in ``timing.csv`` (replacing an earlier row of that epoch)."""
    path = run_dir / TIMING
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else ["epoch,seconds"]
    lines = [line for line in lines if not line.startswith(f"{epoch},")]
    lines.append(f"{epoch},{seconds:.3f}")
    atomic_write_text(path, "\n".join(lines) + "\n")
