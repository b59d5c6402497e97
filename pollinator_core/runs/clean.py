"""``pollinator clean``: what a project's old runs leave behind, found and removed.

Every run keeps bytes: its results in ``cfs/result/<id>/`` and under its result label on the
server, and the objects behind them in the store; every changed file leaves its old object
behind; and on the local backend the executor keeps copies of what it staged (issue 13, item
14: 394 MB after three runs of a 200 MB project). A clean keeps the newest ``keep`` runs and
every run still waiting or running, and removes, for the other runs of the backend:

- their results here (``cfs/result/<id>/``) and their result records on the server;
- their snapshots, and any snapshot of the project's src no waiting or running run uses;
- their records in ``.pollinator/runs/`` (``ps`` no longer lists them);

and then the objects no file record or snapshot refers to any more. Objects are content-keyed
and shared, so an object is removed only when nothing in the colony refers to it. That is
certain on the local backend, whose store and colony belong to this project alone: with the
project lock held and no run in flight, nothing can be writing. A store shared with others (S3
behind a real Colonies server) is only swept with ``objects=True``, and there an object must
also be older than :data:`GRACE` (a concurrent upload writes its object before its record);
objects of other colonies in the same bucket and prefix cannot be seen: sweep only a store
this colony has to itself.

On the local backend the executor's cache of staged objects is emptied of what no job uses.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import attrs

from pollinator_core.colonies.client import ColoniesError, NotFound
from pollinator_core.colonies.models import Process, Snapshot
from pollinator_core.errors import InfraError
from pollinator_core.plugins.backend import Connection
from pollinator_core.project.loader import Project
from pollinator_core.runs.submit import LATEST, RunBook, RunRecord, result_label
from pollinator_core.sync.paths import in_tree

#: seconds an unreferenced object in a shared store must have existed before it is removed
GRACE = 3600.0
_SHA_RE = re.compile(r"[0-9a-f]{64}")


@attrs.define
class Cleanup:
    """What a clean removes (or, planned with ``dry_run``, would remove)."""

    runs: list[RunRecord] = attrs.Factory(list)
    result_dirs: list[Path] = attrs.Factory(list)
    local_bytes: int = 0
    #: (label, name) of the server's file records that go
    records: list[tuple[str, str]] = attrs.Factory(list)
    record_bytes: int = 0
    snapshots: list[str] = attrs.Factory(list)
    #: object keys in the store that go, and their bytes
    objects: list[str] = attrs.Factory(list)
    object_bytes: int = 0
    #: what the executor's cache frees (local backend)
    cache_bytes: int = 0
    #: the executor's leftovers: directories of runs that ended, handed-over environments
    executor_paths: list[Path] = attrs.Factory(list)

    def lines(self, dry_run: bool) -> list[str]:
        """The report, a line per kind of thing."""
        verb = "would remove" if dry_run else "removed"
        out = []
        if self.runs:
            out.append(
                f"{verb} {len(self.runs)} old run(s): {len(self.result_dirs)} result "
                f"folder(s) here ({_size(self.local_bytes)}), {len(self.records)} result "
                f"file(s) on the server ({_size(self.record_bytes)})"
            )
        if self.snapshots:
            out.append(f"{verb} {len(self.snapshots)} snapshot(s) no run uses")
        if self.objects:
            out.append(
                f"{verb} {len(self.objects)} unreferenced object(s) from the store "
                f"({_size(self.object_bytes)})"
            )
        if self.cache_bytes or self.executor_paths:
            out.append(
                f"{verb} {_size(self.cache_bytes)} of the executor's staged copies and "
                f"{len(self.executor_paths)} leftover(s)"
            )
        return out or ["nothing to clean"]


def plan(
    project: Project,
    conn: Connection,
    *,
    keep: int,
    objects: bool,
    executor_dir: Path | None = None,
    env_dir: Path | None = None,
) -> Cleanup:
    """What to remove; nothing is touched. ``executor_dir``/``env_dir``: the local agent's,
    whose leftovers and cache go too; ``objects``: sweep the store (always done when
    ``executor_dir`` is given: the local store is the project's own)."""
    client, colony = conn.client, conn.colony
    cleanup = Cleanup()
    active: set[str] = set()  # snapshot ids of runs still waiting or running
    busy = False
    for index, record in enumerate(r for r in RunBook(project).all() if r.backend == conn.backend):
        try:
            process: Process | None = client.get_process(record.process_id)
        except NotFound:
            process = None  # a reset server, or a run already cleaned there
        if process is not None and not process.state.finished:
            busy = True
            active.add(record.snapshot_id)
            continue
        if index < keep:
            continue
        cleanup.runs.append(record)
        folder = project.result_dir / record.process_id
        if folder.is_dir() and not folder.is_symlink():
            cleanup.result_dirs.append(folder)
            cleanup.local_bytes += _tree_bytes(folder)
        label = (
            result_label(project, process)
            if process is not None
            else f"{project.label_prefix}/result/{record.process_id}"
        )
        for sub, rows in _listing(conn, label).items():
            for name, (_, size) in rows.items():
                cleanup.records.append((sub, name))
                cleanup.record_bytes += size
        if executor_dir is not None and (executor_dir / record.process_id).is_dir():
            cleanup.executor_paths.append(executor_dir / record.process_id)
    # The runs' own snapshots, normally removed by their executors, and any other of the
    # project's src that no run waiting or running uses.
    src_label = f"{project.label_prefix}/src"
    snapshots = client.get_snapshots(colony)
    for snapshot in snapshots:
        if snapshot.label == src_label and snapshot.snapshotid not in active:
            cleanup.snapshots.append(snapshot.snapshotid)
    local = executor_dir is not None
    if objects or local:
        _unreferenced(conn, cleanup, snapshots, grace=0.0 if local and not busy else GRACE)
    if executor_dir is not None:
        from pollinator_core.sync.objects import OBJECTS, ObjectCache

        cleanup.cache_bytes = sum(ObjectCache(executor_dir / OBJECTS).unused().values())
    if env_dir is not None and env_dir.is_dir():
        stale = time.time() - 86400  # a handed-over environment no job came for in a day
        cleanup.executor_paths += [p for p in env_dir.iterdir() if _mtime(p) < stale]
    return cleanup


def carry_out(
    project: Project, conn: Connection, cleanup: Cleanup, executor_dir: Path | None
) -> None:
    """Remove what ``cleanup`` lists: records before objects, so that no record is ever left
    pointing at a removed object."""
    client, colony = conn.client, conn.colony
    for label, name in cleanup.records:
        with contextlib.suppress(NotFound):
            client.remove_file(colony, label=label, name=name)
    for snapshot_id in cleanup.snapshots:
        with contextlib.suppress(NotFound):
            client.remove_snapshot(colony, snapshot_id=snapshot_id)
    storage = conn.storage
    for key in cleanup.objects:
        with contextlib.suppress(FileNotFoundError):
            storage.remove(key)
    for folder in cleanup.result_dirs:
        shutil.rmtree(folder)
    latest = project.result_dir / LATEST
    if latest.is_symlink() and not latest.exists():
        latest.unlink()  # it pointed at a run just cleaned
    book = RunBook(project)
    for record in cleanup.runs:
        book.forget(record)
    for path in cleanup.executor_paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if executor_dir is not None:
        from pollinator_core.sync.objects import OBJECTS, ObjectCache

        ObjectCache(executor_dir / OBJECTS).prune(0)


def _listing(conn: Connection, root_label: str) -> dict[str, dict[str, tuple[str, int]]]:
    """label -> name -> (object, size) for every label at or under ``root_label``."""
    client, colony = conn.client, conn.colony
    labels = [
        lb.name
        for lb in client.get_file_labels(colony, name=root_label, exact=False)
        if root_label == "/" or in_tree(root_label, lb.name)
    ]
    return {
        label: {r.name: (r.s3filename, r.size) for r in client.get_files(colony, label)}
        for label in labels
    }


def _unreferenced(
    conn: Connection, cleanup: Cleanup, snapshots: Iterable[Snapshot], *, grace: float
) -> None:
    """Add to ``cleanup`` the store's objects that no record or snapshot will refer to once it
    is carried out, and (but for those it frees itself) that are older than ``grace`` s."""
    client, colony = conn.client, conn.colony
    going = set(cleanup.records)
    referenced: set[str] = set()
    freed: set[str] = set()
    for label, rows in _listing(conn, "/").items():
        for name, (obj, _) in rows.items():
            (freed if (label, name) in going else referenced).add(obj)
    dropped = set(cleanup.snapshots)
    for snapshot in snapshots:
        if snapshot.snapshotid in dropped:
            continue
        for file_id in snapshot.fileids:
            try:
                found = client.get_file(colony, file_id=file_id)
            except ColoniesError:
                continue
            referenced.update(f.ref.s3object.object for f in found)
    storage = conn.storage
    prefix = storage.root + "/" if storage.root else ""
    now = time.time()
    try:
        # Only under the store's own prefix: what lies beside it is not the store's.
        listed = storage.fs.find((prefix + storage.key_prefix).rstrip("/") or "/", detail=True)
    except FileNotFoundError:
        return  # nothing stored yet
    except OSError as exc:
        raise InfraError(f"Cannot list the objects in {storage}: {exc}") from exc
    for path, info in listed.items():
        key = path[len(prefix) :] if path.startswith(prefix) else path
        if not key.startswith(storage.key_prefix):
            continue
        if not _SHA_RE.fullmatch(key[len(storage.key_prefix) :]) or key in referenced:
            continue
        if key not in freed and now - _modified(info) < grace:
            continue  # maybe an upload whose record is on its way
        cleanup.objects.append(key)
        cleanup.object_bytes += int(info.get("size") or 0)


def _modified(info: dict[str, object]) -> float:
    """An fsspec listing entry's modification time (local: ``mtime``; S3: ``LastModified``)."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, int | float):
        return float(value)
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else 0.0


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
