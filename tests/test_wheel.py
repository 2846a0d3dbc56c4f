"""The built wheel, installed without extras into a fresh virtual environment, and the sdist.

The environment is what ``pip install spherevae`` gives a user: spherevae from its wheel, plus the
core dependencies the wheel declares (and theirs), and nothing else. Those dependencies are not
installed again (torch alone is hundreds of MB): the ones of this test's own environment are linked
into a folder that a ``.pth`` file of the fresh environment puts on its path, so that the fresh
environment sees exactly that closure of the wheel's requirements. There the distributions and the
models work and train, ``spherevae --help`` works, and ``spherevae train`` says to install the
``train`` extra. The source distribution carries the package, its tests and texts, none of the
gallery, and passes ``twine check``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytest.importorskip("build", reason="building the wheel needs the build package (the dev extra)")
pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the dev extra)")

ROOT = Path(__file__).resolve().parent.parent

USE = textwrap.dedent(
    """
    import importlib.util
    import sys
    import tempfile

    import torch

    import spherevae
    from spherevae.distributions import VonMisesFisher, normalize
    from spherevae.models import VAE, ModelConfig

    assert spherevae.__file__.startswith(sys.prefix), spherevae.__file__
    for name in ("yaml", "pydantic", "tqdm", "platformdirs", "matplotlib", "PIL", "scipy",
                 "sklearn", "plotly"):
        assert importlib.util.find_spec(name) is None, f"{name} is importable"

    torch.manual_seed(0)
    VonMisesFisher(normalize(torch.randn(4, 3)), torch.full((4,), 5.0)).rsample()
    model = VAE(ModelConfig(image_shape=(1, 8, 8), latent="S2", posterior="vmf", hidden_sizes=(16,)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(8, 1, 8, 8).round()
    before = model.elbo(x, n_samples=1).loss.item()
    model.elbo(x, n_samples=1).loss.backward()
    optimizer.step()
    folder = tempfile.mkdtemp()
    model.save_pretrained(folder)
    VAE.from_pretrained(folder)
    print("core ok", before)
    """
)


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def _core_closure(wheel: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the wheel requires without extras, and theirs, recursively."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode())
    pending = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    found: dict[str, importlib.metadata.Distribution] = {}
    while pending:
        req = pending.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = canonicalize_name(req.name)
        if key in found:
            continue
        dist = importlib.metadata.distribution(req.name)
        found[key] = dist
        pending += [Requirement(text) for text in dist.requires or []]
    return list(found.values())


def _link_distributions(dists: list[importlib.metadata.Distribution], folder: Path) -> None:
    """Link each distribution's top-level packages, modules and metadata folder into ``folder``."""
    folder.mkdir()
    for dist in dists:
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(tops - {"..", "__pycache__"}):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


def test_the_wheel_without_extras_gives_the_distributions_and_models(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    _link_distributions(_core_closure(wheel), tmp_path / "core")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "spherevae-test-core.pth").write_text(f"{tmp_path / 'core'}\n")
    # nothing of this checkout or of the test's environment: only the fresh one
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"

    used = subprocess.run(
        [str(python), "-c", USE], env=env, capture_output=True, text=True, timeout=300
    )
    assert used.returncode == 0, used.stderr[-3000:]
    assert "core ok" in used.stdout

    command = env_dir / "bin" / "spherevae"
    helped = subprocess.run(
        [str(command), "--help"], env=env, capture_output=True, text=True, timeout=300
    )
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "train" in helped.stdout

    out = tmp_path / "run"
    trained = subprocess.run(
        [str(command), "train", "--dataset", "synthetic", "--epochs", "1", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 3, trained.stderr[-3000:]
    assert trained.stderr.count("\n") == 1 and "Traceback" not in trained.stderr
    assert "pip install 'spherevae[train]'" in trained.stderr
    assert not out.exists()


def test_the_sdist_is_slim_and_the_release_passes_twine_check(tmp_path: Path) -> None:
    # the wheel is built from the sdist, as a package index's users and redistributors do
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert "src/spherevae/distributions/__init__.py" in names
    assert {"README.md", "LICENSE", "CHANGELOG.md", "CITATION.cff", "pyproject.toml"} <= set(names)
    assert "tests/test_wheel.py" in names
    for name in names:
        assert not name.startswith((".ci/", "docs/", "benchmarks/", "examples/", "runs/")), name
        assert not name.endswith((".png", ".gif")), name
    assert sdist.stat().st_size < 2_000_000
    pytest.importorskip("twine", reason="twine check needs twine (the dev extra)")
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2


def test_the_readme_has_no_link_that_breaks_on_a_package_index() -> None:
    # the README is the package index page, where a relative link or image leads nowhere
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]*)", readme) + re.findall(r"<img[^>]*src=\"([^\"]*)", readme)
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert not relative
