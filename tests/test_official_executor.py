"""What `pollinator run` submits, run by the official Colonies docker executor.

The executor is the official one (github.com/colonyos/executors, module ``docker``, at b6b237c),
built by tests/infra/official_executor.sh, against the official server it can register with:
v1.8.7, whose executor records it was built for (servers from v1.9.6 refuse them). It always
pulls its image, so the base image goes into a local registry (the distribution registry, built
from its Go module) first, on loopback.

The Go module proxy refuses github.com/colonyos/executors, so CI cannot build the executor: the
build script records why and these tests skip with that reason. Built from a checkout
(``tests/infra/official_executor.sh --source DIR``), they run. The other direction, the original
Go Pollinator's specs on our executor, is in tests/test_real_server.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker import errors as docker_errors
from infra.components import CI_DIR, ColoniesServer, DockerEngine, S3Server, component_missing
from test_real_server import FAILED, SUCCESS, Site, set_yaml, wait_until
from test_run_local import LocalProject, Output, submitted_id

pytestmark = [pytest.mark.colonies_server, pytest.mark.docker]

PEERS_DIR = Path(os.environ.get("POLLINATOR_PEERS_DIR", "/opt/pollinator-peers"))
EXECUTOR = PEERS_DIR / "official-executors-b6b237c3d2f6" / "docker-executor"
REGISTRY = PEERS_DIR / "registry-v3.1.2" / "registry"
UNAVAILABLE = CI_DIR / "official-executor.unavailable"
HOSTILE = "a \"quoted\" 'single' & <tag> + $HOME `date` \\ end"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def binaries() -> tuple[Path, Path]:
    if EXECUTOR.is_file() and REGISTRY.is_file():
        return EXECUTOR, REGISTRY
    if UNAVAILABLE.is_file():  # outside the project: the module is not served
        pytest.skip(f"official docker executor not built: {UNAVAILABLE.read_text().strip()}")
    component_missing(
        f"no {EXECUTOR} or {REGISTRY}; build them with: bash tests/infra/official_executor.sh"
    )


@pytest.fixture(scope="module")
def image(
    binaries: tuple[Path, Path],
    docker_engine: DockerEngine,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The base image, pushed into a registry of the test's own on loopback (Docker pulls from
    127.0.0.0/8 over plain HTTP without configuration)."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no YAML text written by hand
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    log = (root / "registry.log").open("w")
    registry = subprocess.Popen([str(binaries[1]), "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_until("the registry to listen", lambda: _answers(port), timeout=30)
        repository = f"127.0.0.1:{port}/pollinator-python"
        docker_engine.client.images.get(docker_engine.image).tag(repository, "bookworm")
        pushed = docker_engine.client.images.push(repository, tag="bookworm")
        assert '"error"' not in pushed, pushed
        yield f"{repository}:bookworm"
    finally:
        # The official executor leaves its containers behind: remove those made from this
        # registry's tag (by the name they were made with: the image id is the base image's,
        # which other tests' containers share), then the tag.
        tag = f"127.0.0.1:{port}/pollinator-python:bookworm"
        for container in docker_engine.client.containers.list(all=True):
            if container.attrs["Config"]["Image"] == tag:
                container.remove(force=True)
        with contextlib.suppress(docker_errors.ImageNotFound):
            docker_engine.client.images.remove(tag)
        registry.send_signal(signal.SIGTERM)
        registry.wait(timeout=30)
        log.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class OfficialSite(Site):
    """A colony on the v1.8.7 server, served by the official docker executor."""

    def start_official(self, name: str, *, parallel: bool = False) -> Output:
        env = {
            **self.executor_env(),
            "COLONIES_TLS": "false",
            "COLONIES_EXECUTOR_NAME": name,
            "EXECUTOR_TYPE": "container-executor",  # what `pollinator run` asks for
            "EXECUTOR_FS_DIR": str(self.tmp / f"fs-{name}"),
            "EXECUTOR_HW_NODES": "1",
            "EXECUTOR_HW_GPU_COUNT": "0",
            "EXECUTOR_HW_GPU_NODES_COUNT": "0",
            "EXECUTOR_LOCATION_LONG": "0",
            "EXECUTOR_LOCATION_LAT": "0",
            "EXECUTOR_PARALLEL_CONTAINERS": "true" if parallel else "false",
        }
        (self.tmp / f"fs-{name}").mkdir()
        proc = subprocess.Popen(
            [str(EXECUTOR), "start"], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        daemon = Output(proc)
        daemon.wait_for("Docker Executor started", stderr=True)
        self.daemons[name] = daemon
        return daemon

    def official_project(self, image: str, name: str = "demo") -> LocalProject:
        made = self.project(name)
        made.edit_yaml("docker: python:3.12-rc-bookworm", f"docker: {image}")
        return made


@pytest.fixture
def site(
    image: str, colonies_server_v187: ColoniesServer, s3_server: S3Server, tmp_path: Path
) -> Iterator[OfficialSite]:
    made = OfficialSite(colonies_server_v187, s3_server, tmp_path)
    yield made
    made.close()


def executor_id(site: Site, name: str) -> str:
    found: str = site.peer.get_executor(name)["executorid"]
    return found


def test_it_runs_the_example_and_the_result_comes_back(site: OfficialSite, image: str) -> None:
    """`pollinator new`'s example, unchanged but for the image: its output streams back, its
    result comes down, and an env value no shell should see is delivered as written."""
    site.start_official("official")
    project = site.official_project(image)
    set_yaml(project, env=json.dumps({"HOSTILE": HOSTILE}))
    with (project.root / "cfs" / "src" / "main.py").open("a") as main:
        main.write("\nprint('hostile:', os.environ['HOSTILE'])\n")
    done = project.cli("run", "--backend", "colonies", "--follow", timeout=180)
    assert done.returncode == 0, done.stderr
    pid = submitted_id(done.stderr)
    assert "data/hello.txt says: Hello world!" in done.stdout
    assert f"hostile: {HOSTILE}\n" in done.stdout
    result = project.root / "cfs" / "result" / pid / "result.txt"
    assert result.read_text().startswith("Hello world!")
    process = site.user_client().get_process(pid)
    assert int(process.state) == SUCCESS
    assert process.assignedexecutorid == executor_id(site, "official")


def test_a_failing_job_fails_with_its_output(site: OfficialSite, image: str) -> None:
    site.start_official("official")
    project = site.official_project(image)
    project.write_main("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    done = project.cli("run", "--backend", "colonies", "--follow", timeout=180)
    assert done.returncode == 1, done.stderr
    assert "about to fail" in done.stdout
    pid = submitted_id(done.stderr)
    process = site.user_client().get_process(pid)
    assert int(process.state) == FAILED
    assert any("exit code = 3" in error for error in process.errors), process.errors
    assert "Traceback" not in done.stderr


def test_overlapping_runs_of_one_project_keep_their_results_apart(
    site: OfficialSite, image: str
) -> None:
    """Two runs of one project at once on one official executor (parallel containers): each
    writes a result file of the same name; each run gets back its own and only its own."""
    site.start_official("official", parallel=True)
    project = site.official_project(image)
    project.write_main(
        "import os, pathlib, time\n"
        "out = pathlib.Path(os.environ['PROJECT_DIR']) / 'result'\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "print('started', flush=True)\n"
        "time.sleep(4)\n"
        "(out / 'mine.txt').write_text(os.environ['COLONIES_PROCESS_ID'])\n"
        "print('wrote', sorted(p.name for p in out.iterdir()), flush=True)\n"
    )
    runs = [project.start("run", "--backend", "colonies", "--follow") for _ in range(2)]
    for run in runs:
        run.wait_for("started", timeout=120)  # both running at once
    finished = [run.finish(timeout=180) for run in runs]
    for code, out, err in finished:
        assert code == 0, err
        assert "wrote ['mine.txt']" in out, out
        pid = submitted_id(err)
        results = project.root / "cfs" / "result" / pid
        assert sorted(p.name for p in results.iterdir()) == ["mine.txt"]
        assert (results / "mine.txt").read_text() == pid
    client = site.user_client()
    assert [int(client.get_process(submitted_id(e)).state) for _, _, e in finished] == [SUCCESS] * 2


def test_it_shares_a_colony_with_a_pollinator_executor(site: OfficialSite, image: str) -> None:
    """A mixed colony: two runs at once land one on each kind, and each comes back whole."""
    site.start_official("official")
    site.start_executor("ours")
    project = site.official_project(image)
    project.write_main("import time\nprint('ran', flush=True)\ntime.sleep(5)\n")
    runs = [project.start("run", "--backend", "colonies", "--follow") for _ in range(2)]
    finished = [run.finish(timeout=180) for run in runs]
    client = site.user_client()
    executors = set()
    for code, out, err in finished:
        assert code == 0, err
        assert out.endswith("ran\n"), out  # after the official one's image-pull lines
        executors.add(client.get_process(submitted_id(err)).assignedexecutorid)
    assert executors == {executor_id(site, "official"), executor_id(site, "ours")}
