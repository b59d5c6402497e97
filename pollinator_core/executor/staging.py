"""The executor's side of the CFS: files in before a job, results out after it.

As the official executors' sync handler does (reference/colonies-protocol.md section 7): each
snapshot is downloaded into ``<root><snapshot.dir>``; each ``dirs`` entry is synced two ways
(local-only up, remote-only down, a difference resolved by ``onstart``/``onclose.keeplocal``),
with ``{processid}`` replaced in its dir and label. ``root`` is the process's own directory, so
nothing here is shared with another process; the executor removes it once the results are up.
Snapshots marked ``keepsnapshot: false`` are removed when the process is done. The transfers
themselves are :mod:`pollinator_core.sync.stage`'s.

Staging is part of neither the job's walltime (counted from the job's start) nor silent: a
transfer that takes a while puts a progress line into the process log every few seconds, and
staging that took a second or more ends with a line saying what it moved. With an
:class:`~pollinator_core.sync.objects.ObjectCache`, bytes this executor staged before are hard
links instead of transfers, so an unchanged re-run stages in a fraction of a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pollinator_core.colonies.client import ColoniesClient, ColoniesError, NotFound
from pollinator_core.colonies.models import Process, SyncDir
from pollinator_core.errors import InfraError
from pollinator_core.executor.translate import host_path
from pollinator_core.project.funcspec import substitute
from pollinator_core.storage.location import StorageLocation
from pollinator_core.sync.engine import SyncReport
from pollinator_core.sync.objects import ObjectCache
from pollinator_core.sync.stage import download_snapshot, sync_dir
from pollinator_core.sync.transfer import Done

log = logging.getLogger("pollinator.executor")

#: seconds between progress lines while files move
PROGRESS_EVERY = 3.0
#: staging that took at least this long ends with a line saying what it did
SUMMARY_AFTER = 1.0


class StagingProgress:
    """Progress lines for the process log (a :class:`~pollinator_core.sync.progress.Progress`
    driven from the transfer threads)."""

    def __init__(self, say: Callable[[str], None], what: str) -> None:
        self._say = say
        self._what = what
        self._every = PROGRESS_EVERY
        self._lock = threading.Lock()
        self._files = self._bytes = self._done_files = self._done_bytes = 0
        self._next = 0.0

    def start(self, title: str, files: int, nbytes: int) -> None:
        with self._lock:
            self._title = title.lower()
            self._files, self._bytes = files, nbytes
            self._done_files = self._done_bytes = 0
            self._next = time.monotonic() + self._every

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done_files += 1
            self._done_bytes += nbytes
            if time.monotonic() < self._next:
                return
            self._next = time.monotonic() + self._every
            # Said with the lock held (one line every few seconds): the lines stay in order.
            self._say(
                f"pollinator: staging {self._what}: {self._title} {self._done_files:,} of "
                f"{self._files:,} files, {_size(self._done_bytes)} of {_size(self._bytes)}\n"
            )

    def stop(self) -> None:
        pass


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


class CfsStager:
    """Pre- and post-sync through the Colonies file records and ``storage``; ``cache`` keeps
    what was downloaded, by content, for the next process that needs the same bytes."""

    def __init__(
        self,
        client: ColoniesClient,
        colony: str,
        storage: StorageLocation,
        cache: ObjectCache | None = None,
    ) -> None:
        self._client = client
        self._colony = colony
        self._storage = storage
        self._cache = cache

    def pre_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        pid = process.processid
        started = time.monotonic()
        moved: list[Done] = []
        for snapshot in process.spec.fs.snapshots:
            target = host_path(root, substitute(snapshot.dir, pid))
            moved.append(
                download_snapshot(
                    self._client,
                    self._colony,
                    snapshot.snapshotid,
                    target,
                    self._storage,
                    cache=self._cache,
                    progress=StagingProgress(say, _last(snapshot.dir)),
                )
            )
        for entry in process.spec.fs.dirs:
            report = self._sync(
                entry,
                root,
                pid,
                keeplocal=entry.onconflicts.onstart.keeplocal,
                progress=StagingProgress(say, _last(entry.dir)),
            )
            if report.done is not None:
                moved.append(report.done)
            # Made after the sync: an empty directory there would go up as a marker record.
            host_path(root, substitute(entry.dir, pid)).mkdir(parents=True, exist_ok=True)
        seconds = time.monotonic() - started
        files = sum(len(d.downloaded) for d in moved)
        nbytes = sum(d.bytes_down for d in moved)
        cached = sum(d.cached for d in moved)
        log.info("process %s: staged %d files (%d cached) in %.3f s", pid, files, cached, seconds)
        if seconds >= SUMMARY_AFTER:
            reused = f", {cached:,} of them already on this executor" if cached else ""
            say(
                f"pollinator: staged {files:,} files ({_size(nbytes)}{reused}) in "
                f"{seconds:.1f} s; the walltime starts with the job\n"
            )

    def post_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        for entry in process.spec.fs.dirs:
            report = self._sync(
                entry, root, process.processid, keeplocal=entry.onconflicts.onclose.keeplocal
            )
            # What the job wrote but the CFS cannot carry must not vanish without a word.
            where = _last(substitute(entry.dir, process.processid))
            for rel, why in report.skipped:
                say(f"pollinator: not uploaded: {where}/{rel} ({why})\n")

    def finish(self, process: Process) -> None:
        """Remove the spec's snapshots that ask for it (``keepsnapshot: false``), as the
        official executors do once a process is done; keep the object cache within bounds."""
        if self._cache is not None:
            self._cache.prune()
        for snapshot in process.spec.fs.snapshots:
            if snapshot.keepsnapshot:
                continue
            try:
                self._client.remove_snapshot(self._colony, snapshot_id=snapshot.snapshotid)
            except NotFound:
                pass  # already gone: another process of the same snapshot removed it
            except ColoniesError as exc:
                raise InfraError(f"could not remove snapshot {snapshot.snapshotid}: {exc}") from exc

    def _sync(
        self,
        entry: SyncDir,
        root: Path,
        pid: str,
        *,
        keeplocal: bool,
        progress: StagingProgress | None = None,
    ) -> SyncReport:
        local = host_path(root, substitute(entry.dir, pid))
        label = substitute(entry.label, pid)
        return sync_dir(
            self._client,
            self._colony,
            label,
            local,
            self._storage,
            keeplocal=keeplocal,
            cache=self._cache,
            progress=progress,
        )


def _last(spec_dir: str) -> str:
    """The last part of a spec directory (``/pollinator/p/snap/data`` -> ``data``)."""
    return spec_dir.rstrip("/").rsplit("/", 1)[-1]
