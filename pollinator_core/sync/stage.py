"""The executor side: what the official executors do with a function spec's ``fs`` section.

- ``fs.snapshots[]``: :func:`download_snapshot` into ``<fs dir>/<dir>`` before the job;
- ``fs.dirs[]``: :func:`sync_dir` before the job with ``onconflicts.onstart.keeplocal`` and after
  it with ``onconflicts.onclose.keeplocal``: local-only files go up, remote-only files come
  down, a file that differs goes up when keeplocal, else the remote copy replaces it; nothing
  is removed on either side (the official semantics, which Pollinator's own specs rely on).

The caller replaces ``{processid}`` in labels and dirs, removes snapshots without
``keepsnapshot`` and directories without ``keepfiles``, as the official executors do.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pollinator_core.colonies.client import BadRequest, NotFound
from pollinator_core.colonies.models import File
from pollinator_core.errors import InfraError
from pollinator_core.sync.engine import DEFAULT_WORKERS, SyncOptions, SyncReport, sync_tree
from pollinator_core.sync.index import hash_file
from pollinator_core.sync.paths import MARKER, in_tree, local_target, remote_relpath, remote_subdir
from pollinator_core.sync.plan import Mode
from pollinator_core.sync.progress import NoProgress, Progress
from pollinator_core.sync.remote import pmap
from pollinator_core.sync.transfer import Done, fetch

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.storage.location import StorageLocation
    from pollinator_core.sync.objects import ObjectCache


def download_snapshot(
    client: ColoniesClient,
    colony: str,
    snapshot_id: str,
    dest_dir: Path,
    storage: StorageLocation,
    *,
    workers: int = DEFAULT_WORKERS,
    cache: ObjectCache | None = None,
    progress: Progress | None = None,
) -> Done:
    """Materialise snapshot ``snapshot_id`` under ``dest_dir`` (files already there with the
    right content are kept; ``cache`` supplies and keeps copies by content). Every record is
    checked before anything is written: a name or label that would land outside ``dest_dir``
    is refused (UsageError naming it)."""
    snapshot = client.get_snapshot(colony, snapshot_id=snapshot_id)

    def record(file_id: str) -> File:
        try:
            found = client.get_file(colony, file_id=file_id)
        except (NotFound, BadRequest):  # the official server says 400 for an unknown id
            found = []
        if not found:
            raise InfraError(
                f"file {file_id} of snapshot {snapshot_id} ({snapshot.label}) no longer exists: "
                "a later sync removed it; submit the job again"
            )
        return found[0]

    records = pmap(record, snapshot.fileids, workers)
    files: dict[str, File] = {}
    dirs: set[str] = set()
    for rec in records:
        if not in_tree(snapshot.label, rec.label):
            continue  # the server matched a label prefix, such as /p/src2 for /p/src
        if rec.name == MARKER:
            dirs.add(remote_subdir(snapshot.label, rec.label))
        else:
            files[remote_relpath(snapshot.label, rec.label, rec.name)] = rec
    dest_dir.mkdir(parents=True, exist_ok=True)
    done = Done()
    for d in sorted(dirs):
        local_target(dest_dir, d).mkdir(parents=True, exist_ok=True)
        done.mkdirs.append(d)

    progress = progress or NoProgress()
    lock = threading.Lock()

    def get(item: tuple[str, File]) -> None:
        rel, rec = item
        path = os.path.join(dest_dir, rel)
        if rec.checksum and os.path.isfile(path) and hash_file(path)[0] == rec.checksum:
            return
        fetch(storage, rec.ref.s3object.object, rec.checksum, rec.size, dest_dir, rel, cache)
        with lock:
            done.downloaded[rel] = rec.checksum
        progress.advance(rec.size)

    todo = sorted(files.items())
    if cache is not None:
        wanted = [(rel, rec.checksum, rec.size) for rel, rec in todo]
        linked = cache.place_many(dest_dir, wanted)
        for rel in linked:
            done.downloaded[rel] = files[rel].checksum
        done.cached += len(linked)
        todo = [(rel, rec) for rel, rec in todo if rel not in linked]
    progress.start("Downloading", len(todo), sum(rec.size for _, rec in todo))
    try:
        pmap(get, todo, workers)
    finally:
        progress.stop()
    done.bytes_down = sum(files[rel].size for rel in done.downloaded)
    return done


def sync_dir(
    client: ColoniesClient,
    colony: str,
    label: str,
    local_dir: Path,
    storage: StorageLocation,
    *,
    keeplocal: bool,
    workers: int = DEFAULT_WORKERS,
    cache: ObjectCache | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Two-way sync of ``local_dir`` with ``label`` as an ``fs.dirs`` entry asks."""
    return sync_tree(
        client,
        colony,
        local_dir,
        label,
        storage,
        Mode.MERGE,
        keeplocal=keeplocal,
        options=SyncOptions(workers=workers),
        progress=progress,
        cache=cache,
    )
