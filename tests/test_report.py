"""``spherevae report``: a self-contained page that loads offline in headless Chromium without errors.

Chromium is Debian's ``chromium`` package; ``.ci/run`` installs it. The test fails (it does not skip)
when the browser is missing, naming the package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from spherevae.cli import main

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--virtual-time-budget=20000",
    "--window-size=1200,1000",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed: apt-get install chromium (.ci/run installs it)")


def _browse(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_messages(stderr: str) -> list[str]:
    return re.findall(r"CONSOLE[^\]]*\] (.*)", stderr)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("report") / "run"
    args = ["train", "--dataset", "digits", "--latent", "S2", "-hd", "32", "--epochs", "1"]
    assert main([*args, "--seed", "3", "--out", str(run_dir)]) == 0
    assert main(["report", str(run_dir)]) == 0
    return run_dir / "report.html"


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    # no resource is fetched from anywhere: scripts and images are inline
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"""src=["']https?://""", text)
    assert "data:image/png;base64," in text
    for section in (
        "Latent space",
        "Metrics",
        "Training curves",
        "Reconstructions",
        "Configuration",
    ):
        assert f"<h2>{section}</h2>" in text


def test_report_loads_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    dom = _browse(report, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    assert 'data-plot-ready="1"' in body.group(0), "the 3-D view was not drawn"
    assert 'data-errors=""' in body.group(0), body.group(0)  # errors and console.error calls
    assert not [m for m in _console_messages(dom.stderr) if "Uncaught" in m]
    assert "gl-container" in dom.stdout  # plotly's WebGL scene

    shot = tmp_path / "report.png"
    result = _browse(report, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file()
    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank
    # the latent points are coloured: some pixels are far from grey
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert np.mean(saturation > 0.3) > 1e-4


def test_browser_check_catches_script_errors(tmp_path: Path) -> None:
    """The checks above can fail: a page with a script error is reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><script>console.error('boom'); missingFunction();</script></body></html>"
    )
    dom = _browse(page, "--dump-dom")
    messages = _console_messages(dom.stderr)
    assert any("boom" in m for m in messages)
    assert any("Uncaught" in m and "missingFunction" in m for m in messages)
