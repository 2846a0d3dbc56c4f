"""The ``spherevae`` command: ``train``, ``eval``, ``sample``, ``plot``, ``figure`` and more.

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
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .extras import missing_extra_message

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
    "interpolation_animation",
)

# ``spherevae figure``: the figures that need no model (spherevae.plots.standalone.STANDALONE_FIGURES)
# and the samplers they compare (spherevae.plots.samplers.SAMPLER_NAMES), checked in tests/test_cli.py
STANDALONE_FIGURE_NAMES = ("samplers", "sampler_histograms", "why_sphere")
SAMPLER_NAMES = ("rejection", "inverse_cdf", "mh", "powerspherical")
# the most samples one panel of ``spherevae figure`` draws
MAX_FIGURE_SAMPLES = 1_000_000

# your own data: PREFIX + PATH (checked against spherevae.data.USER_DATA_PREFIXES in the tests)
USER_DATA_PREFIXES = ("npz:", "folder:", "csv:")
# the reference run-file's data set names
_DATASET_ALIASES = {"f_mnist": "fashion_mnist", "fmnist": "fashion_mnist"}


class UsageError(ValueError):
    """Bad command-line input (turned into exit status 2)."""


class _HelpFormatter(argparse.HelpFormatter):
    """Names each option by its short flags and its first long spelling (kebab-case).

    It overrides the formatter's own hooks (argparse documents subclassing it, not the hooks).

    The other long spellings of an option (the snake_case ones of earlier versions, the reference
    run-file's ``--lr``, ...) still parse; the epilog names them once (:func:`_alias_note`).
    """

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        shown = _shown_spellings(action)
        if action.nargs == 0:
            return ", ".join(shown)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(shown)} {metavar}"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        # from the shown spelling, not from the destination: --patience N, not LOOK_AHEAD
        return _primary(action).removeprefix("--").replace("-", "_").upper()

    # flags are not split at their hyphens when lines wrap
    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )


def _shown_spellings(action: argparse.Action) -> list[str]:
    """The spellings ``--help`` shows: the short flags, the first long one and its ``--no-`` form."""
    long = [s for s in action.option_strings if s.startswith("--")]
    short = [s for s in action.option_strings if not s.startswith("--")]
    return short + long[:1] + [s for s in long[1:] if s.startswith("--no-")]


def _primary(action: argparse.Action) -> str:
    """The spelling an option is known by: its first long one (else its first)."""
    return next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])


def _alias_note(parser: argparse.ArgumentParser) -> str | None:
    """One sentence naming the long spellings that parse but ``--help`` does not show."""
    pairs = [
        f"{alias} = {_primary(action)}"
        for action in parser._actions
        for alias in action.option_strings
        if alias.startswith("--") and alias not in _shown_spellings(action)
    ]
    return f"Also accepted (earlier spellings): {', '.join(pairs)}." if pairs else None


class _Parser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line on stderr and exit status 2 (no usage dump), whose
    help names each option once (:class:`_HelpFormatter`), and which takes flags spelled out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        # a prefix of a flag is not taken for the flag: with two spellings of one option, argparse
        # (before Python 3.12) calls a common prefix ambiguous, and a new flag could change its meaning
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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


def _comma_list(parse_one: Callable[[str], Any], what: str) -> Callable[[str], list[Any]]:
    """An argparse type: a comma-separated list whose items ``parse_one`` accepts, at least one."""

    def parse(text: str) -> list[Any]:
        items = [part.strip() for part in text.split(",")]
        if not text.strip() or any(not item for item in items):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {what}, got {text!r}"
            )
        try:
            return [parse_one(item) for item in items]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {what}, got {text!r}"
            ) from None

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


def _sampler_name(text: str) -> str:
    if text not in SAMPLER_NAMES:
        raise ValueError(text)
    return text


_kappa_list = _comma_list(_positive_float, "finite numbers > 0")
_dim_list = _comma_list(_at_least_one, "integers >= 1")
_sampler_list = _comma_list(_sampler_name, "samplers among " + ", ".join(SAMPLER_NAMES))


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
    g.add_argument(
        "--config", type=Path, help="YAML run configuration (default: none; flags override it)"
    )
    g.add_argument(
        "--out",
        type=Path,
        help="run directory to create (default: LOG_DIR/EXP_NAME, i.e. "
        "runs/DATASET-LATENT-POSTERIOR)",
    )
    g.add_argument(
        "--resume",
        type=Path,
        help="run directory or checkpoint file to continue (default: none, a new run)",
    )
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to train; auto picks CUDA, then MPS, then the CPU (default: auto)",
    )
    g.add_argument(
        "--seed",
        "-rs",
        "--rs",
        dest="seed",
        type=_non_negative_int,
        help="seed of every random number generator (default: 0)",
    )
    g.add_argument(
        "--epochs",
        "-e",
        dest="epochs",
        type=_non_negative_int,
        help="maximum number of epochs (default: 200)",
    )
    g.add_argument(
        "--dataset",
        "-d",
        dest="dataset",
        help=f"data set: {', '.join(DATASET_NAMES)}; or your own data: npz:PATH (arrays), "
        "folder:PATH (PNG/JPEG images, one subfolder per class or none), csv:PATH (numeric "
        "columns with a header) (default: mnist)",
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
    g.add_argument(
        "--data-dir",
        dest="data_dir",
        help="folder of downloaded data (default: $SPHEREVAE_DATA_DIR, else the user's cache "
        "folder)",
    )
    g.add_argument(
        "--train-limit",
        type=_non_negative_int,
        help="use only the first N training images (default: all)",
    )
    g.add_argument(
        "--compiled-sampling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw the vMF latents of the training steps with kernels compiled by torch.compile "
        "(faster steps; needs a C++ compiler on a CPU) (default: on for CPU and CUDA devices)",
    )
    g.add_argument(
        "--track-latents",
        type=_non_negative_int,
        help="store the latent means of N validation images after every epoch (for 'plot "
        "evolution') (default: 0, none)",
    )
    g.add_argument(
        "--allow-substitute",
        action="store_true",
        default=None,
        help="when the data set's files cannot be had, train on its stand-in (static_mnist: a "
        "fixed-seed binarisation of MNIST, not comparable with published results; every output "
        "says so) instead of stopping (default: off)",
    )
    g = train.add_argument_group("model")
    g.add_argument("--latent", help="latent space: S2, S10, S4xS4, S9xR5, R10, ... (default: S10)")
    g.add_argument(
        "--posterior",
        choices=["vmf", "powerspherical", "normal"],
        help="posterior family (default: vmf)",
    )
    g.add_argument(
        "--sampler",
        choices=["rejection", "inverse_cdf", "mh"],
        help="how von Mises-Fisher posteriors are sampled (default: rejection)",
    )
    g.add_argument(
        "--kind",
        choices=["vae", "autoencoder"],
        help="a VAE or a deterministic auto-encoder (default: vae)",
    )
    g.add_argument(
        "--conditional",
        action="store_true",
        help="class-conditional VAE: the one-hot label is fed to the encoder and the decoder "
        "(default: off)",
    )
    g = train.add_argument_group(
        "model and training (the short flags are the reference run-file's, with its meaning)"
    )
    g.add_argument(
        "--name",
        "-n",
        choices=["vmf", "normal", "productspace"],
        help="vmf or normal: one space of --z-dim dimensions with that posterior; productspace: "
        "the spheres of --z-dims (default: none, see --latent)",
    )
    g.add_argument(
        "--distribution",
        "-dis",
        choices=["vmf", "normal"],
        help="posterior of a --z-dim or --z-dims latent: vmf (spheres) or normal (Euclidean) "
        "(default: vmf)",
    )
    g.add_argument(
        "--z-dim",
        "-z",
        "--z",
        dest="z",
        type=int,
        help="latent manifold dimension: S^Z or R^Z (default: none, see --latent)",
    )
    g.add_argument(
        "--z-dims",
        "-zd",
        "--z_dims",
        dest="z_dims",
        help="comma-separated sphere dimensions of a product space, with --name productspace "
        "(default: none)",
    )
    g.add_argument(
        "--hidden-sizes",
        "-hd",
        "--h_dims",
        "--h",
        dest="h_dims",
        help="comma-separated hidden layer sizes, e.g. 256,128 (default: 256,128)",
    )
    g.add_argument(
        "--encode-type",
        "-et",
        "--encode_type",
        dest="encode_type",
        choices=["mlp", "cnn"],
        help="encoder network; must match --decode-type (default: mlp)",
    )
    g.add_argument(
        "--decode-type",
        "-dt",
        "--decode_type",
        dest="decode_type",
        choices=["mlp", "cnn"],
        help="decoder network; must match --encode-type (default: mlp)",
    )
    g.add_argument(
        "--covariance",
        "-cvm",
        "--covariance_matrix",
        dest="covariance_matrix",
        choices=["single", "diagonal", "full"],
        help="covariance of a Gaussian posterior on Euclidean factors (default: diagonal)",
    )
    g.add_argument(
        "--loss-function",
        "-lf",
        "--loss_function",
        dest="loss_function",
        choices=["bce", "mse"],
        help="bce: Bernoulli likelihood; mse: Gaussian likelihood (default: bce)",
    )
    g.add_argument("--beta", "-b", type=float, help="final KL weight (default: 1.0)")
    g.add_argument(
        "--burn-in",
        "-bi",
        "--burn_in",
        dest="burn_in",
        type=int,
        help="epochs before the best model is tracked (default: 0)",
    )
    g.add_argument(
        "--patience",
        "-la",
        "--look_ahead",
        dest="look_ahead",
        type=int,
        help="epochs without improvement of the validation -ELBO before stopping (default: 50)",
    )
    g.add_argument(
        "--min-improvement",
        "-mi",
        "--min_improv",
        dest="min_improv",
        type=float,
        help="smallest decrease of the validation -ELBO that counts (default: 0.0)",
    )
    g.add_argument(
        "--learning-rate",
        "-lr",
        "--lr",
        dest="lr",
        type=float,
        help="Adam learning rate (default: 0.001)",
    )
    g.add_argument(
        "--batch-size",
        "-bs",
        "--batch_size",
        dest="batch_size",
        type=int,
        help="training batch size (default: 100)",
    )
    g.add_argument(
        "--kl-warmup",
        "-klw",
        "--kl_warmup",
        dest="kl_warmup",
        type=int,
        help="epochs of linear KL warm-up (default: 0, none)",
    )
    g.add_argument(
        "--kl-freeze",
        "-klf",
        "--kl_freeze",
        dest="kl_freeze",
        type=int,
        help="epochs at KL weight 0 before the warm-up (default: 0)",
    )
    g.add_argument(
        "--kl-target",
        "-klt",
        "--kl_target",
        dest="kl_target",
        type=float,
        help="target of the |weight * KL - target| term (default: 0.0)",
    )
    g.add_argument(
        "--max-restarts",
        "-mr",
        "--max_restarts",
        dest="max_restarts",
        type=int,
        help="non-finite epochs retried at a halved learning rate before failing (default: 20)",
    )
    g.add_argument(
        "--ll-samples",
        "-lls",
        "--ll_sample",
        dest="ll_sample",
        type=int,
        help="importance samples for log-likelihoods (default: 500)",
    )
    g.add_argument(
        "--print-every", "-pf", "--pf", dest="pf", type=int, help="log every N epochs (default: 1)"
    )
    g.add_argument(
        "--val-log-likelihood",
        "-vll",
        "--val_nll",
        dest="val_nll",
        action="store_true",
        default=None,
        help="also estimate the validation log p(x) at every validation (default: off)",
    )
    g.add_argument(
        "--val-every",
        "-vf",
        "--val_f",
        dest="val_f",
        type=int,
        help="validate every N epochs (default: 1)",
    )
    g.add_argument(
        "--save-every",
        "-sf",
        "--save_f",
        dest="save_f",
        type=int,
        help="checkpoint every N epochs (default: 1)",
    )
    g.add_argument(
        "--exp-name",
        "-en",
        "--exp_name",
        dest="exp_name",
        help="run name, the run directory being LOG_DIR/EXP_NAME (default: "
        "DATASET-LATENT-POSTERIOR)",
    )
    g.add_argument(
        "--log-dir",
        "-ld",
        "--log_dir",
        dest="log_dir",
        help="parent of the run directory (default: runs)",
    )
    g.add_argument(
        "--binarize",
        "-bnz",
        action="store_true",
        default=None,
        help="draw a fresh Bernoulli image for every training batch (default: auto, that is for "
        "grey levels under a Bernoulli likelihood)",
    )

    run_dir_help = "a run directory written by 'spherevae train'"
    data_dir_help = "folder of downloaded data (default: the run's own data.data_dir)"
    ev = commands.add_parser(
        "eval",
        help="evaluate a trained run",
        description="Evaluate a run: a VAE's negative ELBO, reconstruction, KL, importance-weighted "
        "log p(x), active units and kNN accuracy; an auto-encoder's reconstruction error (NLL and "
        "mean squared error), active units and kNN accuracy. Written to RUN_DIR/eval_SPLIT.json.",
    )
    ev.add_argument("run_dir", type=Path, help=run_dir_help)
    ev.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="the split to evaluate (default: %(default)s)",
    )
    ev.add_argument(
        "--ll-samples",
        type=_at_least_one,
        default=500,
        help="importance samples K of log p(x) (VAEs only) (default: %(default)s)",
    )
    ev.add_argument(
        "--batch-size",
        type=_at_least_one,
        default=100,
        help="images a batch (default: %(default)s)",
    )
    ev.add_argument(
        "--limit",
        type=_at_least_one,
        help="evaluate only the first N images (default: all of the split)",
    )
    ev.add_argument(
        "--knn-k",
        type=_at_least_one,
        default=5,
        help="neighbours of the kNN classifier on latent means (default: %(default)s)",
    )
    ev.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the test images' binarisation and the latent samples (default: %(default)s)",
    )
    ev.add_argument("--data-dir", help=data_dir_help)

    sa = commands.add_parser("sample", help="draw images from a trained model's prior")
    sa.add_argument("run_dir", type=Path, help=run_dir_help)
    sa.add_argument(
        "--n",
        type=_at_least_one,
        default=64,
        help="images (per class with --grid), at least 1 (default: %(default)s)",
    )
    sa.add_argument("--label", type=int, help="class to draw (conditional models) (default: none)")
    sa.add_argument(
        "--grid",
        action="store_true",
        help="one row per class (conditional models; --n per row) (default: off)",
    )
    sa.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of the draw (default: %(default)s)"
    )
    sa.add_argument(
        "--out",
        type=Path,
        help="PNG file to write (default: RUN_DIR/plots/samples.png); for a model of vectors a CSV "
        "file, one sample a row (default: RUN_DIR/samples.csv)",
    )

    rp = commands.add_parser(
        "report", help="write RUN_DIR/report.html: one self-contained page about a run"
    )
    rp.add_argument("run_dir", type=Path, help=run_dir_help)
    rp.add_argument("--data-dir", help=data_dir_help)
    rp.add_argument(
        "--plotlyjs",
        choices=["inline", "directory"],
        default="inline",
        help="inline: embed plotly.js in the page (one offline file); directory: write "
        "plotly.min.js beside report.html and reference it (a small page) (default: %(default)s)",
    )

    ex = commands.add_parser(
        "experiment",
        help="run a classic experiment: samplers, table1 or productspace",
        description="Train and evaluate what an experiment needs; write results.csv/.md and figures.",
    )
    ex.add_argument(
        "name", choices=["samplers", "table1", "productspace"], help="the experiment to run"
    )
    ex.add_argument(
        "--quick", action="store_true", help="minutes on a CPU: checks the pipeline (default: off)"
    )
    ex.add_argument("--out", type=Path, help="output directory (default: experiments/NAME[-quick])")
    ex.add_argument("--data-dir", help="folder of downloaded data (default: the user's cache)")
    ex.add_argument(
        "--epochs",
        type=int,
        help="at most this many epochs per model (default: 200, with --quick fewer)",
    )
    ex.add_argument("--seeds", type=int, help="seeds per model (default: 3, with --quick fewer)")
    ex.add_argument(
        "--models",
        help="comma list of the models to train, by their names in the results table "
        "(e.g. 'N-VAE R10,S-VAE S10') (default: all)",
    )
    ex.add_argument(
        "--jobs",
        type=_at_least_one,
        default=1,
        help="train this many runs at once, each in its own process with a share of the threads "
        "(default: %(default)s)",
    )
    ex.add_argument(
        "--finished-only",
        action="store_true",
        help="train and score nothing: write results.csv and results.md from the runs that have "
        "finished and been scored so far (default: off)",
    )
    ex.add_argument(
        "--shard",
        help="i/n: train only the i-th of n disjoint slices of the runs (a cluster's array job) and "
        "write OUT/shards/results-i-of-n.csv; a later call without --shard gathers the report "
        "(default: all runs)",
    )

    xp = commands.add_parser(
        "export",
        help="write a run's encoder (x -> posterior mode) and decoder (z -> likelihood parameters) "
        "as ONNX or torch.export graphs",
    )
    xp.add_argument("run_dir", type=Path, help=run_dir_help)
    xp.add_argument(
        "--format",
        choices=["onnx", "pt2"],
        required=True,
        dest="fmt",
        help="onnx or pt2 (torch.export) (default: none, required)",
    )
    xp.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/export)")

    pl = commands.add_parser("plot", help="draw a run's figures")
    pl.add_argument("run_dir", type=Path, help=run_dir_help)
    pl.add_argument(
        "what",
        nargs="*",
        help="figures to draw (default: all): " + ", ".join(FIGURE_NAMES),
    )
    pl.add_argument("--data-dir", help=data_dir_help)
    pl.add_argument(
        "--format",
        choices=["gif", "mp4"],
        default="gif",
        dest="animation_format",
        help="file format of the animations (rotation, spiral, interpolation_animation, "
        "evolution); mp4 needs the video extra: pip install 'spherevae[video]' "
        "(default: %(default)s)",
    )

    _add_figure_parser(commands)
    for subparser in commands.choices.values():
        subparser.epilog = _alias_note(subparser)
    return parser


def _add_figure_parser(commands: Any) -> None:
    fi = commands.add_parser(
        "figure",
        help="draw a figure that needs no trained model: " + ", ".join(STANDALONE_FIGURE_NAMES),
        description=(
            "Draw a figure that needs no trained model into OUT/NAME.png. samplers: draws of each "
            "sampler on S^2 (one row per sampler, one column per kappa); sampler_histograms: "
            "histograms of w = mu.x of each sampler against the exact density; why_sphere: the "
            "unit-ball volume against the dimension and the norms of Gaussian samples."
        ),
    )
    fi.add_argument("name", choices=STANDALONE_FIGURE_NAMES, help="the figure to draw")
    fi.add_argument(
        "--out",
        type=Path,
        default=Path("figures"),
        help="folder to write NAME.png into (default: %(default)s)",
    )
    fi.add_argument(
        "--kappas",
        type=_kappa_list,
        help="samplers, sampler_histograms: comma-separated concentrations > 0 (default: 1,10,100)",
    )
    fi.add_argument(
        "--samplers",
        type=_sampler_list,
        help="samplers, sampler_histograms: comma-separated samplers among "
        f"{', '.join(SAMPLER_NAMES)} (default: all of them)",
    )
    fi.add_argument(
        "--n",
        type=_at_least_one,
        help=f"samples per panel, at most {MAX_FIGURE_SAMPLES} (default: 400 for samplers, 20000 "
        "for sampler_histograms, 5000 for why_sphere)",
    )
    fi.add_argument(
        "--sphere-dim",
        type=_at_least_one,
        help="sampler_histograms: the sphere S^D the samples lie on, D >= 1 (default: 2)",
    )
    fi.add_argument(
        "--dims",
        type=_dim_list,
        help="why_sphere: comma-separated dimensions of the Gaussian norm histograms "
        "(default: 2,10,20,100)",
    )
    fi.add_argument(
        "--max-dim",
        type=_at_least_one,
        help="why_sphere: the unit-ball volume is drawn for n = 1 .. MAX_DIM (default: 30)",
    )
    fi.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of every draw (default: %(default)s)",
    )


# -- train ------------------------------------------------------------------------------------------
def _train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Command-line settings as a nested partial config (only what was given)."""
    data: dict[str, Any] = {}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}

    latent = _latent_from_flags(args)
    if args.latent is not None:
        if latent is not None:
            raise UsageError(
                "give the latent space either as --latent or as -z/--z-dim or -zd/--z-dims, not both"
            )
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
        model["hidden_sizes"] = _int_list("-hd/--hidden-sizes", args.h_dims)
    if args.encode_type or args.decode_type:
        types = {t for t in (args.encode_type, args.decode_type) if t}
        if len(types) > 1:
            raise UsageError(
                f"-et/--encode-type and -dt/--decode-type must agree (the networks are built as a "
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
    if args.allow_substitute:
        data["allow_substitute"] = True

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
            f"-cvm/--covariance {model.covariance} has no effect: latent {model.latent} has "
            f"no Euclidean factor"
        )
    if "sampler" in given["model"] and (model.posterior != "vmf" or not spec.has_sphere):
        warnings.append(
            f"--sampler {model.sampler} has no effect: only von Mises-Fisher posteriors sample with "
            f"it (posterior {model.posterior}, latent {model.latent})"
        )
    from .data import DATASETS_WITH_SUBSTITUTE

    if "allow_substitute" in given["data"] and config.data.dataset not in DATASETS_WITH_SUBSTITUTE:
        warnings.append(
            f"--allow-substitute has no effect: only {', '.join(DATASETS_WITH_SUBSTITUTE)} has a "
            f"stand-in (dataset {config.data.dataset})"
        )
    return warnings


def _latent_from_flags(args: argparse.Namespace) -> str | None:
    """The latent name meant by the reference flags ``-n``, ``-dis``, ``-z``, ``-zd``."""
    flat = "R" if (args.distribution or args.name) == "normal" else "S"
    if args.z_dims is not None:
        if args.name not in (None, "productspace"):
            raise UsageError(
                f"-zd/--z-dims describes a product space and needs -n/--name productspace, got -n "
                f"{args.name}; use -z/--z-dim for a single sphere"
            )
        if args.z is not None:
            raise UsageError(
                "give either -z/--z-dim (one space) or -zd/--z-dims (a product space), not both"
            )
        dims = _int_list("-zd/--z-dims", args.z_dims)
        return "x".join(f"{flat}{d}" for d in dims)
    if args.name == "productspace":
        raise UsageError("-n/--name productspace needs -zd/--z-dims, e.g. -zd 4,4")
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
        ("-en/--exp-name", args.exp_name is not None),
        ("-ld/--log-dir", args.log_dir is not None),
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
    from .rundir import read_run_config
    from .training.manifest import verify_files

    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    verify_files(run_dir, RUN_FILES_READ)
    config = read_run_config(run_dir)
    if data_dir is not None:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_dir=data_dir)
        )
    return config, run_dir


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .data import evaluation_images
    from .evaluation import evaluate, evaluate_autoencoder
    from .io import atomic_write_json
    from .models import VAE, from_pretrained
    from .rundir import eval_file
    from .training.model_card import write_model_card
    from .training.run import prepare_data
    from .training.trainer import print_line

    config, run_dir = _load_run(args.run_dir, args.data_dir)
    model = from_pretrained(run_dir / "model")
    splits, dynamic = prepare_data(config, run_dir)
    split = splits.split(args.split)
    images, labels = split.images, split.labels
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    images = evaluation_images(images, dynamic, args.seed)  # seed recorded below
    torch.manual_seed(args.seed)
    knn = splits.info.labelled
    knn_data = {
        "labels": labels if knn else None,
        "train_images": splits.train.images if knn else None,
        "train_labels": splits.train.labels if knn else None,
        "knn_k": args.knn_k,
    }
    result: Any
    if isinstance(model, VAE):
        result = evaluate(
            model,
            images,
            ll_samples=args.ll_samples,
            batch_size=args.batch_size,
            log=print_line,
            **knn_data,
        )
    else:  # an auto-encoder: no ELBO, no log p(x); reconstruction and kNN only
        result = evaluate_autoencoder(
            model, images, batch_size=args.batch_size, log=print_line, **knn_data
        )
    report = {
        "split": args.split,
        "dataset": splits.info.name,
        "dataset_source": splits.info.source,
        **({"dataset_substitute": splits.info.substitute} if splits.info.substitute else {}),
        "binarization": f"Bernoulli draw with seed {args.seed}" if dynamic else "none",
        "seed": args.seed,
        **result.to_dict(),
    }
    if not isinstance(model, VAE):
        report = {"model": "autoencoder", **report}
    atomic_write_json(run_dir / eval_file(args.split), report)
    if args.split == "test" and isinstance(model, VAE):
        write_model_card(run_dir)  # with the test scores (the card states a VAE's ELBO)
    for key, value in report.items():
        print(f"{key}: {value}")
    if splits.info.substitute:
        print(f"spherevae: warning: {splits.info.substitute}", file=sys.stderr)
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
    if args.animation_format == "mp4":
        from .plots.animation import VIDEO_EXTRA_MESSAGE, video_available

        if not video_available():  # before any figure is drawn
            raise ImportError(VIDEO_EXTRA_MESSAGE)
    splits, dynamic = prepare_data(config, run_dir)
    written = write_run_figures(
        run_dir, splits, dynamic, args.what or None, animation_format=args.animation_format
    )
    for path in written:
        print(path)
    return 0


# the options of ``figure`` and the figures they apply to
_FIGURE_OPTIONS = {
    "kappas": ("--kappas", ("samplers", "sampler_histograms")),
    "samplers": ("--samplers", ("samplers", "sampler_histograms")),
    "sphere_dim": ("--sphere-dim", ("sampler_histograms",)),
    "dims": ("--dims", ("why_sphere",)),
    "max_dim": ("--max-dim", ("why_sphere",)),
}


def _cmd_figure(args: argparse.Namespace) -> int:
    if args.n is not None and args.n > MAX_FIGURE_SAMPLES:
        raise UsageError(f"--n must be at most {MAX_FIGURE_SAMPLES}, got --n {args.n}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out must be a folder, got the file {args.out}")
    for dest, (flag, figures) in _FIGURE_OPTIONS.items():
        if getattr(args, dest) is not None and args.name not in figures:
            print(
                f"spherevae: warning: {flag} has no effect on {args.name} (it applies to "
                f"{', '.join(figures)})",
                file=sys.stderr,
            )
    from .plots import save_figure
    from .plots.standalone import standalone_figure

    given = {
        dest: getattr(args, dest) for dest in _FIGURE_OPTIONS if getattr(args, dest) is not None
    }
    figure = standalone_figure(args.name, n=args.n, seed=args.seed, **given)
    path = args.out / f"{args.name}.png"
    save_figure(figure, path)
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
    except ImportError as err:  # an optional extra that is not installed, before any command ran
        print(f"spherevae: error: {missing_extra_message(err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT


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
        if args.command == "figure":
            return _cmd_figure(args)
        return _cmd_plot(args)
    except TrainingError as err:
        print(f"spherevae: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(f"spherevae: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT if err.errno in _ENVIRONMENT_ERRNOS else EXIT_USAGE
    except ImportError as err:  # an optional extra that is not installed (the message names it)
        print(f"spherevae: error: {missing_extra_message(err)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except ValueError as err:
        print(f"spherevae: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(text.split())
