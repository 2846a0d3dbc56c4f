"""Speed of ``rsample`` + ``backward`` for spherevae's distributions against reference implementations.

Two workloads, each ``q = Dist(loc, kappa); z = q.rsample(shape); (z * a).sum().backward()`` with
``loc`` and ``kappa`` leaf tensors that require grad and ``a`` a fixed random vector:

- ``a``: a batch of ``--batch`` (1024) rows, one sample per row, each row its own ``loc`` (random unit
  vector) and ``kappa`` (``kappa0 * exp(0.1 * randn)``);
- ``b``: ``--n-samples`` (100000) samples of one ``(loc, kappa)``, ``q.rsample((n,))``.

Contenders (``pkg-PS`` is the reference all ratios are taken against):

- ``vmf-rejection``, ``vmf-inverse_cdf``, ``vmf-mh``: ``spherevae.distributions.VonMisesFisher`` with
  that ``sampler``;
- ``sv-PS``: ``spherevae.distributions.PowerSpherical``;
- ``pkg-PS``: ``power_spherical.PowerSpherical(loc, scale)`` from the optional PyPI package
  ``power-spherical`` (skipped, and said so, when it is not installed; there are then no ratios);
- ``scipy-vMF``: ``scipy.stats.vonmises_fisher(mu, kappa).rvs(n)``, sampling only (scipy has no
  gradients) and always in float64. For workload ``a`` scipy has no batched parameters, so it loops in
  Python over the rows, one frozen distribution and one ``rvs(1)`` per row: that loop is what a user of
  scipy would have to write. Each ``rvs`` call builds its rotation by a QR decomposition of an
  ``m x m`` matrix (about 0.27 s at ``m = 1024`` here), so the loop runs over the first
  ``--scipy-rows`` (32) rows only and its time is scaled to the ``--batch`` rows (the rows cost alike).

All torch contenders are built with ``validate_args=False`` (the parameter checks are not what is
measured); construction of the distribution is inside the timed call, as in a training step.

Timing: per grid point, the contenders run ``--warmup`` untimed calls each, then ``--repeats`` rounds
in which they run one after the other in an order rotated every round (round-robin), so that the load
of a shared machine hits all of them alike and the ratios are measured side by side. A timed sample of a
call shorter than ``--min-time`` is a loop of back-to-back calls (sized from the warm-up) divided by
their number. The reported time is the median over rounds, the ratio the ratio of medians. Two knobs
keep the huge points affordable (``n = 100000`` samples at ``m = 1024`` is 10^8 numbers; one call takes
tens of seconds): ``--budget`` (default 15 s) cuts the rounds at a point to those that fit in that many
seconds, at least one; and a contender whose warm-up call took more than ``--long-call`` (default 2 s)
keeps that call as its first timed sample. The rounds column of the table is the number of samples per
contender. ``--max-elements`` skips (and lists) workload-b points with ``n * m`` above it. Even so the
full grid takes about an hour on a busy 2-core machine, most of it at workload b, ``m = 1024``.

Threads: torch runs single-threaded unless ``--threads`` says otherwise. On a shared machine whose
cores are oversubscribed, torch's OpenMP workers spin-wait for descheduled siblings and small operators
become up to a hundred times slower (seen here: 14 ms single-threaded, 1.45 s with two threads on two
busy cores, same call), which measures the scheduler, not the algorithms. Single-threaded timings
compare the algorithms; ``--threads 0`` keeps torch's default. The same holds for numpy's OpenBLAS,
which scipy's sampler uses (one row at ``m = 1024``: 0.27 s with one BLAS thread, 7 s with two): the
script restarts itself once with ``OPENBLAS_NUM_THREADS`` set to ``--threads`` unless the environment
already sets it.

Targets (marked in the table): ``vmf-rejection / pkg-PS <= 1.5`` and ``sv-PS / pkg-PS <= 1.0`` at every
grid point. The other ratios are printed for information.

Usage::

    python benchmarks/distributions.py                      # full grid, float32 and float64
    python benchmarks/distributions.py --quick              # m in {3, 64}, kappa in {10, 1e3}, float32
    python benchmarks/distributions.py --repeats 5 --dtypes float32 --out results.md
    python benchmarks/distributions.py --ms 256 --kappas 1e4 --workloads b --profile
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.metadata
import io
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from spherevae.distributions import PowerSpherical, VonMisesFisher

try:  # optional reference implementation (pip install power-spherical)
    import power_spherical as _power_spherical
except ImportError:  # pragma: no cover - depends on the environment
    _power_spherical = None

try:  # optional: scipy is a dev/bench extra, not a dependency
    from scipy.stats import vonmises_fisher as _scipy_vmf
except ImportError:  # pragma: no cover - depends on the environment
    _scipy_vmf = None

REFERENCE = "pkg-PS"
SAMPLERS = ("rejection", "inverse_cdf", "mh")
CONTENDERS = (*(f"vmf-{s}" for s in SAMPLERS), "sv-PS", REFERENCE, "scipy-vMF")
# contender -> largest acceptable ratio to the reference
TARGETS = {"vmf-rejection": 1.5, "sv-PS": 1.0}
FULL_MS = (3, 10, 64, 256, 1024)
FULL_KAPPAS = (1.0, 10.0, 100.0, 1e3, 1e4)
QUICK_MS = (3, 64)
QUICK_KAPPAS = (10.0, 1e3)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
WORKLOADS = {
    "a": "batch of rows, one sample per row, own loc and kappa per row",
    "b": "n samples of one (loc, kappa)",
}


@dataclass(frozen=True)
class Point:
    """One grid point."""

    workload: str
    dtype: str
    m: int
    kappa: float


@dataclass
class Result:
    """Timings at one grid point: median seconds per contender (``None``: skipped or failed)."""

    point: Point
    rounds: int
    median: dict[str, float | None] = field(default_factory=dict)
    note: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None

    def ratio(self, name: str) -> float | None:
        ref, val = self.median.get(REFERENCE), self.median.get(name)
        if ref is None or val is None or ref <= 0:
            return None
        return val / ref


# -- the workloads ---------------------------------------------------------------------------------
def _make_inputs(
    point: Point, batch: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``loc``, ``kappa`` (leaves requiring grad) and the fixed vector ``a``, reproducible per point."""
    key = f"{point.workload}-{point.m}-{point.kappa!r}".encode()
    gen = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(key))
    dtype = DTYPES[point.dtype]
    rows = batch if point.workload == "a" else 1
    loc = torch.randn(rows, point.m, generator=gen, dtype=torch.float64)
    loc = loc / torch.linalg.vector_norm(loc, dim=-1, keepdim=True)
    if point.workload == "a":
        kappa = point.kappa * torch.exp(0.1 * torch.randn(rows, generator=gen, dtype=torch.float64))
    else:
        loc, kappa = loc[0], torch.tensor(point.kappa, dtype=torch.float64)
    a = torch.randn(point.m, generator=gen, dtype=torch.float64).to(dtype)
    loc = loc.to(dtype).requires_grad_()
    kappa = kappa.to(dtype).requires_grad_()
    return loc, kappa, a


def _torch_call(
    factory: Callable[[torch.Tensor, torch.Tensor], Any],
    loc: torch.Tensor,
    kappa: torch.Tensor,
    a: torch.Tensor,
    sample_shape: tuple[int, ...],
) -> Callable[[], None]:
    def call() -> None:
        loc.grad = None
        kappa.grad = None
        q = factory(loc, kappa)
        z = q.rsample(sample_shape)
        (z * a).sum().backward()

    return call


def _package_power_spherical(loc: torch.Tensor, scale: torch.Tensor) -> Any:
    """The reference: ``power_spherical.PowerSpherical(loc, scale)``, ``scale`` of shape ``batch``."""
    assert _power_spherical is not None
    return _power_spherical.PowerSpherical(loc, scale, validate_args=False)


def _scipy_call(
    loc: torch.Tensor, kappa: torch.Tensor, sample_shape: tuple[int, ...], seed: int, rows: int
) -> Callable[[], None]:
    """scipy's sampler; for workload a a loop over the first ``rows`` rows, its time scaled to all."""
    assert _scipy_vmf is not None
    mu = loc.detach().to(torch.float64).numpy()
    mu = mu / np.linalg.norm(mu, axis=-1, keepdims=True)
    kap = kappa.detach().to(torch.float64).numpy()
    rng = np.random.default_rng(seed)
    vmf = _scipy_vmf
    if mu.ndim == 2:  # workload a: no batched parameters in scipy, loop over the rows
        rows = min(rows, mu.shape[0])

        def call() -> None:
            for i in range(rows):
                vmf(mu[i], float(kap[i])).rvs(1, random_state=rng)

        call.time_scale = mu.shape[0] / rows  # type: ignore[attr-defined]

    else:
        n = int(np.prod(sample_shape)) if sample_shape else 1

        def call() -> None:
            vmf(mu, float(kap)).rvs(n, random_state=rng)

    return call


def available_contenders() -> tuple[list[str], dict[str, str]]:
    """Contenders that can run here, and a reason for each that cannot."""
    names, skipped = [], {}
    for name in CONTENDERS:
        if name == REFERENCE and _power_spherical is None:
            skipped[name] = "package power-spherical not installed (pip install power-spherical)"
        elif name == "scipy-vMF" and _scipy_vmf is None:
            skipped[name] = "scipy.stats.vonmises_fisher not available (scipy >= 1.11)"
        else:
            names.append(name)
    return names, skipped


def make_calls(
    point: Point,
    names: Sequence[str],
    batch: int,
    n_samples: int,
    seed: int,
    scipy_rows: int = 32,
) -> dict[str, Callable[[], None]]:
    """One zero-argument callable per contender, each running one rsample (+ backward) at ``point``."""
    loc, kappa, a = _make_inputs(point, batch, seed)
    shape = () if point.workload == "a" else (n_samples,)
    calls: dict[str, Callable[[], None]] = {}
    for name in names:
        if name.startswith("vmf-"):
            sampler = name[4:]

            def factory(lc: torch.Tensor, kp: torch.Tensor, s: Any = sampler) -> VonMisesFisher:
                return VonMisesFisher(lc, kp, sampler=s, validate_args=False)

            calls[name] = _torch_call(factory, loc, kappa, a, shape)
        elif name == "sv-PS":
            calls[name] = _torch_call(
                lambda lc, kp: PowerSpherical(lc, kp, validate_args=False), loc, kappa, a, shape
            )
        elif name == REFERENCE:
            assert _power_spherical is not None
            calls[name] = _torch_call(_package_power_spherical, loc, kappa, a, shape)
        elif name == "scipy-vMF":
            calls[name] = _scipy_call(loc, kappa, shape, seed, scipy_rows)
    return calls


# -- timing ----------------------------------------------------------------------------------------
def _timed(fn: Callable[[], None], inner: int) -> float:
    """Wall seconds per call of ``fn`` over ``inner`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def measure(
    point: Point,
    calls: dict[str, Callable[[], None]],
    *,
    warmup: int,
    repeats: int,
    min_time: float,
    budget: float | None,
    long_call: float,
) -> Result:
    """Warm up, then interleave the contenders round-robin; median seconds per call for each.

    The warm-up rounds are interleaved too; at least one warm-up call runs (it sizes the inner loops
    and the budget). A contender whose last warm-up call took longer than ``long_call`` seconds keeps
    that call as its first timed sample: against a call that long, one-off costs are negligible.
    """
    names = list(calls)
    failed: dict[str, str] = {}
    estimate: dict[str, float] = {}
    for _ in range(max(warmup, 1)):
        for name in names:
            if name in failed:
                continue
            try:
                estimate[name] = _timed(calls[name], 1)
            except (RuntimeError, ValueError, MemoryError) as exc:  # report, keep going
                failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    live = [n for n in names if n not in failed]
    inner = {n: max(1, math.ceil(min_time / max(estimate[n], 1e-9))) for n in live}
    rounds = repeats
    if budget is not None and live:
        per_round = sum(estimate[n] * inner[n] for n in live)
        rounds = max(1, min(repeats, int(budget // max(per_round, 1e-9))))
    samples = {n: [estimate[n]] if estimate[n] > long_call else [] for n in live}
    # budget and inner loops count wall seconds; the reported time scales scipy's subset of rows
    for r in range(rounds):
        order = live[r % len(live) :] + live[: r % len(live)] if live else []
        for name in order:
            if len(samples[name]) < rounds:
                samples[name].append(_timed(calls[name], inner[name]))
    result = Result(point, rounds)
    for name in names:
        if name in failed:
            result.median[name] = None
            result.note[name] = failed[name]
        else:
            scale = getattr(calls[name], "time_scale", 1.0)
            result.median[name] = scale * statistics.median(samples[name])
    return result


# -- reporting -------------------------------------------------------------------------------------
def _fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = 1e3 * seconds
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _fmt_ratio(result: Result, name: str, marks: bool) -> str:
    ratio = result.ratio(name)
    if ratio is None:
        return "n/a"
    text = f"{ratio:.2f}"
    if marks and name in TARGETS:
        text += " ✓" if ratio <= TARGETS[name] else " ✗"
    return text


def _kappa_str(kappa: float) -> str:
    return f"{kappa:g}"


def table_lines(results: Sequence[Result], names: Sequence[str], marks: bool = True) -> list[str]:
    """Markdown table: median ms per contender, then the ratios to the reference."""
    others = [n for n in names if n != REFERENCE]
    head = ["workload", "dtype", "m", "κ", "rounds"]
    head += [f"{n} ms" for n in names]
    if REFERENCE in names:
        head += [f"{n} / {REFERENCE}" for n in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        p = res.point
        rounds = "skipped" if res.skipped else str(res.rounds)
        row = [p.workload, p.dtype, str(p.m), _kappa_str(p.kappa), rounds]
        row += [_fmt_ms(res.median.get(n)) for n in names]
        if REFERENCE in names:
            row += [_fmt_ratio(res, n, marks) for n in others]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary_lines(results: Sequence[Result], names: Sequence[str]) -> list[str]:
    """Per target: how many grid points meet it, the worst ratio and where."""
    if REFERENCE not in names:
        return [f"- no ratios: the reference {REFERENCE} (package power-spherical) was skipped"]
    lines = []
    for name in [*TARGETS, *(n for n in names if n not in TARGETS and n != REFERENCE)]:
        if name not in names:
            continue
        pairs = [(r.ratio(name), r.point) for r in results]
        valid = [(x, p) for x, p in pairs if x is not None]
        if not valid:
            lines.append(f"- {name} / {REFERENCE}: no valid measurement")
            continue
        worst, where = max(valid, key=lambda t: t[0])
        best, best_where = min(valid, key=lambda t: t[0])
        at = f"({where.workload}, {where.dtype}, m={where.m}, κ={_kappa_str(where.kappa)})"
        at_best = (
            f"({best_where.workload}, {best_where.dtype}, m={best_where.m}, "
            f"κ={_kappa_str(best_where.kappa)})"
        )
        if name in TARGETS:
            limit = TARGETS[name]
            met = sum(x <= limit for x, _ in valid)
            lines.append(
                f"- target {name} / {REFERENCE} <= {limit}: met at {met}/{len(valid)} points; "
                f"worst {worst:.2f} at {at}; best {best:.2f} at {at_best}"
            )
        else:
            lines.append(
                f"- {name} / {REFERENCE} (no target): worst {worst:.2f} at {at}; "
                f"best {best:.2f} at {at_best}"
            )
    skipped = [r for r in results if r.skipped]
    if skipped:
        where = "; ".join(
            f"({r.point.workload}, {r.point.dtype}, m={r.point.m}, κ={_kappa_str(r.point.kappa)})"
            for r in skipped
        )
        lines.append(f"- not measured ({skipped[0].skipped}): {where}")
    failures = [(r.point, n, msg) for r in results for n, msg in r.note.items()]
    for p, n, msg in failures:
        lines.append(f"- {n} failed at ({p.workload}, {p.dtype}, m={p.m}, κ={p.kappa:g}): {msg}")
    return lines


def _git_state() -> str:
    """Commit of the checkout and whether ``src/`` differs from it (what was measured)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"commit {head}" + (f", src/ with {changed} uncommitted change(s)" if changed else "")


def machine_lines() -> list[str]:
    """Machine, library versions, threads, date."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            platform.processor() or "unknown",
        )
    except OSError:
        cpu = platform.processor() or "unknown"
    versions = [f"torch {torch.__version__}", f"numpy {np.__version__}"]
    for dist in ("scipy", "power-spherical"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- spherevae source: {_git_state()}",
        f"- machine: {cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"python {platform.python_version()}, {platform.system()} {platform.machine()}",
        f"- versions: {', '.join(versions)}",
    ]


def write_markdown(
    path: str,
    results: Sequence[Result],
    names: Sequence[str],
    skipped: dict[str, str],
    argv: Sequence[str],
    settings: str,
    complete: bool,
    header: Sequence[str],
) -> None:
    lines = ["# rsample + backward timings", ""]
    lines += [f"- command: `python benchmarks/distributions.py {' '.join(argv)}`".rstrip()]
    lines += [*header, f"- settings: {settings}"]
    if not complete:
        lines += [
            "- **incomplete**: the run was still going or was interrupted when this was written"
        ]
    for name, why in skipped.items():
        lines += [f"- skipped {name}: {why}"]
    lines += ["", "Median milliseconds per call; ratios are to `pkg-PS` (lower is faster)."]
    lines += [f"Targets: {', '.join(f'{n} / {REFERENCE} <= {x}' for n, x in TARGETS.items())}."]
    lines += ["", "## Summary", "", *summary_lines(results, names), ""]
    for wl, desc in WORKLOADS.items():
        sub = [r for r in results if r.point.workload == wl]
        if sub:
            lines += [f"## Workload {wl}: {desc}", "", *table_lines(sub, names), ""]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


# -- profiling -------------------------------------------------------------------------------------
def profile_point(point: Point, name: str, batch: int, n_samples: int, seed: int, top: int) -> None:
    """cProfile (Python-level split) and torch.profiler (operator-level) of one call of ``name``."""
    call = make_calls(point, [name], batch, n_samples, seed)[name]
    call()  # warm-up
    print(f"\n=== profile of {name} at {point} ===")
    prof = cProfile.Profile()
    prof.enable()
    call()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats("cumulative")
    stats.print_stats(r"spherevae|backward|power_spherical|distributions", top)
    print("\n".join(ln for ln in buf.getvalue().splitlines() if ln.strip())[:6000])
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as tprof:
        call()
    print(tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


# -- command line ----------------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _strs(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--quick", action="store_true", help="m in {3,64}, κ in {10,1e3}, float32, fewer repeats"
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per point (default 5, quick 3)"
    )
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls per contender and point")
    ap.add_argument("--dtypes", type=_strs, default=None, help="comma list of float32,float64")
    ap.add_argument("--ms", type=_ints, default=None, help="comma list of ambient dimensions m")
    ap.add_argument("--kappas", type=_floats, default=None, help="comma list of concentrations")
    ap.add_argument("--workloads", type=_strs, default=["a", "b"], help="comma list of a,b")
    ap.add_argument(
        "--contenders", type=_strs, default=None, help=f"subset of {','.join(CONTENDERS)}"
    )
    ap.add_argument("--batch", type=int, default=1024, help="rows of workload a")
    ap.add_argument("--n-samples", type=int, default=100_000, help="samples of workload b")
    ap.add_argument(
        "--scipy-rows",
        type=int,
        default=32,
        help="workload a: scipy loops over this many rows; its time is scaled to --batch rows",
    )
    ap.add_argument(
        "--min-time", type=float, default=0.02, help="seconds per timed sample (inner loop)"
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=15.0,
        help="seconds per point: fewer rounds (at least 1) when the rounds would take longer; 0: none",
    )
    ap.add_argument(
        "--long-call",
        type=float,
        default=2.0,
        help="seconds: a warm-up call longer than this counts as the first timed sample",
    )
    ap.add_argument(
        "--max-elements",
        type=float,
        default=None,
        help="skip (and list) workload-b points with n-samples * m above this",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: leave torch's default); see the module docstring",
    )
    ap.add_argument("--out", default=None, help="write the Markdown report (table + summary) here")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="profile vmf-rejection (or --contenders) at the selected points instead of timing",
    )
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.dtypes is None:
        args.dtypes = ["float32"] if args.quick else list(DTYPES)
    if args.ms is None:
        args.ms = list(QUICK_MS if args.quick else FULL_MS)
    if args.kappas is None:
        args.kappas = list(QUICK_KAPPAS if args.quick else FULL_KAPPAS)
    for d in args.dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r}; choose from {list(DTYPES)}")
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {list(WORKLOADS)}")
    for c in args.contenders or []:
        if c not in CONTENDERS:
            ap.error(f"unknown contender {c!r}; choose from {list(CONTENDERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names, skipped = available_contenders()
    if args.contenders is not None:
        names = [n for n in names if n in args.contenders]
    points = [
        Point(w, d, m, k)
        for w in args.workloads
        for d in args.dtypes
        for m in args.ms
        for k in args.kappas
    ]
    if args.profile:
        targets = args.contenders or ["vmf-rejection"]
        for p in points:
            for name in targets:
                if name in names:
                    profile_point(p, name, args.batch, args.n_samples, args.seed, top=25)
        return 0

    settings = (
        f"warmup {args.warmup}, repeats {args.repeats}, min-time {args.min_time} s, "
        f"budget {args.budget or 'none'} s per point, long-call {args.long_call} s, "
        f"max-elements {args.max_elements or 'none'}, threads {torch.get_num_threads()}, "
        f"batch {args.batch}, n-samples {args.n_samples}, scipy-rows {args.scipy_rows}, "
        f"seed {args.seed}"
    )
    header = machine_lines()  # at the start: the commit measured is the one imported
    print("\n".join(header))
    print(f"- settings: {settings}")
    for name, why in skipped.items():
        print(f"- SKIPPED {name}: {why}")
    if REFERENCE not in names:
        print(f"- no ratios will be printed: the reference {REFERENCE} is not available")
    print(f"- {len(points)} grid points, contenders: {', '.join(names)}", flush=True)

    # one call of every contender before the grid: one-off costs (lazy initialisation, cached tables)
    # would otherwise land on the first grid point
    if points:
        for call in make_calls(points[0], names, args.batch, args.n_samples, args.seed).values():
            call()

    results: list[Result] = []
    start = time.perf_counter()
    others = [n for n in names if n != REFERENCE]
    for i, point in enumerate(points):
        size = args.n_samples * point.m
        if point.workload == "b" and args.max_elements and size > args.max_elements:
            why = f"n-samples * m > --max-elements {args.max_elements:g}"
            results.append(Result(point, 0, dict.fromkeys(names), skipped=why))
            print(
                f"[{i + 1}/{len(points)}] workload b {point.dtype} m={point.m} κ={point.kappa:g}: "
                f"skipped, {why}",
                flush=True,
            )
            continue
        calls = make_calls(point, names, args.batch, args.n_samples, args.seed, args.scipy_rows)
        res = measure(
            point,
            calls,
            warmup=args.warmup,
            repeats=args.repeats,
            min_time=args.min_time,
            budget=args.budget or None,
            long_call=args.long_call,
        )
        del calls
        results.append(res)
        times = "  ".join(f"{n} {_fmt_ms(res.median[n])}" for n in names)
        ratios = "  ".join(f"{n} {_fmt_ratio(res, n, True)}" for n in others)
        print(
            f"[{i + 1}/{len(points)} {time.perf_counter() - start:.0f}s] workload {point.workload} "
            f"{point.dtype} m={point.m} κ={_kappa_str(point.kappa)} rounds={res.rounds}\n"
            f"    ms:     {times}\n    ratio:  {ratios}",
            flush=True,
        )
        for n, msg in res.note.items():
            print(f"    FAILED {n}: {msg}", flush=True)
        if args.out:
            write_markdown(args.out, results, names, skipped, argv, settings, False, header)

    print()
    print("\n".join(table_lines(results, names)))
    print()
    print("\n".join(summary_lines(results, names)))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.out:
        write_markdown(args.out, results, names, skipped, argv, settings, True, header)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    # numpy's OpenBLAS (scipy's QR) reads its thread count when it loads, with torch, before main()
    # runs: restart once with it set, unless the environment sets it or --threads 0 asks for defaults
    _threads = parse_args(sys.argv[1:]).threads
    if _threads > 0 and "OPENBLAS_NUM_THREADS" not in os.environ:
        os.environ["OPENBLAS_NUM_THREADS"] = str(_threads)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    sys.exit(main())
