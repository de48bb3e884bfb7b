"""Griffe extension for the docs build: Sphinx cross-reference roles in docstrings become links.

The library's docstrings are numpy style with Sphinx roles (``:func:`knn```, ``:class:`~labelrefine.nn.ReIDNet```),
which Markdown would print literally. After the package is loaded, every role is rewritten into an autorefs
cross-reference (``[`knn`][labelrefine.neighbors.knn]``) when the name resolves to a public object of the package,
and into plain code otherwise. A reST literal-block marker (a line ending in ``::``) loses one colon. Only the
rendered text changes; the source files are not touched. Loaded by mkdocs.yml (mkdocstrings ``extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|meth|class|mod|attr|data|obj|exc|const):`(~?)([^`<>]+?)`")
_KINDS = {  # role -> griffe kinds it may point to (absent: any)
    "func": {"function"},
    "meth": {"function"},
    "class": {"class"},
    "exc": {"class"},
    "mod": {"module"},
    "attr": {"attribute"},
    "data": {"attribute"},
    "const": {"attribute"},
}
_LITERAL_MARKER = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)


def _is_public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    """The object and all its non-alias members, recursively."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))
    return found


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles into autorefs links once the whole package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects = [obj for obj in _walk(pkg) if _is_public(obj.path)]
        by_short: dict[str, set[str]] = {}
        for obj in objects:
            by_short.setdefault(obj.name, set()).add(obj.path)
        self._kind_of = {obj.path: obj.kind.value for obj in objects}
        for obj in objects:
            if obj.docstring is not None:
                obj.docstring.value = self._rewrite(obj, obj.docstring.value, by_short)

    @staticmethod
    def _canonical(scope: griffe.Object, name: str, kinds: set[str] | None) -> str | None:
        """Path of the public object ``name`` refers to from ``scope``, or None."""
        candidates = [name]
        parent: griffe.Object | None = scope
        while parent is not None:  # relative names: members of the scope and of its parents
            candidates.append(f"{parent.path}.{name}")
            parent = parent.parent
        root = scope.package
        for path in candidates:
            if not path.startswith(f"{root.name}.") and path != root.name:
                continue
            try:
                target = root[path.split(".", 1)[1]] if "." in path else root
            except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            try:
                final = target.final_target if target.is_alias else target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if _is_public(final.path) and (kinds is None or final.kind.value in kinds):
                return final.path
        return None

    def _rewrite(self, obj: griffe.Object, text: str, by_short: dict[str, set[str]]) -> str:
        def replace(match: re.Match[str]) -> str:
            kinds = _KINDS.get(match.group(1))
            short, name = match.group(2) == "~", match.group(3).strip()
            shown = name.rsplit(".", 1)[-1] if short else name
            target = self._canonical(obj, name, kinds)
            if target is None:  # a unique short name anywhere in the package (e.g. knn imported in a function)
                paths = {
                    path
                    for path in by_short.get(name.rsplit(".", 1)[-1], set())
                    if kinds is None or self._kind_of[path] in kinds
                }
                target = next(iter(paths)) if len(paths) == 1 else None
            return f"[`{shown}`][{target}]" if target else f"`{shown}`"

        return _LITERAL_MARKER.sub(r"\1:", _ROLE.sub(replace, text))
