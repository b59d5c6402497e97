"""The execution contract, held by both local runtimes: a real Docker engine and host processes.

Each test drives a Runtime directly with a Job, as the executor loop does.
"""

from __future__ import annotations

import time
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
from pollinator_core.execution.lines import LineAssembler
from pollinator_core.execution.runtime import JobStatus, Runtime
from pollinator_core.execution.supervised import SupervisedRuntime
from pollinator_core.execution.termination import Reason, Termination

PY = "python3 -c"


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "process"])
def runtime(request: pytest.FixtureRequest) -> Iterator[tuple[SupervisedRuntime, str]]:
    backend: SupervisedRuntime
    if request.param == "docker":
        engine: DockerEngine = request.getfixturevalue("docker_engine")
        backend, image = DockerRuntime.connect(kill_grace=1.0), engine.image
    else:
        backend, image = ProcessRuntime(kill_grace=1.0), ""
    yield backend, image
    backend.close()


def run(backend: Runtime, job: Job) -> tuple[JobStatus, list[tuple[float, str]], float]:
    """Run to the end: final status, (seconds since submit, line) pairs, total seconds."""
    start = time.monotonic()
    handle = backend.submit(job)
    assembler = LineAssembler()
    lines: list[tuple[float, str]] = []
    try:
        for chunk in backend.logs(handle):
            if isinstance(chunk, str):  # a notice line of the runtime's own
                lines.append((time.monotonic() - start, chunk))
                continue
            lines += [(time.monotonic() - start, line) for line in assembler.feed(chunk)]
        lines += [(time.monotonic() - start, line) for line in assembler.flush()]
        while not (status := backend.status(handle)).finished:
            time.sleep(0.02)
    finally:
        backend.cleanup(handle)
    return status, lines, time.monotonic() - start


def texts(lines: list[tuple[float, str]]) -> list[str]:
    return [line for _, line in lines]


def test_output_env_mount_workdir_and_exit_code(
    runtime: tuple[SupervisedRuntime, str], tmp_path: Path
) -> None:
    backend, image = runtime
    (tmp_path / "proj" / "src").mkdir(parents=True)
    script = (
        "import os,sys,time;"
        "print(os.environ['PROJECT_DIR'], os.environ['COLONIES_PROCESS_ID'], os.getcwd());"
        "open(os.environ['PROJECT_DIR']+'/result.txt','w').write('hi');"
        "print('to stderr', file=sys.stderr); time.sleep(0.5); print('late'); sys.exit(3)"
    )
    job = Job(
        process_id="p1",
        image=image,
        command=f'{PY} "{script}"',
        env={"PROJECT_DIR": "/cfs/proj", "COLONIES_PROCESS_ID": "p1"},
        mounts=(Mount(str(tmp_path), "/cfs"),),
        workdir="/cfs/proj/src",
    )
    status, lines, _ = run(backend, job)
    assert status.termination is not None and status.termination.summary() == "exit code 3"
    first = texts(lines)[0].split()
    # The process runtime cannot mount: it sees the host directory behind /cfs instead.
    root = "/cfs" if isinstance(backend, DockerRuntime) else str(tmp_path)
    assert first == [f"{root}/proj", "p1", f"{root}/proj/src"]
    assert texts(lines)[1:] == ["to stderr\n", "late\n"]
    # Streaming, not collected at the end: the first line came well before the last.
    assert lines[-1][0] - lines[0][0] > 0.3
    assert (tmp_path / "proj" / "result.txt").read_text() == "hi"


def test_success(runtime: tuple[SupervisedRuntime, str]) -> None:
    backend, image = runtime
    status, lines, _ = run(backend, Job("p2", image, "echo ok"))
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines) == ["ok\n"]


def test_walltime_kills_the_job(runtime: tuple[SupervisedRuntime, str]) -> None:
    backend, image = runtime
    status, lines, seconds = run(backend, Job("p3", image, "echo start; sleep 60", walltime=1))
    assert status.termination is not None
    assert (
        status.termination.summary() == "walltime exceeded (1 s); exit code 143, killed by SIGTERM"
    )
    assert texts(lines) == ["start\n"]
    assert seconds < 5


def test_cancel_stops_the_job_and_its_children(
    runtime: tuple[SupervisedRuntime, str], tmp_path: Path
) -> None:
    backend, image = runtime
    # The trap ignores SIGTERM: cancel must still end it (SIGKILL after the grace).
    handle = backend.submit(Job("p4", image, "trap '' TERM; sleep 60 & sleep 60; wait"))
    try:
        time.sleep(0.5)
        started = time.monotonic()
        backend.cancel(handle, Termination(Reason.CANCELLED, detail="by the user"))
        backend.cancel(handle, Termination(Reason.LOST, detail="again"))  # idempotent
        for _ in backend.logs(handle):
            pass
        while not (status := backend.status(handle)).finished:
            time.sleep(0.02)
        assert time.monotonic() - started < 5
    finally:
        backend.cleanup(handle)
    assert status.termination is not None
    assert status.termination.reason is Reason.CANCELLED
    assert status.termination.detail == "by the user"


def test_a_line_is_streamed_before_the_job_ends(runtime: tuple[SupervisedRuntime, str]) -> None:
    backend, image = runtime
    script = "import time; print('now'); time.sleep(1.5); print('later')"
    status, lines, _ = run(backend, Job("p5", image, f'{PY} "{script}"'))
    assert status.termination is not None and status.termination.succeeded
    assert lines[1][0] - lines[0][0] > 1.0  # 'now' arrived while the job slept


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
    status, lines, _ = run(docker_backend, job)
    assert status.termination == Termination.exited(7, evidence=status.termination.evidence)
    assert texts(lines) == ["preparing\n", "pollinator: init-cmd failed with exit code 7\n"]


def test_init_cmd_exports_reach_the_command(
    docker_backend: DockerRuntime, docker_engine: DockerEngine
) -> None:
    job = Job("d2", docker_engine.image, 'echo "$GREETING"', init_command="export GREETING=hej")
    status, lines, _ = run(docker_backend, job)
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines) == ["hej\n"]


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
    status, _, _ = run(docker_backend, job)
    assert status.termination is not None and status.termination.reason is Reason.OOM
    assert status.termination.summary().startswith("out of memory (memory limit 64Mi); exit code")
    assert "OOMKilled=True" in status.termination.evidence[-1]


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
        status, lines, _ = run(docker_backend, job)
    finally:
        docker_engine.client.images.remove(tag, force=True)
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines)[-1] == "built\n"
    assert any("Step 2/2" in line for line in texts(lines))  # the build log came first


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
    status, lines, _ = run(ProcessRuntime(), job)
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines) == [
        "pollinator: process runtime, init-cmd skipped: pip3 install numpy\n",
        f"none none {Path.home()}\n",
    ]


def test_process_runtime_rewrites_whole_mount_paths_only(tmp_path: Path) -> None:
    job = Job(
        "h2",
        "",
        'echo "$A" "$B" "$C"',
        env={"A": "/cfs/x", "B": "/cfsx/y", "C": "--out=/cfs"},
        mounts=(Mount(str(tmp_path), "/cfs"),),
    )
    status, lines, _ = run(ProcessRuntime(), job)
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines) == [f"{tmp_path}/x /cfsx/y --out={tmp_path}\n"]


def test_process_runtime_ends_leftover_background_processes() -> None:
    # A background child holds the output pipe; the job still ends when its main process does.
    status, lines, seconds = run(ProcessRuntime(), Job("h3", "", "sleep 30 & echo main done"))
    assert status.termination is not None and status.termination.succeeded
    assert texts(lines) == ["main done\n"]
    assert seconds < 3


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
        status, lines, _ = run(backend, job)
        assert "runtime auto runs this job as a host process" in texts(lines)[0]
        assert texts(lines)[1:] == [f"in {tmp_path}/p\n"]
        assert status.termination is not None and status.termination.exit_code == 4

        status, lines, _ = run(backend, attrs.evolve(job, image=docker_engine.image))
        assert texts(lines) == ["in /cfs/p\n"]  # in the container, the mount is where it says
        assert status.termination is not None and status.termination.exit_code == 4
    finally:
        backend.close()
