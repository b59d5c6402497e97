"""The hooks: the ``spool`` settings section, executor type and local backend.

Everything comes from ``pollinator_core.api``, the one module a plugin imports. Nothing heavy
happens at import: the runtime is built by the factory, when an executor starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pollinator_core.api import (
    Backend,
    ExecutorType,
    Job,
    LocalBackend,
    Runtime,
    SettingsSection,
    hookimpl,
    setting,
)


@attrs.frozen
class SpoolSettings:
    dir: str = setting(
        "~/.cache/pollinator/spool",
        "The spool directory pollinator-spoold serves (pollinator-spoold --spool DIR).",
    )
    heartbeat_timeout: float = setting(
        10.0,
        "Seconds the daemon may stay silent before it counts as down (jobs then wait; none "
        "fails because of it).",
    )

    @property
    def root(self) -> Path:
        return Path(self.dir).expanduser().absolute()


SETTINGS = SettingsSection("spool", SpoolSettings, "The spool executor (pollinator-spoold).")


def make_runtime(settings: SpoolSettings) -> Runtime:
    """The runtime of an executor that starts: nothing is checked here that can wait (a
    daemon not running yet is an outage the executor rides out, not an error)."""
    from pollinator_spool.runtime import SpoolRuntime

    return SpoolRuntime(settings.root, settings.heartbeat_timeout)


def render(settings: SpoolSettings, job: Job) -> dict[str, str]:
    """What `pollinator run --dry-run --backend spool` shows: the files of the job."""
    from pollinator_spool.runtime import job_files

    where = settings.root / "jobs" / job.name
    return {f"{where}/{name}": text for name, text in job_files(job).items()}


@hookimpl
def pollinator_register_settings(register: Callable[[SettingsSection[Any]], None]) -> None:
    register(SETTINGS)


@hookimpl
def pollinator_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            "spool",
            make_runtime,
            "spool",
            "Jobs in a spool directory, run by pollinator-spoold",
            render,
        )
    )


@hookimpl
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        LocalBackend(
            "spool",
            "spool",
            "This machine: a local Colonies simulator and a spool executor (pollinator-spoold "
            "must serve spool.dir).",
        )
    )
