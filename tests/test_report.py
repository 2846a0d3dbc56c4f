"""``spherevae report``: a page for every latent space that loads offline in headless Chromium.

One 1-epoch run on ``digits`` per latent space (``R2``, ``S1``, ``S2``, ``R5``, ``S4xS4``), shared by
the tests of this module. Chromium is Debian's ``chromium`` package; ``.ci/run`` installs it. The
tests fail (they do not skip) when the browser is missing, naming the package.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from spherevae.cli import main
from spherevae.report import write_report

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
LATENTS = {"R2": "normal", "S1": "vmf", "S2": "vmf", "R5": "normal", "S4xS4": "vmf"}
DIGITS = [str(d) for d in range(10)]


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


def _assert_drawn_without_errors(dom: subprocess.CompletedProcess[str]) -> None:
    """The page's own checks: the latent view was drawn, and no script error was recorded."""
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    assert 'data-plot-ready="1"' in body.group(0), "the latent view was not drawn"
    assert 'data-errors=""' in body.group(0), body.group(0)  # errors and console.error calls
    assert not [m for m in _console_messages(dom.stderr) if "Uncaught" in m]


def _section(text: str, heading: str) -> str:
    """The HTML from ``<h2>heading</h2>`` to the next ``<h2>``."""
    start = text.index(f"<h2>{heading}</h2>")
    return text[start : text.index("<h2>", start + 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``runs(latent)``: a trained run directory with its inline report, made on first use."""
    root = tmp_path_factory.mktemp("report")

    @cache
    def trained(latent: str) -> Path:
        run_dir = root / latent
        args = ["train", "--dataset", "digits", "-hd", "16", "--epochs", "1", "--seed", "3"]
        args += ["--latent", latent, "--posterior", LATENTS[latent]]
        args += ["--no-compiled-sampling", "--device", "cpu", "--out", str(run_dir)]
        assert main(args) == 0
        if latent == "R2":
            assert main(["plot", str(run_dir), "spiral"]) == 0  # a GIF among the figures
        return run_dir

    @cache
    def run(latent: str) -> Path:
        # trained apart, so that a report that fails is tried again without training again
        run_dir = trained(latent)
        assert main(["report", str(run_dir)]) == 0
        return run_dir

    return run


@pytest.fixture(scope="module")
def doms(runs: Callable[[str], Path]) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """``doms(latent)``: the report's DOM after headless Chromium ran its scripts, and a screenshot
    ``<latent>.png`` beside the run directory (one browser start for both)."""

    @cache
    def dom(latent: str) -> subprocess.CompletedProcess[str]:
        run_dir = runs(latent)
        shot = f"--screenshot={run_dir.parent / f'{latent}.png'}"
        return _browse(run_dir / "report.html", "--dump-dom", shot)

    return dom


def _trace_types(page: Path) -> set[str]:
    """The plotly trace types of the page's latent view."""
    spec = re.search(r"var spec = (.*);\n", page.read_text(encoding="utf-8"))
    assert spec is not None
    return {trace["type"] for trace in json.loads(spec.group(1))["data"]}


@pytest.mark.parametrize("latent", LATENTS)
def test_report_loads_in_headless_chromium_with_a_legend(
    latent: str, doms: Callable[[str], subprocess.CompletedProcess[str]]
) -> None:
    dom = doms(latent)
    _assert_drawn_without_errors(dom)
    # plotly's legend: one entry per digit, in label order
    assert re.findall(r'class="legendtext"[^>]*>([^<]*)<', dom.stdout) == DIGITS
    if latent in ("S2", "S4xS4"):
        assert "gl-container" in dom.stdout  # plotly's WebGL scene


@pytest.mark.parametrize("latent", LATENTS)
def test_report_is_self_contained_with_every_figure_of_the_run(
    latent: str, runs: Callable[[str], Path]
) -> None:
    run_dir = runs(latent)
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    # no resource is fetched from anywhere: scripts and images are inline
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"""src=["']https?://""", text)
    for section in (
        "Latent space",
        "Metrics",
        "Training curves",
        "Reconstructions",
        "Configuration",
    ):
        assert f"<h2>{section}</h2>" in text
    figures = sorted(run_dir.glob("plots/*.png")) + sorted(run_dir.glob("plots/*.gif"))
    assert {p.name for p in figures} >= {"curves.png", "latent_means.png", "reconstructions.png"}
    for path in figures:
        mime = "gif" if path.suffix == ".gif" else "png"
        uri = f"data:image/{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        assert uri in text, f"{path.name} is not on the page"
    assert (latent == "R2") == any(p.suffix == ".gif" for p in figures)
    # numbers as numbers: the epoch is an integer, losses have three decimals
    assert '<th>last epoch: epoch</th><td class="num">1</td>' in text
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", _section(text, "Metrics"))
    assert cells and all(re.fullmatch(r"-?\d+(\.\d{3})?|", c) for c in cells), cells


@pytest.mark.parametrize("latent", ["R2", "R5"])
def test_euclidean_latents_are_never_put_on_a_sphere(
    latent: str, runs: Callable[[str], Path]
) -> None:
    page = runs(latent) / "report.html"
    caption = _section(page.read_text(encoding="utf-8"), "Latent space")
    assert "prior" in caption
    assert ("PCA" in caption) == (latent == "R5")
    assert "sphere" not in caption.lower() and "S^" not in caption
    assert _trace_types(page) == {"contour", "scatter"}  # a plane: no sphere surface, no 3-D


def test_spheres_are_drawn_on_the_sphere(runs: Callable[[str], Path]) -> None:
    for latent in ("S2", "S4xS4"):
        assert _trace_types(runs(latent) / "report.html") == {"surface", "scatter3d"}
    assert _trace_types(runs("S1") / "report.html") == {"scatter"}  # the circle and the points
    s2 = (runs("S2") / "report.html").read_text(encoding="utf-8")
    assert "S^2: the latent means on the sphere" in _section(s2, "Latent space")
    s1 = (runs("S1") / "report.html").read_text(encoding="utf-8")
    assert "unit circle" in _section(s1, "Latent space")
    product = _section((runs("S4xS4") / "report.html").read_text(encoding="utf-8"), "Latent space")
    for factor in (1, 2):
        assert f"Factor {factor}, S^4, projected" in product
    assert "renormalised onto S^2" in product


@pytest.mark.parametrize("latent", ["R2", "S2"])
def test_report_screenshot_is_coloured(
    latent: str,
    runs: Callable[[str], Path],
    doms: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    assert doms(latent).returncode == 0
    shot = runs(latent).parent / f"{latent}.png"
    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank
    # the latent points are coloured: some pixels are far from grey
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert np.mean(saturation > 0.3) > 1e-4


def test_plotlyjs_directory_writes_the_bundle_beside_a_small_page(
    runs: Callable[[str], Path], tmp_path: Path
) -> None:
    inline = runs("R2") / "report.html"
    run_dir = tmp_path / "run"
    shutil.copytree(runs("R2"), run_dir)
    page = write_report(run_dir, plotlyjs="directory")
    assert page == run_dir / "report.html"
    bundle = run_dir / "plotly.min.js"
    assert bundle.stat().st_size > 1_000_000
    text = page.read_text(encoding="utf-8")
    assert '<script src="plotly.min.js"></script>' in text
    assert page.stat().st_size < inline.stat().st_size - bundle.stat().st_size / 2
    assert page.stat().st_size < inline.stat().st_size / 4
    _assert_drawn_without_errors(_browse(page, "--dump-dom"))


def test_report_rejects_an_unknown_plotlyjs_mode(runs: Callable[[str], Path]) -> None:
    with pytest.raises(ValueError, match="plotlyjs"):
        write_report(runs("R2"), plotlyjs="cdn")  # type: ignore[arg-type]


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


def test_an_mp4_animation_is_embedded_as_a_video(
    runs: Callable[[str], Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(runs("R2"), run_dir)
    movie = run_dir / "plots" / "spiral.mp4"
    movie.write_bytes(b"\x00\x00\x00\x18ftypmp42 stand-in bytes of a video")
    text = write_report(run_dir).read_text(encoding="utf-8")
    uri = "data:video/mp4;base64," + base64.b64encode(movie.read_bytes()).decode("ascii")
    assert f'<video aria-label="spiral" src="{uri}" autoplay loop muted' in text
