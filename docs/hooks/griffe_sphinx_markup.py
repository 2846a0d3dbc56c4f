"""Griffe extension: the Sphinx markup of the docstrings as Markdown in the API reference.

The docstrings name other objects the Sphinx way, ``:func:`log_ive``` or
``:class:`~spherevae.models.VAE```. Markdown has no roles, so this rewrites each one, before the
docstrings are rendered, into an optional cross-reference of mkdocs-autorefs: a link where the
target is documented on the site, plain code where it is not (a private helper, an object of torch),
never a broken link. A name is looked up in the scope of the object whose docstring holds it, as
Sphinx does; ``~`` shows only the last component.

A paragraph that ends in ``::`` introduces an indented literal block in reStructuredText; Markdown
shows the indented block as code already, so the ``::`` becomes the ``:`` that Sphinx shows.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:mod|func|class|data|meth|attr|obj|exc):`(?P<target>[^`]+)`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)


def _full_path(obj: griffe.Object, target: str) -> str:
    """The dotted path of ``target`` as seen from ``obj``; the target itself when unknown here."""
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return target
    return f"{path}.{rest}" if rest else path


def rewrite_markup(obj: griffe.Object, text: str) -> str:
    """``text`` with its Sphinx roles as optional autorefs cross-references, ``X::`` as ``X:``."""

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~.")
        title = target.rsplit(".", 1)[-1] if short else target
        identifier = html.escape(_full_path(obj, target), quote=True)
        return f'<autoref identifier="{identifier}" optional>`{title}`</autoref>'

    return LITERAL_BLOCK.sub(":", ROLE.sub(replace, text))


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


class SphinxMarkup(griffe.Extension):
    """Rewrites the Sphinx markup of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite_markup(obj, obj.docstring.value)
