"""The sync planner: a pure function from (local tree, remote tree, last-synced state) to actions.

Modes (docs/sync.md):

- MIRROR (src): the remote label becomes the local tree: new and changed files go up, remote
  files missing locally are removed, empty directories are kept as marker records.
- PUSH (data): new and changed files go up; remote-only files stay unless ``delete``.
- PULL (result): new and changed files come down. A local file that differs from the remote one
  and was edited since the last sync (its sha differs from ``base``) is kept; the remote version
  is saved beside it as ``<name>.remote-<sha8>``. A file deleted locally after it was pulled is
  not brought back unless the remote copy changed. Local-only files are left alone.
- MERGE: the official executors' two-way sync: local-only up, remote-only down, a difference
  goes up (``keeplocal``) or down; nothing is removed.
"""

from __future__ import annotations

import enum

import attrs

from pollinator_core.sync.paths import split
from pollinator_core.sync.remote import RemoteEntry, RemoteTree


class Mode(enum.Enum):
    MIRROR = "mirror"
    PUSH = "push"
    PULL = "pull"
    MERGE = "merge"


class Kind(enum.Enum):
    UPLOAD = "upload"
    DOWNLOAD = "download"  # into rel, or into ``target`` for a kept-both conflict
    REMOVE = "remove"
    MARK = "mark"  # add the empty-directory marker of directory rel
    UNMARK = "unmark"  # remove it
    MKDIR = "mkdir"


@attrs.frozen
class Action:
    kind: Kind
    rel: str  # the file (or directory) path relative to the tree
    reason: str  # new | changed | deleted | conflict | empty
    sha: str = ""  # the content that moves ("" for a new small file: hashed as it uploads)
    size: int = 0
    remote: RemoteEntry | None = None  # the record a download, removal or unmark concerns
    target: str = ""  # where a conflicting remote version is saved

    @property
    def moves_bytes(self) -> bool:
        return self.kind in (Kind.UPLOAD, Kind.DOWNLOAD)


@attrs.define
class Plan:
    actions: list[Action] = attrs.Factory(list)
    agreed: dict[str, str] = attrs.Factory(dict)  # relpath -> sha equal on both sides
    kept_remote: int = 0  # remote-only files left in place (PUSH without delete)

    def of(self, *kinds: Kind) -> list[Action]:
        return [a for a in self.actions if a.kind in kinds]


def conflict_name(rel: str, sha: str) -> str:
    return f"{rel}.remote-{sha[:8]}"


def make_plan(
    mode: Mode,
    local: dict[str, tuple[str, int]],
    local_empty: set[str],
    remote: RemoteTree,
    base: dict[str, str],
    *,
    delete: bool = False,
    keeplocal: bool = False,
) -> Plan:
    """``local``: relpath -> (sha256, size), the sha256 "" when not known yet (a local-only
    file, hashed as it uploads); ``local_empty``: empty leaf directories; ``base``: relpath ->
    sha256 last agreed on."""
    plan = Plan()
    up = mode in (Mode.MIRROR, Mode.PUSH) or (mode is Mode.MERGE and keeplocal)
    add = plan.actions.append

    for rel, (sha, size) in sorted(local.items()):
        entry = remote.files.get(rel)
        if entry is None:
            if mode is not Mode.PULL:
                add(Action(Kind.UPLOAD, rel, "new", sha, size))
        elif entry.checksum == sha:
            plan.agreed[rel] = sha
        elif up:
            add(Action(Kind.UPLOAD, rel, "changed", sha, size, entry))
        elif mode is Mode.PULL and base.get(rel) != sha:
            target = conflict_name(rel, entry.checksum)
            if target not in local:
                add(
                    Action(
                        Kind.DOWNLOAD, rel, "conflict", entry.checksum, entry.size, entry, target
                    )
                )
        else:
            add(Action(Kind.DOWNLOAD, rel, "changed", entry.checksum, entry.size, entry))

    for rel, entry in sorted(remote.files.items()):
        if rel in local:
            continue
        if mode in (Mode.PULL, Mode.MERGE):
            if mode is Mode.PULL and base.get(rel) == entry.checksum:
                continue  # deleted locally after the last pull, unchanged remotely since
            add(Action(Kind.DOWNLOAD, rel, "new", entry.checksum, entry.size, entry))
        elif mode is Mode.MIRROR or delete:
            add(Action(Kind.REMOVE, rel, "deleted", entry.checksum, entry.size, entry))
        else:
            plan.kept_remote += 1

    _plan_dirs(plan, mode, local, local_empty, remote, delete=delete)
    return plan


def _plan_dirs(
    plan: Plan,
    mode: Mode,
    local: dict[str, tuple[str, int]],
    local_empty: set[str],
    remote: RemoteTree,
    *,
    delete: bool,
) -> None:
    occupied = _occupied_dirs(local, local_empty)
    if mode is not Mode.PULL:
        for d in sorted(local_empty - remote.markers.keys()):
            plan.actions.append(Action(Kind.MARK, d, "new"))
    if mode in (Mode.PULL, Mode.MERGE):
        for d in sorted(remote.markers.keys() - occupied - local_empty):
            plan.actions.append(Action(Kind.MKDIR, d, "new"))
    if mode in (Mode.MIRROR, Mode.PUSH):
        # A marker goes when its directory holds files now (silently: nothing is lost), or
        # when the directory is gone and deletions are wanted.
        for d, entry in sorted(remote.markers.items()):
            if d in local_empty:
                continue
            if d in occupied:
                plan.actions.append(Action(Kind.UNMARK, d, "not empty", remote=entry))
            elif mode is Mode.MIRROR or delete:
                plan.actions.append(Action(Kind.UNMARK, d, "deleted", remote=entry))


def _occupied_dirs(local: dict[str, tuple[str, int]], local_empty: set[str]) -> set[str]:
    """Every directory holding something locally ("" when the root holds a file)."""
    dirs: set[str] = {""} if any("/" not in rel for rel in local) else set()
    for rel in (*local, *(d for d in local_empty if d)):
        head = split(rel)[0] if rel in local else rel
        while head and head not in dirs:
            dirs.add(head)
            head = split(head)[0]
    return dirs
