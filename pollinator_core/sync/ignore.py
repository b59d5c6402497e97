"""``.pollinatorignore``: gitignore syntax (pathspec), nested like git, over built-in defaults.

Rules come from, lowest precedence first: the defaults, the project's top-level
``.pollinatorignore`` (paths relative to the project root), and a ``.pollinatorignore`` in any
synced directory (paths relative to that directory). The deepest rule that matches decides, so
``!pattern`` can re-include what a default excludes. An ignored directory is not entered.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

IGNORE_FILE = ".pollinatorignore"
DEFAULT_PATTERNS = (".git/", "__pycache__/", ".venv/", "*.pyc", ".pollinator/")
# The defaults as plain name tests: checked for every file, they must cost next to nothing.
_DEFAULT_DIRS = frozenset(p.rstrip("/") for p in DEFAULT_PATTERNS if p.endswith("/"))
_DEFAULT_SUFFIXES = tuple(p[1:] for p in DEFAULT_PATTERNS if p.startswith("*"))


def _spec(lines: list[str] | tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


class IgnoreRules:
    """Immutable: :meth:`below` returns a new set with one more directory's file added."""

    def __init__(self, layers: tuple[tuple[pathspec.GitIgnoreSpec, str, str], ...]) -> None:
        # (spec, strip, add): a tree path ``rel`` is matched as ``add + rel[len(strip):]``;
        # the defaults sit below every layer.
        self._layers = layers

    @classmethod
    def for_tree(cls, tree: Path, project_root: Path | None = None) -> IgnoreRules:
        """Defaults, plus the project's top-level ignore file when ``tree`` is inside it."""
        layers: list[tuple[pathspec.GitIgnoreSpec, str, str]] = []
        if project_root is not None and project_root != tree:
            top = read_lines(project_root / IGNORE_FILE)
            try:
                offset = tree.relative_to(project_root).as_posix()
            except ValueError:
                offset = None
            if top and offset is not None:
                layers.append((_spec(top), "", offset + "/"))
        return cls(tuple(layers))

    def below(self, rel_dir: str, lines: list[str]) -> IgnoreRules:
        """Add the rules of ``<rel_dir>/.pollinatorignore``."""
        strip = f"{rel_dir}/" if rel_dir else ""
        return IgnoreRules((*self._layers, (_spec(lines), strip, "")))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        path = f"{rel}/" if is_dir else rel
        for spec, strip, add in reversed(self._layers):
            if strip and not path.startswith(strip):
                continue
            include = spec.check_file(add + path[len(strip) :]).include
            if include is not None:
                return include
        name = rel.rpartition("/")[2]
        return (is_dir and name in _DEFAULT_DIRS) or name.endswith(_DEFAULT_SUFFIXES)


def read_lines(path: Path) -> list[str]:
    """The lines of an ignore file; none when it does not exist."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
