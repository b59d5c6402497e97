"""The public API for plugin authors: everything docs/plugins.md uses, and nothing else.

Import from here only (``from pollinator_core.api import ...``): the modules behind these names
may move between releases, this surface does not. The built-in plugins import only from here
too (tests/test_layers.py checks it), so anything a built-in can do, a third-party plugin can.

Names load on first use, as fsspec's registry does: importing this module (and with it a
plugin) costs nothing until the plugin uses a name.

Layer 9: may import every layer below it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pollinator_core.colonies.models import (
        S3Object,
    )
    from pollinator_core.errors import (
        InfraError,
        JobFailed,
        PollinatorError,
        ProjectError,
        UsageError,
    )
    from pollinator_core.execution.runtime import (
        ExecutionBackend,
        Job,
        JobState,
        JobStatus,
        Mount,
    )
    from pollinator_core.executor.loop import (
        RUNTIME_ENV,
    )
    from pollinator_core.plugins.backend import (
        Backend,
        Connection,
    )
    from pollinator_core.plugins.hookspecs import (
        hookimpl,
    )
    from pollinator_core.project.units import (
        format_memory,
    )
    from pollinator_core.runs.backends import (
        LOCAL,
        ColoniesBackend,
        LocalBackend,
    )
    from pollinator_core.storage.location import (
        SMALL_OBJECT,
        LocalStorageLocation,
        StorageLocation,
    )
    from pollinator_core.storage.s3 import (
        SignedS3,
    )

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    "Backend": "pollinator_core.plugins.backend",
    "ColoniesBackend": "pollinator_core.runs.backends",
    "Connection": "pollinator_core.plugins.backend",
    "ExecutionBackend": "pollinator_core.execution.runtime",
    "InfraError": "pollinator_core.errors",
    "Job": "pollinator_core.execution.runtime",
    "JobFailed": "pollinator_core.errors",
    "JobState": "pollinator_core.execution.runtime",
    "JobStatus": "pollinator_core.execution.runtime",
    "LOCAL": "pollinator_core.runs.backends",
    "LocalBackend": "pollinator_core.runs.backends",
    "LocalStorageLocation": "pollinator_core.storage.location",
    "Mount": "pollinator_core.execution.runtime",
    "PollinatorError": "pollinator_core.errors",
    "ProjectError": "pollinator_core.errors",
    "RUNTIME_ENV": "pollinator_core.executor.loop",
    "S3Object": "pollinator_core.colonies.models",
    "SMALL_OBJECT": "pollinator_core.storage.location",
    "SignedS3": "pollinator_core.storage.s3",
    "StorageLocation": "pollinator_core.storage.location",
    "UsageError": "pollinator_core.errors",
    "format_memory": "pollinator_core.project.units",
    "hookimpl": "pollinator_core.plugins.hookspecs",
}

__all__ = [
    "LOCAL",
    "RUNTIME_ENV",
    "SMALL_OBJECT",
    "Backend",
    "ColoniesBackend",
    "Connection",
    "ExecutionBackend",
    "InfraError",
    "Job",
    "JobFailed",
    "JobState",
    "JobStatus",
    "LocalBackend",
    "LocalStorageLocation",
    "Mount",
    "PollinatorError",
    "ProjectError",
    "S3Object",
    "SignedS3",
    "StorageLocation",
    "UsageError",
    "format_memory",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return list(__all__)
