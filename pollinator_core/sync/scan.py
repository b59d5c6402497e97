"""Walk a local directory tree: the files to sync with their stat keys, and its empty leaves.

One ``scandir`` + ``stat`` per entry and no reads: content is hashed later, only for files
whose stat key is not in the index. Symlinks are followed only when they resolve inside the
``boundary`` (the project); others, special files and names a remote label could not carry are
skipped and reported, never silently dropped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

from pollinator_core.sync.ignore import IGNORE_FILE, IgnoreRules, read_lines
from pollinator_core.sync.paths import MARKER, check_name, join

StatKey = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@attrs.define
class LocalTree:
    files: dict[str, StatKey] = attrs.Factory(dict)
    empty_dirs: set[str] = attrs.Factory(set)  # leaves holding nothing; "" if the root has no file
    skipped: list[tuple[str, str]] = attrs.Factory(list)  # (relpath, why)


def scan(
    root: Path,
    rules: IgnoreRules,
    *,
    boundary: Path | None = None,
    exclude: tuple[Path, ...] = (),
) -> LocalTree:
    """Scan ``root``; ``exclude`` lists directories never entered (the state directory)."""
    tree = LocalTree()
    if not root.is_dir():
        return tree
    real_boundary = os.path.realpath(boundary if boundary is not None else root)
    # Directories by (device, inode), which stat already gave: no realpath per directory. A
    # symlink to a directory is followed (its content synced under the link's name) unless it
    # leads back to one of its own ancestors.
    excluded = {_dir_id(p) for p in exclude if p.is_dir()}
    stack: list[tuple[str, str, IgnoreRules, frozenset[tuple[int, int]]]] = [
        (str(root), "", rules, frozenset({_dir_id(root)}))
    ]
    while stack:
        path, rel_dir, dir_rules, ancestors = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            tree.skipped.append((rel_dir or ".", f"unreadable: {exc.strerror}"))
            continue
        if any(e.name == IGNORE_FILE for e in entries):
            dir_rules = dir_rules.below(rel_dir, read_lines(Path(path, IGNORE_FILE)))
        kept = files = 0
        for entry in entries:
            name = entry.name
            if name == MARKER:
                continue  # reserved: an empty-directory marker, never user content
            rel = join(rel_dir, name)
            try:
                st = entry.stat()
            except OSError:
                tree.skipped.append((rel, "dangling symlink"))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if dir_rules.ignored(rel, is_dir):
                continue
            reason = _unsyncable(name)
            if reason is None and entry.is_symlink():
                reason = _outside(entry.path, real_boundary)
            if reason is None and is_dir:
                ident = (st.st_dev, st.st_ino)
                if ident in excluded:
                    continue
                if ident in ancestors:
                    reason = "symlink loop"
                else:
                    stack.append((entry.path, rel, dir_rules, ancestors | {ident}))
                    kept += 1
                    continue
            if reason is None and not stat.S_ISREG(st.st_mode):
                reason = "not a regular file"
            if reason is not None:
                tree.skipped.append((rel, reason))
                continue
            tree.files[rel] = stat_key(st)
            files += 1
        if (kept + files == 0) if rel_dir else files == 0:
            # The root counts as empty without files of its own: the official server snapshots
            # nothing under a label that holds no file itself, whatever its sub-labels hold.
            tree.empty_dirs.add(rel_dir)
    return tree


def _dir_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _unsyncable(name: str) -> str | None:
    reason = check_name(name)
    if reason is not None:
        return f"{reason} in its name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not valid UTF-8"
    return None


def _outside(link: str, real_boundary: str) -> str | None:
    real = os.path.realpath(link)
    if real == real_boundary or real.startswith(real_boundary + os.sep):
        return None
    return "symlink pointing outside the project"
