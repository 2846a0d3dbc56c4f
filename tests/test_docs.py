"""The documentation site builds with ``mkdocs build --strict`` and shows what it promises.

Strict mode turns every warning into a failure: a broken link or anchor, a page left out of the
navigation, a reference mkdocstrings cannot find, a docstring section griffe cannot parse. The
build reads the docstrings of ``src/`` and runs ``spherevae --help`` for the command-line page.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("train", "eval", "sample", "report", "experiment", "export", "plot")

for _module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
    pytest.importorskip(
        _module, reason="the documentation tools are not installed: pip install -e '.[docs]'"
    )


def _env() -> dict[str, str]:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def _text(page: Path) -> str:
    """The words of an HTML page, tags removed, entities decoded, runs of whitespace as one space."""
    words = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    return " ".join(words.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env=dict(_env(), NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_cli_page_is_what_each_command_prints(site: Path) -> None:
    page = _text(site / "cli" / "index.html")
    for command in ("", *COMMANDS):
        done = subprocess.run(
            [sys.executable, "-m", "spherevae", *command.split(), "--help"],
            env=dict(_env(), COLUMNS="80"),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert " ".join(done.stdout.split()) in page, f"spherevae {command} --help"


def test_the_api_reference_renders_the_docstrings(site: Path) -> None:
    models = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert 'id="spherevae.models.VAE"' in models
    assert 'id="spherevae.models.VAE.elbo"' in models
    distributions = (site / "api" / "distributions" / "index.html").read_text(encoding="utf-8")
    assert 'id="spherevae.distributions.VonMisesFisher"' in distributions
    # the Sphinx roles of the docstrings became links: none is left as text, and the module
    # docstring's reference to parse_latent points at its entry on the page
    for page in (site / "api").rglob("*.html"):
        # Markdown turns the backticks of a role into <code>, so the text shows ":func:name"
        assert not re.search(r":(func|class|mod|meth|data|attr|obj|exc):\S", _text(page)), page
    assert re.search(
        r'<a class="autorefs[^"]*"[^>]*href="#spherevae\.models\.parse_latent"', models
    )


def test_the_tutorials_include_the_examples(site: Path) -> None:
    page = _text(site / "tutorials" / "vmf-in-your-model" / "index.html")
    source = (ROOT / "examples" / "vmf_latent_in_your_model.py").read_text(encoding="utf-8")
    assert " ".join(source.split()) in page
