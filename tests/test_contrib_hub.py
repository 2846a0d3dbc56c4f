"""``spherevae.contrib.hub``: a VAE through huggingface_hub's mixin, offline on a local folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip(
    "huggingface_hub", reason="huggingface_hub is an optional extra: pip install 'spherevae[hub]'"
)

from spherevae.contrib.hub import HubVAE
from spherevae.models import VAE, AutoEncoder, ModelConfig, from_pretrained

CONFIG = ModelConfig(image_shape=(1, 8, 8), latent="S2xR2", hidden_sizes=(16,), n_classes=3)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 1, 8, 8, generator=g).round(), torch.tensor([0, 1, 2, 0, 1])


def test_save_and_load_through_the_mixin(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = VAE(CONFIG)
    model = HubVAE.from_vae(trained)
    model.save_pretrained(tmp_path / "hub")
    assert {p.name for p in (tmp_path / "hub").iterdir()} >= {
        "config.json",
        "model.safetensors",
        "README.md",
    }
    again = HubVAE.from_pretrained(tmp_path / "hub")
    assert isinstance(again, HubVAE) and again.config == CONFIG
    x, y = _batch()
    torch.testing.assert_close(again.encode(x, y).mean, trained.encode(x, y).mean, rtol=0, atol=0)
    # the folder is spherevae's own: it loads without the Hub, and a run's model/ loads with it
    plain = from_pretrained(tmp_path / "hub")
    assert isinstance(plain, VAE)
    trained.save_pretrained(tmp_path / "plain")
    from_plain = HubVAE.from_pretrained(tmp_path / "plain")
    torch.testing.assert_close(
        from_plain.decode(torch.zeros(5, 5), y), trained.decode(torch.zeros(5, 5), y)
    )


def test_an_auto_encoder_folder_is_refused(tmp_path: Path) -> None:
    AutoEncoder(
        ModelConfig(kind="autoencoder", image_shape=(1, 8, 8), hidden_sizes=(8,))
    ).save_pretrained(tmp_path / "ae")
    with pytest.raises(ValueError, match="not a VAE"):
        HubVAE.from_pretrained(tmp_path / "ae")
