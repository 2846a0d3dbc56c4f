"""Evaluation helpers: active units, kNN accuracy, and the batched evaluate() against the model."""

from __future__ import annotations

import math

import pytest
import torch

from spherevae.evaluation import active_units, evaluate, knn_accuracy
from spherevae.models import VAE, ModelConfig


def test_active_units_counts_varying_coordinates() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.zeros(500, 4)
    means[:, 0] = torch.randn(500, generator=g)  # variance 1: active
    means[:, 1] = 0.3 * torch.randn(500, generator=g)  # variance 0.09: active
    means[:, 2] = 0.05 * torch.randn(500, generator=g)  # variance 0.0025: inactive
    assert active_units(means) == 2
    with pytest.raises(ValueError, match="at least 2"):
        active_units(means[:1])


def test_knn_accuracy_separates_clusters_and_not_noise() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(400) % 4
    centres = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=-1)
    points = torch.nn.functional.normalize(centres[labels] + 0.1 * torch.randn(400, 3, generator=g))
    train, test = slice(0, 300), slice(300, 400)
    acc = knn_accuracy(points[train], labels[train], points[test], labels[test], metric="cosine")
    assert acc > 0.95
    shuffled = labels[torch.randperm(400, generator=g)]
    chance = knn_accuracy(points[train], shuffled[train], points[test], labels[test])
    assert chance < 0.5
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(points[train], labels[train], points[test], labels[test], k=0)


def test_evaluate_matches_the_model() -> None:
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,)))
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2)).round()
    torch.manual_seed(5)
    result = evaluate(model, x, ll_samples=64, batch_size=16, max_decoded=128)
    assert result.n_images == 40 and result.ll_samples == 64
    assert result.negative_elbo == pytest.approx(result.kl + result.reconstruction_nll, rel=1e-6)
    assert math.isfinite(result.log_likelihood)
    # the importance-weighted bound is above the ELBO (64 samples, 40 images: by a margin)
    assert result.log_likelihood > -result.negative_elbo
    assert result.kl > 0 and result.reconstruction_nll > 0 and result.log_likelihood < 0
    with pytest.raises(ValueError, match="ll_samples"):
        evaluate(model, x, ll_samples=-1)
