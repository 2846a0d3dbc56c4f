"""``spherevae figure NAME``: the figures that need no trained model, their options and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import numpy as np
import pytest

from spherevae import cli
from spherevae.cli import main
from spherevae.plots.samplers import SAMPLER_NAMES
from spherevae.plots.standalone import STANDALONE_FIGURES, standalone_figure


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spherevae", *args], capture_output=True, text=True, timeout=120
    )


def test_the_help_names_are_the_real_ones() -> None:
    assert tuple(STANDALONE_FIGURES) == cli.STANDALONE_FIGURE_NAMES
    assert cli.SAMPLER_NAMES == SAMPLER_NAMES


def test_samplers_one_panel_per_sampler_and_kappa(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figs"
    args = ["figure", "samplers", "--kappas", "2,40,500", "--samplers", "rejection,mh"]
    assert main([*args, "--n", "50", "--out", str(out)]) == 0
    path = out / "samplers.png"
    assert capsys.readouterr().out.strip() == str(path)
    pixels = mpimg.imread(path)
    assert pixels.shape[0] > 100 and float(pixels[..., :3].var()) > 0
    figure = standalone_figure("samplers", kappas=[2, 40, 500], samplers=["rejection", "mh"], n=50)
    titles = [ax.get_title() for ax in figure.axes]
    assert len(titles) == 6
    assert sum("Metropolis-Hastings" in t for t in titles) == 3
    assert [t.split("kappa = ")[1] for t in titles[:3]] == ["2", "40", "500"]


def test_sampler_histograms_match_the_exact_density() -> None:
    figure = standalone_figure(
        "sampler_histograms", kappas=[5.0], samplers=["inverse_cdf"], n=4000, sphere_dim=9
    )
    (ax,) = figure.axes
    assert "S^9" in figure.get_suptitle()
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    centres = np.array([p.get_x() + p.get_width() / 2 for p in ax.patches])
    assert abs(float((heights * widths).sum()) - 1) < 1e-6  # a density histogram
    (line,) = ax.lines
    exact = np.interp(centres, *line.get_data())
    # 4000 draws, 50 bins: the histogram follows the exact density to a few sampling errors
    assert float(np.abs(heights - exact).mean()) < 0.15 * float(exact.max())
    # S^9: w concentrates well inside (-1, 1), unlike S^2 at the same kappa
    assert float(centres[heights.argmax()]) < 0.8


def test_why_sphere_dims_and_volume_range() -> None:
    figure = standalone_figure("why_sphere", dims=[3, 50], max_dim=12, n=300)
    volume, *norms = figure.axes
    assert len(norms) == 2
    assert len(volume.lines[0].get_xdata()) == 12
    assert "N(0, I_50)" in norms[1].get_title()
    assert "300 samples" in norms[0].get_legend_handles_labels()[1]
    # the dashed line at sqrt(d) sits among the samples: the soap bubble
    heights = np.array([p.get_height() for p in norms[1].patches])
    centres = np.array([p.get_x() + p.get_width() / 2 for p in norms[1].patches])
    assert abs(float(centres[heights.argmax()]) - np.sqrt(50)) < 1.0


def test_an_option_of_another_figure_is_warned_about(tmp_path: Path) -> None:
    done = _run_cli("figure", "why_sphere", "--kappas", "3", "--n", "50", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "spherevae: warning: --kappas has no effect on why_sphere (it applies to samplers, "
        "sampler_histograms)"
    )
    assert (tmp_path / "why_sphere.png").is_file()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["samplers", "--kappas", "0"], "--kappas: expected a comma-separated list of finite"),
        (["samplers", "--kappas", "1,,2"], "got '1,,2'"),
        (["samplers", "--kappas", "inf"], "got 'inf'"),
        (["samplers", "--samplers", "rejection,gibbs"], "got 'rejection,gibbs'"),
        (["samplers", "--n", "0"], "--n: expected an integer >= 1, got 0"),
        (["samplers", "--n", "5000000"], "--n must be at most 1000000"),
        (["why_sphere", "--dims", "2,0"], "--dims: expected a comma-separated list of integers"),
        (["sampler_histograms", "--sphere-dim", "0"], "--sphere-dim: expected an integer >= 1"),
        (["pie"], "invalid choice: 'pie'"),
    ],
)
def test_bad_values_exit_2_with_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    done = _run_cli("figure", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    done = _run_cli("figure", "why_sphere", "--out", str(taken))
    assert done.returncode == 2
    assert done.stderr.strip() == f"spherevae: error: --out must be a folder, got the file {taken}"
    assert taken.read_text() == "mine"
