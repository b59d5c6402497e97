"""The per-tree sync index in the project's state directory: what makes an unchanged sync cheap.

It holds, as one compact JSON document (~1 MB and ~15 ms to load for 10,000 files):

- ``files``: relpath -> (size, mtime_ns, inode, ctime_ns, sha256). A file whose stat key matches
  is not re-read. Any write changes ctime, so even a same-size change whose mtime was put back
  is seen. Entries are stored only when their timestamps are older than :data:`RACY_NS` at
  hashing time, so a write within the filesystem's clock tick after hashing cannot hide.
- ``base``: relpath -> sha256 both sides agreed on after the last sync (what was last pulled or
  pushed): a pull uses it to tell a local edit from a stale copy.
- ``remote``: label -> (revision count, {name: (checksum, size, object)}): the remote listing as
  this sync left it, reused while the server reports the same count (see docs/sync.md).
- ``unrecorded``: relpaths whose object an interrupted sync stored but whose record it never
  added. A new file is otherwise hashed only as it uploads; these are hashed up front, so the
  next sync finds their objects and adds the records without sending the bytes again.

``identity`` (server, colony, label) guards the last three: when it changes they are
dropped; the stat cache only describes local files and always stays valid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pollinator_core.errors import UsageError
from pollinator_core.sync.scan import StatKey, stat_key

VERSION = 1
RACY_NS = 2_000_000_000  # coarser than any filesystem's timestamp granularity (FAT: 2 s)
_READ = 1 << 20

RemoteFile = tuple[str, int, str]  # checksum, size, object
RemoteLabel = tuple[int, dict[str, RemoteFile]]  # revision count, name -> file


class Index:
    def __init__(self, path: Path | None, identity: str) -> None:
        self.path = path
        self.identity = identity
        self.files: dict[str, tuple[int, int, int, int, str]] = {}
        self.base: dict[str, str] = {}
        self.remote: dict[str, RemoteLabel] = {}
        self.unrecorded: set[str] = set()
        self.dirty = False  # saved only when something changed: unchanged syncs write nothing

    @classmethod
    def load(cls, path: Path | None, identity: str) -> Index:
        index = cls(path, identity)
        if path is None:
            return index
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return index
        except (OSError, ValueError):
            return index  # a damaged index only costs a re-hash
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            return index
        index.files = {k: tuple(v) for k, v in doc.get("files", {}).items()}
        if doc.get("identity") == identity:
            index.base = doc.get("base", {})
            index.remote = {
                label: (count, {n: tuple(f) for n, f in files.items()})
                for label, (count, files) in doc.get("remote", {}).items()
            }
            index.unrecorded = set(doc.get("unrecorded", []))
        return index

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        doc: dict[str, Any] = {
            "version": VERSION,
            "identity": self.identity,
            "files": self.files,
            "base": self.base,
            "remote": self.remote,
            "unrecorded": sorted(self.unrecorded),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, separators=(",", ":")))  # dumps: the C encoder; dump is not
        os.replace(tmp, self.path)
        self.dirty = False

    def cached_sha(self, rel: str, key: StatKey) -> str | None:
        entry = self.files.get(rel)
        if entry is not None and entry[:4] == key:
            return entry[4]
        return None

    def remember(self, rel: str, key: StatKey, sha: str, hashed_at: int) -> None:
        """Cache ``sha`` for ``key``, unless the file's timestamps are too fresh to vouch for
        its content (a write within the same clock tick would not change them)."""
        if hashed_at - max(key[1], key[3]) > RACY_NS:
            entry = (*key, sha)
            if self.files.get(rel) != entry:
                self.files[rel] = entry
                self.dirty = True
        else:
            self.forget(rel)

    def forget(self, rel: str) -> None:
        if self.files.pop(rel, None) is not None:
            self.dirty = True

    def agree(self, shas: dict[str, str]) -> None:
        """Record what both sides now hold."""
        for rel, sha in shas.items():
            if self.base.get(rel) != sha:
                self.base[rel] = sha
                self.dirty = True

    def prune(self, live: Iterable[str]) -> None:
        """Forget stat entries of files that no longer exist."""
        keep = set(live)
        if any(k not in keep for k in self.files):
            self.files = {k: v for k, v in self.files.items() if k in keep}
            self.dirty = True
        if not self.unrecorded <= keep:
            self.unrecorded &= keep
            self.dirty = True


@contextlib.contextmanager
def locked(index_path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock beside the index for the length of one sync."""
    if index_path is None:
        yield
        return
    index_path.parent.mkdir(parents=True, exist_ok=True)
    with open(index_path.with_name(index_path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another sync of this directory is running (lock {lock.name}); wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def hash_file(path: str) -> tuple[str, StatKey]:
    """SHA-256 of a file and its stat key as of the end of the read (fstat on the same fd)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_READ):
            h.update(chunk)
        key = stat_key(os.fstat(f.fileno()))
    return h.hexdigest(), key


def hash_tree(
    root: Path,
    files: dict[str, StatKey],
    index: Index,
    *,
    rehash: bool,
    workers: int,
    skipped: list[tuple[str, str]] | None = None,
    needed: Callable[[str], bool] | None = None,
) -> dict[str, str]:
    """relpath -> sha256 for ``files``, reading only those the index cannot vouch for.

    ``needed``: which files must be hashed now (default: all); the others are only checked to
    be readable, and hashed later by whoever reads them anyway (a new file's upload). A file
    that cannot be read (no permission, gone since the scan) is dropped from ``files`` and
    reported in ``skipped``, as the scan reports what it cannot enter; without ``skipped`` it
    is a UsageError naming the file.
    """
    shas: dict[str, str] = {}
    todo: list[str] = []
    for rel, key in files.items():
        sha = None if rehash else index.cached_sha(rel, key)
        if sha is not None:
            shas[rel] = sha
        elif needed is None or needed(rel):
            todo.append(rel)
        elif not os.access(os.path.join(root, rel), os.R_OK):
            todo.append(rel)  # hashing it reports why it cannot be read
    if not todo:
        return shas

    def work(rel: str) -> tuple[str, str, StatKey, int] | tuple[str, OSError]:
        try:
            sha, key = hash_file(os.path.join(root, rel))
        except OSError as exc:
            return rel, exc
        return rel, sha, key, time.time_ns()

    # hashlib releases the GIL on large buffers: threads use every core for big files.
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        results = list(pool.map(work, todo)) if len(todo) > 1 else [work(todo[0])]
    for result in results:
        if len(result) == 2:
            rel, exc = result
            why = f"unreadable: {exc.strerror or exc}"
            if skipped is None:
                raise UsageError(f"cannot read {rel!r} in {root}: {why}") from None
            skipped.append((rel, why))
            del files[rel]
            index.forget(rel)
            continue
        rel, sha, key, now = result
        shas[rel] = sha
        if key != files[rel]:
            files[rel] = key  # written while we read: keep the newest key, trust nothing
            index.forget(rel)
        else:
            index.remember(rel, key, sha, now)
    return shas
