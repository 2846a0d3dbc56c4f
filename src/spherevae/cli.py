"""The ``spherevae`` command: ``train``, ``eval``, ``sample`` and ``plot``.

Settings come from three layers, later ones winning: the defaults of :mod:`spherevae.config`, a YAML
file (``--config FILE``), then command-line flags. ``train`` also accepts the flags of the product-space
reference run-file (Davidson, Tomczak and Gavves 2019) with the same meaning, minus its bugs: ``-zd``
is never silently ignored, and ``-lls`` is recorded with every log-likelihood.

Exit statuses, each with one line on standard error (``spherevae: error: ...``) and no traceback:

- 0: done.
- 1: training failed (the loss stayed non-finite after the allowed restarts).
- 2: bad input: unknown data set, malformed latent, bad config key, missing or corrupt checkpoint,
  a run directory in use by another process, a setting a resume cannot change, ...; files already
  written stay as they were.
- 3: the environment failed: disk full, read-only file system, input/output error, an optional
  extra that is not installed.
- 130: interrupted (Ctrl-C); a run records ``"interrupted"`` in its ``run.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__

__all__ = ["main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130
# errors of the machine rather than of what the user asked
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
# what eval, sample, plot and report read from a run directory, checked against its manifest first
RUN_FILES_READ = ("config.yaml", "model/config.json", "model/model.safetensors")
# the most images ``sample`` draws in one call (one figure)
MAX_SAMPLE_IMAGES = 10_000

# The names the help lists, written here so that ``--help`` imports neither torch nor matplotlib
# (seconds); tests/test_cli.py checks them against spherevae.data.DATASET_NAMES and
# spherevae.plots.run_figures.RUN_FIGURES.
DATASET_NAMES = (
    "mnist",
    "fashion_mnist",
    "static_mnist",
    "omniglot",
    "caltech",
    "digits",
    "synthetic",
)
FIGURE_NAMES = (
    "reconstructions",
    "prior_samples",
    "latent_means",
    "curves",
    "latent_maps",
    "latent_tsne",
    "decoded_grid",
    "interpolation",
    "samplers",
    "sampler_histograms",
    "why_sphere",
    "rotation",
    "spiral",
    "evolution",
)

# your own data: PREFIX + PATH (checked against spherevae.data.USER_DATA_PREFIXES in the tests)
USER_DATA_PREFIXES = ("npz:", "folder:", "csv:")
# the reference run-file's data set names
_DATASET_ALIASES = {"f_mnist": "fashion_mnist", "fmnist": "fashion_mnist"}


class UsageError(ValueError):
    """Bad command-line input (turned into exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``, else a one-line error quoting the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_non_negative_int = _int_at_least(0)
_at_least_one = _int_at_least(1)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spherevae",
        description="Variational auto-encoders with hyperspherical latent spaces.",
    )
    parser.add_argument("--version", action="version", version=f"spherevae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train a model and write a run directory",
        description=(
            "Train a VAE and write a run directory (config.yaml, command.txt, run.json, metrics.csv, "
            "checkpoints/, model/, plots/). Flags override --config, which overrides the defaults."
        ),
    )
    g = train.add_argument_group("run")
    g.add_argument("--config", type=Path, help="YAML run configuration")
    g.add_argument("--out", type=Path, help="run directory to create")
    g.add_argument("--resume", type=Path, help="run directory or checkpoint file to continue")
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    g.add_argument("--seed", "-rs", "--rs", dest="seed", type=_non_negative_int)
    g.add_argument("--epochs", "-e", dest="epochs", type=_non_negative_int)
    g.add_argument(
        "--dataset",
        "-d",
        dest="dataset",
        help=f"data set: {', '.join(DATASET_NAMES)}; or your own data: npz:PATH (arrays), "
        "folder:PATH (PNG/JPEG images, one subfolder per class or none), csv:PATH (numeric "
        "columns with a header) (default mnist)",
    )
    g.add_argument(
        "--image-size",
        nargs=2,
        type=_at_least_one,
        metavar=("H", "W"),
        help="folder:PATH data: resize every image to H x W (default: all images must share one "
        "size)",
    )
    g.add_argument(
        "--label-column",
        metavar="NAME",
        help="csv:PATH data: the column of integer labels 0..k-1 (default: unlabelled)",
    )
    g.add_argument("--data-dir", dest="data_dir")
    g.add_argument(
        "--train-limit", type=_non_negative_int, help="use only the first N training images"
    )
    g.add_argument(
        "--compiled-sampling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw the vMF latents of the training steps with kernels compiled by torch.compile "
        "(faster steps; needs a C++ compiler on a CPU); default: on for CPU and CUDA devices",
    )
    g.add_argument(
        "--track-latents",
        type=_non_negative_int,
        help="store the latent means of N validation images after every epoch (for 'plot evolution')",
    )
    g = train.add_argument_group("model")
    g.add_argument("--latent", help="latent space: S2, S10, S4xS4, S9xR5, R10, ...")
    g.add_argument("--posterior", choices=["vmf", "powerspherical", "normal"])
    g.add_argument("--sampler", choices=["rejection", "inverse_cdf", "mh"])
    g.add_argument("--kind", choices=["vae", "autoencoder"])
    g.add_argument(
        "--conditional",
        action="store_true",
        help="class-conditional VAE: the one-hot label is fed to the encoder and the decoder",
    )
    g = train.add_argument_group("reference run-file flags (same meaning)")
    g.add_argument("-n", "--name", choices=["vmf", "normal", "productspace"])
    g.add_argument("-dis", "--distribution", choices=["vmf", "normal"])
    g.add_argument("-z", "--z", type=int, help="latent manifold dimension (S^z or R^z)")
    g.add_argument("-zd", "--z_dims", help="comma-separated sphere dimensions of a product space")
    g.add_argument("-hd", "--h_dims", "--h", dest="h_dims", help="hidden sizes, e.g. 256,128")
    g.add_argument("-et", "--encode_type", choices=["mlp", "cnn"])
    g.add_argument("-dt", "--decode_type", choices=["mlp", "cnn"])
    g.add_argument("-cvm", "--covariance_matrix", choices=["single", "diagonal", "full"])
    g.add_argument("-lf", "--loss_function", choices=["bce", "mse"])
    g.add_argument("-b", "--beta", type=float)
    g.add_argument("-bi", "--burn_in", type=int)
    g.add_argument("-la", "--look_ahead", type=int)
    g.add_argument("-mi", "--min_improv", type=float)
    g.add_argument("-lr", "--lr", type=float)
    g.add_argument("-bs", "--batch_size", type=int)
    g.add_argument("-klw", "--kl_warmup", type=int)
    g.add_argument("-klf", "--kl_freeze", type=int)
    g.add_argument("-klt", "--kl_target", type=float)
    g.add_argument("-mr", "--max_restarts", type=int)
    g.add_argument("-lls", "--ll_sample", type=int, help="importance samples for log-likelihoods")
    g.add_argument("-pf", "--pf", type=int, help="print every N epochs")
    g.add_argument("-vll", "--val_nll", action="store_true", default=None)
    g.add_argument("-vf", "--val_f", type=int, help="validate every N epochs")
    g.add_argument("-sf", "--save_f", type=int, help="checkpoint every N epochs")
    g.add_argument("-en", "--exp_name", help="run name (run directory LOG_DIR/NAME)")
    g.add_argument("-ld", "--log_dir", help="parent of the run directory")
    g.add_argument("-bnz", "--binarize", action="store_true", default=None)

    ev = commands.add_parser("eval", help="evaluate a trained run", description="Evaluate a run.")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--split", choices=["test", "val"], default="test")
    ev.add_argument("--ll-samples", type=_at_least_one, default=500, help="importance samples K")
    ev.add_argument("--batch-size", type=_at_least_one, default=100)
    ev.add_argument("--limit", type=_at_least_one, help="evaluate only the first N images")
    ev.add_argument("--knn-k", type=_at_least_one, default=5)
    ev.add_argument("--seed", type=_non_negative_int, default=0)
    ev.add_argument("--data-dir")

    sa = commands.add_parser("sample", help="draw images from a trained model's prior")
    sa.add_argument("run_dir", type=Path)
    sa.add_argument(
        "--n", type=_at_least_one, default=64, help="images (per class with --grid), at least 1"
    )
    sa.add_argument("--label", type=int, help="class to draw (conditional models)")
    sa.add_argument(
        "--grid", action="store_true", help="one row per class (conditional models; --n per row)"
    )
    sa.add_argument("--seed", type=_non_negative_int, default=0)
    sa.add_argument(
        "--out",
        type=Path,
        help="PNG file (default RUN_DIR/plots/samples.png); for a model of vectors a CSV file "
        "(default RUN_DIR/samples.csv), one sample a row",
    )

    rp = commands.add_parser(
        "report", help="write RUN_DIR/report.html: one self-contained page about a run"
    )
    rp.add_argument("run_dir", type=Path)
    rp.add_argument("--data-dir")
    rp.add_argument(
        "--plotlyjs",
        choices=["inline", "directory"],
        default="inline",
        help="embed plotly.js in the page (default: one offline file) or write plotly.min.js "
        "beside report.html and reference it (a small page)",
    )

    ex = commands.add_parser(
        "experiment",
        help="run a classic experiment: samplers, table1 or productspace",
        description="Train and evaluate what an experiment needs; write results.csv/.md and figures.",
    )
    ex.add_argument("name", choices=["samplers", "table1", "productspace"])
    ex.add_argument("--quick", action="store_true", help="minutes on a CPU: checks the pipeline")
    ex.add_argument("--out", type=Path, help="output directory (default experiments/NAME[-quick])")
    ex.add_argument("--data-dir")
    ex.add_argument("--epochs", type=int, help="at most this many epochs per model (default 200)")
    ex.add_argument("--seeds", type=int, help="seeds per model (default 3)")
    ex.add_argument(
        "--models",
        help="comma list of the models to train, by their names in the results table "
        "(e.g. 'N-VAE R10,S-VAE S10'; default all)",
    )
    ex.add_argument(
        "--jobs",
        type=_at_least_one,
        default=1,
        help="train this many runs at once, each in its own process with a share of the threads "
        "(default 1)",
    )
    ex.add_argument(
        "--finished-only",
        action="store_true",
        help="train and score nothing: write results.csv and results.md from the runs that have "
        "finished and been scored so far",
    )
    ex.add_argument(
        "--shard",
        help="i/n: train only the i-th of n disjoint slices of the runs (a cluster's array job) and "
        "write OUT/shards/results-i-of-n.csv; a later call without --shard gathers the report",
    )

    xp = commands.add_parser(
        "export",
        help="write a run's encoder (x -> posterior mode) and decoder (z -> likelihood parameters) "
        "as ONNX or torch.export graphs",
    )
    xp.add_argument("run_dir", type=Path)
    xp.add_argument("--format", choices=["onnx", "pt2"], required=True, dest="fmt")
    xp.add_argument("--out", type=Path, help="output folder (default RUN_DIR/export)")

    pl = commands.add_parser("plot", help="draw a run's figures")
    pl.add_argument("run_dir", type=Path)
    pl.add_argument(
        "what",
        nargs="*",
        help="figures to draw (default: all): " + ", ".join(FIGURE_NAMES),
    )
    pl.add_argument("--data-dir")
    return parser


# -- train ------------------------------------------------------------------------------------------
def _train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Command-line settings as a nested partial config (only what was given)."""
    data: dict[str, Any] = {}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}

    latent = _latent_from_flags(args)
    if args.latent is not None:
        if latent is not None:
            raise UsageError("give the latent space either as --latent or as -z/-zd, not both")
        latent = args.latent
    if latent is not None:
        model["latent"] = latent
    posterior = args.posterior
    if posterior is None and args.distribution is not None:
        posterior = args.distribution
    if posterior is None and args.name in ("vmf", "normal"):
        posterior = args.name
    if posterior is not None:
        model["posterior"] = posterior
    if args.sampler is not None:
        model["sampler"] = args.sampler
    if args.kind is not None:
        model["kind"] = args.kind
    if args.h_dims is not None:
        model["hidden_sizes"] = _int_list("-hd/--h_dims", args.h_dims)
    if args.encode_type or args.decode_type:
        types = {t for t in (args.encode_type, args.decode_type) if t}
        if len(types) > 1:
            raise UsageError(
                f"-et/--encode_type and -dt/--decode_type must agree (the networks are built as a "
                f"pair), got -et {args.encode_type} -dt {args.decode_type}"
            )
        model["network"] = types.pop()
    if args.covariance_matrix is not None:
        model["covariance"] = args.covariance_matrix
    if args.loss_function is not None:
        model["likelihood"] = {"bce": "bernoulli", "mse": "gaussian"}[args.loss_function]

    if args.dataset is not None:
        data["dataset"] = _DATASET_ALIASES.get(args.dataset, args.dataset)
        prefix = next((p for p in USER_DATA_PREFIXES if args.dataset.startswith(p)), None)
        if prefix is not None:  # absolute: eval and plot find it from anywhere
            path = Path(args.dataset[len(prefix) :]).expanduser().resolve()
            data["dataset"] = prefix + str(path)
    if args.image_size is not None:
        data["image_size"] = list(args.image_size)
    if args.label_column is not None:
        data["label_column"] = args.label_column
    if args.data_dir is not None:
        data["data_dir"] = args.data_dir
    if args.batch_size is not None:
        data["batch_size"] = args.batch_size
    if args.binarize:
        data["binarize"] = "dynamic"
    if args.train_limit is not None:
        data["train_limit"] = args.train_limit

    for flag, key in [
        ("epochs", "epochs"),
        ("seed", "seed"),
        ("device", "device"),
        ("beta", "beta"),
        ("burn_in", "burn_in"),
        ("look_ahead", "patience"),
        ("min_improv", "min_improvement"),
        ("lr", "lr"),
        ("kl_warmup", "kl_warmup"),
        ("kl_freeze", "kl_freeze"),
        ("kl_target", "kl_target"),
        ("max_restarts", "max_restarts"),
        ("ll_sample", "ll_samples"),
        ("pf", "print_every"),
        ("val_f", "val_every"),
        ("save_f", "save_every"),
        ("val_nll", "val_log_likelihood"),
        ("track_latents", "track_latents"),
        ("compiled_sampling", "compiled_sampling"),
    ]:
        value = getattr(args, flag)
        if value is not None:
            train[key] = value
    return {"data": data, "model": model, "train": train}


def _settings_that_do_not_apply(config: Any, given: dict[str, dict[str, Any]]) -> list[str]:
    """A sentence for each setting given on the command line that the model will not use."""
    model, spec = config.model, config.model.latent_spec
    warnings = []
    if "covariance" in given["model"] and not any(not f.is_sphere for f in spec.factors):
        warnings.append(
            f"-cvm/--covariance_matrix {model.covariance} has no effect: latent {model.latent} has "
            f"no Euclidean factor"
        )
    if "sampler" in given["model"] and (model.posterior != "vmf" or not spec.has_sphere):
        warnings.append(
            f"--sampler {model.sampler} has no effect: only von Mises-Fisher posteriors sample with "
            f"it (posterior {model.posterior}, latent {model.latent})"
        )
    return warnings


def _latent_from_flags(args: argparse.Namespace) -> str | None:
    """The latent name meant by the reference flags ``-n``, ``-dis``, ``-z``, ``-zd``."""
    flat = "R" if (args.distribution or args.name) == "normal" else "S"
    if args.z_dims is not None:
        if args.name not in (None, "productspace"):
            raise UsageError(
                f"-zd/--z_dims describes a product space and needs -n productspace, got -n "
                f"{args.name}; use -z for a single sphere"
            )
        if args.z is not None:
            raise UsageError("give either -z (one space) or -zd (a product space), not both")
        dims = _int_list("-zd/--z_dims", args.z_dims)
        return "x".join(f"{flat}{d}" for d in dims)
    if args.name == "productspace":
        raise UsageError("-n productspace needs -zd/--z_dims, e.g. -zd 4,4")
    if args.z is not None:
        return f"{flat}{args.z}"
    return None


def _int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"{flag} must be comma-separated integers >= 1, got {text!r}")
    return values


def _merge(base: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {section: dict(base.get(section, {})) for section in ("data", "model", "train")}
    for section, values in overrides.items():
        merged[section].update(values)
    extra = {k: v for k, v in base.items() if k not in merged}
    return {**extra, **merged}


def _cmd_train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .config import config_from_dict, read_config_file
    from .training.run import train_run

    base: dict[str, Any] = {}
    source = "command line"
    if args.config is not None:
        base = read_config_file(args.config)
        source = str(args.config)
    overrides = _train_overrides(args)
    if args.resume is not None:
        return _resume(args, argv, overrides)
    config = config_from_dict(_merge(base, overrides), source=source)
    for warning in _settings_that_do_not_apply(config, overrides):
        print(f"spherevae: warning: {warning}", file=sys.stderr)
    out = args.out
    if out is None and args.resume is None:
        data = config.data.dataset
        prefix = next((p for p in USER_DATA_PREFIXES if data.startswith(p)), None)
        if prefix is not None:  # a path is no folder name: npz:/data/x.npz -> npz-x
            data = f"{prefix[:-1]}-{Path(data[len(prefix) :]).stem}"
        name = args.exp_name or f"{data}-{config.model.latent}-{config.model.posterior}"
        out = Path(args.log_dir or "runs") / name
    elif out is None and (args.exp_name or args.log_dir):
        out = Path(args.log_dir or "runs") / (args.exp_name or "run")
    command = "spherevae " + " ".join(shlex.quote(a) for a in argv)
    train_run(config, out, command=command, conditional=args.conditional)
    return 0


def _resume(
    args: argparse.Namespace, argv: Sequence[str], overrides: dict[str, dict[str, Any]]
) -> int:
    """``train --resume``: the run's own settings, changed only where the flags say so (and only
    in what a resume can change, see :data:`~spherevae.training.run.RESUMABLE_SETTINGS`)."""
    from .training.run import train_run

    for flag, given in (
        ("--config", args.config is not None),
        ("--conditional", args.conditional),
        ("-en/--exp_name", args.exp_name is not None),
        ("-ld/--log_dir", args.log_dir is not None),
    ):
        if given:
            raise UsageError(
                f"{flag} cannot be given with --resume (a resumed run keeps its own settings; "
                f"use --out NEW_DIR to continue it into another directory)"
            )
    settings = {
        f"{section}.{key}": value
        for section, values in overrides.items()
        for key, value in values.items()
    }
    command = "spherevae " + " ".join(shlex.quote(a) for a in argv)
    train_run(None, args.out, command=command, resume=args.resume, settings=settings)
    return 0


# -- eval, sample, plot -----------------------------------------------------------------------------
def _load_run(run_dir: Path, data_dir: str | None = None) -> tuple[Any, Any]:
    from .config import load_config
    from .training.manifest import verify_files

    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    verify_files(run_dir, RUN_FILES_READ)
    config = load_config(run_dir / "config.yaml", complete=True)
    if data_dir is not None:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_dir=data_dir)
        )
    return config, run_dir


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .data import evaluation_images
    from .evaluation import evaluate
    from .io import atomic_write_json
    from .models import VAE
    from .training.model_card import write_model_card
    from .training.run import prepare_data

    config, run_dir = _load_run(args.run_dir, args.data_dir)
    model = VAE.from_pretrained(run_dir / "model")
    splits, dynamic = prepare_data(config, run_dir)
    split = splits.split(args.split)
    images, labels = split.images, split.labels
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    images = evaluation_images(images, dynamic, args.seed)  # seed recorded below
    torch.manual_seed(args.seed)
    knn = splits.info.labelled
    result = evaluate(
        model,
        images,
        ll_samples=args.ll_samples,
        batch_size=args.batch_size,
        labels=labels if knn else None,
        train_images=splits.train.images if knn else None,
        train_labels=splits.train.labels if knn else None,
        knn_k=args.knn_k,
    )
    report = {
        "split": args.split,
        "dataset": splits.info.name,
        "dataset_source": splits.info.source,
        "binarization": f"Bernoulli draw with seed {args.seed}" if dynamic else "none",
        "seed": args.seed,
        **result.to_dict(),
    }
    atomic_write_json(run_dir / f"eval_{args.split}.json", report)
    if args.split == "test":
        write_model_card(run_dir)  # with the test scores
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .models import VAE
    from .plots import image_grid, save_figure

    _, run_dir = _load_run(args.run_dir)
    model = VAE.from_pretrained(run_dir / "model")
    vectors = len(model.config.image_shape) == 1
    suffix = ".csv" if vectors else ".png"
    if args.out is not None and args.out.suffix.lower() != suffix:
        what = "a CSV file of vectors (the model draws vectors)" if vectors else "a PNG image"
        raise UsageError(f"--out must name a {suffix} file (sample writes {what}), got {args.out}")
    if args.n > MAX_SAMPLE_IMAGES:
        raise UsageError(f"--n must be at most {MAX_SAMPLE_IMAGES} (one figure), got --n {args.n}")
    torch.manual_seed(args.seed)
    k = model.n_classes
    if (args.label is not None or args.grid) and k == 0:
        raise UsageError(f"--label and --grid need a conditional model; {run_dir} is not one")
    if k > 0 and args.label is None and not args.grid:
        raise UsageError(
            f"{run_dir} holds a conditional model ({k} classes): give --label CLASS (0..{k - 1}) "
            f"or --grid"
        )
    if args.label is not None and not 0 <= args.label < k:
        raise UsageError(f"--label must be in 0..{k - 1} for this model, got --label {args.label}")
    if args.grid:
        if args.n * k > MAX_SAMPLE_IMAGES:
            raise UsageError(
                f"--grid draws --n images for each of {k} classes: at most {MAX_SAMPLE_IMAGES} in "
                f"all, got --n {args.n}"
            )
        classes = torch.arange(k).repeat_interleave(args.n)
        images = model.generate(len(classes), classes)
        title = f"{args.n} samples per class, one row per class (seed {args.seed})"
        labels: torch.Tensor | None = classes
        ncols = args.n
    else:
        labels = None if args.label is None else torch.full((args.n,), args.label)
        images = model.generate(args.n, labels)
        what = "" if args.label is None else f" of class {args.label}"
        title = f"{args.n} samples{what} from the prior (seed {args.seed})"
        ncols = 10
    if vectors:
        out = args.out or run_dir / "samples.csv"
        _write_vectors(out, images, labels)
    else:
        out = args.out or run_dir / "plots" / "samples.png"
        save_figure(image_grid(images, ncols=ncols, title=title), out)
    print(out)
    return 0


def _write_vectors(path: Path, vectors: Any, labels: Any) -> None:
    """``vectors`` ``(N, D)`` as CSV with the header ``x0..x{D-1}`` (and ``label``), atomically."""
    from .io import atomic_write_text

    d = vectors.shape[1]
    header = [f"x{i}" for i in range(d)] + ([] if labels is None else ["label"])
    lines = [",".join(header)]
    for i, row in enumerate(vectors.tolist()):
        cells = [repr(float(v)) for v in row] + ([] if labels is None else [str(int(labels[i]))])
        lines.append(",".join(cells))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plots.run_figures import RUN_FIGURES, write_run_figures
    from .training.run import prepare_data

    config, run_dir = _load_run(args.run_dir, args.data_dir)
    unknown = [name for name in args.what if name not in RUN_FIGURES]
    if unknown:
        raise UsageError(f"unknown figure {unknown[0]!r}; known: {', '.join(RUN_FIGURES)}")
    splits, dynamic = prepare_data(config, run_dir)
    for path in write_run_figures(run_dir, splits, dynamic, args.what or None):
        print(path)
    return 0


def _cmd_experiment(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .experiments import parse_shard, run_experiment

    shard = parse_shard(args.shard) if args.shard is not None else None
    out = args.out or Path("experiments") / (args.name + ("-quick" if args.quick else ""))
    command = "spherevae " + " ".join(shlex.quote(a) for a in argv)
    models = [name.strip() for name in args.models.split(",")] if args.models else None
    report = run_experiment(
        args.name,
        out,
        quick=args.quick,
        data_dir=args.data_dir,
        command=command,
        epochs=args.epochs,
        seeds=args.seeds,
        models=models,
        jobs=args.jobs,
        shard=shard,
        finished_only=args.finished_only,
    )
    print(report)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model
    from .models import from_pretrained

    _, run_dir = _load_run(args.run_dir)
    out = args.out or run_dir / "export"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out must be a folder, got the file {out}")
    for path in export_model(from_pretrained(run_dir / "model"), out, args.fmt):
        print(path)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    _, run_dir = _load_run(args.run_dir, args.data_dir)
    print(write_report(run_dir, data_dir=args.data_dir, plotlyjs=args.plotlyjs))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser().parse_args(argv)
        return _dispatch(args, argv)
    except KeyboardInterrupt:
        print("spherevae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .training.trainer import TrainingError

    try:
        if args.command == "train":
            return _cmd_train(args, argv)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "sample":
            return _cmd_sample(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "experiment":
            return _cmd_experiment(args, argv)
        if args.command == "export":
            return _cmd_export(args)
        return _cmd_plot(args)
    except TrainingError as err:
        print(f"spherevae: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(f"spherevae: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT if err.errno in _ENVIRONMENT_ERRNOS else EXIT_USAGE
    except ImportError as err:  # an optional extra that is not installed (the message names it)
        print(f"spherevae: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except ValueError as err:
        print(f"spherevae: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(text.split())
