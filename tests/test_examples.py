"""The scripts in ``examples/`` run, at a small size, and say what they show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("vmf_latent_in_your_model.py", ["--steps", "30"], "cluster centres on the circle"),
        ("your_own_network.py", ["--steps", "20"], "same posterior means: True"),
    ],
)
def test_example_runs(script: str, args: list[str], says: str, tmp_path: Path) -> None:
    extra = ["--out", str(tmp_path / "model")] if script == "your_own_network.py" else []
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert says in done.stdout, done.stdout[-2000:]
