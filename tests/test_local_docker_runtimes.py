"""Both local runtimes, a real Docker engine and host processes, against the test kit's
runtime conformance suite, then what only one of them does.

Each test drives a Runtime directly with a Job, as the executor loop does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from infra.components import DockerEngine
from pollinator_local_docker.docker_runtime import DockerRuntime
from pollinator_local_docker.plugin import LocalSettings
from pollinator_local_docker.process_runtime import ProcessRuntime

from pollinator_core.errors import InfraError, JobFailed
from pollinator_core.execution.job import Job, Mount
from pollinator_core.execution.runtime import Runtime
from pollinator_core.execution.termination import Reason, Termination
from pollinator_core.testing import RuntimeConformance, run_job

PY = "python3 -c"


def _group_members(pgid: int) -> list[str]:
    """Processes of process group ``pgid`` that still run (zombies left to a parent that does
    not reap are not running)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"pid {stat.parent.name} ({state}) of process group {pgid}")
    return members


class TestProcessRuntime(RuntimeConformance):
    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        return ProcessRuntime(kill_grace=1.0)

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        return _group_members(int(handle))


@pytest.mark.docker
class TestDockerRuntime(RuntimeConformance):
    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        self.engine: DockerEngine = request.getfixturevalue("docker_engine")
        self.image = self.engine.image
        return DockerRuntime.connect(kill_grace=1.0)

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        found = self.engine.client.containers.list(all=True, filters={"id": handle})
        return [f"container {container.name}" for container in found]


# --- Docker only -------------------------------------------------------------------------


@pytest.fixture
def docker_backend(docker_engine: DockerEngine) -> Iterator[DockerRuntime]:
    backend = DockerRuntime.connect(kill_grace=1.0)
    yield backend
    backend.close()


def test_init_cmd_failure_fails_the_job(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    job = Job(
        "d1", docker_engine.image, "echo never", init_command="echo preparing; sh -c 'exit 7'"
    )
    run = run_job(docker_backend, job)
    assert run.termination == Termination.exited(7, evidence=run.termination.evidence)
    assert run.lines == ["preparing\n", "pollinator: init-cmd failed with exit code 7\n"]


def test_init_cmd_exports_reach_the_command(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    job = Job("d2", docker_engine.image, 'echo "$GREETING"', init_command="export GREETING=hej")
    run = run_job(docker_backend, job)
    assert run.termination.succeeded
    assert run.lines == ["hej\n"]


def test_limits_are_applied_and_the_container_removed(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    import docker.errors

    job = Job("d3", docker_engine.image, "sleep 5", cpu_millis=500, mem_bytes=256 * 2**20)
    handle = docker_backend.submit(job)
    config = docker_engine.client.api.inspect_container(handle)["HostConfig"]
    assert (config["NanoCpus"], config["Memory"], config["MemorySwap"]) == (
        500_000_000,
        256 * 2**20,
        256 * 2**20,
    )
    assert config["Init"] is True
    docker_backend.cancel(handle, Termination(Reason.CANCELLED))
    docker_backend.cleanup(handle)
    with pytest.raises(docker.errors.NotFound):
        docker_engine.client.api.inspect_container(handle)


def test_out_of_memory_is_reported_as_such(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    script = "x = bytearray(512 * 2**20); print(len(x))"
    job = Job("d4", docker_engine.image, f'{PY} "{script}"', mem_bytes=64 * 2**20)
    termination = run_job(docker_backend, job).termination
    assert termination.reason is Reason.OOM
    assert termination.summary().startswith("out of memory (memory limit 64Mi); exit code")
    assert "OOMKilled=True" in termination.evidence[-1]


def test_a_gpu_request_reaches_the_engine(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    # This engine has no GPU runtime: the request is real when Docker refuses it.
    with pytest.raises(JobFailed, match=r"could not start the job's container: .*gpu"):
        docker_backend.submit(Job("d5", docker_engine.image, "true", gpu_count=1))
    docker_engine.client.api.remove_container("pollinator-d5", force=True)


def test_a_missing_image_that_cannot_be_pulled_is_a_clear_error(
    docker_backend: DockerRuntime,
) -> None:
    with pytest.raises(JobFailed) as info:
        docker_backend.submit(Job("d6", "localhost:1/no/such-image:1.0", "true"))
    message = str(info.value)
    assert "image 'localhost:1/no/such-image:1.0' is not on this Docker engine" in message
    assert "environment.docker" in message


def test_rebuild_image_builds_from_the_projects_dockerfile(
    docker_backend: DockerRuntime, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {docker_engine.image}\nRUN echo built > /built.txt\n"
    )
    tag = "localhost/pollinator-test-rebuild:latest"
    job = Job("d7", tag, "cat /built.txt", rebuild_image=True, build_context=str(tmp_path))
    try:
        run = run_job(docker_backend, job)
    finally:
        docker_engine.client.images.remove(tag, force=True)
    assert run.termination.succeeded
    assert run.lines == ["built\n"]
    assert any("Step 2/2" in line for line in run.notices)  # the build log came first


def test_rebuild_image_without_a_dockerfile_says_so(
    docker_backend: DockerRuntime, tmp_path: Path
) -> None:
    job = Job("d8", "x:latest", "true", rebuild_image=True, build_context=str(tmp_path))
    with pytest.raises(JobFailed, match="no Dockerfile"):
        docker_backend.submit(job)


# --- host processes only -----------------------------------------------------------------


def test_process_runtime_skips_init_cmd_and_hides_executor_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLONIES_PRVKEY", "secret")
    monkeypatch.setenv("AWS_S3_SECRETKEY", "secret")
    job = Job(
        "h1",
        "",
        'echo "${COLONIES_PRVKEY:-none} ${AWS_S3_SECRETKEY:-none} $HOME"',
        init_command="pip3 install numpy",
    )
    run = run_job(ProcessRuntime(), job)
    assert run.termination.succeeded
    assert run.notices == ("pollinator: process runtime, init-cmd skipped: pip3 install numpy\n",)
    assert run.lines == [f"none none {Path.home()}\n"]


def test_process_runtime_rewrites_whole_mount_paths_only(tmp_path: Path) -> None:
    job = Job(
        "h2",
        "",
        'echo "$A" "$B" "$C"',
        env={"A": "/cfs/x", "B": "/cfsx/y", "C": "--out=/cfs"},
        mounts=(Mount(str(tmp_path), "/cfs"),),
    )
    run = run_job(ProcessRuntime(), job)
    assert run.termination.succeeded
    assert run.lines == [f"{tmp_path}/x /cfsx/y --out={tmp_path}\n"]


def test_process_runtime_says_how_a_walltime_ended_the_job() -> None:
    run = run_job(ProcessRuntime(kill_grace=1.0), Job("h3", "", "sleep 60", walltime=1))
    assert run.termination.summary() == "walltime exceeded (1 s); exit code 143, killed by SIGTERM"
    assert run.seconds < 5


def test_auto_falls_back_to_host_processes_and_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pollinator_local_docker.plugin import make_runtime

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert isinstance(make_runtime(LocalSettings("auto")), ProcessRuntime)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no Docker engine at unix:///nonexistent/docker.sock" in err
    assert "running jobs as host processes instead" in err
    with pytest.raises(InfraError, match="no Docker engine"):
        make_runtime(LocalSettings("docker"))


def test_auto_runs_a_job_whose_image_cannot_be_had_as_a_host_process(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    from pollinator_local_docker.auto_runtime import AutoRuntime
    from pollinator_local_docker.plugin import make_runtime

    backend = make_runtime(LocalSettings("auto"))
    assert isinstance(backend, AutoRuntime)
    try:
        job = Job(
            process_id="auto1",
            image="registry.invalid/no-such-image:1",
            command="echo in $PROJECT_DIR; exit 4",
            env={"PROJECT_DIR": "/cfs/p"},
            mounts=(Mount(str(tmp_path), "/cfs"),),
        )
        run = run_job(backend, job)
        assert "runtime auto runs this job as a host process" in run.notices[0]
        assert run.lines == [f"in {tmp_path}/p\n"]
        assert run.termination.exit_code == 4

        run = run_job(backend, attrs.evolve(job, image=docker_engine.image))
        assert run.lines == ["in /cfs/p\n"]  # in the container, the mount is where it says
        assert run.termination.exit_code == 4
    finally:
        backend.close()
