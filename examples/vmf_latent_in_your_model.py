"""A von Mises-Fisher latent inside your own PyTorch model, with spherevae's distributions only.

The encoder head pattern of the S-VAE (Davidson et al. 2018): the mean direction is the normalised
output of a linear layer, the concentration is ``softplus(.) + 1``, and the KL term is the closed-form
KL divergence to the uniform distribution on the sphere. Here a small auto-encoder learns to place
2-D points of four clusters on the circle S^1 (``m = 2``).

    python examples/vmf_latent_in_your_model.py [--steps 300]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import kl_divergence

from spherevae.distributions import HypersphericalUniform, VonMisesFisher


class SphericalAutoEncoder(nn.Module):
    """x (B, 2) -> q(z|x) = vMF(mu(x), kappa(x)) on S^(m-1) -> reconstruction of x."""

    def __init__(self, m: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, hidden), nn.ReLU())
        self.direction = nn.Linear(hidden, m)  # mu = W h / |W h|
        self.concentration = nn.Linear(hidden, 1)  # kappa = softplus(w . h + b) + 1
        self.decoder = nn.Sequential(nn.Linear(m, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.prior = HypersphericalUniform(m)

    def posterior(self, x: torch.Tensor) -> VonMisesFisher:
        h = self.body(x)
        mu = F.normalize(self.direction(h), dim=-1)
        kappa = F.softplus(self.concentration(h)).squeeze(-1) + 1  # (B,), not (B, 1)
        return VonMisesFisher(mu, kappa)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        q = self.posterior(x)
        z = q.rsample()  # reparameterised: gradients reach mu and kappa
        reconstruction = ((self.decoder(z) - x) ** 2).sum(-1)
        return (reconstruction + kl_divergence(q, self.prior)).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    model = SphericalAutoEncoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(args.steps):
        x = centres[torch.randint(4, (128,))] + 0.1 * torch.randn(128, 2)
        loss = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f}")
    with torch.no_grad():
        q = model.posterior(centres)
        angles = torch.rad2deg(torch.atan2(q.loc[:, 1], q.loc[:, 0]))
    print("cluster centres on the circle (degrees):", [round(a) for a in angles.tolist()])
    print("concentrations:", [round(k, 1) for k in q.concentration.tolist()])


if __name__ == "__main__":
    main()
