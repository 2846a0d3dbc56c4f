"""Seconds per training epoch on MNIST for each latent model, and the wall time of the log-likelihood.

Models (MLP 784-256-128, batch 64, Adam, dynamically binarised MNIST, Bernoulli likelihood):

- ``N-VAE R10``: Gaussian posterior (diagonal), standard normal prior: the baseline;
- ``S-VAE S10 rejection``, ``S-VAE S10 inverse_cdf``, ``S-VAE S10 mh``: von Mises-Fisher posterior
  with each sampler, uniform prior;
- ``PS S10``: Power Spherical posterior, uniform prior;
- ``S4xS4``: a product of two von Mises-Fisher factors.

Timing: every model gets a trainer on the same data (:class:`spherevae.training.Trainer`, the code
``spherevae train`` runs, with its per-step finiteness checks); the models then train one epoch each in
turn, in an order rotated every round (round-robin), so that the load of a shared machine hits them
alike; the reported time is the median over ``--rounds`` rounds and the ratio is to the N-VAE's median.
Target: every spherical model within 1.15x of the N-VAE (the latent distribution costs almost nothing).
``--steps N`` times the first ``N`` steps of an epoch instead of all of them and scales to an epoch
(quick runs). The models train with the default configuration, whose ``train.compiled_sampling:
auto`` draws the von Mises-Fisher latents with compiled kernels on a CPU
(the ``compiled`` argument of ``VonMisesFisher``); a few untimed steps of each model first compile
them. ``--eager`` adds every spherical model again with that setting off (rows ending in "eager").

Log-likelihood: :func:`spherevae.evaluation.evaluate` on the 10000 MNIST test images with ``K = 500``
importance samples (``--ll-samples``), for the N-VAE and the S-VAE (rejection), both freshly
initialised (the cost does not depend on the weights); ``--ll-images`` evaluates fewer images and
scales.

Usage::

    python benchmarks/training.py                       # full: 3 rounds of full epochs, K=500 on 10k
    python benchmarks/training.py --steps 100 --rounds 2 --ll-images 500   # a quick look
    python benchmarks/training.py --eager        # also each spherical model without compiled sampling
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from spherevae import __version__
from spherevae.config import config_from_dict
from spherevae.data import load_dataset
from spherevae.evaluation import evaluate
from spherevae.models import VAE
from spherevae.training.trainer import Trainer

MODELS: dict[str, dict[str, str]] = {
    "N-VAE R10": {"latent": "R10", "posterior": "normal"},
    "S-VAE S10 rejection": {"latent": "S10", "posterior": "vmf", "sampler": "rejection"},
    "S-VAE S10 inverse_cdf": {"latent": "S10", "posterior": "vmf", "sampler": "inverse_cdf"},
    "S-VAE S10 mh": {"latent": "S10", "posterior": "vmf", "sampler": "mh"},
    "PS S10": {"latent": "S10", "posterior": "powerspherical"},
    "S4xS4": {"latent": "S4xS4", "posterior": "vmf"},
}
BASELINE = "N-VAE R10"
TARGET = 1.15


EAGER = " eager"  # suffix of a model name: train.compiled_sampling false (the default is "auto")


def _trainer(name: str, images: torch.Tensor, val: torch.Tensor, batch: int, seed: int) -> Trainer:
    train: dict[str, object] = {"seed": seed, "device": "cpu"}
    if name.endswith(EAGER):
        train["compiled_sampling"] = False
    config = config_from_dict(
        {
            "data": {"batch_size": batch},
            "model": {"image_shape": [1, 28, 28], **MODELS[name.removesuffix(EAGER)]},
            "train": train,
        }
    )
    torch.manual_seed(seed)
    model = VAE(config.model)
    return Trainer(config, model, images, val, dynamic_binarize=True, device=torch.device("cpu"))


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], capture_output=True, text=True
        )
        return out.stdout.strip() + (" (with uncommitted changes in src)" if dirty.stdout else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="epochs timed per model (median taken)")
    ap.add_argument("--steps", type=int, default=None, help="time N steps per epoch and scale")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ll-samples", type=int, default=500)
    ap.add_argument("--ll-images", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="also write the Markdown report here")
    ap.add_argument(
        "--eager",
        action="store_true",
        help="also time every spherical model with train.compiled_sampling false (rows '... eager')",
    )
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",")]
    if args.eager:
        names += [n + EAGER for n in names if n != BASELINE and not n.endswith(EAGER)]
    unknown = [n for n in names if n.removesuffix(EAGER) not in MODELS]
    if unknown or BASELINE not in names:
        ap.error(
            f"--models must include {BASELINE!r} and only names from {list(MODELS)} "
            f"(each optionally with the suffix {EAGER!r})"
        )

    splits = load_dataset("mnist", data_dir=args.data_dir)
    train_images = splits.train.images
    full_steps = -(-len(train_images) // args.batch)
    if args.steps is not None:
        train_images = train_images[: args.steps * args.batch]
    steps = -(-len(train_images) // args.batch)
    scale = full_steps / steps
    val = splits.val.images[:1000]
    # warm-up, untimed: a few steps of each model with the batch sizes of the timed epochs, which
    # compile the kernels of the compiled sampling (kept by the process for the timed trainers)
    last = len(train_images) % args.batch
    warm_images = train_images[: 2 * args.batch + last]
    warm_up = {}
    for name in names:
        start = time.perf_counter()
        _trainer(name, warm_images, val[:10], args.batch, args.seed).train_epoch(0)
        warm_up[name] = time.perf_counter() - start
    trainers = {n: _trainer(n, train_images, val, args.batch, args.seed) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            trainers[name].train_epoch(r)
            times[name].append((time.perf_counter() - start) * scale)
    median = {n: statistics.median(t) for n, t in times.items()}

    lines = [
        "# Training speed",
        "",
        f"- command: `python benchmarks/training.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- spherevae {__version__}, commit {_commit()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); python {platform.python_version()}",
        f"- MNIST, MLP 784-256-128, batch {args.batch}, {full_steps} steps an epoch"
        + (f" (timed on the first {steps} steps, scaled)" if args.steps else "")
        + f"; median of {args.rounds} epochs per model, models interleaved round-robin",
        "",
        f"| model | seconds / epoch | ratio to {BASELINE} | target <= {TARGET} |",
        "|---|---|---|---|",
    ]
    for name in names:
        ratio = median[name] / median[BASELINE]
        mark = "" if name == BASELINE else ("✓" if ratio <= TARGET else "✗")
        lines.append(f"| {name} | {median[name]:.2f} | {ratio:.3f} | {mark} |")
    lines += [
        "",
        "Every model first ran a few untimed steps, which compiled the kernels of its compiled "
        "sampling (`train.compiled_sampling`, default `auto`: on for a CPU; models marked 'eager' "
        "have it off). Wall time of that warm-up: "
        + ", ".join(f"{n} {t:.1f} s" for n, t in warm_up.items())
        + ".",
    ]

    if args.ll_samples > 0 and args.ll_images > 0:
        test = torch.bernoulli(
            splits.test.images[: args.ll_images], generator=torch.Generator().manual_seed(0)
        )
        lines += [
            "",
            f"Importance-weighted log-likelihood, K = {args.ll_samples}, "
            f"{len(test)} test images" + (" (scaled to 10000)" if len(test) < 10_000 else "") + ":",
            "",
            "| model | wall time (s) for 10000 images |",
            "|---|---|",
        ]
        for name in [BASELINE, "S-VAE S10 rejection"]:
            if name not in trainers:
                continue
            model = trainers[name].model
            start = time.perf_counter()
            evaluate(model, test, ll_samples=args.ll_samples, batch_size=100)
            seconds = (time.perf_counter() - start) * 10_000 / len(test)
            lines.append(f"| {name} | {seconds:.1f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
