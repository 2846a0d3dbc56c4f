"""Class-conditional VAEs: the label reaches the encoder and the decoder, and is checked."""

from __future__ import annotations

import pytest
import torch

from spherevae.models import VAE, ModelConfig


def _model(n_classes: int = 3) -> VAE:
    torch.manual_seed(0)
    return VAE(
        ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,), n_classes=n_classes)
    )


def test_shapes_and_label_dependence() -> None:
    model = _model()
    x = torch.rand(5, 1, 8, 8).round()
    y = torch.tensor([0, 1, 2, 0, 1])
    q = model.encode(x, y)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    out = model.elbo(x, n_samples=2, y=y)
    assert out.z.shape == (2, 5, 3) and out.kl.shape == (5,)
    # the same latent point decodes differently under different labels; so does the posterior
    z = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    assert not torch.allclose(model.decode(z, y), model.decode(z, (y + 1) % 3))
    assert not torch.allclose(q.mode, model.encode(x, (y + 1) % 3).mode)
    assert model.generate(4, torch.tensor([2, 2, 2, 2])).shape == (4, 1, 8, 8)
    assert model.log_marginal_likelihood(x, 8, y=y).shape == (5,)


def test_labels_are_checked() -> None:
    model = _model()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"conditional .* give labels y"):
        model.encode(x)
    with pytest.raises(ValueError, match=r"in 0\.\.2"):
        model.encode(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model.encode(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        _model(0).encode(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="n_classes must be an integer >= 0"):
        ModelConfig(n_classes=-1)
    with pytest.raises(ValueError, match=r"conditional models .* are VAEs"):
        ModelConfig(n_classes=3, kind="autoencoder")


def test_conditional_model_uses_the_label() -> None:
    """Two classes with opposite images: with the label, the decoder needs no information from z."""
    torch.manual_seed(1)
    model = _model(2)
    a = (torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    x = torch.cat([a.expand(32, -1, -1, -1), (1 - a).expand(32, -1, -1, -1)])
    y = torch.cat([torch.zeros(32, dtype=torch.long), torch.ones(32, dtype=torch.long)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        model.elbo(x, y=y).loss.backward()
        optimizer.step()
    with torch.no_grad():
        samples = model.generate(64, y)
    # generated images follow the requested class: near a for class 0, near 1 - a for class 1
    assert (samples[:32] - a).abs().mean() < 0.1
    assert (samples[32:] - (1 - a)).abs().mean() < 0.1
