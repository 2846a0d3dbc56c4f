"""Your own encoder and decoder in a spherevae VAE: register them by name, train, save, reload.

``register_network(name, encoder=..., decoder=...)``: ``encoder(config)`` returns a module mapping
``x`` (B, *image_shape) to features (B, F) with ``out_features = F``; ``decoder(config, latent_size)``
returns a module mapping ``z`` (..., latent_size) to the likelihood's parameters (..., *image_shape).
The model folder records only the name, so the module that registers it must be imported before
``from_pretrained`` (no pickled code).

Trained twice: by a loop of your own (``model.loss`` is the training objective), and by
``spherevae.fit``, which writes a run directory (config, metrics, checkpoints, the best model, plots)
and resumes when called again on it.

    python examples/your_own_network.py [--steps 200] [--epochs 5] [--out /tmp/my-model]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

import spherevae
from spherevae.data import load_dataset
from spherevae.models import VAE, ModelConfig, from_pretrained, register_network


class SmallConvEncoder(nn.Module):
    """(B, 1, 8, 8) digits -> (B, 64) features: two 3x3 convolutions and a dense layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        channels, height, width = config.image_shape
        self.out_features = 64
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * height * width, self.out_features),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class SmallDecoder(nn.Module):
    """(..., latent_size) -> (..., 1, 8, 8) Bernoulli logits."""

    def __init__(self, config: ModelConfig, latent_size: int) -> None:
        super().__init__()
        self.image_shape = config.image_shape
        size = int(torch.tensor(config.image_shape).prod())
        self.net = nn.Sequential(nn.Linear(latent_size, 64), nn.ReLU(), nn.Linear(64, size))

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out.reshape(*out.shape[:-1], *self.image_shape)


register_network("small-conv", encoder=SmallConvEncoder, decoder=SmallDecoder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of spherevae.fit")
    parser.add_argument("--out", type=Path, help="model folder (default: a temporary folder)")
    args = parser.parse_args()

    torch.manual_seed(0)
    digits = load_dataset("digits")  # scikit-learn's 8x8 digits, offline
    x_train = digits.train.images.bernoulli()
    config = ModelConfig(image_shape=(1, 8, 8), network="small-conv", latent="S3")
    model = VAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(args.steps):
        batch = x_train[torch.randint(len(x_train), (64,))]
        loss = model.loss(batch, kl_weight=min(1.0, step / 50)).loss  # a KL warm-up of 50 steps
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step}: training objective {loss.item():.2f}")

    out = args.out or Path(tempfile.mkdtemp()) / "small-conv-vae"
    model.save_pretrained(out)
    reloaded = VAE.from_pretrained(out)  # works because this module registered "small-conv"
    x_test = digits.test.images[:16].bernoulli()
    same = torch.equal(reloaded.encode(x_test).mean, model.encode(x_test).mean)
    print(f"saved to {out}; reloaded with the registered network: same posterior means: {same}")

    # the same network trained by spherevae.fit: a run directory that `spherevae eval`, `plot` and
    # `report` read (their process must import the module that registers "small-conv" first)
    run = out.parent / f"{out.name}-run"
    x_val = digits.val.images.bernoulli()
    fitted = VAE(config)
    # compiled_sampling=False: compiling the sampling kernels pays off over long runs, not here
    spherevae.fit(
        fitted,
        x_train,
        x_val,
        out=run,
        epochs=args.epochs,
        batch_size=64,
        device="cpu",
        compiled_sampling=False,
    )
    best = from_pretrained(run / "model")
    print(f"spherevae.fit wrote {run}; its best model has the network {best.config.network!r}")


if __name__ == "__main__":
    main()
