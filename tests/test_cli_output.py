"""What the command line prints and records: one sign convention for every loss term.

The papers' convention: losses (-ELBO, reconstruction NLL, KL) are positive numbers of nats and are
named as losses; log p(x) is negative. Training lines, metrics.csv, eval and its JSON agree.
"""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest

from spherevae.cli import main

FAST = ["--dataset", "digits", "--hidden-sizes", "32", "--seed", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_and_lines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import contextlib
    import io

    run_dir = tmp_path_factory.mktemp("out") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        argv = ["train", *FAST, "--latent", "S2", "--epochs", "2", "--no-compiled-sampling"]
        assert main([*argv, "--out", str(run_dir)]) == 0
    return run_dir, printed.getvalue()


def test_training_lines_show_losses_as_positive_numbers(run_and_lines: tuple[Path, str]) -> None:
    _, printed = run_and_lines
    lines = [line for line in printed.splitlines() if "train loss" in line]
    assert len(lines) == 2, printed
    for line in lines:
        match = re.search(
            r"train loss ([-\d.]+) \(rec NLL ([-\d.]+), KL ([-\d.]+), KL weight [\d.]+\) "
            r"\| val -ELBO ([-\d.]+)",
            line,
        )
        assert match, line
        loss, rec_nll, kl, val = map(float, match.groups())
        assert rec_nll > 0 and kl > 0 and val > 0 and loss == pytest.approx(rec_nll + kl, abs=2e-3)


def test_metrics_eval_and_lines_agree_on_the_sign(
    run_and_lines: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = run_and_lines
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    for name in ("train_reconstruction_nll", "val_reconstruction_nll", "val_negative_elbo"):
        assert all(float(row[name]) > 0 for row in rows), name
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "val", "--ll-samples", "8"]) == 0
    printed = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line
    )
    scores = json.loads((run_dir / "eval_val.json").read_text())
    assert "reconstruction" not in scores  # only names that say the sign
    assert float(printed["reconstruction_nll"]) == scores["reconstruction_nll"] > 0
    assert scores["negative_elbo"] > 0 and scores["log_likelihood"] < 0
    # the exported model is the best epoch's: its validation terms, up to the latent samples and the
    # binarisation of the validation images
    best = min(rows, key=lambda row: float(row["val_negative_elbo"]))
    assert scores["reconstruction_nll"] == pytest.approx(
        float(best["val_reconstruction_nll"]), rel=0.1
    )
    assert scores["kl"] == pytest.approx(float(best["val_kl"]), rel=0.1)


# -- the static_mnist stand-in: only when asked for, and said by every output that used it ----------
@pytest.fixture
def mnist_without_amat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder with a small fake MNIST and no .amat files; no network."""
    import data_fixtures as fx
    from spherevae.data import mnist

    fx.forbid_network(monkeypatch)
    arrays = fx.fake_idx_arrays(seed=5, n_train=120, n_test=30)
    monkeypatch.setattr(mnist, "IDX_SHA256", fx.checksums_of(arrays))
    monkeypatch.setattr(mnist, "N_VALIDATION", 30)
    fx.write_idx_folder(tmp_path / "data" / "mnist", arrays, gz=True)
    return tmp_path / "data"


def test_static_mnist_stand_in_needs_the_flag_and_is_marked(
    mnist_without_amat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spherevae.data.static_mnist import STANDIN_NOTE
    from spherevae.report import write_report

    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", "static_mnist", "--data-dir", str(mnist_without_amat)]
    argv += ["--latent", "S2", "--hidden-sizes", "16", "--epochs", "1", "--no-compiled-sampling"]
    argv += ["--device", "cpu", "--out", str(run_dir)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--allow-substitute" in error[0], error
    assert not run_dir.exists()

    assert main([*argv, "--allow-substitute"]) == 0
    assert f"warning: {STANDIN_NOTE}" in capsys.readouterr().out
    assert "allow_substitute: true" in (run_dir / "config.yaml").read_text()
    assert json.loads((run_dir / "run.json").read_text())["dataset_substitute"] == STANDIN_NOTE
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0  # the run's own setting
    captured = capsys.readouterr()
    assert f"dataset_substitute: {STANDIN_NOTE}" in captured.out
    assert STANDIN_NOTE in captured.err
    assert (
        json.loads((run_dir / "eval_test.json").read_text())["dataset_substitute"] == STANDIN_NOTE
    )
    assert STANDIN_NOTE in (run_dir / "model" / "README.md").read_text()
    page = write_report(run_dir).read_text()
    assert f'<p id="substitute"><strong>Data: {html.escape(STANDIN_NOTE)}.' in page


def test_allow_substitute_without_a_stand_in_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", *FAST, "--epochs", "0", "--allow-substitute", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    assert "warning: --allow-substitute has no effect" in capsys.readouterr().err
    assert "dataset_substitute" not in json.loads((tmp_path / "r" / "run.json").read_text())
