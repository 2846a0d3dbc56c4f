"""The productspace experiment's labels: every latent's true ambient size (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import spherevae.plots
from spherevae.experiments import EXPERIMENTS, Setting


def _ambient(latent: str) -> int:
    """Sum of the factors' ambient sizes, S^d lying in R^(d+1)."""
    return sum(int(factor[1:]) + 1 for factor in latent.split("x"))


def test_productspace_says_the_true_ambient_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = Setting.of(quick=False)
    specs = EXPERIMENTS["productspace"].specs(setting)
    assert {spec.latent for spec in specs} >= {"S9", "S4xS4", "S2xS2xS2", "S39"}
    for spec in specs:
        assert spec.group["ambient"] == _ambient(spec.latent), spec
    assert {s.group["ambient_target"] for s in specs if s.latent == "S2xS2xS2"} == {10}

    drawn: dict[str, Any] = {}
    real = spherevae.plots.result_lines

    def capture(panels: dict[str, Any], **kwargs: Any) -> Any:
        drawn.update(panels)
        return real(panels, **kwargs)

    monkeypatch.setattr(spherevae.plots, "result_lines", capture)
    rows = [
        {
            "model": spec.name,
            "dataset": spec.dataset,
            "latent": spec.latent,
            "seed": seed,
            "log_likelihood": -100.0 - seed,
            "ll_samples": 500,
            "negative_elbo": 105.0,
            "reconstruction_nll": 90.0,
            "kl": 15.0,
            **spec.group,
        }
        for spec in specs
        for seed in (0, 1)
    ]
    md = EXPERIMENTS["productspace"].report(setting, tmp_path, rows, specs, lambda line: None)
    table = [line for line in md.splitlines() if line.startswith("| mnist S2xS2xS2 ")]
    assert table and table[0].split(" | ")[1] == "9", table
    assert "S2xS2xS2 has ambient size 9, the nearest to 10 of 3 equal spheres" in md
    assert "ambient 10 (S2xS2xS2: 9)" in drawn["mnist"] and "ambient 40" in drawn["mnist"]
