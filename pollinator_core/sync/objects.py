"""An executor's local copies of the objects it downloaded, by SHA-256, so that staging the
same bytes again costs a hard link instead of a transfer (issue 13, item 6: an unchanged re-run
of a 200 MB project re-copied everything).

``<dir>/<sha[:2]>/<sha>`` is a hard link to the first file downloaded with that content; later
downloads of the same content are hard links to it. The files are made read-only, so a job
(not running as root) cannot change bytes another job shares; and since a write through any
name changes the shared mtime, an object whose size or mtime is no longer what it was when it
was stored is checked against its hash before it is used again (once per executor process for
objects an earlier one stored), and dropped when it does not match. Objects no staged file
uses any more (link count 1) are removed, least recently used first (a link updates ctime),
once they pass :attr:`ObjectCache.limit` bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from pollinator_core.errors import UsageError
from pollinator_core.sync.index import hash_file
from pollinator_core.sync.paths import check_relpath, local_target

DEFAULT_LIMIT = 2 * 2**30
#: the cache's directory inside an executor's fs dir (beside the processes' directories)
OBJECTS = ".objects"
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class ObjectCache:
    """Objects by SHA-256 under ``directory``; thread-safe."""

    def __init__(self, directory: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.directory = directory
        self.limit = limit
        self._lock = threading.Lock()
        #: sha -> (size, mtime_ns) of objects known to hold their bytes
        self._intact: dict[str, tuple[int, int]] = {}
        #: the sha[:2] directories made so far
        self._folders: set[str] = set()

    def _path(self, sha: str) -> Path:
        return self.directory / sha[:2] / sha

    def place_many(self, root: Path, wanted: Iterable[tuple[str, str, int]]) -> set[str]:
        """Hard-link each wanted ``(relpath, sha, size)`` the cache holds into place under
        ``root``; the relpaths done. The fast path of staging an unchanged run: each distinct
        directory is checked and made once, each file costs a stat and a link."""
        done: set[str] = set()
        directories: dict[str, str | None] = {}
        for rel, sha, size in wanted:
            parent, _, name = rel.rpartition("/")
            if not _SHA_RE.fullmatch(sha) or not size or check_relpath(rel):
                continue  # the ordinary download path says why, or handles it
            if parent not in directories:
                directories[parent] = _directory(root, parent)
            directory = directories[parent]
            if directory is None:
                continue
            obj = os.path.join(self.directory, sha[:2], sha)
            try:
                info = os.stat(obj)
            except OSError:
                continue
            if not self._trusted(sha, size, obj, info):
                continue
            try:
                os.link(obj, os.path.join(directory, name))
            except OSError:
                continue  # there already (fetch replaces it), or no hard links here
            done.add(rel)
        return done

    def keep(self, sha: str, path: Path) -> None:
        """Add ``path``, whose content was just checked to hash to ``sha``; it becomes
        read-only, as every name of the object is. Plain ``os`` calls: this runs once for
        every file a first run stages."""
        if not _SHA_RE.fullmatch(sha):
            return
        folder = os.path.join(self.directory, sha[:2])
        with contextlib.suppress(OSError):  # a cache that cannot grow only costs speed
            os.chmod(path, _READ_ONLY)
            info = os.stat(path)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            try:
                os.link(path, os.path.join(folder, sha))
            except FileExistsError:
                return  # the same bytes, kept already (checked when next used)
            with self._lock:
                self._intact[sha] = (info.st_size, info.st_mtime_ns)

    def _trusted(self, sha: str, size: int, obj: str, info: os.stat_result) -> bool:
        stamp = (info.st_size, info.st_mtime_ns)
        with self._lock:
            if self._intact.get(sha) == stamp:
                return True
        if info.st_size == size and hash_file(obj)[0] == sha:
            with self._lock:
                self._intact[sha] = stamp
            return True
        with self._lock:
            self._intact.pop(sha, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(obj)  # changed through a job's name for it: never used again
        return False

    def unused(self) -> dict[Path, int]:
        """The objects no staged file links to (link count 1), with their sizes."""
        return {obj: info.st_size for obj, info in self._unused()}

    def _unused(self) -> list[tuple[Path, os.stat_result]]:
        found = []
        for obj in self.directory.glob("??/*"):
            with contextlib.suppress(OSError):
                info = obj.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    found.append((obj, info))
        return found

    def prune(self, limit: int | None = None) -> int:
        """Remove unused objects (no staged file links to them), oldest use first, until the
        unused ones take at most ``limit`` bytes (default :attr:`limit`); bytes freed."""
        unused = [(info.st_ctime, info.st_size, obj) for obj, info in self._unused()]
        excess = sum(size for _, size, _ in unused) - (self.limit if limit is None else limit)
        freed = 0
        for _, size, obj in sorted(unused):
            if freed >= excess:
                break
            with contextlib.suppress(OSError):
                obj.unlink()
                freed += size
                with self._lock:
                    self._intact.pop(obj.name, None)
        return freed


def _directory(root: Path, rel: str) -> str | None:
    """``root/rel`` made, after the checks every download makes; None when that fails."""
    try:
        path = local_target(root, rel)
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, UsageError):
        return None
    return str(path)
