"""The executor's side of the CFS: files in before a job, results out after it.

As the official executors' sync handler does (reference/colonies-protocol.md section 7): each
snapshot is downloaded into ``<root><snapshot.dir>``; each ``dirs`` entry is synced two ways
(local-only up, remote-only down, a difference resolved by ``onstart``/``onclose.keeplocal``),
with ``{processid}`` replaced in its dir and label. ``root`` is the process's own directory, so
nothing here is shared with another process; the executor removes it once the results are up.
Snapshots marked ``keepsnapshot: false`` are removed when the process is done. The transfers
themselves are :mod:`pollinator_core.sync.stage`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pollinator_core.colonies.client import ColoniesClient, ColoniesError, NotFound
from pollinator_core.colonies.models import Process, SyncDir
from pollinator_core.errors import InfraError
from pollinator_core.executor.translate import host_path
from pollinator_core.project.funcspec import substitute
from pollinator_core.storage.location import StorageLocation
from pollinator_core.sync.engine import SyncReport
from pollinator_core.sync.stage import download_snapshot, sync_dir


class CfsStager:
    """Pre- and post-sync through the Colonies file records and ``storage``."""

    def __init__(self, client: ColoniesClient, colony: str, storage: StorageLocation) -> None:
        self._client = client
        self._colony = colony
        self._storage = storage

    def pre_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        pid = process.processid
        for snapshot in process.spec.fs.snapshots:
            target = host_path(root, substitute(snapshot.dir, pid))
            download_snapshot(
                self._client, self._colony, snapshot.snapshotid, target, self._storage
            )
        for entry in process.spec.fs.dirs:
            self._sync(entry, root, pid, keeplocal=entry.onconflicts.onstart.keeplocal)
            # Made after the sync: an empty directory there would go up as a marker record.
            host_path(root, substitute(entry.dir, pid)).mkdir(parents=True, exist_ok=True)

    def post_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        for entry in process.spec.fs.dirs:
            report = self._sync(
                entry, root, process.processid, keeplocal=entry.onconflicts.onclose.keeplocal
            )
            # What the job wrote but the CFS cannot carry must not vanish without a word.
            where = substitute(entry.dir, process.processid).rstrip("/").rsplit("/", 1)[-1]
            for rel, why in report.skipped:
                say(f"pollinator: not uploaded: {where}/{rel} ({why})\n")

    def finish(self, process: Process) -> None:
        """Remove the spec's snapshots that ask for it (``keepsnapshot: false``), as the
        official executors do once a process is done."""
        for snapshot in process.spec.fs.snapshots:
            if snapshot.keepsnapshot:
                continue
            try:
                self._client.remove_snapshot(self._colony, snapshot_id=snapshot.snapshotid)
            except NotFound:
                pass  # already gone: another process of the same snapshot removed it
            except ColoniesError as exc:
                raise InfraError(f"could not remove snapshot {snapshot.snapshotid}: {exc}") from exc

    def _sync(self, entry: SyncDir, root: Path, pid: str, *, keeplocal: bool) -> SyncReport:
        local = host_path(root, substitute(entry.dir, pid))
        label = substitute(entry.label, pid)
        return sync_dir(
            self._client, self._colony, label, local, self._storage, keeplocal=keeplocal
        )
