"""Bias and variance of two estimators of d E[mu . z] / d kappa for the von Mises-Fisher distribution.

- implicit: spherevae's gradient, ``dw/dkappa = -(dF/dkappa)(w) / p(w)`` (Figurnov et al. 2018), the
  exact derivative of each sample, whatever the sampler;
- pathwise-only: autograd through Wood's accepted proposal ``w = (1 - (1+b) e) / (1 - (1-b) e)`` with
  the Beta variate ``e`` held fixed, which is what code that back-propagates through a rejection
  sampler computes (the ``g_rep`` term of Davidson et al. 2018 without ``g_cor``).

Both are evaluated on the same accepted samples (``e`` is recovered exactly from the sample ``t = 1 - w``
and ``b``: ``e = t / (2b + (1 - b) t)``), so the columns differ only by the estimator. The truth is
``A'(kappa) = Var(mu . z)``.

Run::

    python benchmarks/gradient_variance.py --samples 200000 --out benchmarks/gradient_variance.md
"""

from __future__ import annotations

import argparse
import time

import torch

from spherevae.distributions.von_mises_fisher.gradient import dtheta_dkappa
from spherevae.distributions.von_mises_fisher.proposals import wood_constants
from spherevae.distributions.von_mises_fisher.rejection import wood_rejection
from spherevae.special import mean_resultant_terms

GRID_M = (3, 5, 10, 64, 256)
GRID_KAPPA = (0.1, 1.0, 2.0, 10.0, 100.0, 1000.0)


def estimators(m: int, kappa: float, n: int) -> dict[str, float]:
    """Mean, standard error and variance of both per-sample gradient estimators of ``E[w]``."""
    k = torch.full((1,), kappa, dtype=torch.float64)
    t, _ = wood_rejection(k, m, n)  # (1, n), Wood's sampler also at m = 3 (no closed form here)
    # dw/dkappa = -dt/dkappa = -sin(theta) dtheta/dkappa
    implicit = -(torch.sqrt(t * (2 - t)) * dtheta_dkappa(t, k, m))[0]
    # one leaf per sample, so autograd returns the per-sample pathwise gradients
    k_leaf = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    b, _, _ = wood_constants(k_leaf, m)
    b0 = b.detach()
    e = t[0] / (2 * b0 + (1 - b0) * t[0])  # the accepted Beta variate, held fixed
    t_path = 2 * b * e / (1 - (1 - b) * e)
    (pathwise,) = torch.autograd.grad(-t_path.sum(), k_leaf)
    truth = float(mean_resultant_terms(m / 2 - 1, k)[3])
    out = {"truth": truth}
    for name, g in (("implicit", implicit), ("pathwise", pathwise)):
        mean, var = float(g.mean()), float(g.var())
        se = (var / g.numel()) ** 0.5
        out[f"{name}_mean"], out[f"{name}_var"], out[f"{name}_z"] = mean, var, (mean - truth) / se
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=str, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    lines = [
        f"Per-sample gradient of E[mu . z] in kappa, {args.samples} samples per cell, seed {args.seed}.",
        "z = (mean - truth) / standard error; |z| > 4 means a bias the samples can see.",
        "",
        "| m | kappa | truth A' | implicit mean | z | implicit var | pathwise-only mean | z | pathwise var |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in GRID_M:
        for kappa in GRID_KAPPA:
            r = estimators(m, kappa, args.samples)
            lines.append(
                f"| {m} | {kappa:g} | {r['truth']:.5g} | {r['implicit_mean']:.5g} | "
                f"{r['implicit_z']:+.1f} | {r['implicit_var']:.3g} | {r['pathwise_mean']:.5g} | "
                f"{r['pathwise_z']:+.1f} | {r['pathwise_var']:.3g} |"
            )
            print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"Wall time {time.perf_counter() - start:.0f} s.")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
