"""Time of a training-size von Mises-Fisher draw, eager against compiled, with warm and cold caches.

A draw here is what a training step asks of the latent before the placement on the sphere: the
Bessel terms of the concentrations, ``t = 1 - mu . x`` of one sample per row, and the slope
``dtheta/dkappa`` of the gradient (float32 parameters). Eager: ``spherevae.special.bessel_terms``,
the sampler of ``spherevae.distributions.von_mises_fisher`` (``rejection``, ``metropolis_hastings``
or ``inverse_cdf``) and ``gradient.dtheta_dkappa``; compiled: ``von_mises_fisher.kernels.sample``
(one ``torch.compile``'d
kernel and the random numbers). Both run in one process, alternated, the best of ``--repeats``
rounds of ``--calls`` calls each.

"Cold" writes a 32 MB buffer before every call, as the weights, gradients and optimiser state of a
training step do between two draws: the caches then hold nothing of the draw's code and data, which
is what a draw costs inside a training step.

Usage::

    python benchmarks/compiled_sampling.py                     # m = 11, 64 rows, kappa in [5, 300]
    python benchmarks/compiled_sampling.py --m 5 --rows 128
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

import torch

from spherevae.distributions.von_mises_fisher import (
    DEFAULT_MH_STEPS,
    gradient,
    kernels,
    metropolis_hastings,
    rejection,
)
from spherevae.distributions.von_mises_fisher.inverse_cdf import sample_inverse_cdf
from spherevae.special import bessel_terms

SAMPLERS = ("rejection", "mh", "inverse_cdf")


def _eager(sampler: str, kappa: torch.Tensor, m: int) -> Callable[[], object]:
    def draw() -> object:
        terms = bessel_terms(m / 2 - 1, kappa)
        if sampler == "rejection":
            t = rejection.wood_rejection(kappa, m, 1)[0]
        elif sampler == "mh":
            t = metropolis_hastings.metropolis_hastings(kappa, m, 1, DEFAULT_MH_STEPS)[0]
        else:
            t = sample_inverse_cdf(kappa, m, 1, terms)
        return gradient.dtheta_dkappa(t, kappa, m, terms, single=True)

    return draw


def _compiled(sampler: str, kappa: torch.Tensor, m: int) -> Callable[[], object]:
    def draw() -> object:
        return kernels.sample(sampler, kappa, m, 1, DEFAULT_MH_STEPS, "single")

    return draw


def _time(fn: Callable[[], object], calls: int, repeats: int, flush: torch.Tensor | None) -> float:
    """Best mean time of one call in microseconds, the flush (if any) not timed."""
    best = math.inf
    for _ in range(repeats):
        total = 0.0
        for _ in range(calls):
            if flush is not None:
                flush.add_(1.0)
            start = time.perf_counter()
            fn()
            total += time.perf_counter() - start
        best = min(best, total / calls * 1e6)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=11, help="ambient dimension (S^(m-1))")
    ap.add_argument("--rows", type=int, default=64, help="rows of the batch, one sample each")
    ap.add_argument("--kappa", default="5,300", help="concentrations log-uniform in LO,HI")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    lo, hi = (float(x) for x in args.kappa.split(","))
    torch.manual_seed(0)
    kappa = torch.empty(args.rows, dtype=torch.float64).uniform_(math.log(lo), math.log(hi)).exp_()
    flush = torch.ones(8 << 20)  # 32 MB of float32
    print(
        f"m = {args.m}, {args.rows} rows x 1 sample, kappa log-uniform in [{lo:g}, {hi:g}], "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); microseconds a draw, "
        f"best of {args.repeats} x {args.calls} calls"
    )
    print()
    print("| sampler | eager, warm | compiled, warm | eager, cold | compiled, cold |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        for sampler in SAMPLERS:
            eager, compiled = _eager(sampler, kappa, args.m), _compiled(sampler, kappa, args.m)
            compiled()  # compiles
            cells = [
                _time(fn, args.calls, args.repeats, cold)
                for cold in (None, flush)
                for fn in (eager, compiled)
            ]
            print(f"| {sampler} | " + " | ".join(f"{x:.0f}" for x in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
