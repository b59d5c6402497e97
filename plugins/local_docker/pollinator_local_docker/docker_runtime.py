"""Run a job as one container on a local Docker engine, through the docker SDK.

The image comes from the job (pulled when missing, or rebuilt from the Dockerfile in the
project's src when ``rebuild_image``); the executor's per-process storage is bind-mounted at the
spec's mount point; cpu, memory and GPUs become container limits and device requests. The
container runs under Docker's init so that SIGTERM reaches the job, and is removed at cleanup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollinator_core.api import (
    DEFAULT_KILL_GRACE,
    InfraError,
    Job,
    JobFailed,
    JobState,
    JobStatus,
    Reason,
    SupervisedRuntime,
    Termination,
    format_memory,
    job_env,
    shell_script,
)

if TYPE_CHECKING:
    import docker

_BUILD_TAIL = 30


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip()


class ImageUnavailable(JobFailed):
    """The job's image is not on the engine and cannot be pulled."""

    def __init__(self, image: str, why: str) -> None:
        self.image, self.why = image, why
        super().__init__(
            f"image {image!r} is not on this Docker engine and could not be pulled ({why}). "
            "Build or load it on the engine (docker build, docker load, docker import), name an "
            "image it has in project.yaml (environment.docker), or run without containers "
            "(--runtime process)."
        )


class DockerRuntime(SupervisedRuntime):
    """Jobs as containers. Build one with :meth:`connect`, which checks the engine answers."""

    type = "docker"

    def __init__(self, client: docker.DockerClient, kill_grace: float = DEFAULT_KILL_GRACE) -> None:
        super().__init__(kill_grace)
        self._client = client

    @classmethod
    def connect(cls, kill_grace: float = DEFAULT_KILL_GRACE) -> DockerRuntime:
        """Connect to the engine named by DOCKER_HOST (default: the local socket)."""
        import docker

        try:
            client = docker.from_env(timeout=30, max_pool_size=32)
            client.ping()
        except Exception as exc:  # the SDK raises several unrelated types for "no engine"
            raise InfraError(f"no Docker engine at {_engine_address()}: {_explain(exc)}") from exc
        return cls(client, kill_grace)

    def describe(self) -> str:
        return "Docker containers"

    # --- starting ------------------------------------------------------------------------

    def submit(self, job: Job) -> str:
        import docker.errors
        import docker.types

        notices = self._build(job) if job.rebuild_image else self._ensure_image(job.image)
        name = f"pollinator-{job.process_id}"
        with contextlib.suppress(docker.errors.NotFound):
            # A container left behind by an executor that crashed mid-job holds the name.
            self._client.api.remove_container(name, force=True)
        mounts = [
            docker.types.Mount(m.target, m.source, type="bind", read_only=m.read_only)
            for m in job.mounts
        ]
        options: dict[str, Any] = {}
        if job.cpu_millis:
            options["nano_cpus"] = job.cpu_millis * 1_000_000
        if job.mem_bytes:
            # No swap on top: a job over its limit is OOM-killed and says so, not slowed down.
            options["mem_limit"] = options["memswap_limit"] = job.mem_bytes
        if job.gpu_count:
            options["device_requests"] = [
                docker.types.DeviceRequest(count=job.gpu_count, capabilities=[["gpu"]])
            ]
        try:
            container = self._client.containers.create(
                job.image,
                # One stream, as the process runtime has: Docker reads stdout and stderr from
                # two pipes, so their relative order would otherwise be lost.
                ["sh", "-c", "exec 2>&1\n" + shell_script(job)],
                name=name,
                environment=job_env(job),
                mounts=mounts,
                working_dir=job.workdir or None,
                labels={"pollinator.process-id": job.process_id},
                init=True,
                **options,
            )
            container.start()
        except docker.errors.APIError as exc:
            raise JobFailed(f"Docker could not start the job's container: {_explain(exc)}") from exc
        except docker.errors.DockerException as exc:
            raise InfraError(f"lost the Docker engine: {_explain(exc)}") from exc
        handle = str(container.id)
        self._started(handle, job.walltime, notices)
        return handle

    def _ensure_image(self, image: str) -> list[str]:
        import docker.errors
        from docker.utils import parse_repository_tag

        if not image:
            raise JobFailed("the job names no image (kwargs 'docker-image' is empty)")
        try:
            self._client.images.get(image)
            return []
        except docker.errors.ImageNotFound:
            pass
        repository, tag = parse_repository_tag(image)
        try:
            self._client.images.pull(repository, tag=tag or "latest")
        except docker.errors.DockerException as exc:
            raise ImageUnavailable(image, _explain(exc)) from exc
        return [f"pollinator: pulled image {image}\n"]

    def _build(self, job: Job) -> list[str]:
        """Rebuild ``job.image`` from the Dockerfile in the project's src; return the build log."""
        import docker.errors

        context = Path(job.build_context)
        if not job.build_context or not (context / "Dockerfile").is_file():
            raise JobFailed(
                "rebuildImage is set but the project's src has no Dockerfile "
                f"(looked in {context}); add cfs/src/Dockerfile or set rebuildImage: false"
            )
        try:
            _, output = self._client.images.build(
                path=str(context), tag=job.image, rm=True, forcerm=True
            )
        except docker.errors.BuildError as exc:
            tail = "".join(_build_lines(exc.build_log)[-_BUILD_TAIL:])
            raise JobFailed(f"building image {job.image!r} failed: {exc.msg}\n{tail}") from exc
        except docker.errors.APIError as exc:
            raise JobFailed(f"building image {job.image!r} failed: {_explain(exc)}") from exc
        return _build_lines(output)

    # --- following -----------------------------------------------------------------------

    def status(self, handle: str) -> JobStatus:
        import docker.errors

        try:
            info = self._client.api.inspect_container(handle)
        except docker.errors.NotFound:
            return JobStatus.ended(
                Termination(Reason.LOST, detail="the job's container disappeared")
            )
        state = info["State"]
        if state["Status"] == "created":
            return JobStatus(JobState.PENDING)
        if state["Running"]:
            return JobStatus(JobState.RUNNING)
        oom = ""
        if state.get("OOMKilled"):
            limit = info["HostConfig"].get("Memory") or 0
            oom = f"memory limit {format_memory(limit)}" if limit else "the machine's memory"
        code = int(state["ExitCode"])
        seen = f"docker: State.ExitCode={code} OOMKilled={bool(state.get('OOMKilled'))}"
        return self._ended(handle, code, oom=oom, evidence=(seen,))

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        import docker.errors

        yield from self._take_notices(handle)
        container = self._client.containers.get(handle)
        # Docker keeps the output from the start, so following after start() loses nothing...
        sent, last = 0, b""
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            sent, last = sent + len(chunk), chunk or last
            if sent > offset:
                yield chunk[max(0, len(chunk) - (sent - offset)) :]
        # ...except that a followed stream ends without the output's last line when that line
        # has no newline (`print(x, end="")` at exit): take it from the stored log.
        if last.endswith(b"\n") or not sent:
            with contextlib.suppress(docker.errors.APIError):  # the container is gone
                tail = container.logs(stdout=True, stderr=True, tail=1)
                if tail and not tail.endswith(b"\n"):
                    stored = container.logs(stdout=True, stderr=True)
                    if len(stored) > max(sent, offset):
                        yield stored[max(sent, offset) :]

    # --- stopping ------------------------------------------------------------------------

    def _signal(self, handle: str, kill: bool) -> None:
        import docker.errors

        # An error means the container is gone or not running: stopped either way.
        with contextlib.suppress(docker.errors.APIError):
            self._client.api.kill(handle, signal="SIGKILL" if kill else "SIGTERM")

    def cleanup(self, handle: str) -> None:
        import docker.errors

        self._forget(handle)
        with contextlib.suppress(docker.errors.NotFound):
            self._client.api.remove_container(handle, force=True)

    def close(self) -> None:
        self._client.close()


def _build_lines(log: Any) -> list[str]:
    """The text lines of a docker build log (its ``stream`` entries)."""
    return [str(entry["stream"]) for entry in log if isinstance(entry, dict) and "stream" in entry]


def _csv(fields: list[str]) -> str:
    """``--mount`` takes CSV: a field with a comma or a quote (a path) is quoted as CSV."""
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def render(job: Job) -> dict[str, str]:
    """The container a job gets, as the equivalent ``docker run`` command line."""
    import shlex

    argv = ["docker", "run", "--rm", "--init", "--name", f"pollinator-{job.process_id}"]
    for mount in job.mounts:
        fields = ["type=bind", f"source={mount.source}", f"target={mount.target}"]
        argv += ["--mount", _csv([*fields, "readonly"] if mount.read_only else fields)]
    if job.workdir:
        argv += ["--workdir", job.workdir]
    for key, value in job_env(job).items():
        argv += ["--env", f"{key}={value}"]
    if job.cpu_millis:
        argv += ["--cpus", f"{job.cpu_millis / 1000:g}"]
    if job.mem_bytes:
        argv += ["--memory", str(job.mem_bytes), "--memory-swap", str(job.mem_bytes)]
    if job.gpu_count:
        argv += ["--gpus", str(job.gpu_count)]
    argv += [job.image, "sh", "-c", "exec 2>&1\n" + shell_script(job)]
    walltime = f"# stopped after {job.walltime} s (SIGTERM, then SIGKILL)\n" if job.walltime else ""
    return {"docker-run.sh": walltime + shlex.join(argv) + "\n"}
