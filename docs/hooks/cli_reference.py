"""MkDocs hook: the command-line reference, written at build time from ``spherevae --help``.

A page that holds the marker line ``<!-- spherevae-help -->`` gets, in its place, the help of
``spherevae`` and of each of its commands, as the command prints it (80 columns). The help comes from
the source tree being documented (``src/`` beside ``mkdocs.yml``), so the page cannot drift from the
parser. The commands are read from the top-level usage line, so a new command appears by itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- spherevae-help -->"
COLUMNS = "80"
ROOT = Path(__file__).resolve().parents[2]


def command_help(args: list[str]) -> str:
    """What ``spherevae ARGS --help`` prints, run from this repository's ``src/``."""
    env = dict(
        os.environ,
        COLUMNS=COLUMNS,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p
        ),
    )
    done = subprocess.run(
        [sys.executable, "-m", "spherevae", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"spherevae {' '.join(args)} --help failed: {done.stderr.strip()}")
    return done.stdout


def commands(top_help: str) -> list[str]:
    """The command names of the top-level usage line, ``{train,eval,...}``, in its order."""
    found = re.search(r"\{([a-z_,-]+)\}", top_help)
    if found is None:
        raise RuntimeError("no {command,...} list in the output of spherevae --help")
    return found.group(1).split(",")


def help_markdown() -> str:
    """The reference: the top-level help, then one section per command."""
    top = command_help([])
    parts = ["```text", top.rstrip(), "```", ""]
    for name in commands(top):
        parts += [f"## `spherevae {name}`", "", "```text", command_help([name]).rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: put the help in the place of the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, help_markdown())
