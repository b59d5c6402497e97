"""The executor's side of the CFS: files in before a job, results out after it.

As the official executors' sync handler does (reference/colonies-protocol.md section 7): each
snapshot is downloaded into ``<root><snapshot.dir>``; each ``dirs`` entry is synced two ways
(local-only up, remote-only down, a difference resolved by ``onstart``/``onclose.keeplocal``),
with ``{processid}`` replaced in its dir and label. ``root`` is the process's own directory, so
nothing here is shared with another process; the executor removes it afterwards.
"""

from __future__ import annotations

from pathlib import Path

from pollinator_core.client import ColoniesClient
from pollinator_core.errors import JobFailed
from pollinator_core.executor_job import host_path, substitute
from pollinator_core.models import File, Process, SyncDir
from pollinator_core.storage import StorageLocation
from pollinator_core.sync.engine import sync_tree
from pollinator_core.sync.paths import MARKER, check_name, local_target, remote_subdir
from pollinator_core.sync.plan import Mode
from pollinator_core.sync.remote import pmap
from pollinator_core.sync.transfer import fetch

WORKERS = 16


class CfsStager:
    """Pre- and post-sync through the Colonies file records and ``storage``."""

    def __init__(self, client: ColoniesClient, colony: str, storage: StorageLocation) -> None:
        self._client = client
        self._colony = colony
        self._storage = storage

    def pre_sync(self, process: Process, root: Path) -> None:
        pid = process.processid
        for snapshot in process.spec.fs.snapshots:
            target = host_path(root, substitute(snapshot.dir, pid))
            self._download_snapshot(snapshot.snapshotid, target)
        for entry in process.spec.fs.dirs:
            self._sync(entry, root, pid, keeplocal=entry.onconflicts.onstart.keeplocal)
            # Made after the sync: an empty directory there would go up as a marker record.
            host_path(root, substitute(entry.dir, pid)).mkdir(parents=True, exist_ok=True)

    def post_sync(self, process: Process, root: Path) -> None:
        for entry in process.spec.fs.dirs:
            self._sync(
                entry, root, process.processid, keeplocal=entry.onconflicts.onclose.keeplocal
            )

    def _sync(self, entry: SyncDir, root: Path, pid: str, *, keeplocal: bool) -> None:
        local = host_path(root, substitute(entry.dir, pid))
        sync_tree(
            self._client,
            self._colony,
            local,
            substitute(entry.label, pid),
            self._storage,
            Mode.MERGE,
            keeplocal=keeplocal,
        )

    def _download_snapshot(self, snapshot_id: str, target: Path) -> None:
        snapshot = self._client.get_snapshot(self._colony, snapshot_id=snapshot_id)
        target.mkdir(parents=True, exist_ok=True)

        def one(file_id: str) -> None:
            record: File = self._client.get_file(self._colony, file_id=file_id)[0]
            subdir = remote_subdir(snapshot.label, record.label)
            if record.name == MARKER:  # an empty directory, kept as a marker record
                if subdir:
                    local_target(target, subdir).mkdir(parents=True, exist_ok=True)
                return
            reason = check_name(record.name)
            if reason:
                raise JobFailed(f"refusing snapshot file {record.name!r}: it contains {reason}")
            rel = f"{subdir}/{record.name}" if subdir else record.name
            obj = record.ref.s3object.object
            fetch(self._storage, obj, record.checksum, record.size, target, rel)

        pmap(one, snapshot.fileids, WORKERS)
