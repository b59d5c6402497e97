"""CFS sync: project directories <-> Colonies file records + content-addressed objects.

Entry points: :func:`sync_project` (the user side: ``pollinator sync`` and ``pollinator run``),
:func:`download_snapshot` and :func:`sync_dir` (the executor side), :func:`sync_tree` (one
directory against one label in any :class:`Mode`). Semantics: docs/sync.md.

Layer 4. May import: ``errors``, ``colonies``, ``project``, ``storage``.
"""

from pollinator_core.sync.engine import SyncOptions, SyncReport, sync_tree
from pollinator_core.sync.plan import Action, Kind, Mode, Plan
from pollinator_core.sync.project import TREES, sync_project
from pollinator_core.sync.stage import download_snapshot, sync_dir

__all__ = [
    "TREES",
    "Action",
    "Kind",
    "Mode",
    "Plan",
    "SyncOptions",
    "SyncReport",
    "download_snapshot",
    "sync_dir",
    "sync_project",
    "sync_tree",
]
