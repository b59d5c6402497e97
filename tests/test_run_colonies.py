"""Against a Colonies server (the simulator over HTTP) with ``pollinator executor start`` as a
separate daemon: ``run --backend colonies``, the lifecycle commands, SIGTERM, and the official
flow from the other side (a spec submitted with pycolonies, run by our executor on Docker)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from infra.components import DockerEngine
from pycolonies import Colonies, func_spec
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_local import POLLINATOR, SLOW_MAIN, LocalProject, Output, submitted_id

from pollinator_core.testing.simulator import EXECUTOR_NAME

StartExecutor = Callable[..., Output]


def colonies_env(sim: SimColony, store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    env.update(sim.keys.environment(sim.host, sim.port))
    env["POLLINATOR_STORAGE"] = f"file://{store}"
    return env


@pytest.fixture
def start_executor(sim_colony: SimColony, tmp_path: Path) -> Iterator[StartExecutor]:  # noqa: F811
    daemons: list[Output] = []

    def start(*options: str) -> Output:
        env = colonies_env(sim_colony, tmp_path / "store")
        proc = subprocess.Popen(
            [POLLINATOR, "executor", "start", "--fs-dir", str(tmp_path / "fs"), *options],
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        daemon = Output(proc)
        daemon.wait_for("serving colony test", stderr=True)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
        daemon.finish()


@pytest.fixture
def project(sim_colony: SimColony, tmp_path: Path) -> LocalProject:  # noqa: F811
    made = LocalProject(tmp_path / "demo", "process", "")
    made.env = colonies_env(sim_colony, tmp_path / "store")
    # No backend in project.yaml: with COLONIES_SERVER_HOST set, that means colonies.
    return made


def test_run_and_lifecycle_on_the_colonies_backend(
    project: LocalProject, start_executor: StartExecutor
) -> None:
    start_executor("--runtime", "process", "--name", "e2e", "--location", "lab")
    done = project.cli("run", "--backend", "colonies", "-f")
    assert done.returncode == 0, done.stderr
    pid = submitted_id(done.stderr)
    assert "running on e2e" in done.stderr
    assert (project.root / "cfs" / "result" / pid / "result.txt").read_text().startswith("Hello")

    assert json.loads(project.cli("status", "--json").stdout)["backend"] == "colonies"
    assert [r["id"] for r in json.loads(project.cli("ps", "--json").stdout)] == [pid]
    assert "Hello world!" in project.cli("logs", pid[:10]).stdout
    executors = json.loads(project.cli("executors", "--json").stdout)
    assert [(e["name"], e["location"]) for e in executors if e["name"] == "e2e"] == [("e2e", "lab")]

    project.write_main(SLOW_MAIN)
    running = project.start("run", "-f")
    running.wait_for("started")
    slow = submitted_id("".join(running.err))
    assert project.cli("cancel", slow[:12]).returncode == 0
    code, _, err = running.finish()
    assert code == 1
    assert "CANCELLED" in err


def test_sigterm_lets_jobs_finish_within_the_grace_then_fails_them(
    project: LocalProject,
    start_executor: StartExecutor,
    sim_colony: SimColony,  # noqa: F811
) -> None:
    daemon = start_executor("--runtime", "process", "--name", "graceful", "--grace", "1")
    project.write_main(SLOW_MAIN)
    running = project.start("run", "-f")
    running.wait_for("started")
    daemon.proc.send_signal(signal.SIGTERM)
    code, _, err = daemon.finish(timeout=30)
    assert code == 0, err
    assert "running jobs get 1 s to finish" in err
    code, _, err = running.finish()
    assert code == 1
    assert "FAILED: infrastructure failure (the executor was shut down)" in err
    # It registered itself, so it removed itself.
    names = [e["name"] for e in json.loads(project.cli("executors", "--json").stdout)]
    assert "graceful" not in names


@pytest.mark.docker
def test_a_spec_submitted_with_pycolonies_is_run_by_our_docker_executor(
    sim_colony: SimColony,  # noqa: F811
    start_executor: StartExecutor,
    docker_engine: DockerEngine,
) -> None:
    start_executor("--type", "docker", "--runtime", "docker", "--name", "official")
    sdk = Colonies("127.0.0.1", sim_colony.port)
    code = "import os, sys; print(sys.argv[1:], os.environ['COLONIES_PROCESS_ID'][:8])"
    spec = func_spec(
        "execute",
        [],
        "test",
        "container-executor",
        executorname="official",
        maxexectime=60,
        maxretries=0,
        kwargs={
            "cmd": f"python3 -c {json.dumps(code)}",
            "args": ["two words", "{processid}"],
            "docker-image": docker_engine.image,
        },
    )
    submitted = sdk.submit_func_spec(spec, sim_colony.keys.prvkey)
    done = sdk.wait(submitted, 30, sim_colony.keys.prvkey)
    assert done.state == 2, done.errors
    logs = sdk.get_process_log("test", done.processid, 100, 0, sim_colony.keys.prvkey)
    text = "".join(entry["message"] for entry in logs)
    assert text == f"['two words', '{done.processid}'] {done.processid[:8]}\n"
    # The container is gone afterwards.
    labels = f"pollinator.process-id={done.processid}"
    assert not docker_engine.client.containers.list(all=True, filters={"label": labels})


def test_executor_start_needs_a_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    done = subprocess.run(
        [POLLINATOR, "executor", "start"], env=env, text=True, capture_output=True, timeout=30
    )
    assert done.returncode == 3
    assert re.search("COLONIES_SERVER_HOST is not set", done.stderr)


def test_executor_start_refuses_a_stale_window_it_cannot_keep_up_with(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = colonies_env(sim_colony, tmp_path / "store")
    env["COLONIES_STALE_EXECUTOR_DURATION"] = "2"
    done = subprocess.run(
        [POLLINATOR, "executor", "start", "--fs-dir", str(tmp_path / "fs")],
        env=env, text=True, capture_output=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "COLONIES_STALE_EXECUTOR_DURATION is '2'; it must be" in done.stderr
    # Checked before it registers: the colony has no executor but the fixture's own.
    listed = sim_colony.rpc(sim_colony.keys.prvkey, "getexecutorsmsg", colonyname=sim_colony.colony)
    assert [e["executorname"] for e in listed] == [EXECUTOR_NAME]
