"""The remote side of a tree: every file record under a root label, in few round trips.

One ``getfilelabelsmsg`` (prefix match, filtered to the tree) gives every label with its revision
count; ``getfilesmsg`` then runs concurrently, and only for labels whose count differs from the
index's cached listing. A label's count is the number of revision rows under it, so any
addition changes it, and so does any removal; only an equal number of each between two syncs
could go unseen, which ``--checksum`` rules out by listing everything again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import attrs

from pollinator_core.sync.index import Index, RemoteFile, RemoteLabel
from pollinator_core.sync.paths import MARKER, in_tree, remote_relpath, remote_subdir

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient

T = TypeVar("T")
R = TypeVar("R")


@attrs.frozen
class RemoteEntry:
    label: str
    name: str
    checksum: str
    size: int
    object: str


@attrs.define
class RemoteTree:
    files: dict[str, RemoteEntry] = attrs.Factory(dict)  # relpath -> latest revision
    markers: dict[str, RemoteEntry] = attrs.Factory(dict)  # subdir -> its empty-dir marker
    objects: set[str] = attrs.Factory(set)  # every object key the records point to


def pmap(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """``map`` over a bounded thread pool (inline for a single item)."""
    todo = list(items)
    if len(todo) <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        return list(pool.map(fn, todo))


def label_counts(client: ColoniesClient, colony: str, root_label: str) -> dict[str, int]:
    labels = client.get_file_labels(colony, name=root_label, exact=False)
    return {lb.name: lb.files for lb in labels if in_tree(root_label, lb.name)}


def fetch_labels(
    client: ColoniesClient, colony: str, labels: Iterable[str], workers: int
) -> dict[str, dict[str, RemoteFile]]:
    def one(label: str) -> tuple[str, dict[str, RemoteFile]]:
        rows = client.get_files(colony, label)
        return label, {r.name: (r.checksum, r.size, r.s3filename) for r in rows}

    return dict(pmap(one, labels, workers))


def list_remote(
    client: ColoniesClient,
    colony: str,
    root_label: str,
    index: Index,
    *,
    workers: int,
    refresh: bool,
) -> RemoteTree:
    """The tree under ``root_label``; ``refresh`` ignores the cached listings.

    Leaves ``index.remote`` holding exactly what was seen. Raises UsageError for a label or
    name that would land outside the tree (``..``, absolute, NUL, backslash).
    """
    counts = label_counts(client, colony, root_label)
    stale = [
        label
        for label, count in counts.items()
        if refresh or label not in index.remote or index.remote[label][0] != count
    ]
    fetched = fetch_labels(client, colony, stale, workers)
    listing: dict[str, RemoteLabel] = {
        label: (count, fetched[label] if label in fetched else index.remote[label][1])
        for label, count in counts.items()
    }
    if stale or len(listing) != len(index.remote):
        index.dirty = True
    index.remote = listing
    return build_tree(root_label, {label: files for label, (_, files) in listing.items()})


def build_tree(root_label: str, listing: Mapping[str, Mapping[str, RemoteFile]]) -> RemoteTree:
    tree = RemoteTree()
    for label, files in listing.items():
        sub = remote_subdir(root_label, label)
        for name, (checksum, size, obj) in files.items():
            entry = RemoteEntry(label, name, checksum, size, obj)
            tree.objects.add(obj)
            if name == MARKER:
                tree.markers[sub] = entry
            else:
                tree.files[remote_relpath(root_label, label, name, sub)] = entry
    return tree


def refresh_after(
    client: ColoniesClient,
    colony: str,
    root_label: str,
    index: Index,
    changed: Mapping[str, tuple[dict[str, RemoteFile], int | None]],
    *,
    workers: int,
) -> None:
    """Bring ``index.remote`` up to date after this sync changed the labels in ``changed``
    (label -> (expected listing, expected revision count, None when unknown)).

    One label-count call confirms the expected counts; labels where it does not (removals,
    or someone else writing at the same time) are listed again.
    """
    counts = label_counts(client, colony, root_label)
    relist = []
    for label, count in counts.items():
        expected = changed.get(label)
        if expected is None:
            cached = index.remote.get(label)
            if cached is None or cached[0] != count:
                relist.append(label)
        elif expected[1] == count:
            index.remote[label] = (count, expected[0])
        else:
            relist.append(label)
    for label, files in fetch_labels(client, colony, relist, workers).items():
        index.remote[label] = (counts[label], files)
    for label in set(index.remote) - set(counts):
        del index.remote[label]
    index.dirty = True
