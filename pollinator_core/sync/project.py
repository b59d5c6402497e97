"""The user side: a project's cfs/src, cfs/data and cfs/result against its labels."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pollinator_core.errors import UsageError
from pollinator_core.sync.engine import SyncOptions, SyncReport, sync_tree
from pollinator_core.sync.plan import Mode
from pollinator_core.sync.progress import Progress

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.project.loader import Project
    from pollinator_core.storage.location import StorageLocation

#: tree name -> how it syncs: src mirrors up, data pushes up, result pulls down.
TREES: dict[str, Mode] = {"src": Mode.MIRROR, "data": Mode.PUSH, "result": Mode.PULL}


def tree_dir(project: Project, tree: str) -> Path:
    return project.cfs_dir / tree


def tree_label(project: Project, tree: str) -> str:
    return f"{project.label_prefix}/{tree}"


def sync_project(
    client: ColoniesClient,
    colony: str,
    project: Project,
    storage: StorageLocation,
    trees: Iterable[str] = ("src", "data", "result"),
    *,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
) -> list[SyncReport]:
    """Sync the named trees in order; ``pollinator run`` pushes ("src", "data") before it
    snapshots src, and pulls ("result",) at the end."""
    reports = []
    for tree in trees:
        if tree not in TREES:
            raise UsageError(f"unknown directory {tree!r}: choose from {', '.join(TREES)}")
        local = tree_dir(project, tree)
        if TREES[tree] is not Mode.PULL and not local.is_dir():
            rel = local.relative_to(project.root)
            raise UsageError(f"{rel} does not exist: create it (it may stay empty)")
        reports.append(
            sync_tree(
                client,
                colony,
                local,
                tree_label(project, tree),
                storage,
                TREES[tree],
                index_path=project.state_dir / "sync" / f"{tree}.json",
                boundary=project.root,
                project_root=project.root,
                exclude=(project.state_dir,),
                options=options,
                progress=progress,
            )
        )
    return reports
