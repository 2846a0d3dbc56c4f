"""The scripts in ``examples/`` run, at a small size, and say what they show."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("vmf_latent_in_your_model.py", ["--steps", "30"], ["cluster centres on the circle"]),
        (
            "your_own_network.py",
            ["--steps", "20", "--epochs", "1"],
            ["same posterior means: True", "its best model has the network 'small-conv'"],
        ),
    ],
)
def test_example_runs(script: str, args: list[str], says: list[str], tmp_path: Path) -> None:
    extra = ["--out", str(tmp_path / "model")] if script == "your_own_network.py" else []
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for line in says:
        assert line in done.stdout, done.stdout[-2000:]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_training_on_your_data_from_the_command_line(tmp_path: Path) -> None:
    """examples/train_on_your_data.sh: a .npz file and a folder of images, 1 epoch, tiny data."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SPHEREVAE": f"{shlex.quote(sys.executable)} -m spherevae",
        "N": "5",
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), *sys.path) if p),
    }
    fast = ["-hd", "8", "--epochs", "1", "--device", "cpu", "--no-compiled-sampling"]
    done = subprocess.run(
        ["sh", str(EXAMPLES / "train_on_your_data.sh"), str(tmp_path / "demo"), *fast],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained on your data" in done.stdout, done.stdout[-2000:]
    runs = tmp_path / "demo" / "runs"
    assert (runs / "digits" / "eval_test.json").is_file()
    for name in ("reconstructions", "decoded_grid", "latent_maps"):
        assert (runs / "shapes" / "plots" / f"{name}.png").is_file(), name
