"""``spherevae experiment NAME``: the classic hyperspherical-VAE experiments, run correctly.

Each experiment trains what it needs with the same code as ``spherevae train`` (one run directory per
model and seed under ``OUT/runs``), evaluates on the test set, and writes ``OUT/results.csv`` (one
row per run, with the commits that trained it), ``OUT/results.md`` (mean and standard deviation over
seeds, with the number of importance samples of every log-likelihood) and figures. The runs can be
spread over processes (``jobs``) and machines (``shard``): see :func:`run_experiment`.
``--quick`` shrinks everything to minutes on 2 CPU cores (few
training images and epochs, small ``K``): its numbers say that the pipeline works, not how the
models compare.

- ``samplers``: the von Mises-Fisher samplers (rejection, inverse CDF, Metropolis-Hastings) side by
  side: exactness (Kolmogorov-Smirnov test of ``w = mu . z`` against its exact law), mean and spread
  of ``w`` against the exact values, acceptance rate and speed, over m in {3, 10, 64} and kappa in
  {1, 10, 100, 1000}; then an S-VAE on MNIST trained with each sampler over several seeds, curves
  with mean and spread, and Welch's t-test of the test negative ELBO of each sampler against
  rejection sampling.
- ``table1``: the S-VAE paper's MNIST table: N-VAE on R^d against S-VAE on S^d for d in {2, 5, 10,
  20, 40}, plus Power Spherical on S^d and a product of two spheres of total dimension d, with the
  published log-likelihoods beside ours.
- ``productspace``: products of spheres at a fixed ambient size (10 and 40; S2xS2xS2 has 9, the
  nearest for three equal spheres, and its rows say so) on MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import RunConfig, config_from_dict
from .io import atomic_write_json, atomic_write_text
from .rundir import read_metrics, read_run_info

if TYPE_CHECKING:
    from .evaluation import EvaluationResult

__all__ = ["EXPERIMENTS", "run_experiment"]

# Davidson et al. (2018), Table 1: importance-weighted log-likelihood on dynamically binarised MNIST
PUBLISHED_LL = {
    2: (-135.73, -132.50),
    5: (-110.21, -108.43),
    10: (-93.84, -93.16),
    20: (-88.90, -89.02),
    40: (-88.93, -90.87),
}


@dataclass(frozen=True)
class Setting:
    """How big an experiment is: ``quick`` for tests, ``full`` for real numbers."""

    epochs: int
    train_limit: int | None
    seeds: int
    ll_samples: int
    eval_images: int | None
    patience: int = 30
    n_samples_w: int = 20_000
    quick: bool = False
    models: tuple[str, ...] | None = None  # train only these models (by table name); None: all

    @staticmethod
    def of(quick: bool) -> Setting:
        if quick:
            return Setting(
                epochs=2,
                train_limit=2000,
                seeds=2,
                ll_samples=20,
                eval_images=500,
                n_samples_w=4000,
                quick=True,
            )
        return Setting(epochs=200, train_limit=None, seeds=3, ll_samples=500, eval_images=None)


@dataclass
class ModelSpec:
    """One model of an experiment: a name for the tables and the config overrides that make it."""

    name: str
    latent: str
    posterior: str
    sampler: str = "rejection"
    dataset: str = "mnist"
    group: dict[str, Any] = field(default_factory=dict)


def _run_config(spec: ModelSpec, seed: int, setting: Setting, data_dir: str | None) -> RunConfig:
    return config_from_dict(
        {
            "data": {
                "dataset": spec.dataset,
                "train_limit": setting.train_limit,
                "data_dir": data_dir,
            },
            "model": {"latent": spec.latent, "posterior": spec.posterior, "sampler": spec.sampler},
            "train": {
                "epochs": setting.epochs,
                "seed": seed,
                "patience": setting.patience,
                "device": "auto",
            },
        }
    )


def _selected(specs: list[ModelSpec], setting: Setting) -> list[ModelSpec]:
    """The experiment's models that ``setting.models`` names (all if it names none).

    Raises:
        ValueError: for a name that is not one of the experiment's models.
    """
    if setting.models is None:
        return specs
    known = [spec.name for spec in specs]
    unknown = [name for name in setting.models if name not in known]
    if unknown:
        raise ValueError(
            f"models: unknown model {unknown[0]!r} for this experiment; known: {', '.join(known)}"
        )
    return [spec for spec in specs if spec.name in setting.models]


def _run_dir(out: Path, spec: ModelSpec, seed: int) -> Path:
    """The run directory of ``spec`` at ``seed`` under an experiment's ``OUT``."""
    return out / "runs" / f"{spec.name}-seed{seed}".replace(" ", "_")


def _run_task(
    experiment: str,
    spec: ModelSpec,
    seed: int,
    setting: Setting,
    out: Path,
    data_dir: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train one (model, seed) if not already done (resuming an interrupted run, extending one
    given more epochs), evaluate it on the test set unless its scores are stored; its row."""
    from .data import evaluation_images, load_dataset
    from .data.files import sha256_file
    from .evaluation import evaluate
    from .models import VAE
    from .rundir import holds_run
    from .training.run import train_run

    run_dir = _run_dir(out, spec, seed)
    if holds_run(run_dir):  # an earlier, maybe interrupted, call; maybe fewer epochs
        train_run(None, None, resume=run_dir, epochs=setting.epochs, log=log)
    else:
        train_run(_run_config(spec, seed, setting, data_dir), run_dir, log=log)
    splits = load_dataset(spec.dataset, data_dir=data_dir)
    test = splits.test
    n = setting.eval_images or len(test.images)
    key = {
        "model_sha256": sha256_file(run_dir / "model" / "model.safetensors"),
        "dataset": spec.dataset,
        "test_images": n,
        "ll_samples": setting.ll_samples,
        "seed": seed,
    }
    result = _cached_evaluation(run_dir, key)
    if result is None:
        images = evaluation_images(test.images[:n], dynamic=True)
        torch.manual_seed(seed)
        result = evaluate(
            VAE.from_pretrained(run_dir / "model"), images, ll_samples=setting.ll_samples, log=log
        )
        atomic_write_json(run_dir / _EVALUATION_FILE, {"key": key, "result": result.to_dict()})
    else:
        log(f"{spec.name} seed {seed}: test scores of this model read from {_EVALUATION_FILE}")
    log(f"{spec.name} seed {seed}: log p(x) {result.log_likelihood:.2f} (K={result.ll_samples})")
    return _row(experiment, spec, seed, run_dir, result)


def _finished_row(
    experiment: str, spec: ModelSpec, seed: int, setting: Setting, out: Path
) -> dict[str, Any] | None:
    """The row of a run that has finished training and been scored for this setting (its stored
    scores are for its current model and ``K``), without training or scoring anything; else ``None``."""
    from .data.files import sha256_file

    run_dir = _run_dir(out, spec, seed)
    try:
        info = read_run_info(run_dir) or {}
        stored = json.loads((run_dir / _EVALUATION_FILE).read_text(encoding="utf-8"))
        model_sha = sha256_file(run_dir / "model" / "model.safetensors")
    except (OSError, ValueError):
        return None
    key = stored.get("key", {})
    if (
        info.get("status") != "finished"
        or key.get("model_sha256") != model_sha
        or key.get("ll_samples") != setting.ll_samples
    ):
        return None
    result = _cached_evaluation(run_dir, key)
    return None if result is None else _row(experiment, spec, seed, run_dir, result)


def _row(
    experiment: str, spec: ModelSpec, seed: int, run_dir: Path, result: EvaluationResult
) -> dict[str, Any]:
    """One row of results.csv: the run, how its training ended, its test scores."""
    history = read_metrics(run_dir)
    info = read_run_info(run_dir) or {}
    val = [row["val_negative_elbo"] for row in history if not math.isnan(row["val_negative_elbo"])]
    return {
        "experiment": experiment,
        "model": spec.name,
        "dataset": spec.dataset,
        "latent": spec.latent,
        "posterior": spec.posterior,
        "sampler": spec.sampler,
        "seed": seed,
        "epochs": len(history),
        "stopped_early": str(info.get("stop_reason", "")).startswith("early stopping"),
        "best_val_negative_elbo": min(val) if val else math.nan,
        "log_likelihood": result.log_likelihood,
        "ll_samples": result.ll_samples,
        "negative_elbo": result.negative_elbo,
        "reconstruction_nll": result.reconstruction_nll,
        "kl": result.kl,
        "active_units": result.active_units,
        "test_images": result.n_images,
        **spec.group,
        "commits": " ".join(info.get("commits", [])),
    }


def _run_task_in_worker(
    experiment: str,
    spec: ModelSpec,
    seed: int,
    setting: Setting,
    out: Path,
    data_dir: str | None,
    threads: int,
) -> dict[str, Any]:
    """:func:`_run_task` in a process of its own, with ``threads`` torch threads, its lines prefixed."""
    torch.set_num_threads(threads)
    prefix = f"[{spec.name} seed {seed}] "
    return _run_task(
        experiment,
        spec,
        seed,
        setting,
        out,
        data_dir,
        lambda line: print(prefix + line, flush=True),
    )


def _train_and_evaluate(
    experiment: str,
    tasks: Sequence[tuple[ModelSpec, int]],
    setting: Setting,
    out: Path,
    data_dir: str | None,
    log: Callable[[str], None],
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Every (model, seed) of ``tasks``, trained and evaluated; their rows in the order of ``tasks``.

    ``jobs > 1`` runs that many tasks at once, each in a process of its own with an equal share of
    this process's torch threads (at least one). A run's numbers depend on its seed and on its
    number of threads (which orders the sums of matrix products), not on the process it ran in.
    """
    if jobs == 1 or len(tasks) <= 1:
        return [
            _run_task(experiment, spec, seed, setting, out, data_dir, log) for spec, seed in tasks
        ]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, torch.get_num_threads() // jobs)
    log(f"{len(tasks)} runs, {jobs} at a time, {threads} torch thread(s) each")
    # spawn, not fork: a forked copy of a process that has started torch's thread pools can hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(
                _run_task_in_worker, experiment, spec, seed, setting, out, data_dir, threads
            )
            for spec, seed in tasks
        ]
        return [future.result() for future in futures]


# a run's test scores, kept so that a later call (more seeds, more models) does not score it again:
# the importance-weighted log-likelihood with K = 500 takes about a minute a model on a CPU
_EVALUATION_FILE = "test_evaluation.json"


def _cached_evaluation(run_dir: Path, key: dict[str, Any]) -> EvaluationResult | None:
    """The stored test scores of ``run_dir`` if they were computed for exactly ``key`` (the exported
    model's SHA-256, the data, ``K`` and the seed), else ``None``."""
    from .evaluation import EvaluationResult

    try:
        stored = json.loads((run_dir / _EVALUATION_FILE).read_text(encoding="utf-8"))
        if stored["key"] != key:
            return None
        return EvaluationResult(**stored["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable or from another version: score again


def _summary(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds for every model, in the order models first appear."""
    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        entry: dict[str, Any] = {k: group[0][k] for k in group[0] if k not in keys and k != "seed"}
        entry["seeds"] = len(group)
        for key in keys:
            values = [float(r[key]) for r in group]
            entry[key] = statistics.fmean(values)
            entry[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
        out.append(entry)
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _md_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(title for _, title in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            sd = row.get(f"{key}_sd")
            if isinstance(value, float):
                text = "" if math.isnan(value) else f"{value:.2f}"
                if sd is not None and not math.isnan(sd):
                    text += f" ± {sd:.2f}"
                cells.append(text)
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_METRICS = ("log_likelihood", "negative_elbo", "reconstruction_nll", "kl")


# -- samplers ----------------------------------------------------------------------------------------
def _w_cdf(m: int, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact CDF of ``w`` on a fine grid (density ``exp(kappa cos t) sin^(m-2) t`` in the angle)."""
    u = np.linspace(0.0, 1.0, 40_001)
    theta = np.pi * u**2  # dense near theta = 0, where large kappa puts the mass
    log_p = kappa * (np.cos(theta) - 1) + (m - 2) * np.log(np.maximum(np.sin(theta), 1e-300))
    if m == 2:
        log_p = kappa * (np.cos(theta) - 1)
    p = np.exp(log_p - log_p.max()) * (2 * np.pi * u)  # d theta = 2 pi u du
    cdf_theta = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(u))])
    cdf_theta /= cdf_theta[-1]
    w = np.cos(theta)[::-1]  # increasing w; P(W <= w) = P(theta >= arccos w)
    return w, (1 - cdf_theta)[::-1]


def _sampler_statistics(setting: Setting, log: Callable[[str], None]) -> list[dict[str, Any]]:
    from scipy import stats

    from .distributions import VonMisesFisher
    from .distributions.von_mises_fisher import Sampler
    from .special import ive_ratio

    rows = []
    for m in (3, 10, 64):
        loc = torch.zeros(m, dtype=torch.float64)
        loc[0] = 1.0
        for kappa in (1.0, 10.0, 100.0, 1000.0):
            grid_w, grid_cdf = _w_cdf(m, kappa)
            mean_exact = float(ive_ratio(m / 2 - 1, torch.tensor(kappa, dtype=torch.float64)))
            samplers: tuple[Sampler, ...] = ("rejection", "inverse_cdf", "mh")
            for index, sampler in enumerate(samplers):
                dist = VonMisesFisher(
                    loc, torch.tensor(kappa, dtype=torch.float64), sampler=sampler
                )
                dist.sample((100,))  # warm-up: one-off costs stay out of the timing
                # a seed per sampler: two inversion samplers fed the same uniforms give the same ranks
                torch.manual_seed(1000 * m + 10 * index + int(math.log10(kappa)))
                start = time.perf_counter()
                w = (dist.sample((setting.n_samples_w,)) @ loc).numpy()
                seconds = time.perf_counter() - start
                ks = stats.kstest(w, lambda x, gw=grid_w, gc=grid_cdf: np.interp(x, gw, gc))
                rate = dist.acceptance_rate
                rows.append(
                    {
                        "m": m,
                        "kappa": kappa,
                        "sampler": sampler,
                        "n": len(w),
                        "ks_statistic": float(ks.statistic),
                        "ks_p_value": float(ks.pvalue),
                        "mean_w": float(w.mean()),
                        "exact_mean_w": mean_exact,
                        "mean_w_z": (float(w.mean()) - mean_exact)
                        / (float(w.std()) / math.sqrt(len(w))),
                        "sd_w": float(w.std()),
                        "acceptance_rate": float(rate.mean()) if rate is not None else math.nan,
                        "us_per_sample": 1e6 * seconds / len(w),
                    }
                )
        log(f"sampler statistics: m={m} done")
    return rows


def _samplers_specs(setting: Setting) -> list[ModelSpec]:
    return [
        ModelSpec(f"S-VAE S2 {s}", "S2", "vmf", sampler=s)
        for s in ("rejection", "inverse_cdf", "mh")
    ]


def _samplers_report(
    setting: Setting,
    out: Path,
    rows: list[dict[str, Any]],
    specs: list[ModelSpec],
    log: Callable[[str], None],
) -> str:
    from scipy import stats

    from .plots import save_figure
    from .plots.curves import seed_band_curves

    statistics_rows = _sampler_statistics(setting, log)
    _write_csv(out / "sampler_statistics.csv", statistics_rows)
    summary = _summary(rows, _METRICS)
    groups = {
        spec.sampler: [read_metrics(_run_dir(out, spec, s)) for s in range(setting.seeds)]
        for spec in specs
    }
    curves = seed_band_curves(
        groups,
        train_keys=("train_loss", "train_reconstruction_nll", "train_kl"),
        title="S-VAE S2 on MNIST by sampler: training (dashed) and validation",
    )
    save_figure(curves, out / "curves.png")
    tests = []
    base = [r["negative_elbo"] for r in rows if r["sampler"] == "rejection"]
    for sampler in ("inverse_cdf", "mh"):
        other = [r["negative_elbo"] for r in rows if r["sampler"] == sampler]
        t = stats.ttest_ind(other, base, equal_var=False) if len(base) > 1 else None
        p = float(t.pvalue) if t is not None else math.nan
        tests.append(
            f"- {sampler} vs rejection: Welch t-test on test -ELBO over {len(base)} seeds, p = {p:.3g}"
        )
    md = [
        "## Sampler statistics",
        "",
        f"{setting.n_samples_w} samples per point; KS test of w against its exact CDF; `mean_w_z` is the "
        "deviation of the sample mean from A_m(kappa) in standard errors.",
        "",
        _md_table(
            statistics_rows,
            [
                ("m", "m"),
                ("kappa", "kappa"),
                ("sampler", "sampler"),
                ("ks_p_value", "KS p"),
                ("mean_w_z", "mean z"),
                ("sd_w", "sd w"),
                ("acceptance_rate", "acceptance"),
                ("us_per_sample", "us / sample"),
            ],
        ),
        "",
        "## S-VAE (S2, MNIST) trained with each sampler",
        "",
        _md_table(
            summary,
            [
                ("model", "model"),
                ("seeds", "seeds"),
                ("log_likelihood", "log p(x)"),
                ("ll_samples", "K"),
                ("negative_elbo", "-ELBO"),
                ("kl", "KL"),
            ],
        ),
        "",
        *tests,
    ]
    return "\n".join(md)


# -- table1 and productspace -------------------------------------------------------------------------
def _table1_family(entry: dict[str, Any]) -> str:
    """The line of a table1 model in the figure: N-VAE, S-VAE, Power Spherical or a product."""
    if entry["posterior"] == "normal":
        return "N-VAE (R^d)"
    if entry["posterior"] == "powerspherical":
        return "Power Spherical (S^d)"
    return "S-VAE product of two spheres" if "x" in entry["latent"] else "S-VAE (S^d)"


def _save_result_figure(
    path: Path,
    points: Sequence[tuple[tuple[str, str], float, dict[str, Any]]],
    *,
    xlabel: str,
    references: dict[str, dict[str, list[tuple[float, float]]]] | None = None,
) -> None:
    """Test log-likelihood (mean and sd over seeds) of each summary entry, as ``result_lines``.

    ``points``: ``((panel, series), x, summary entry)`` for every entry to draw; panels and series
    appear in the order of their first point.
    """
    from .plots import result_lines, save_figure

    panels: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for (panel, series), x, entry in points:
        sd = entry["log_likelihood_sd"]
        mean = entry["log_likelihood"]
        panels.setdefault(panel, {}).setdefault(series, []).append(
            (x, mean, 0.0 if math.isnan(sd) else sd)
        )
    figure = result_lines(
        panels,
        xlabel=xlabel,
        ylabel="test log p(x), nats (K importance samples)",
        references=references,
        title="mean and one standard deviation over seeds",
    )
    save_figure(figure, path)


def _table1_dims(setting: Setting) -> tuple[int, ...]:
    return (2, 5) if setting.quick else (2, 5, 10, 20, 40)


def _table1_specs(setting: Setting) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    for d in _table1_dims(setting):
        half, rest = d // 2, d - d // 2
        product = f"S{half}xS{rest}" if half >= 1 else f"S{d}"
        specs += [
            ModelSpec(f"N-VAE R{d}", f"R{d}", "normal", group={"d": d}),
            ModelSpec(f"S-VAE S{d}", f"S{d}", "vmf", group={"d": d}),
            ModelSpec(f"PS S{d}", f"S{d}", "powerspherical", group={"d": d}),
            ModelSpec(f"product {product}", product, "vmf", group={"d": d}),
        ]
    return specs


def _table1_report(
    setting: Setting,
    out: Path,
    rows: list[dict[str, Any]],
    specs: list[ModelSpec],
    log: Callable[[str], None],
) -> str:
    dims = _table1_dims(setting)
    summary = _summary(rows, _METRICS)
    _save_result_figure(
        out / "log_likelihood.png",
        [(("MNIST, test set", _table1_family(e)), int(e["d"]), e) for e in summary],
        xlabel="latent dimension d",
        references={
            "MNIST, test set": {
                "published N-VAE": [(d, v[0]) for d, v in PUBLISHED_LL.items() if d in dims],
                "published S-VAE": [(d, v[1]) for d, v in PUBLISHED_LL.items() if d in dims],
            }
        },
    )
    for entry in summary:
        published = PUBLISHED_LL.get(int(entry["d"]))
        if published is not None:
            entry["published"] = {"normal": published[0], "vmf": published[1]}.get(
                entry["posterior"], ""
            )
            if entry["posterior"] == "vmf" and entry["latent"].count("x"):
                entry["published"] = ""
    return "\n".join(
        [
            "## MNIST (dynamically binarised), MLP 784-256-128",
            "",
            _md_table(
                summary,
                [
                    ("model", "model"),
                    ("seeds", "seeds"),
                    ("log_likelihood", "log p(x)"),
                    ("ll_samples", "K"),
                    ("published", "published log p(x)"),
                    ("negative_elbo", "-ELBO"),
                    ("reconstruction_nll", "rec NLL"),
                    ("kl", "KL"),
                ],
            ),
            "",
            "Published: Davidson et al. (2018), Table 1 (N-VAE for R^d, S-VAE for S^d).",
        ]
    )


def _productspace_specs(setting: Setting) -> list[ModelSpec]:
    """The latents grouped by the ambient size they aim at; ``ambient`` is each one's true size
    (three equal spheres cannot make 10: S2xS2xS2 has 9)."""
    from .models.latent import parse_latent

    latents = {
        10: ["S9", "S4xS4", "S2xS2xS2", "x".join(["S1"] * 5)],
        40: ["S39", "S19xS19", "S9xS9xS9xS9"],
    }
    datasets = ("mnist",) if setting.quick else ("mnist", "fashion_mnist")
    ambients = (10,) if setting.quick else (10, 40)
    return [
        ModelSpec(
            f"{ds} {lat}",
            lat,
            "vmf",
            dataset=ds,
            group={"ambient": parse_latent(lat).ambient_dim, "ambient_target": a},
        )
        for ds in datasets
        for a in ambients
        for lat in latents[a]
    ]


def _productspace_report(
    setting: Setting,
    out: Path,
    rows: list[dict[str, Any]],
    specs: list[ModelSpec],
    log: Callable[[str], None],
) -> str:
    summary = _summary(rows, _METRICS)
    _save_result_figure(
        out / "log_likelihood.png",
        [
            ((e["dataset"], _ambient_series(summary, e["ambient_target"])), _factors(e), e)
            for e in summary
        ],
        xlabel="number of sphere factors",
    )
    off_target = {
        f"{e['latent']} has ambient size {e['ambient']}, the nearest to {e['ambient_target']} "
        f"of {_factors(e)} equal spheres"
        for e in summary
        if e["ambient"] != e["ambient_target"]
    }
    return "\n".join(
        [
            "## Products of spheres at a fixed ambient size",
            "",
            *([f"{'; '.join(sorted(off_target))}.", ""] if off_target else []),
            _md_table(
                summary,
                [
                    ("model", "model"),
                    ("ambient", "ambient size"),
                    ("seeds", "seeds"),
                    ("log_likelihood", "log p(x)"),
                    ("ll_samples", "K"),
                    ("negative_elbo", "-ELBO"),
                    ("kl", "KL"),
                ],
            ),
        ]
    )


def _factors(entry: dict[str, Any]) -> int:
    return int(entry["latent"].count("x")) + 1


def _ambient_series(summary: list[dict[str, Any]], target: int) -> str:
    """The figure's name for the latents aiming at ambient size ``target``, naming any that miss it
    (``"ambient 10 (S2xS2xS2: 9)"``)."""
    off = sorted(
        {
            f"{e['latent']}: {e['ambient']}"
            for e in summary
            if e["ambient_target"] == target and e["ambient"] != target
        }
    )
    return f"ambient {target}" + (f" ({', '.join(off)})" if off else "")


@dataclass(frozen=True)
class Experiment:
    """An experiment: the models it trains (for a setting) and the report it writes from their rows.

    ``report(setting, out, rows, specs, log)`` draws the figures into ``out`` and returns the body
    of ``results.md``; ``rows`` holds one row per (model, seed), in the order of ``specs``.
    """

    specs: Callable[[Setting], list[ModelSpec]]
    report: Callable[
        [Setting, Path, list[dict[str, Any]], list[ModelSpec], Callable[[str], None]], str
    ]


EXPERIMENTS: dict[str, Experiment] = {
    "samplers": Experiment(_samplers_specs, _samplers_report),
    "table1": Experiment(_table1_specs, _table1_report),
    "productspace": Experiment(_productspace_specs, _productspace_report),
}


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (the i-th of n slices, 1 <= i <= n) as ``(i, n)``.

    Raises:
        ValueError: naming the value, for anything else.
    """
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be written i/n, e.g. 2/4, got shard={text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"shard i/n needs 1 <= i <= n, got shard={text!r}")
    return i, n


def run_experiment(
    name: str,
    out: Path,
    *,
    quick: bool = False,
    data_dir: str | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    epochs: int | None = None,
    seeds: int | None = None,
    models: Sequence[str] | None = None,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    finished_only: bool = False,
) -> Path:
    """Run experiment ``name`` into ``out`` (resuming the runs already there); returns ``results.md``.

    ``epochs``, ``seeds`` and ``models`` (names as in the results table, e.g. ``"S-VAE S10"``) shrink
    the full (or quick) setting to what a machine can afford; ``results.md`` records the setting used.

    The grid of (model, seed) runs can be spread: ``jobs`` trains that many at once on this machine,
    and ``shard=(i, n)`` trains only the i-th of n disjoint slices (runs ``i - 1, i - 1 + n, ...`` of
    the grid in its order), for the array jobs of a cluster, and writes that slice's rows to
    ``OUT/shards/results-i-of-n.csv`` (returned) instead of the report. A later call without
    ``shard`` on the same ``OUT`` finds every run done and only gathers the rows and draws the report.
    The numbers do not depend on the split.

    ``finished_only`` trains and scores nothing: ``results.csv`` and ``results.md`` then hold the
    runs that have finished and been scored so far (for committing results while others still
    train); ``results.md`` says how many of the grid's runs it holds.

    Raises:
        ValueError: for an unknown experiment name or model, a non-positive ``epochs``, ``seeds``
            or ``jobs``, or a shard outside ``1 <= i <= n``.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    setting = Setting.of(quick)
    # an intermediate setting: the full models and data with fewer epochs or seeds, or some models
    for key, value in (("epochs", epochs), ("seeds", seeds), ("jobs", jobs)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{key} must be a positive integer, got {key}={value!r}")
    setting = dataclasses.replace(
        setting,
        epochs=epochs or setting.epochs,
        seeds=seeds or setting.seeds,
        models=tuple(models) if models else None,
    )
    if shard is not None and not 1 <= shard[0] <= shard[1]:
        raise ValueError(f"shard i/n needs 1 <= i <= n, got shard={shard[0]}/{shard[1]}")
    experiment = EXPERIMENTS[name]
    specs = _selected(experiment.specs(setting), setting)
    tasks = [(spec, seed) for spec in specs for seed in range(setting.seeds)]
    out.mkdir(parents=True, exist_ok=True)
    if shard is not None:
        i, n = shard
        rows = _train_and_evaluate(name, tasks[i - 1 :: n], setting, out, data_dir, log, jobs)
        path = out / "shards" / f"results-{i}-of-{n}.csv"
        _write_csv(path, rows)
        return path
    if finished_only:
        found = [_finished_row(name, spec, seed, setting, out) for spec, seed in tasks]
        rows = [row for row in found if row is not None]
        if not rows:
            raise ValueError(f"{out}: no run of this experiment has finished and been scored yet")
        done = {row["model"] for row in rows}
        specs = [spec for spec in specs if spec.name in done]
        partial = f"finished runs only: {len(rows)} of the grid's {len(tasks)}"
    else:
        rows = _train_and_evaluate(name, tasks, setting, out, data_dir, log, jobs)
        partial = ""
    _write_csv(out / "results.csv", rows)
    body = experiment.report(setting, out, rows, specs, log)
    header = [
        f"# Experiment `{name}`{' (quick setting: checks the pipeline, not the science)' if quick else ''}",
        "",
        f"- command: `{command}`",
        f"- setting: {dataclasses.asdict(setting)}",
        *([f"- {partial}"] if partial else []),
        "",
        "",  # a blank line between the list above and the body's first heading
    ]
    report = out / "results.md"
    atomic_write_text(report, "\n".join(header) + body + "\n")
    return report
