"""Worst errors of ``spherevae.special`` against the 40-digit mpmath references of the test suite.

Evaluates ``log_ive``, ``ive_ratio`` and ``log_iv_normalized`` and their first derivatives in ``z``
(autograd) in float64 and float32 on the union of the grids of ``tests/test_special.py``:

- the default grid ``V_GRID x Z_GRID`` (9 orders x 19 arguments, ``z = 0`` included),
- the dense grid ``V_DENSE x Z_DENSE`` (25 orders in ``[0, 1e4]`` x 86 arguments: ``0``, four per
  decade from ``1e-8`` to ``1e7`` and every integer up to 25),
- the named edge cases ``EDGE_CASES``,
- both sides of every switch between methods (default and dense ``_boundary_cases``: the neighbouring
  representable numbers and ``1e-9`` / ``1e-6`` away),

with the quantities, references and error metrics of the tests (``test_special.QUANTITIES``):
``log_ive`` and its derivative by ``|err| / max(1, |ref|)``, everything else by ``|err| / |ref|``.
Float32 inputs are float32 numbers and the reference is computed at exactly those numbers.

Run from the repository root (needs the dev extra: mpmath, pytest)::

    .venv/bin/python benchmarks/accuracy.py            # every grid, a few minutes on one core
    .venv/bin/python benchmarks/accuracy.py --quick    # without the dense grids, well under a minute

It prints one Markdown table; the vMF closed forms have their own table,
``.venv/bin/python tests/test_closed_forms.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_special as ts  # grids, references and error metrics of the tests

F32, F64 = torch.float32, torch.float64
NAMES = [
    "log_ive",
    "ive_ratio",
    "log_iv_normalized",
    "d_log_ive",
    "d_ive_ratio",
    "d_log_iv_normalized",
]
TARGETS = {
    "log_ive": r"abs err <= {tol:g} * max(1, \|log_ive\|)",
    "d_log_ive": r"abs err <= {tol:g} * max(1, \|ref\|)",
}


def _boundary_points(dtype: torch.dtype, dense: bool) -> Iterator[tuple[float, list[float]]]:
    """The region-boundary points of ``test_accuracy_at_region_boundaries`` (and ``_dense``)."""
    params = ts._boundary_cases(
        series_vs=(0.0, 0.5, 3.0, 10.0, 100.0, 1e4), debye_vs=(0.0, 0.5, 3.0, 9.0)
    )
    for p in params:
        v, zb = p.values
        yield v, [*ts._neighbours(zb, dtype), zb * (1 - 1e-9), zb * (1 + 1e-9)]
    if dense:
        params = ts._boundary_cases(
            series_vs=(0.25, 1.0, 2.0, 5.0, 7.0, 9.0, 20.0, 49.5, 300.0, 1000.0, 5000.0),
            debye_vs=(0.25, 1.0, 2.0, 4.5, 6.0, 7.5, 12.0, 15.0, 17.5),
        )
        for p in params:
            v, zb = p.values
            yield v, [*ts._neighbours(zb, dtype, steps=4), zb * (1 - 1e-6), zb * (1 + 1e-6)]


def points(dtype: torch.dtype, dense: bool) -> Iterator[tuple[float, list[float]]]:
    """``(v, zs)`` batches: default grid, edge cases, boundaries, and with ``dense`` the dense grid."""
    for v in ts.V_GRID:
        yield v, list(ts.Z_GRID)
    if dense:
        for v in ts.V_DENSE:
            yield v, list(ts.Z_DENSE)
    for v, z in ts.EDGE_CASES.values():
        yield v, [z]
    yield from _boundary_points(dtype, dense)


def worst_errors(
    dtype: torch.dtype, dense: bool
) -> dict[str, tuple[float, float, float, int, int]]:
    """Per quantity: (worst error, v, z, number of points, number above the test tolerance)."""
    out = {}
    for name in NAMES:
        tol = ts.QUANTITIES[name].tol[dtype]
        worst, n, n_bad = (-1.0, math.nan, math.nan), 0, 0
        for v, zs in points(dtype, dense):
            for z, _, err in ts._errors(name, v, zs, dtype):
                err = math.inf if math.isnan(err) else err
                n += 1
                n_bad += not err <= tol
                if err > worst[0]:
                    worst = (err, v, z)
        out[name] = (*worst, n, n_bad)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the dense grids")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors; the time is in mpmath
    grid = (
        "default + dense + edges + boundaries" if not args.quick else "default + edges + boundaries"
    )
    rows = []
    t0 = time.time()
    for dtype in (F64, F32):
        res = worst_errors(dtype, dense=not args.quick)
        for name in NAMES:
            err, v, z, n, n_bad = res[name]
            tol = ts.QUANTITIES[name].tol[dtype]
            target = TARGETS.get(name, "rel err <= {tol:g}").format(tol=tol)
            rows.append(
                f"| `{name}` | {str(dtype).removeprefix('torch.')} | {grid} ({n} points) "
                f"| {err:.2e} | ({v:g}, {z:.7g}) | {target} | {n_bad} |"
            )
    print(f"spherevae.special vs mpmath (tests/mp_reference.py), {time.time() - t0:.0f} s\n")
    print(
        "| quantity | dtype | grid (v in [0, 1e4], z in [0, 1e7]) | worst error | at (v, z) | target | points above target |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
