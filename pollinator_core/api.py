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
        FunctionSpec,
        S3Object,
    )
    from pollinator_core.errors import (
        InfraError,
        JobFailed,
        PollinatorError,
        ProjectError,
        UsageError,
    )
    from pollinator_core.execution.batch import (
        BatchRuntime,
        Polling,
        SchedulerJob,
    )
    from pollinator_core.execution.exitrecord import (
        RECORD_FILE,
        RECORD_FUNCTION,
        ExitRecord,
        decide,
        read_exit_record,
    )
    from pollinator_core.execution.job import (
        Job,
        Mount,
        external_name,
    )
    from pollinator_core.execution.runtime import (
        JobState,
        JobStatus,
        Runtime,
    )
    from pollinator_core.execution.script import (
        PathRewriter,
        job_env,
        scrubbed,
        shell_safe,
        shell_script,
    )
    from pollinator_core.execution.supervised import (
        DEFAULT_KILL_GRACE,
        SupervisedRuntime,
    )
    from pollinator_core.execution.tail import (
        FileTailer,
    )
    from pollinator_core.execution.termination import (
        Reason,
        Termination,
        signal_name,
    )
    from pollinator_core.plugins.backend import (
        Backend,
        Connection,
    )
    from pollinator_core.plugins.executors import (
        ExecutorType,
    )
    from pollinator_core.plugins.hookspecs import (
        hookimpl,
    )
    from pollinator_core.plugins.settings import (
        SettingsSection,
        setting,
    )
    from pollinator_core.project.loader import (
        Project,
    )
    from pollinator_core.project.units import (
        format_cpu,
        format_memory,
        parse_cpu,
        parse_duration,
        parse_memory,
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
    "BatchRuntime": "pollinator_core.execution.batch",
    "ColoniesBackend": "pollinator_core.runs.backends",
    "Connection": "pollinator_core.plugins.backend",
    "DEFAULT_KILL_GRACE": "pollinator_core.execution.supervised",
    "ExecutorType": "pollinator_core.plugins.executors",
    "ExitRecord": "pollinator_core.execution.exitrecord",
    "FileTailer": "pollinator_core.execution.tail",
    "FunctionSpec": "pollinator_core.colonies.models",
    "InfraError": "pollinator_core.errors",
    "Job": "pollinator_core.execution.job",
    "JobFailed": "pollinator_core.errors",
    "JobState": "pollinator_core.execution.runtime",
    "JobStatus": "pollinator_core.execution.runtime",
    "LOCAL": "pollinator_core.runs.backends",
    "LocalBackend": "pollinator_core.runs.backends",
    "LocalStorageLocation": "pollinator_core.storage.location",
    "Mount": "pollinator_core.execution.job",
    "PathRewriter": "pollinator_core.execution.script",
    "PollinatorError": "pollinator_core.errors",
    "Polling": "pollinator_core.execution.batch",
    "Project": "pollinator_core.project.loader",
    "ProjectError": "pollinator_core.errors",
    "RECORD_FILE": "pollinator_core.execution.exitrecord",
    "RECORD_FUNCTION": "pollinator_core.execution.exitrecord",
    "Reason": "pollinator_core.execution.termination",
    "Runtime": "pollinator_core.execution.runtime",
    "S3Object": "pollinator_core.colonies.models",
    "SMALL_OBJECT": "pollinator_core.storage.location",
    "SchedulerJob": "pollinator_core.execution.batch",
    "SettingsSection": "pollinator_core.plugins.settings",
    "SignedS3": "pollinator_core.storage.s3",
    "StorageLocation": "pollinator_core.storage.location",
    "SupervisedRuntime": "pollinator_core.execution.supervised",
    "Termination": "pollinator_core.execution.termination",
    "UsageError": "pollinator_core.errors",
    "decide": "pollinator_core.execution.exitrecord",
    "external_name": "pollinator_core.execution.job",
    "format_cpu": "pollinator_core.project.units",
    "format_memory": "pollinator_core.project.units",
    "hookimpl": "pollinator_core.plugins.hookspecs",
    "job_env": "pollinator_core.execution.script",
    "parse_cpu": "pollinator_core.project.units",
    "parse_duration": "pollinator_core.project.units",
    "parse_memory": "pollinator_core.project.units",
    "read_exit_record": "pollinator_core.execution.exitrecord",
    "scrubbed": "pollinator_core.execution.script",
    "setting": "pollinator_core.plugins.settings",
    "shell_safe": "pollinator_core.execution.script",
    "shell_script": "pollinator_core.execution.script",
    "signal_name": "pollinator_core.execution.termination",
}

__all__ = [
    "DEFAULT_KILL_GRACE",
    "LOCAL",
    "RECORD_FILE",
    "RECORD_FUNCTION",
    "SMALL_OBJECT",
    "Backend",
    "BatchRuntime",
    "ColoniesBackend",
    "Connection",
    "ExecutorType",
    "ExitRecord",
    "FileTailer",
    "FunctionSpec",
    "InfraError",
    "Job",
    "JobFailed",
    "JobState",
    "JobStatus",
    "LocalBackend",
    "LocalStorageLocation",
    "Mount",
    "PathRewriter",
    "PollinatorError",
    "Polling",
    "Project",
    "ProjectError",
    "Reason",
    "Runtime",
    "S3Object",
    "SchedulerJob",
    "SettingsSection",
    "SignedS3",
    "StorageLocation",
    "SupervisedRuntime",
    "Termination",
    "UsageError",
    "decide",
    "external_name",
    "format_cpu",
    "format_memory",
    "hookimpl",
    "job_env",
    "parse_cpu",
    "parse_duration",
    "parse_memory",
    "read_exit_record",
    "scrubbed",
    "setting",
    "shell_safe",
    "shell_script",
    "signal_name",
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
