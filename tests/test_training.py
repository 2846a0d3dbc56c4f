"""The fit loop: KL schedule, learning, exact resumption, the non-finite guard, early stopping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spherevae.config import RunConfig, config_from_dict
from spherevae.models import VAE
from spherevae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spherevae.training.seed import seed_everything
from spherevae.training.trainer import Trainer, TrainingError, kl_weight


def _config(**train: object) -> RunConfig:
    return config_from_dict(
        {
            "data": {"batch_size": 16, "eval_batch_size": 32},
            "model": {"image_shape": [1, 8, 8], "latent": "S2", "hidden_sizes": [16]},
            "train": {"epochs": 4, "lr": 3e-3, "seed": 3, **train},
        }
    )


def _images(n: int, seed: int) -> torch.Tensor:
    # two prototypes (the same for every split) plus noise: something a 2-sphere latent learns fast
    proto = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(99)) > 0.5).float()
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(0, 2, (n,), generator=g)
    return (0.8 * proto[which] + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)


def _trainer(config: RunConfig, run_dir: Path | None = None) -> Trainer:
    seed_everything(config.train.seed)
    model = VAE(config.model)
    return Trainer(
        config,
        model,
        _images(96, 0),
        _images(40, 1),
        dynamic_binarize=True,
        device=torch.device("cpu"),
        run_dir=run_dir,
    )


def _rows(history: list[dict[str, float]]) -> list[dict[str, object]]:
    """Rows with NaN replaced by a marker, so that equal histories compare equal."""
    return [{k: "nan" if v != v else v for k, v in row.items()} for row in history]


def test_kl_weight_schedule() -> None:
    config = _config(beta=2.0, kl_warmup=4, kl_freeze=2)
    weights = [kl_weight(config, e) for e in range(8)]
    assert weights == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert [kl_weight(_config(kl_freeze=1), e) for e in range(3)] == [0.0, 1.0, 1.0]
    assert kl_weight(_config(beta=0.5), 0) == 0.5


def test_training_lowers_the_validation_objective() -> None:
    trainer = _trainer(_config(epochs=6))
    state = trainer.fit()
    first, last = state.history[0]["val_negative_elbo"], state.history[-1]["val_negative_elbo"]
    assert state.epoch == 6 and state.finished
    assert last < first - 1.0, (first, last)


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    straight = _trainer(_config(epochs=4))
    straight.fit()

    interrupted = _trainer(_config(epochs=2), tmp_path)
    interrupted.fit()
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert checkpoint["epoch"] == 2
    torch.manual_seed(12345)  # a resumed process starts with other generator states
    resumed = _trainer(_config(epochs=4))
    resumed.load_state_dict(checkpoint)
    resumed.state.finished = False
    resumed.fit()

    assert _rows(resumed.state.history) == _rows(straight.state.history)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_non_finite_loss_restarts_then_gives_up() -> None:
    trainer = _trainer(_config(epochs=2, max_restarts=2, restart_lr_factor=0.5))
    calls = {"n": 0}
    terms = trainer._terms

    def flaky(x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        calls["n"] += 1
        rec, kl = terms(x, y)
        if calls["n"] == 3:  # one bad batch in the first epoch
            rec = rec * math.nan
        return rec, kl

    trainer._terms = flaky  # type: ignore[method-assign]
    state = trainer.fit()
    assert state.restarts == 1 and state.epoch == 2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5)
    assert all(math.isfinite(row["train_loss"]) for row in state.history)

    always_bad = _trainer(_config(epochs=2, max_restarts=1))
    good_terms = always_bad._terms
    always_bad._terms = lambda x, y=None: (good_terms(x)[0] * math.nan, good_terms(x)[1])  # type: ignore[method-assign]
    with pytest.raises(TrainingError, match="not finite at epoch 1 after 1 restarts"):
        always_bad.fit()


def test_early_stopping_after_patience(tmp_path: Path) -> None:
    trainer = _trainer(_config(epochs=50, patience=2, burn_in=1), tmp_path)
    values = iter([5.0, 4.0, 3.0, 3.5, 3.2, 1.0, 0.5])

    def fake_validate(record) -> None:  # type: ignore[no-untyped-def]
        record.val_negative_elbo = next(values)

    trainer._validate = fake_validate  # type: ignore[method-assign]
    state = trainer.fit()
    # epoch 1 is burn-in; best 3.0 at epoch 3; epochs 4 and 5 do not improve -> stop after 5
    assert state.epoch == 5 and state.finished
    assert state.best_epoch == 3 and state.best_val == 3.0
    assert "early stopping" in state.stop_reason
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["finished"]


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    trainer = _trainer(_config(epochs=1), tmp_path)
    trainer.fit()
    good = tmp_path / "checkpoints" / "last.pt"
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a spherevae checkpoint"):
        load_checkpoint(other)
    with pytest.raises(ValueError, match="missing"):
        save_checkpoint(tmp_path / "x.pt", {"epoch": 1})
