"""``evaluate_autoencoder`` and ``spherevae eval`` on an auto-encoder run: reconstruction and kNN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from spherevae.cli import main
from spherevae.evaluation import evaluate_autoencoder
from spherevae.models import AutoEncoder, ModelConfig


def _autoencoder(latent: str = "S2") -> AutoEncoder:
    torch.manual_seed(0)
    config = ModelConfig(
        image_shape=(1, 8, 8), latent=latent, hidden_sizes=(16,), kind="autoencoder"
    )
    return AutoEncoder(config).eval()


@pytest.mark.parametrize("latent", ["S2", "R3"])
def test_reconstruction_terms_match_the_model(latent: str) -> None:
    model = _autoencoder(latent)
    images = torch.bernoulli(torch.rand(23, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    result = evaluate_autoencoder(model, images, batch_size=5)  # batches of 5, 5, 5, 5, 3
    with torch.no_grad():
        loss = float(model.loss(images).loss)
        mse = float((images - model.reconstruct(images)).pow(2).mean())
    assert result.reconstruction_nll == pytest.approx(loss, rel=1e-5)
    assert result.reconstruction_nll > 0  # a loss, positive like the VAE's
    assert result.reconstruction_mse == pytest.approx(mse, rel=1e-5)
    assert result.n_images == 23
    assert math.isnan(result.knn_accuracy) and result.knn_k == 0


def test_knn_on_the_training_images_themselves_is_perfect() -> None:
    model = _autoencoder()
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(40) % 4
    result = evaluate_autoencoder(
        model, images, labels=labels, train_images=images, train_labels=labels, knn_k=1
    )
    # each code's nearest neighbour is itself, so 1-NN is right whenever codes and labels line up
    assert result.knn_accuracy == 1.0 and result.knn_k == 1 and result.knn_labelled == 40


def test_no_images_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        evaluate_autoencoder(_autoencoder(), torch.zeros(0, 1, 8, 8))


def test_eval_of_an_autoencoder_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "ae"
    args = ["train", "--dataset", "digits", "-hd", "32", "--epochs", "1", "--train-limit", "64"]
    args += ["--latent", "S2", "--kind", "autoencoder", "--device", "cpu", "--out", str(run_dir)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--limit", "50", "--knn-k", "3"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((run_dir / "eval_test.json").read_text())
    assert report["model"] == "autoencoder" and report["n_images"] == 50
    assert report["reconstruction_nll"] > 0 and 0 <= report["reconstruction_mse"] <= 1
    assert 0.0 <= report["knn_accuracy"] <= 1.0 and report["knn_k"] == 3
    assert "negative_elbo" not in report and "log_likelihood" not in report
    assert f"reconstruction_nll: {report['reconstruction_nll']}" in printed
