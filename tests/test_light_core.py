"""The distributions, the special functions and the models work with only torch, numpy and safetensors.

This is what a light core install (``pip install spherevae`` without extras) will rely on: a
process in which every other third-party package of spherevae's dependencies and extras cannot be
imported draws from each distribution, and builds, trains a step of, saves and reloads each kind of
model. An import of scipy, matplotlib, plotly, scikit-learn, PyYAML, pydantic, tqdm or platformdirs
on these paths, even inside a function, fails it. The command line's help needs only the core too,
and a command whose extra is missing says which one to install (tests/test_wheel.py checks the same
with the built wheel installed in a fresh virtual environment).
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

# run first in each process: the packages named in its first argument cannot be imported
BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

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
    """
)

SCRIPT = BLOCKER + textwrap.dedent(
    """
    import tempfile

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


# the command line, as ``spherevae ARGS...`` runs it
CLI = BLOCKER + textwrap.dedent(
    """
    import runpy

    sys.argv = ["spherevae", *sys.argv[2:]]
    runpy.run_module("spherevae", run_name="__main__")
    """
)


def _run(
    script: str, *args: str, blocked: tuple[str, ...] = NOT_CORE
) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    return subprocess.run(
        [sys.executable, "-c", script, ",".join(blocked), *args],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_distributions_and_models_need_only_the_core() -> None:
    done = _run(SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok" in done.stdout


def test_the_command_line_help_needs_only_the_core() -> None:
    done = _run(CLI, "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train" in done.stdout and "export" in done.stdout


def test_train_without_its_extra_names_it_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _run(CLI, "train", "--dataset", "synthetic", "--epochs", "1", "--out", str(out))
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("spherevae: error: the package ")
    assert "pip install 'spherevae[train]'" in done.stderr
    assert not out.exists()


def test_a_command_that_fails_midway_names_the_extra(tmp_path: Path) -> None:
    # train imports matplotlib only for the figures it draws at the end of the run
    args = [
        "train",
        "--dataset",
        "synthetic",
        "-hd",
        "16",
        "--latent",
        "R2",
        "--posterior",
        "normal",
    ]
    args += ["--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")]
    done = _run(CLI, *args, blocked=("matplotlib", "mpl_toolkits"))
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("spherevae: error: the package matplotlib is not installed")
    assert "pip install 'spherevae[plots]'" in done.stderr


IMPORT = BLOCKER + textwrap.dedent(
    """
    import importlib

    for name in sys.argv[2:]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            print(name, "->", err)
        else:
            print(name, "-> imported")
    """
)


def test_a_library_module_without_its_extra_names_the_extra() -> None:
    """From Python (not the command line), importing a module whose optional package is missing
    raises a ModuleNotFoundError that says which extra to install."""
    modules = {
        "spherevae.plots": "spherevae[plots]",
        "spherevae.report": "spherevae[plots]",
        "spherevae.config": "spherevae[train]",
        "spherevae.progress": "spherevae[train]",
        "spherevae.data": "spherevae[train]",
        "spherevae.contrib.pyro": "spherevae[pyro]",
    }
    done = _run(IMPORT, *modules)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" -> ", 1) for line in done.stdout.splitlines())
    for module, extra in modules.items():
        assert f"pip install '{extra}'" in lines[module], (module, lines[module])
