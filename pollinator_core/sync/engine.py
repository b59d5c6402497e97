"""One sync of one directory tree against one root label: scan, hash, list, plan, transfer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pollinator_core.errors import UsageError
from pollinator_core.sync.ignore import IgnoreRules
from pollinator_core.sync.index import Index, RemoteFile, hash_tree, locked
from pollinator_core.sync.paths import MARKER, label_of, split
from pollinator_core.sync.plan import Mode, Plan, make_plan
from pollinator_core.sync.progress import Progress
from pollinator_core.sync.remote import list_remote, refresh_after
from pollinator_core.sync.scan import StatKey, scan
from pollinator_core.sync.transfer import Done, Transfer, marker_bytes

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.storage.location import StorageLocation
    from pollinator_core.sync.objects import ObjectCache

# Concurrent transfers and metadata calls: 16 threads, each with its own keep-alive
# connections (benchmarks/bench_sync.py: fewer leave the servers idle, more only contend).
DEFAULT_WORKERS = 16
log = logging.getLogger("pollinator.sync")


@attrs.frozen
class SyncOptions:
    dry_run: bool = False
    checksum: bool = False  # re-hash every local file and re-list every remote label
    delete: bool = False  # PUSH: also remove remote files that are gone locally
    workers: int = DEFAULT_WORKERS


@attrs.define
class SyncReport:
    local_dir: Path
    label: str
    mode: Mode
    plan: Plan
    skipped: list[tuple[str, str]]
    dry_run: bool = False
    done: Done | None = None  # None when nothing was carried out
    seconds: float = 0.0


def sync_tree(
    client: ColoniesClient,
    colony: str,
    local_dir: Path,
    label: str,
    storage: StorageLocation,
    mode: Mode,
    *,
    index_path: Path | None = None,
    boundary: Path | None = None,
    project_root: Path | None = None,
    exclude: tuple[Path, ...] = (),
    keeplocal: bool = False,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
    cache: ObjectCache | None = None,
) -> SyncReport:
    """Sync ``local_dir`` with the tree under ``label`` as ``mode`` says (see plan.py).

    ``index_path``: where the index lives (None: hash everything, cache nothing);
    ``boundary``: symlinks resolving outside it are not followed (default: ``local_dir``);
    ``project_root``: whose top-level ``.pollinatorignore`` applies; ``exclude``: directories
    never synced (the state directory); ``cache``: an executor's object cache that
    downloads come from and go into.
    """
    started = time.monotonic()
    options = options or SyncOptions()
    local_dir = local_dir.absolute()
    if mode in (Mode.MIRROR, Mode.PUSH) and not local_dir.is_dir():
        raise UsageError(f"{local_dir} does not exist: there is nothing to sync from")
    with locked(index_path):
        index = Index.load(index_path, identity=f"{client.config.base_url}|{colony}|{label}")
        tree = scan(
            local_dir,
            IgnoreRules.for_tree(local_dir, project_root),
            boundary=boundary or local_dir,
            exclude=exclude,
        )
        remote = list_remote(
            client, colony, label, index, workers=options.workers, refresh=options.checksum
        )
        log.debug("%s: %d remote files listed", label, len(remote.files))
        # Only a file with a remote counterpart needs its hash to plan; a new small file is
        # hashed as it is read for upload, and a large one before (its key must be known),
        # as is one whose object an interrupted sync stored (so its bytes are not resent).
        shas = hash_tree(
            local_dir,
            tree.files,
            index,
            rehash=options.checksum,
            workers=options.workers,
            skipped=tree.skipped,
            needed=lambda rel: (
                rel in remote.files
                or rel in index.unrecorded
                or Transfer.streams(tree.files[rel][0])
            ),
        )
        index.prune(tree.files)
        log.debug("%s: %d local files scanned, %d hashes known", label, len(tree.files), len(shas))
        local = {rel: (shas.get(rel, ""), key[0]) for rel, key in tree.files.items()}
        plan = make_plan(
            mode,
            local,
            tree.empty_dirs,
            remote,
            index.base,
            delete=options.delete,
            keeplocal=keeplocal,
        )
        index.agree(plan.agreed)
        report = SyncReport(local_dir, label, mode, plan, tree.skipped, options.dry_run)
        if options.dry_run or not plan.actions:
            index.save()
            report.seconds = time.monotonic() - started
            return report
        if mode is not Mode.PULL:
            local_dir.mkdir(parents=True, exist_ok=True)
        transfer = Transfer(
            client,
            colony,
            label,
            storage,
            local_dir,
            workers=options.workers,
            stat_keys=tree.files,
            known_objects=remote.objects,
            progress=progress,
            cache=cache,
        )
        log.debug("%s: %d actions planned", label, len(plan.actions))
        failed = True
        try:
            report.done = transfer.run(plan.actions)
            failed = False
            log.debug("%s: actions carried out", label)
        finally:
            _record(index, transfer.done, tree.files)
            changed = _expected_labels(index, label, transfer.done, storage)
            if failed:
                for lb in changed:  # unknown state: list these labels afresh next time
                    index.remote.pop(lb, None)
            elif changed:
                refresh_after(client, colony, label, index, changed, workers=options.workers)
            index.save()
        report.seconds = time.monotonic() - started
        return report


def _record(index: Index, done: Done, keys: dict[str, StatKey]) -> None:
    """What both sides now agree on, and the stat keys of files whose content we just read."""
    now = time.time_ns()
    index.dirty = True
    for rel, (sha, _) in done.uploaded.items():
        index.base[rel] = sha
        index.remember(rel, keys[rel], sha, now)
    for rel, sha in done.downloaded.items():
        index.base[rel] = sha
    for rel in done.removed:
        index.base.pop(rel, None)
    index.unrecorded = (index.unrecorded | done.unrecorded) - done.uploaded.keys()


def _expected_labels(
    index: Index, root_label: str, done: Done, storage: StorageLocation
) -> dict[str, tuple[dict[str, RemoteFile], int | None]]:
    """label -> (listing, revision count) as this sync's own changes leave them; the count is
    unknown (None) where records were removed, as a removal drops every revision."""
    adds: dict[str, list[tuple[str, RemoteFile]]] = {}
    drops: dict[str, list[str]] = {}

    def add(subdir: str, name: str, sha: str, size: int) -> None:
        lb = label_of(root_label, subdir)
        adds.setdefault(lb, []).append((name, (sha, size, storage.object_key(sha))))

    for rel, (sha, size) in done.uploaded.items():
        subdir, name = split(rel)
        add(subdir, name, sha, size)
    for d, sha in done.marked.items():
        add(d, MARKER, sha, len(marker_bytes(label_of(root_label, d))))
    for rels, is_marker in ((done.removed, False), (done.unmarked, True)):
        for rel in rels:
            subdir, name = (rel, MARKER) if is_marker else split(rel)
            drops.setdefault(label_of(root_label, subdir), []).append(name)
    changed: dict[str, tuple[dict[str, RemoteFile], int | None]] = {}
    for lb in adds.keys() | drops.keys():
        count, files = index.remote.get(lb, (0, {}))
        files = dict(files)
        for name, entry in adds.get(lb, []):
            files[name] = entry
        for name in drops.get(lb, []):
            files.pop(name, None)
        changed[lb] = (files, None if lb in drops else count + len(adds.get(lb, [])))
    return changed
