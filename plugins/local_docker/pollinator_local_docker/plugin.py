"""Hook implementations of the built-in local_docker plugin.

It registers executor type ``docker`` (a Docker engine, or host processes when none is
reachable), the ``--backend local`` choice (an embedded simulator with this executor), and the
``local`` settings section (project.yaml ``local:``, ``POLLINATOR_LOCAL_*``, ``-s``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import attrs

from pollinator_core.api import (
    DEFAULT_KILL_GRACE,
    LOCAL,
    Backend,
    ExecutorType,
    InfraError,
    Job,
    LocalBackend,
    Runtime,
    SettingsSection,
    hookimpl,
    setting,
)

RUNTIMES = ("auto", "docker", "process")


@attrs.frozen
class LocalSettings:
    runtime: str = setting(
        "auto",
        "How jobs run: in Docker, as host processes, or auto (Docker when the engine answers "
        "and has the job's image, host processes otherwise).",
        choices=RUNTIMES,
    )
    kill_grace: float = setting(
        DEFAULT_KILL_GRACE,
        "Seconds a stopped job (cancel, walltime) gets between SIGTERM and SIGKILL.",
    )


SETTINGS = SettingsSection(
    "local", LocalSettings, "The local backend and `pollinator executor start --type docker`."
)


def make_runtime(settings: LocalSettings) -> Runtime:
    """The runtime for ``settings.runtime``.

    ``auto`` uses the Docker engine when one answers and otherwise host processes, saying so in
    one line on stderr; with an engine, a job whose image cannot be had runs as a host process
    (see auto_runtime).
    """
    from .process_runtime import ProcessRuntime

    grace = settings.kill_grace
    if settings.runtime == "process":
        return ProcessRuntime(grace)
    from .docker_runtime import DockerRuntime

    try:
        docker = DockerRuntime.connect(grace)
    except InfraError as exc:
        if settings.runtime == "docker":
            raise InfraError(
                f"{exc}. Start Docker or point DOCKER_HOST at a running engine, or run jobs as "
                "host processes (--runtime process)."
            ) from exc
        print(
            f"pollinator: {exc}; running jobs as host processes instead (--runtime process)",
            file=sys.stderr,
        )
        return ProcessRuntime(grace, why="no Docker engine reachable")
    if settings.runtime == "docker":
        return docker
    from .auto_runtime import AutoRuntime

    return AutoRuntime(docker, ProcessRuntime(grace))


def render(settings: LocalSettings, job: Job) -> dict[str, str]:
    """What the dry run shows: the container (or, for runtime process, the host command)."""
    if settings.runtime == "process":
        from .process_runtime import render as render_process

        return render_process(job)
    from .docker_runtime import render as render_container

    return render_container(job)


@hookimpl
def pollinator_register_settings(register: Callable[[SettingsSection[Any]], None]) -> None:
    register(SETTINGS)


@hookimpl
def pollinator_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType("docker", make_runtime, "local", "Docker containers or host processes", render)
    )


@hookimpl
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        LocalBackend(
            LOCAL,
            "docker",
            "This machine, offline: a local Colonies simulator and a Docker (or host process) "
            "executor, state in .pollinator/local/.",
        )
    )
