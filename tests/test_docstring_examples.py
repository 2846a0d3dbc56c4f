"""The examples in the docstrings of ``src/spherevae`` run and print what they say.

Every module of the package is imported and its ``>>>`` examples are run with :mod:`doctest`, one
test per module, so that a wrong example fails with the module's name. The modules are found by
walking the source tree (``spherevae.training`` has no ``__init__.py``, which ``pkgutil`` would
skip). Examples compare with ``NORMALIZE_WHITESPACE`` and ``ELLIPSIS``; they seed what they draw and
print floats rounded, so that they hold on any machine.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import spherevae

PACKAGE_DIR = Path(spherevae.__file__).resolve().parent

# modules whose examples are not run (none: every example in the package must hold)
EXCLUDED: tuple[str, ...] = ()

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _is_excluded(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in EXCLUDED)


def module_names() -> list[str]:
    """The dotted names of every module under ``src/spherevae`` that is not excluded."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        # ``__main__`` runs the command line when imported
        if parts[-1] != "__main__" and not _is_excluded(name):
            names.append(name)
    return names


def _examples(module_name: str) -> list[doctest.DocTest]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        # a module of an optional extra that is not installed (spherevae.contrib.pyro without
        # pyro-ppl says "pip install 'spherevae[pyro]'"); spherevae's own modules are never missing
        missing = getattr(err, "name", None) or ""
        if "spherevae[" not in str(err) and missing.split(".")[0] in ("", "spherevae"):
            raise
        pytest.skip(f"{module_name}: an optional dependency is not installed: {err}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [test for test in finder.find(module, module_name) if test.examples]


MODULES = module_names()


def test_the_walk_finds_the_package() -> None:
    # a walk that found nothing (a moved package, a wrong root) would make every test below vacuous
    assert "spherevae.models.vae" in MODULES
    assert "spherevae.training.trainer" in MODULES
    assert not any(_is_excluded(name) for name in MODULES)
    assert "spherevae.special.functions" in MODULES
    # the finder sees the examples (one that saw none would pass every module)
    assert len(_examples("spherevae.models.latent")) == 2


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS, verbose=False)
    report: list[str] = []
    for test in _examples(module_name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
