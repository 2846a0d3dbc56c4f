"""A training run end to end: data, model, trainer, run directory, resumption, figures.

The run directory's layout (every file, who writes it, how it is read) is :mod:`spherevae.rundir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import __version__
from ..config import RunConfig, config_from_dict, config_to_dict
from ..data import DatasetSplits, load_dataset
from ..io import atomic_write, atomic_write_json, atomic_write_text, remove_partial_files
from ..models import VAE, AutoEncoder
from ..rundir import (
    CHECKPOINT,
    COMMAND,
    CONFIG,
    LATENTS,
    MODEL_DIR,
    RUN_DIR_PREFIX,
    RUN_INFO,
    TENSORBOARD,
    append_timing,
    holds_run,
    read_run_config,
    read_run_info,
    resolve_dataset,
    write_metrics,
)
from .checkpoint import load_checkpoint
from .distributed import DistContext, init_distributed, shutdown_distributed
from .lock import run_lock
from .manifest import record_sums, verify_files
from .model_card import write_model_card
from .seed import seed_everything
from .trainer import EpochRecord, Trainer, print_line

__all__ = [
    "RESUMABLE_SETTINGS",
    "RunError",
    "find_checkpoint",
    "resolve_device",
    "train_run",
]

_METRIC_FIELDS = [f.name for f in dataclasses.fields(EpochRecord)]


class RunError(ValueError):
    """A run cannot start: a run directory in the way, a missing checkpoint, an unusable device."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device='cuda' was asked for but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RunError("device='mps' was asked for but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise RunError(f"device must be auto, cpu, cuda or mps, got device={name!r}")
    return torch.device(name)


def find_checkpoint(path: Path) -> tuple[Path | None, Path | None]:
    """``(checkpoint file, run directory)`` for ``--resume PATH``.

    ``PATH`` is a run directory or a checkpoint file. A run stopped before its first checkpoint has
    none: the file is then ``None`` and the run starts again from its recorded configuration. A
    checkpoint file outside a run's ``checkpoints/`` folder belongs to no run directory (``None``):
    it can only be continued into a new one.

    Raises:
        RunError: nothing to resume at ``PATH``.
    """
    if path.is_dir():
        file = path / CHECKPOINT
        if file.is_file():
            return file, path
        if (path / CONFIG).is_file():
            return None, path
        raise RunError(
            f"--resume {path}: not a run directory (no config.yaml and no checkpoints/last.pt)"
        )
    if not path.exists():
        raise RunError(f"--resume {path}: no such run directory or checkpoint file")
    if path.parent.name != "checkpoints" or not holds_run(path.parent.parent):
        return path, None
    return path, path.parent.parent


# Settings that ``--resume`` may change, applied from the next epoch on and recorded in config.yaml.
# Every other setting describes the run itself (data, model, seed, schedule): changing it would make
# the resumed run another one, so it is refused.
RESUMABLE_SETTINGS = (
    "train.epochs",
    "train.lr",
    "train.beta",
    "train.patience",
    "train.device",
    "train.compiled_sampling",
    "data.data_dir",
)


def _apply_resume_settings(config: RunConfig, settings: dict[str, Any]) -> RunConfig:
    refused = [key for key in settings if key not in RESUMABLE_SETTINGS]
    if refused:
        raise RunError(
            f"--resume cannot change {refused[0]} (it would make another run); settings a resume "
            f"can change: {', '.join(RESUMABLE_SETTINGS)}"
        )
    raw = config_to_dict(config)
    for key, value in settings.items():
        section, name = key.split(".")
        raw[section][name] = value
    return config_from_dict(raw, source="--resume settings")


def in_unit_interval(splits: DatasetSplits) -> bool:
    """Whether every training value lies in ``[0, 1]`` (grey levels; what a Bernoulli can model)."""
    values = splits.train.images
    return bool((values.min() >= 0) & (values.max() <= 1))


def recorded_data_sha256(run_dir: Path) -> str | None:
    """The digest of a user's data (``npz:``, ``folder:``, ``csv:``) that ``RUN_DIR/run.json``
    recorded; ``None`` for the built-in data sets or a run without ``run.json``.

    Raises:
        RunError: ``run.json`` is there but not readable as a JSON object.
    """
    try:
        info = read_run_info(run_dir)
    except ValueError as err:
        raise RunError(str(err)) from None
    if info is None:
        return None
    digest = info.get("dataset_sha256")
    return None if digest is None else str(digest)


def prepare_data(config: RunConfig, run_dir: Path | None = None) -> tuple[DatasetSplits, bool]:
    """Load the data set and decide whether training batches are binarised dynamically: with
    ``binarize: auto``, grey levels in ``[0, 1]`` that are not already binary, under a Bernoulli
    likelihood.

    With ``run_dir``, the run whose data these are: your own data (a file or folder) must still
    have the digest its ``run.json`` recorded (:func:`recorded_data_sha256`), else
    :class:`~spherevae.data.DataError` names the path; nothing else is read in its place. A data
    file inside the run (``npz:RUN_DIR/data.npz``, :func:`spherevae.fit`) is read from ``run_dir``.
    """
    options: dict[str, Any] = {}
    if config.data.image_size is not None:
        options["image_size"] = tuple(config.data.image_size)
    if config.data.label_column is not None:
        options["label_column"] = config.data.label_column
    splits = load_dataset(
        resolve_dataset(config.data.dataset, run_dir),
        data_dir=config.data.data_dir,
        allow_substitute=config.data.allow_substitute,
        expected_sha256=None if run_dir is None else recorded_data_sha256(run_dir),
        **options,
    )
    binarize = config.data.binarize
    if binarize == "auto":
        grey = not splits.info.binary and in_unit_interval(splits)
        binarize = "dynamic" if config.model.likelihood == "bernoulli" and grey else "none"
    return splits, binarize == "dynamic"


def copy_run_data(config: RunConfig, source: Path, run_dir: Path) -> None:
    """Copy a data file kept inside a run (``npz:RUN_DIR/data.npz``) into ``run_dir``, the run it
    is continued in, so that the new run reloads its data from itself."""
    _, _, name = config.data.dataset.partition(":")
    if not name.startswith(RUN_DIR_PREFIX) or source.resolve() == run_dir.resolve():
        return
    relative = name[len(RUN_DIR_PREFIX) :]
    data = (source / relative).read_bytes()
    atomic_write(run_dir / relative, lambda f: f.write(data))


def build_model(config: RunConfig) -> VAE | AutoEncoder:
    return AutoEncoder(config.model) if config.model.kind == "autoencoder" else VAE(config.model)


def train_run(
    config: RunConfig | None,
    out: Path | None,
    *,
    command: str = "",
    resume: Path | None = None,
    epochs: int | None = None,
    settings: dict[str, Any] | None = None,
    conditional: bool = False,
    log: Callable[[str], None] = print_line,
    model: VAE | AutoEncoder | None = None,
) -> Path:
    """Train (or resume) a run and write its run directory; returns the run directory.

    The run directory is locked while the run writes to it (:func:`.lock.run_lock`): a second
    writer is refused. Every check (configuration, data, checkpoint) happens before the first write,
    and ``run.json`` ends with the status ``finished``, ``failed`` or ``interrupted``.

    Args:
        config: the run's configuration (``None`` when resuming: the run's own is used).
        out: the run directory for a new run; must not hold a run already. With ``resume``: a new
            directory to continue the run into (``None``: the resumed run's own).
        command: the command line, recorded in ``command.txt``.
        resume: a run directory, or a checkpoint file in a run's ``checkpoints/``, to continue; a
            run stopped before its first checkpoint starts again from its ``config.yaml``.
        epochs: with ``resume``, a new total number of epochs (same as ``settings={"train.epochs":
            epochs}``).
        settings: with ``resume``, dotted settings to change (only :data:`RESUMABLE_SETTINGS`).
        conditional: make the model class-conditional on the data set's labels (sets
            ``model.n_classes`` to the number of classes).
        log: prints one line.
        model: the model to train (default: built from the configuration); its ``config`` must be
            the run's model configuration as the data resolve it (image shape, classes,
            likelihood). A resumed run loads the checkpoint's weights into it.

    Raises:
        RunError: a run directory in the way or in use, a resume target that is not there, or a
            setting that a resume cannot change.
        CheckpointError: a missing, truncated or corrupt checkpoint.
        DataError: data that cannot be loaded.
        TrainingError: training that diverged beyond the allowed restarts.
    """
    changes = dict(settings or {})
    if epochs is not None:
        changes["train.epochs"] = epochs
    if changes and resume is None:
        raise RunError("settings to change apply to a resumed run only (--resume RUN_DIR)")
    checkpoint: dict[str, Any] | None = None
    record_dir: Path | None = None  # the run whose run.json records the data to reload
    if resume is not None:
        file, source_dir = find_checkpoint(resume)
        record_dir = source_dir
        if source_dir is not None:  # the files it resumes from are as the run wrote them
            used = [CONFIG]
            if file is not None:
                used.append(file.resolve().relative_to(source_dir.resolve()).as_posix())
            verify_files(source_dir, used)
        if file is not None:
            checkpoint = load_checkpoint(file)  # a corrupt file is the first thing to report
        if source_dir is None and out is None:
            raise RunError(
                f"--resume {resume}: a checkpoint file outside a run's checkpoints/ folder; give "
                f"--out NEW_DIR to continue it into a new run directory"
            )
        run_dir = out if out is not None else source_dir
        assert run_dir is not None
        elsewhere = source_dir is None or run_dir.resolve() != source_dir.resolve()
        if elsewhere and holds_run(run_dir):
            raise RunError(
                f"--out {run_dir} holds another run; continue {resume} in place (--resume "
                f"alone) or into a new directory"
            )
        if checkpoint is not None:
            config = config_from_dict(checkpoint["config"], source=f"checkpoint {file}")
        else:
            assert source_dir is not None  # a run directory without a checkpoint
            config = read_run_config(source_dir)
            log(f"{resume} has no checkpoint yet: training starts at epoch 1 from its config.yaml")
        config = _apply_resume_settings(config, changes)
    else:
        if out is None:
            raise RunError("a new run needs an output directory (--out RUN_DIR)")
        if config is None:
            raise RunError("a new run needs a configuration")
        run_dir = out
        if holds_run(run_dir):
            raise RunError(
                f"--out {run_dir} already holds a run; continue it with --resume {run_dir} "
                f"or choose another --out"
            )

    new_lr = changes.get("train.lr")
    device = resolve_device(config.train.device)
    context = init_distributed(device)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
    # only the main process writes, so only it locks the run directory
    lock = run_lock(run_dir, log) if context.is_main else contextlib.nullcontext()
    try:
        with lock:
            # a second writer may have created the run between our check above and our lock
            if context.is_main and resume is None and holds_run(run_dir):
                raise RunError(f"--out {run_dir} already holds a run (created meanwhile)")
            return _train(
                config,
                run_dir,
                device,
                context,
                command,
                checkpoint,
                log,
                conditional,
                new_lr,
                record_dir,
                model,
            )
    finally:
        shutdown_distributed(context)


def _train(
    config: RunConfig,
    run_dir: Path,
    device: torch.device,
    context: DistContext,
    command: str,
    checkpoint: dict[str, Any] | None,
    log: Callable[[str], None],
    conditional: bool = False,
    new_lr: float | None = None,
    record_dir: Path | None = None,
    given_model: VAE | AutoEncoder | None = None,
) -> Path:
    # the run the data are recorded in (and a data file inside a run is read from)
    data_run = record_dir if record_dir is not None else run_dir
    splits, dynamic = prepare_data(config, data_run)
    info = splits.info
    # the data set decides the image size (and the number of classes of a conditional model);
    # the resolved config records them
    n_classes = info.num_classes if conditional else config.model.n_classes
    if n_classes > 0 and (not info.labelled or n_classes != info.num_classes):
        raise RunError(
            f"a conditional model needs a labelled data set with n_classes={n_classes} classes; "
            f"{info.name} has {info.num_classes if info.labelled else 'no'} labels"
        )
    likelihood = config.model.likelihood
    if likelihood != "gaussian" and not in_unit_interval(splits):
        # a Bernoulli-type likelihood needs values in [0, 1]: real-valued data follow a Gaussian
        log(f"the data take values outside [0, 1]: likelihood gaussian instead of {likelihood}")
        likelihood = "gaussian"
    model_config = dataclasses.replace(
        config.model, image_shape=info.image_shape, n_classes=n_classes, likelihood=likelihood
    )
    config = dataclasses.replace(config, model=model_config)
    train_images, train_labels = splits.train.images, splits.train.labels
    if config.data.train_limit is not None:
        train_images = train_images[: config.data.train_limit]
        train_labels = train_labels[: config.data.train_limit]

    seed_everything(config.train.seed)
    if given_model is not None and given_model.config != config.model:
        differ = [
            f"{f.name}={getattr(given_model.config, f.name)!r} (the data need "
            f"{getattr(config.model, f.name)!r})"
            for f in dataclasses.fields(config.model)
            if getattr(given_model.config, f.name) != getattr(config.model, f.name)
        ]
        raise RunError(f"the model does not fit the data {info.name}: {', '.join(differ)}")
    model = (given_model if given_model is not None else build_model(config)).to(device)
    track = None
    if config.train.track_latents > 0:
        track = splits.val.images[: config.train.track_latents]
    trainer = Trainer(
        config,
        model,
        train_images,
        splits.val.images,
        dynamic_binarize=dynamic,
        device=device,
        context=context,
        run_dir=run_dir,
        track_images=track,
        log=log if context.is_main else (lambda line: None),
        train_labels=train_labels,
        val_labels=splits.val.labels,
    )
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, source=f"checkpoint of {run_dir}")
        if new_lr is not None:  # else the checkpoint's (lowered by any restarts so far)
            trainer.set_learning_rate(new_lr)
        state = trainer.state
        # a run that reached its epoch limit goes on when given more epochs; one that stopped early
        # (no improvement for `patience` epochs) or failed stays as it ended
        if state.finished and state.stop_reason.startswith("reached "):
            state.finished = state.epoch >= config.train.epochs
        log(f"resuming {run_dir} after epoch {state.epoch}")
        if state.finished:
            how = (
                f"give --epochs N with N > {state.epoch} to train on"
                if state.stop_reason.startswith("reached ")
                else "a run that stopped early stays stopped"
            )
            log(f"{run_dir} is finished ({state.stop_reason}); {how}")

    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        copy_run_data(config, data_run, run_dir)
        for path in remove_partial_files(run_dir):  # left by a writer that was killed mid-write
            log(f"removed {path}, a partial file of an interrupted write")
        config_text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
        record_sums(run_dir, {CONFIG: config_text.encode("utf-8")})
        atomic_write_text(run_dir / CONFIG, config_text)
        # a resumed run keeps the original command and adds the one that resumed it
        command_file = run_dir / COMMAND
        resumed = checkpoint is not None and command_file.exists()
        previous = command_file.read_text(encoding="utf-8") if resumed else ""
        atomic_write_text(command_file, previous + command + "\n")
        _write_run_info(run_dir, config, splits, status="running", dynamic=dynamic)
        log(
            f"training {config.model.kind} latent={config.model.latent} "
            f"posterior={config.model.posterior} on {splits.info.name} ({splits.info.source}); "
            f"{len(train_images)} training images, device {device}; run directory {run_dir}"
        )

    if context.is_main and splits.info.substitute:
        log(f"warning: {splits.info.substitute}")
    if context.is_main and trainer.compiled_sampling and config.model.posterior == "vmf":
        log(
            "compiled sampling: torch.compile builds the sampling kernels during the first steps, "
            "so the first epoch is slower (seconds to about a minute and a half; cached on disk)"
        )
    timings: list[float] = []
    last = [time.perf_counter()]
    board = _tensorboard(run_dir) if context.is_main else None

    def after_epoch(t: Trainer) -> None:
        now = time.perf_counter()
        timings.append(now - last[0])
        last[0] = now
        if context.is_main:
            write_metrics(run_dir, t.state.history, _METRIC_FIELDS)
            append_timing(run_dir, t.state.epoch, timings[-1])
            if board is not None:
                row = t.state.history[-1]
                for key, value in row.items():
                    if key != "epoch" and not math.isnan(value):
                        board.add_scalar(key, value, global_step=int(row["epoch"]))
                board.flush()

    try:
        state = trainer.fit(on_epoch_end=after_epoch)
    except BaseException as err:
        if context.is_main:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            _write_run_info(
                run_dir, config, splits, status=status, dynamic=dynamic, stop_reason=str(err)
            )
        raise
    finally:
        if board is not None:
            board.close()
    if context.is_main:
        if state.best_epoch < 0 or not (run_dir / MODEL_DIR / "model.safetensors").exists():
            trainer.export_model()
        write_metrics(run_dir, state.history, _METRIC_FIELDS)
        _write_run_info(
            run_dir,
            config,
            splits,
            status="finished",
            dynamic=dynamic,
            stop_reason=state.stop_reason,
        )
        if state.latents:
            # latent means of a fixed validation subset after every epoch (for animations)
            tracked = {
                "latents": torch.stack(state.latents),
                "labels": splits.val.labels[: len(state.latents[0])],
            }
            buffer = io.BytesIO()
            torch.save(tracked, buffer)
            atomic_write(run_dir / LATENTS, lambda f: f.write(buffer.getbuffer()))
        write_model_card(run_dir)
        write_run_plots(run_dir, splits, dynamic)
        log(f"done: {state.stop_reason}; run directory {run_dir}")
    return run_dir


def _tensorboard(run_dir: Path) -> Any:
    """A TensorBoard writer for ``RUN_DIR/tensorboard`` when TensorBoard is installed, else ``None``.

    A resumed run writes the epochs after its checkpoint again; TensorBoard shows the latest value.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: pip install 'spherevae[tensorboard]'
        return None
    return SummaryWriter(str(run_dir / TENSORBOARD))


def write_run_plots(run_dir: Path, splits: DatasetSplits, dynamic: bool) -> None:
    """The figures ``train`` leaves in ``RUN_DIR/plots`` (:data:`~spherevae.plots.TRAIN_FIGURES`)."""
    from ..plots.run_figures import TRAIN_FIGURES, write_run_figures

    write_run_figures(run_dir, splits, dynamic, TRAIN_FIGURES, log=lambda line: None)


def _write_run_info(
    run_dir: Path,
    config: RunConfig,
    splits: DatasetSplits,
    *,
    status: str,
    dynamic: bool,
    stop_reason: str = "",
) -> None:
    # every source version that trained the run: a resumed run adds the one that resumed it
    commits: list[str] = []
    try:
        earlier = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8")).get("commits")
        if isinstance(earlier, list):
            commits = [str(c) for c in earlier]
    except (OSError, ValueError):
        pass
    current = source_commit()
    if current and current not in commits:
        commits.append(current)
    info = {
        "spherevae": __version__,
        "commits": commits,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "stop_reason": stop_reason,
        "dataset": splits.info.name,
        "dataset_source": splits.info.source,
        **({"dataset_substitute": splits.info.substitute} if splits.info.substitute else {}),
        "splits": splits.sizes(),
        **_user_data_record(splits),
        "dynamic_binarization": dynamic,
        "latent": config.model.latent,
    }
    atomic_write_json(run_dir / RUN_INFO, info)


def _user_data_record(splits: DatasetSplits) -> dict[str, Any]:
    """What ``run.json`` keeps of a user's data: its digest (checked when the run reloads it), the
    split rule and the class names by label."""
    info = splits.info
    if info.sha256 is None:
        return {}
    record: dict[str, Any] = {"dataset_sha256": info.sha256, "split_rule": info.splits}
    if info.class_names is not None:
        record["class_names"] = list(info.class_names)
    return record


@functools.cache
def source_commit() -> str:
    """The git commit of the spherevae source that runs (``git describe --always --dirty``), or
    ``""`` when it is not a git checkout (an installed wheel) or git is missing."""
    package = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(package), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
