"""Hook implementations of the built-in local_docker plugin.

It registers executor type ``docker`` (a Docker engine, or host processes when none is
reachable) and the ``--backend local`` choice (an embedded simulator with this executor).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pollinator_core.api import (
    LOCAL,
    Backend,
    ExecutionBackend,
    InfraError,
    LocalBackend,
    UsageError,
    hookimpl,
)

RUNTIMES = ("auto", "docker", "process")


def make_runtime(runtime: str | None = None) -> ExecutionBackend:
    """The backend for ``--runtime`` (default: $POLLINATOR_RUNTIME, else ``auto``).

    ``auto`` uses the Docker engine when one answers and otherwise host processes, saying so in
    one line on stderr; with an engine, a job whose image cannot be had runs as a host process
    (see auto_backend).
    """
    from pollinator_core.api import RUNTIME_ENV

    from .process_backend import ProcessBackend

    choice = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if choice not in RUNTIMES:
        raise UsageError(f"unknown runtime {choice!r}; choose one of {', '.join(RUNTIMES)}")
    if choice == "process":
        return ProcessBackend()
    from .docker_backend import DockerBackend

    try:
        docker = DockerBackend.connect()
    except InfraError as exc:
        if choice == "docker":
            raise InfraError(
                f"{exc}. Start Docker or point DOCKER_HOST at a running engine, or run jobs as "
                "host processes (--runtime process)."
            ) from exc
        print(
            f"pollinator: {exc}; running jobs as host processes instead (--runtime process)",
            file=sys.stderr,
        )
        return ProcessBackend()
    if choice == "docker":
        return docker
    from .auto_backend import AutoBackend

    return AutoBackend(docker, ProcessBackend())


@hookimpl
def pollinator_register_executors(
    register: Callable[[str, Callable[[], ExecutionBackend]], None],
) -> None:
    register("docker", make_runtime)


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
