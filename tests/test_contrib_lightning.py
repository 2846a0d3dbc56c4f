"""``spherevae.contrib.lightning``: a VAE trained by a Lightning Trainer with spherevae's objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

lightning = pytest.importorskip(
    "lightning", reason="PyTorch Lightning is an optional extra: pip install 'spherevae[lightning]'"
)

from spherevae.contrib.lightning import LightningVAE  # noqa: E402
from spherevae.models import ModelConfig  # noqa: E402

CONFIG = ModelConfig(image_shape=(1, 8, 8), latent="S2", hidden_sizes=(16,), n_classes=2)


def _loader(n: int, seed: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    proto = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(99)) > 0.5).float()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (0.8 * proto[y] + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _trainer(epochs: int) -> lightning.Trainer:
    return lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


# Lightning's advice (more data-loader workers) and its use of a torch API that newer torch deprecates
@pytest.mark.filterwarnings("ignore:.*(num_workers|does not have many workers).*")
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_lightning_trains_the_model_and_checkpoints_rebuild_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = LightningVAE(CONFIG, lr=3e-3, kl_warmup=4, dynamic_binarize=True, seed=1)
    train, val = _loader(96, 0), _loader(32, 1)
    before = _trainer(1).validate(module, val, verbose=False)[0]["val_negative_elbo"]
    trainer = _trainer(3)
    trainer.fit(module, train, val)
    after = trainer.callback_metrics["val_negative_elbo"].item()
    assert after < before - 1.0, (before, after)
    # the KL warm-up of spherevae's schedule, by Lightning's epoch: 0, 1/4, 2/4
    assert trainer.callback_metrics["kl_weight"].item() == pytest.approx(0.5)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    again = LightningVAE.load_from_checkpoint(path)
    assert again.model.config == CONFIG and again.kl_warmup == 4
    for name, value in module.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name
    x, y = next(iter(val))
    assert again(x, y).shape == (len(x), 3)


def test_the_training_step_is_the_model_objective() -> None:
    torch.manual_seed(0)
    module = LightningVAE(CONFIG, kl_target=5.0, beta=0.5)
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no Trainer here
    x, y = next(iter(_loader(8, 0)))
    torch.manual_seed(3)
    loss = module.training_step((x, y), 0)
    torch.manual_seed(3)
    expected = module.model.loss(x, kl_weight=0.5, kl_target=5.0, y=y).loss
    torch.testing.assert_close(loss, expected)
    with pytest.raises(TypeError, match="model must be a VAE"):
        LightningVAE("S2")  # type: ignore[arg-type]
