"""The optional extras: pyproject.toml, spherevae.extras and the imports of the source agree.

Every third-party package the source imports (at module level or inside a function) is a core
dependency or belongs to an extra that declares it, so that ``pip install 'spherevae[EXTRA]'`` as the
error message says really brings the package; and ``all`` brings every extra's packages.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same module, as tomli (which pytest needs there)
    import tomli as tomllib

from spherevae.extras import CORE_MODULES, EXTRA_OF_MODULE, missing_extra_message

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# imported when installed, said so in their own error message, and in no extra: umap-learn (the
# UMAP projection, untested here)
UNDECLARED = {"umap"}
# the distribution of each core module
CORE_DISTRIBUTIONS = {"torch": "torch", "numpy": "numpy", "safetensors": "safetensors"}


def _extra(name: str) -> set[str]:
    """The distributions an extra brings, its references to other extras of spherevae followed."""
    found: set[str] = set()
    for text in PROJECT["optional-dependencies"][name]:
        req = Requirement(text)
        if canonicalize_name(req.name) == "spherevae":
            for other in req.extras:
                found |= _extra(other)
        else:
            found.add(canonicalize_name(req.name))
    return found


def _imported_top_level_modules() -> set[str]:
    """The top-level names of every absolute import in src/spherevae, function bodies included."""
    names: set[str] = set()
    for path in (ROOT / "src" / "spherevae").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_core_dependencies_are_the_core_modules() -> None:
    declared = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert declared == {CORE_DISTRIBUTIONS[m] for m in CORE_MODULES}


def test_every_imported_package_is_in_the_core_or_an_extra() -> None:
    third_party = _imported_top_level_modules() - set(sys.stdlib_module_names) - {"spherevae"}
    unknown = third_party - set(CORE_MODULES) - set(EXTRA_OF_MODULE) - UNDECLARED
    assert not unknown, f"imported but in neither the core nor spherevae.extras: {sorted(unknown)}"


@pytest.mark.parametrize("module", sorted(EXTRA_OF_MODULE))
def test_the_extra_named_for_a_module_installs_it(module: str) -> None:
    package, extra = EXTRA_OF_MODULE[module]
    assert canonicalize_name(package) in _extra(extra)
    assert canonicalize_name(package) in _extra("all")
    assert canonicalize_name(package) in _extra("dev")


def test_train_brings_what_the_command_line_needs_for_a_run() -> None:
    # `spherevae train` reads and writes config.yaml, shows progress, caches data sets and draws
    # the run's figures at its end
    needed = {"yaml", "pydantic", "tqdm", "platformdirs", "matplotlib", "PIL"}
    assert {canonicalize_name(EXTRA_OF_MODULE[m][0]) for m in needed} <= _extra("train")


def test_the_message_names_the_package_and_the_extra() -> None:
    err = ModuleNotFoundError("No module named 'sklearn'", name="sklearn.neighbors")
    assert missing_extra_message(err) == (
        "the package scikit-learn is not installed: pip install 'spherevae[eval]'"
    )


def test_another_import_error_keeps_its_own_message_on_one_line() -> None:
    assert missing_extra_message(ModuleNotFoundError("No module named 'x'", name="x")) == (
        "No module named 'x'"
    )
    assert missing_extra_message(ImportError("cannot import name\n 'y'")) == (
        "cannot import name 'y'"
    )
