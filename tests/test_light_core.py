"""The distributions, the special functions and the models work with only torch, numpy and safetensors.

This is what a light core install (``pip install spherevae`` without extras) will rely on: a
process in which every other third-party package of spherevae's dependencies and extras cannot be
imported draws from each distribution, and builds, trains a step of, saves and reloads each kind of
model. An import of scipy, matplotlib, plotly, scikit-learn, PyYAML, pydantic, tqdm or platformdirs
on these paths, even inside a function, fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# spherevae's dependencies beyond the core, and its optional extras (mpmath stays: sympy, a
# dependency of torch, needs it)
NOT_CORE = (
    "scipy",
    "matplotlib",
    "mpl_toolkits",
    "plotly",
    "sklearn",
    "PIL",
    "yaml",
    "pydantic",
    "tqdm",
    "platformdirs",
    "pyro",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "tensorboard",
    "umap",
)

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys
    import tempfile

    BLOCKED = set(sys.argv[1].split(","))


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"not in the core: {name}", name=name)
            return None


    sys.meta_path.insert(0, Block())
    # a module imported at start-up (by a sitecustomize) would bypass the finder
    for name in [n for n in sys.modules if n.split(".")[0] in BLOCKED]:
        del sys.modules[name]

    import torch
    from torch.distributions import kl_divergence

    from spherevae import special
    from spherevae.distributions import (
        HypersphericalUniform, PowerSpherical, ProductDistribution, VonMisesFisher, normalize,
    )
    from spherevae.models import VAE, ModelConfig

    torch.manual_seed(0)
    loc, kappa = normalize(torch.randn(4, 5)), torch.full((4,), 10.0)
    for sampler in ("rejection", "inverse_cdf", "mh"):
        VonMisesFisher(loc, kappa, sampler=sampler).rsample()
    kl_divergence(VonMisesFisher(loc, kappa), HypersphericalUniform(5))
    ProductDistribution([VonMisesFisher(loc, kappa), PowerSpherical(loc, kappa)]).rsample()
    special.log_ive(3.0, torch.tensor(2.0)), special.ive_ratio(3.0, torch.tensor(2.0))
    for latent, posterior in (("S2", "vmf"), ("S4xS4", "powerspherical"), ("S3xR2", "vmf"),
                              ("R4", "normal")):
        model = VAE(ModelConfig(image_shape=(1, 8, 8), latent=latent, posterior=posterior,
                                hidden_sizes=(16,)))
        x = torch.rand(3, 1, 8, 8).round()
        model.elbo(x, n_samples=2).loss.backward()
        model.log_marginal_likelihood(x, n_samples=4)
        folder = tempfile.mkdtemp()
        model.save_pretrained(folder)
        VAE.from_pretrained(folder)
    print("core ok")
    """
)


def test_distributions_and_models_need_only_the_core() -> None:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(NOT_CORE)],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok" in done.stdout
