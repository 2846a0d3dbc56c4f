"""``RUN_DIR/model/README.md``: the model card says what the model is, its data, scores and weights."""

from __future__ import annotations

import csv
from pathlib import Path

from safetensors.torch import load_file

from spherevae.cli import main


def test_the_model_card_follows_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "-hd", "8", "--latent", "S2xR2", "--epochs", "2"]
    assert main([*argv, "--seed", "1", "--no-compiled-sampling", "--out", str(run_dir)]) == 0
    card = (run_dir / "model" / "README.md").read_text()
    assert "S^2 (the unit sphere in R^3) x R^2 (S2xR2)" in card and "von Mises-Fisher" in card
    assert "digits" in card and "scikit-learn" in card
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    best = min(rows, key=lambda r: float(r["val_negative_elbo"]))
    assert f"{float(best['val_negative_elbo']):.3f} nats at epoch {best['epoch']}" in card
    for name, tensor in load_file(run_dir / "model" / "model.safetensors").items():
        assert f"| `{name}` | {tuple(tensor.shape)} |" in card
    assert "spherevae eval" in card  # no test scores yet
    assert main(["eval", str(run_dir), "--ll-samples", "3"]) == 0
    card = (run_dir / "model" / "README.md").read_text()
    assert "K = 3 importance samples" in card
