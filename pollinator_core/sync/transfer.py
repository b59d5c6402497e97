"""Carry out a plan: bytes and records moved concurrently, in the order that loses nothing.

- Upload: the object first (content key; skipped when it already exists), then the record, so
  an interruption can leave an object without a record (the next sync reuses it) but never a
  record without its object. Small files are read once and their key is the SHA-256 of exactly
  the bytes sent; a large file must not change while it streams.
- Removals run after every upload has landed: a rename is new-then-delete, never a gap.
- Download: into a temporary file in the target directory, SHA-256 checked against the record,
  then renamed over the target. Targets are checked not to lead outside the tree.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pollinator_core.colonies.models import File
from pollinator_core.errors import InfraError, PollinatorError, UsageError
from pollinator_core.storage.location import SMALL_OBJECT, check_object_key
from pollinator_core.sync.index import hash_file
from pollinator_core.sync.paths import MARKER, label_of, local_target, split
from pollinator_core.sync.plan import Action, Kind
from pollinator_core.sync.progress import NoProgress, Progress
from pollinator_core.sync.scan import StatKey, stat_key

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.storage.location import StorageLocation
    from pollinator_core.sync.objects import ObjectCache

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class ChecksumMismatch(InfraError):
    """Downloaded bytes do not hash to the record's checksum; nothing was written."""


def marker_bytes(label: str) -> bytes:
    """The empty-directory marker: what the official CLI writes into a synced directory."""
    return json.dumps({"label": label}).encode()


@attrs.define
class Done:
    """What was carried out: uploaded/downloaded relpath -> sha, removals, byte counts."""

    uploaded: dict[str, tuple[str, int]] = attrs.Factory(dict)  # relpath -> (sha, size)
    downloaded: dict[str, str] = attrs.Factory(dict)
    removed: list[str] = attrs.Factory(list)
    unrecorded: set[str] = attrs.Factory(set)  # object stored, adding the record failed
    marked: dict[str, str] = attrs.Factory(dict)  # directory -> marker sha
    unmarked: list[str] = attrs.Factory(list)
    mkdirs: list[str] = attrs.Factory(list)
    bytes_up: int = 0
    bytes_down: int = 0
    #: downloads that were hard links to an executor's cached copy
    cached: int = 0


class Transfer:
    def __init__(
        self,
        client: ColoniesClient,
        colony: str,
        root_label: str,
        storage: StorageLocation,
        root: Path,
        *,
        workers: int,
        stat_keys: dict[str, StatKey],
        known_objects: set[str],
        progress: Progress | None = None,
        cache: ObjectCache | None = None,
    ) -> None:
        self.client = client
        self.colony = colony
        self.root_label = root_label
        self.storage = storage
        self.root = root
        self.workers = workers
        self.stat_keys = stat_keys
        self.progress = progress or NoProgress()
        self.cache = cache
        self.done = Done()
        self._known = set(known_objects)  # objects that exist
        self._pending: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()

    # --- driver ------------------------------------------------------------------------

    def run(self, actions: list[Action]) -> Done:
        ups = [a for a in actions if a.kind in (Kind.UPLOAD, Kind.MARK)]
        removals = [a for a in actions if a.kind in (Kind.REMOVE, Kind.UNMARK)]
        downs = [a for a in actions if a.kind in (Kind.DOWNLOAD, Kind.MKDIR)]
        try:
            if ups:
                self.storage.prepare_write()
                wanted = {
                    self.storage.object_key(a.sha) for a in ups if a.kind is Kind.UPLOAD and a.sha
                }
                self._known |= self.storage.existing(wanted - self._known)
                self._phase("Uploading", ups, self._upload_or_mark)
            self._phase("Removing", removals, self._remove)
            self._phase("Downloading", self._link_cached(downs), self._download_or_mkdir)
        finally:
            self.progress.stop()
        return self.done

    def _phase(self, title: str, actions: list[Action], fn: Callable[[Action], None]) -> None:
        """Run ``fn`` on every action from a few long-lived threads pulling from one list: per
        action that is one lock, where a pool's futures cost a dozen (and the GIL with them)."""
        if not actions:
            return
        self.progress.start(title, len(actions), sum(a.size for a in actions))
        errors: list[tuple[Action, BaseException]] = []
        todo = iter(actions)
        lock = threading.Lock()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                with lock:
                    action = next(todo, None)
                if action is None:
                    return
                try:
                    fn(action)
                except BaseException as exc:
                    with lock:
                        errors.append((action, exc))

        threads = [
            threading.Thread(target=work, name=f"pollinator-sync-{n}", daemon=True)
            for n in range(max(1, min(self.workers, len(actions))))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            stop.set()  # on Ctrl-C: start nothing new, let running transfers finish cleanly
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise _summarise(title, errors, len(actions))

    # --- uploads -----------------------------------------------------------------------

    @staticmethod
    def streams(size: int) -> bool:
        """Whether a file this size is streamed, so its hash (its key) is needed beforehand;
        a smaller one is read whole and hashed from those bytes."""
        return size > SMALL_OBJECT

    def _ensure_object(self, sha: str, put: Callable[[str], None]) -> None:
        """Store the object for ``sha`` once, however many files share the content."""
        key = self.storage.object_key(sha)
        with self._lock:
            if key in self._known:
                return
            future = self._pending.get(key)
            owner = future is None
            if future is None:
                future = self._pending[key] = concurrent.futures.Future()
        if not owner:
            future.result()
            return
        try:
            put(key)
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            self._known.add(key)
            del self._pending[key]
        future.set_result(None)

    def _upload_or_mark(self, a: Action) -> None:
        if a.kind is Kind.MARK:
            self._mark(a.rel)
        else:
            self._upload(a)

    def _upload(self, a: Action) -> None:
        path = os.path.join(self.root, a.rel)
        if not self.streams(a.size):
            with open(path, "rb") as f:
                data = f.read()
                key_after = stat_key(os.fstat(f.fileno()))
            sha = hashlib.sha256(data).hexdigest()
            size = len(data)
            self._ensure_object(sha, lambda key: self.storage.put_bytes(key, data))
        else:
            sha, size = a.sha, a.size
            key_after = self.stat_keys[a.rel]
            self._ensure_object(sha, lambda key: self._put_large(key, path, a.rel, key_after))
        subdir, name = split(a.rel)
        try:
            self._add_record(label_of(self.root_label, subdir), name, size, sha)
        except BaseException:
            with self._lock:
                self.done.unrecorded.add(a.rel)
            raise
        with self._lock:
            self.done.uploaded[a.rel] = (sha, size)
            self.done.bytes_up += size
            self.stat_keys[a.rel] = key_after
        self.progress.advance(size)

    def _put_large(self, key: str, path: str, rel: str, hashed: StatKey) -> None:
        """Stream a file hashed earlier under its content key. It must not change from the
        hashing to the end of the upload (every write moves ctime): if it did, the object
        could hold other bytes than its key says, so it is deleted again."""
        if stat_key(os.stat(path)) != hashed:
            raise UsageError(f"{rel} changed while it was being synced: sync again")
        self.storage.put_file(key, path)
        if stat_key(os.stat(path)) != hashed:
            self.storage.remove(key)
            raise UsageError(f"{rel} changed while it was being uploaded: sync again")

    def _mark(self, d: str) -> None:
        label = label_of(self.root_label, d)
        data = marker_bytes(label)
        sha = hashlib.sha256(data).hexdigest()
        self._ensure_object(sha, lambda key: self.storage.put_bytes(key, data))
        self._add_record(label, MARKER, len(data), sha)
        with self._lock:
            self.done.marked[d] = sha
        self.progress.advance(0)

    def _add_record(self, label: str, name: str, size: int, sha: str) -> None:
        ref = self.storage.reference(self.storage.object_key(sha))
        self.client.add_file(
            File(
                colonyname=self.colony,
                label=label,
                name=name,
                size=size,
                checksum=sha,
                checksumalg="SHA256",
                ref=ref,
            )
        )

    # --- removals ----------------------------------------------------------------------

    def _remove(self, a: Action) -> None:
        assert a.remote is not None
        self.client.remove_file(self.colony, label=a.remote.label, name=a.remote.name)
        with self._lock:
            (self.done.unmarked if a.kind is Kind.UNMARK else self.done.removed).append(a.rel)
        self.progress.advance(0)

    # --- downloads ---------------------------------------------------------------------

    def _link_cached(self, actions: list[Action]) -> list[Action]:
        """Put what the executor's cache holds in place at once; the actions still to do."""
        if self.cache is None:
            return actions
        wanted = [
            (a.target or a.rel, a.remote.checksum, a.remote.size)
            for a in actions
            if a.kind is Kind.DOWNLOAD and a.remote is not None
        ]
        linked = self.cache.place_many(self.root, wanted)
        rest = []
        for a in actions:
            rel = a.target or a.rel
            if a.kind is not Kind.DOWNLOAD or a.remote is None or rel not in linked:
                rest.append(a)
                continue
            self.done.downloaded[rel] = a.remote.checksum
            self.done.bytes_down += a.remote.size
            self.done.cached += 1
        return rest

    def _download_or_mkdir(self, a: Action) -> None:
        if a.kind is Kind.MKDIR:
            local_target(self.root, a.rel).mkdir(parents=True, exist_ok=True)
            with self._lock:
                self.done.mkdirs.append(a.rel)
            self.progress.advance(0)
            return
        assert a.remote is not None
        rel = a.target or a.rel
        remote = a.remote
        fetch(self.storage, remote.object, remote.checksum, remote.size, self.root, rel, self.cache)
        with self._lock:
            self.done.downloaded[rel] = a.remote.checksum
            self.done.bytes_down += a.remote.size
        self.progress.advance(a.remote.size)


def fetch(
    storage: StorageLocation,
    object_key: str,
    checksum: str,
    size: int,
    root: Path,
    rel: str,
    cache: ObjectCache | None = None,
) -> None:
    """Download one object to ``root/rel``: temp file, SHA-256 check, atomic rename; with
    ``cache``, the file is then kept there too (see :meth:`ObjectCache.place_many` for the
    other way round)."""
    dest = local_target(root, rel)
    if size:  # an empty file needs no object (the official tools record none)
        check_object_key(object_key)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(
            f"cannot download {rel!r}: a file stands locally where its directory should be; "
            "move that file aside."
        ) from None
    if dest.is_dir():  # a directory, or a link to one (cfs/result/latest): never replaced
        raise UsageError(
            f"cannot download {rel!r}: a directory of that name exists locally; move it aside."
        )
    tmp = dest.with_name(f".{dest.name}.pollinator-{uuid.uuid4().hex[:12]}")
    try:
        if size == 0:
            tmp.write_bytes(b"")  # as the official tools do: an empty file needs no object
            sha = _EMPTY_SHA
        elif size <= SMALL_OBJECT:
            data = storage.get_bytes(object_key)
            sha = hashlib.sha256(data).hexdigest()
            if sha == checksum or not checksum:
                tmp.write_bytes(data)
        else:
            storage.get_file(object_key, str(tmp))
            sha = hash_file(str(tmp))[0]
        if checksum and sha != checksum:
            raise ChecksumMismatch(
                f"{rel}: object {object_key} has SHA-256 {sha}, its record says {checksum}; "
                f"the local file was left as it was"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    if cache is not None and size and checksum:
        cache.keep(checksum, dest)


def _summarise(title: str, errors: list[tuple[Action, BaseException]], total: int) -> BaseException:
    for _, exc in errors:
        if not isinstance(exc, Exception):
            return exc  # KeyboardInterrupt, SystemExit: not ours to wrap
    first = errors[0][1]
    if len(errors) == 1 and isinstance(first, PollinatorError):
        return first
    lines = "; ".join(f"{a.rel}: {_describe(e)}" for a, e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    kind = UsageError if all(isinstance(e, UsageError) for _, e in errors) else InfraError
    return kind(f"{title}: {len(errors)} of {total} failed: {lines}{more}")


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PollinatorError) else f"{type(exc).__name__}: {exc}"
