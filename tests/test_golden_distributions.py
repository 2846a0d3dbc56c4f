"""Golden values: every distribution and sampler gives the values, gradients and random draws recorded in
``tests/golden/distributions.npz``.

The cases (``tests/golden/golden_cases.py``, shared with the script that records them,
``tests/golden/make_golden.py``) cover the von Mises-Fisher distribution with each sampler, the Power
Spherical and uniform distributions, the KL divergences registered between families, and products of
two ``S^4`` factors, at ``m in {2, 3, 5, 11, 64, 1024}``, ``kappa in {0, 1e-3, 0.5, 3, 30, 1e3, 1e5}``
(one batch row each) and both float64 and float32: seeded draws (with and without a gradient to keep,
and a large draw that takes the paths of large draws), log-densities of fixed points, entropies,
moments, KL divergences, and the gradients of all of them in the concentrations and mean directions.
Each entry is one parametrised test named by its key, so a failure says which quantity of which case
moved. Its purpose is to hold the code still while it is moved and reorganised: the recorded numbers
are the current implementation's, not independent references (the closed forms are checked against
mpmath in ``test_closed_forms.py``, the samplers' laws in ``test_vmf_sampling.py``).

Tolerances. The comparison is not bitwise: the order of floating-point additions and the vectorised or
scalar kernels of exp, log, lgamma and of torch's normal and gamma variates differ between machines of
the same kind, and the test must pass on any of them. An element passes where

``|new - recorded| <= rtol ((1 + m/64) (|recorded| + row scale) + size of the terms)``,

- ``rtol`` a little above rounding: ``1e-12`` for float64, ``1e-5`` for float32 (about 80 units in
  the last place);
- the row scale, the largest magnitude in the same batch row (the first axis of every entry): a row's
  values share their parameters, and a value that is small by cancellation (a sample's coordinate, a
  log-density where ``kappa mu . x`` meets the log-normaliser) has the rounding errors of the terms
  that cancel, which the row's largest value bounds;
- ``1 + m/64``: sums over ``m`` coordinates and the samplers' quadratures, whose log-densities have
  terms that grow with ``m``, round more at large ``m`` (the derivative of a draw in ``kappa`` at
  ``m = 1024`` moves by up to 7e-13 relative between kernels);
- the size of the terms (``golden_cases.term_scales``, a function of ``m`` and ``kappa`` alone) for
  the closed forms that are differences of larger terms: the Power Spherical's entropy and KL
  divergences (``lgamma(m - 1 + kappa)``), the KL between vMFs (``kappa``), the vMF's entropy
  (``log area - KL``), the derivatives of log-densities. The vMF's KL to the uniform distribution is
  computed without cancellation and keeps the relative tolerance.

An exact zero (the KL at ``kappa = 0``, the gradient of the entropy in ``loc``) must stay zero.
Recomputed with torch's scalar kernels (``ATEN_CPU_CAPABILITY=default``) or its AVX2 ones instead of
AVX-512, every element stays within a ninth of its tolerance.

Draws. With torch's generator seeded before each draw, the same uniforms come out on every machine
and the normal and gamma variates differ at most in their last bits. A rejection test, a
Metropolis-Hastings acceptance or a convergence check of the inverse CDF's Newton iteration could
then decide differently only if its two sides were within a few units in the last place of each
other, which for continuous variates has a probability of order 1e-15 per decision: over the few
thousand decisions of these draws, negligible. A draw that changes its random stream (one more or one
fewer variate, another proposal) moves every later sample by order one and fails.

A change that is meant to move these values (a new case, a deliberate change of arithmetic or of a
random stream) re-records them with ``python tests/golden/make_golden.py``, saying why in its commit.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import golden_cases

RTOL = {"float64": 1e-12, "float32": 1e-5}

STORED, RECORDED_WITH = golden_cases.load()


@cache
def _recomputed(group: str) -> dict[str, np.ndarray]:
    # one computation per group, shared by the group's entries
    return golden_cases.compute_group(group)


@cache
def _term_scales(group: str) -> dict[str, np.ndarray]:
    return golden_cases.term_scales(group)


def tolerance(key: str, recorded: np.ndarray) -> np.ndarray:
    """The largest change of each element of an entry that rounding explains (see the module docstring)."""
    group = golden_cases.group_of(key)
    magnitude = np.abs(recorded.astype(np.float64))
    # the largest magnitude in each batch row (the first axis)
    row = magnitude.max(axis=tuple(range(1, recorded.ndim)), keepdims=True)
    # differences of larger terms: the size of the terms, a function of the case alone
    terms = _term_scales(group).get(key, np.zeros(recorded.shape[:1]))
    terms = terms.reshape(terms.shape + (1,) * (recorded.ndim - 1))
    # sums over m coordinates and the samplers' quadratures (exp of log-densities whose terms grow
    # with m) round more at large m; the size of the terms above already counts m
    growth = 1 + golden_cases.dimension(group) / 64
    rtol = RTOL[recorded.dtype.name]
    return rtol * (growth * (magnitude + row) + terms)


def _versions_note() -> str:
    now = torch.__version__
    then = RECORDED_WITH.get("torch_version")
    if then == now:
        return ""
    return (
        f" (recorded with torch {then}, running {now}: a torch release may change its variates; "
        "if this is the only cause, re-record with tests/golden/make_golden.py)"
    )


@pytest.mark.parametrize("key", list(STORED))
def test_entry_unchanged(key: str) -> None:
    recorded = STORED[key]
    computed = _recomputed(golden_cases.group_of(key)).get(key)
    assert computed is not None, f"{key} is recorded but no longer computed"
    assert computed.dtype == recorded.dtype, (
        f"{key}: dtype {computed.dtype}, recorded {recorded.dtype}"
    )
    assert computed.shape == recorded.shape, (
        f"{key}: shape {computed.shape}, recorded {recorded.shape}"
    )
    allowed = tolerance(key, recorded)
    # inf - inf where an infinity is recorded; a zero tolerance where an exact zero is
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.abs(computed - recorded)
        ok = (computed == recorded) | (error <= allowed)
        if ok.all():
            return
        bad = np.argwhere(~ok)
        worst = tuple(bad[np.argmax(error[~ok] / allowed[~ok])])
    raise AssertionError(
        f"{key}: {len(bad)} of {recorded.size} values moved beyond rounding; "
        f"worst at {worst}: computed {computed[worst]!r}, recorded {recorded[worst]!r}, "
        f"allowed difference {allowed[worst]:.3g}" + _versions_note()
    )


def test_every_case_is_recorded() -> None:
    """Every computed entry is in the file (a new case needs the file re-recorded)."""
    computed = {key for group in golden_cases.groups() for key in _recomputed(group)}
    missing = sorted(computed - set(STORED))
    assert not missing, f"{len(missing)} computed entries are not recorded, e.g. {missing[:5]}"
