"""An S-VAE with an S^2 latent recovers the geometry of images generated from points on S^2.

The synthetic data set renders each image from a known point on the sphere (a smooth one-to-one
map), so a model that learned the geometry keeps neighbours together: the 10 nearest neighbours of a
test image's latent mode should be mostly the 10 nearest neighbours of its true point. By chance
(random latents) the shared fraction is about 10 / 1000 = 0.01; the trained model reaches about 0.8
(seed 0, 15 epochs). The test asks for 0.5.
"""

from __future__ import annotations

from pathlib import Path

import torch

from spherevae.config import config_from_dict
from spherevae.data import load_dataset
from spherevae.models import VAE
from spherevae.training.run import train_run


def _shared_neighbours(a: torch.Tensor, b: torch.Tensor, k: int = 10) -> float:
    def knn(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x.double(), x.double())
        d.fill_diagonal_(float("inf"))
        return d.topk(k, largest=False).indices

    na, nb = knn(a), knn(b)
    shared = sum(len(set(na[i].tolist()) & set(nb[i].tolist())) for i in range(len(a)))
    return shared / (k * len(a))


def test_svae_recovers_sphere_neighbourhoods(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "data": {"dataset": "synthetic", "batch_size": 64},
            "model": {"latent": "S2", "posterior": "vmf"},
            "train": {"epochs": 15, "seed": 0, "device": "cpu"},
        }
    )
    run_dir = train_run(config, tmp_path / "run", log=lambda line: None)
    model = VAE.from_pretrained(run_dir / "model")
    test = load_dataset("synthetic").test
    with torch.no_grad():
        modes = model.encode(test.images).mode
    assert test.latents is not None
    assert _shared_neighbours(test.latents, modes) > 0.5
    # and the check itself is not vacuous: unrelated points share almost no neighbours
    noise = torch.nn.functional.normalize(torch.randn(len(modes), 3), dim=-1)
    assert _shared_neighbours(test.latents, noise) < 0.05
