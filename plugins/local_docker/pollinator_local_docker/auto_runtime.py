"""Runtime ``auto``: each job in Docker when the engine has (or can pull) its image, otherwise
as a host process, with one line in the job's output saying why.

Offline machines are the reason: a fresh project names an image from a registry, and an engine
with no registry in reach cannot pull it. Falling back per job keeps `pollinator run` working
there, while a job whose image is present still gets its container.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from pollinator_core.api import Job, JobStatus, Runtime, Termination

from .docker_runtime import DockerRuntime, ImageUnavailable
from .process_runtime import ProcessRuntime


class AutoRuntime(Runtime):
    """Routes each job to Docker or to host processes; handles carry the choice as a prefix."""

    type = "docker"

    def __init__(self, docker: DockerRuntime, process: ProcessRuntime) -> None:
        self._runtimes: dict[str, Runtime] = {"docker": docker, "process": process}
        self._lock = threading.Lock()
        self._notices: dict[str, str] = {}

    def describe(self) -> str:
        return "Docker containers (host processes for jobs whose image the engine cannot have)"

    def _route(self, handle: str) -> tuple[Runtime, str]:
        runtime, _, inner = handle.partition(":")
        return self._runtimes[runtime], inner

    def submit(self, job: Job) -> str:
        try:
            return "docker:" + self._runtimes["docker"].submit(job)
        except ImageUnavailable as exc:
            handle = "process:" + self._runtimes["process"].submit(job)
            notice = (
                f"pollinator: image {exc.image!r} is not on the Docker engine and could not be "
                f"pulled ({exc.why}); runtime auto runs this job as a host process\n"
            )
            with self._lock:
                self._notices[handle] = notice
            return handle

    def status(self, handle: str) -> JobStatus:
        runtime, inner = self._route(handle)
        return runtime.status(inner)

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        with self._lock:
            notice = self._notices.pop(handle, "")
        if notice:
            yield notice
        runtime, inner = self._route(handle)
        yield from runtime.logs(inner, offset)

    def cancel(self, handle: str, why: Termination) -> None:
        runtime, inner = self._route(handle)
        runtime.cancel(inner, why)

    def cleanup(self, handle: str) -> None:
        with self._lock:
            self._notices.pop(handle, None)
        runtime, inner = self._route(handle)
        runtime.cleanup(inner)

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
