"""Mapping between a directory tree and Colonies labels, and the checks that keep remote names
inside the target directory.

As the official tools do: the tree's root maps to LABEL, a subdirectory to LABEL/relpath, and a
file record's ``name`` is a plain file name within its label. Relative paths here are POSIX
strings ("a/b/c.txt"); "" is the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from pollinator_core.errors import UsageError

# The official CLI writes ``.cfs`` ({"label": ...}) into synced directories and never uploads
# it; we use the same name, with the same content, as the marker record of an empty directory.
MARKER = ".cfs"


def _bad_component(part: str) -> str | None:
    if part in ("", ".", ".."):
        return f"path component {part!r}"
    if "\x00" in part:
        return "a NUL byte"
    if "\\" in part:
        return "a backslash"
    return None


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be a file name inside a directory, or None when it can."""
    if "/" in name:
        return "a slash in a file name"
    return _bad_component(name)


def check_relpath(rel: str) -> str | None:
    """Why relative path ``rel`` could land outside its base, or None when it cannot."""
    if rel.startswith("/"):
        return "an absolute path"
    for part in rel.split("/"):
        reason = _bad_component(part)
        if reason:
            return reason
    return None


def label_of(root_label: str, subdir: str) -> str:
    return f"{root_label}/{subdir}" if subdir else root_label


def split(rel: str) -> tuple[str, str]:
    """("a/b", "c.txt") for "a/b/c.txt"; ("", "x") for "x"."""
    head, _, name = rel.rpartition("/")
    return head, name


def join(subdir: str, name: str) -> str:
    return f"{subdir}/{name}" if subdir else name


def in_tree(root_label: str, label: str) -> bool:
    """Whether ``label`` is the root label or below it (a prefix match alone would also take
    ``/p/src2`` for ``/p/src``)."""
    return label == root_label or label.startswith(root_label + "/")


def remote_subdir(root_label: str, label: str) -> str:
    """The relative directory of ``label`` under ``root_label``; refuses escapes."""
    sub = label[len(root_label) + 1 :] if label != root_label else ""
    reason = check_relpath(sub) if sub else None
    if reason:
        raise UsageError(
            f"refusing remote label {label!r}: it contains {reason} and would land outside the "
            f"target directory"
        )
    return sub


def remote_relpath(root_label: str, label: str, name: str, sub: str | None = None) -> str:
    """The relative path of file record (label, name) under ``root_label``; refuses escapes.
    ``sub``: ``remote_subdir(root_label, label)`` when the caller already has it."""
    if sub is None:
        sub = remote_subdir(root_label, label)
    reason = check_name(name)
    if reason:
        raise UsageError(
            f"refusing remote file {name!r} in label {label!r}: it contains {reason} and "
            f"would land outside the target directory"
        )
    return join(sub, name)


def local_target(base: Path, rel: str) -> Path:
    """``base/rel`` after checking that no existing component (a symlink, say) leads outside
    ``base``. Missing components are fine: they are created as plain directories."""
    if rel == "":
        return base
    reason = check_relpath(rel)
    if reason:
        raise UsageError(f"refusing path {rel!r}: it contains {reason}")
    target = base.joinpath(*rel.split("/"))
    real_base = os.path.realpath(base)
    probe = os.path.realpath(target.parent)
    if probe != real_base and not probe.startswith(real_base + os.sep):
        raise UsageError(f"refusing to write {rel!r}: its directory leads outside {base}")
    return target
