"""The Python on the documentation pages that teach the distributions runs as written.

Each page's ```` ```python ```` blocks run in order as one script, as a reader would paste them, in a
fresh process. Blocks that include a file (``--8<--``) are left out: ``tests/test_examples.py``
runs the examples they show. ``torch.compile`` is turned off (``TORCHDYNAMO_DISABLE``) so that
``compiled_sampling()`` runs the eager code instead of compiling for seconds; the page's claim is
about the same law, which the distribution tests check.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("tutorials/vmf-in-your-model.md", "guides/distributions.md")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page, without those that include a file."""
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    return [block for block in blocks if not block.lstrip().startswith("--8<--")]


@pytest.mark.parametrize("page", PAGES)
def test_the_python_of_the_page_runs(page: str, tmp_path: Path) -> None:
    blocks = python_blocks(ROOT / "docs" / page)
    assert len(blocks) >= 2, f"{page}: the test would check nothing"
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    done = subprocess.run(
        [sys.executable, "-c", "\n\n".join(blocks)],
        cwd=tmp_path,
        env=dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in paths if p),
            TORCHDYNAMO_DISABLE="1",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{page}:\n{done.stderr[-3000:]}"
