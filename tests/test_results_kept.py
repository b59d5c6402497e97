"""What a job wrote comes back however it ends (issue 13, items 3 and 4): Ctrl-C or SIGTERM on
`executor start` while it runs, `pollinator executor stop` on the local agent, and `pollinator
cancel`. The results lost on main when the issue was filed: the job's directory was deleted
before anything was uploaded, and `pollinator results` brought back 0 files."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_fixtures import sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_colonies import StartExecutor, project, start_executor  # noqa: F401
from test_run_local import LocalProject, submitted_id

PARTIAL_MAIN = """\
import os, time
result = os.path.join(os.environ['PROJECT_DIR'], 'result')
os.makedirs(result, exist_ok=True)
open(os.path.join(result, 'partial.txt'), 'w').write('written before the end\\n')
print('wrote partial', flush=True)
time.sleep(120)
print('finished', flush=True)
"""


def fetched(made: LocalProject, pid: str, timeout: float = 20) -> Path:
    """`pollinator results ID` until the partial result is there (the executor uploads it
    once it has stopped the job)."""
    partial = made.root / "cfs" / "result" / pid / "partial.txt"
    deadline = time.monotonic() + timeout
    while True:
        done = made.cli("results", pid[:12])
        assert done.returncode == 0, done.stderr
        if partial.exists() or time.monotonic() > deadline:
            return partial
        time.sleep(0.5)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_the_executor_uploads_what_the_job_wrote(
    project: LocalProject,  # noqa: F811
    start_executor: StartExecutor,  # noqa: F811
    stop: signal.Signals,
) -> None:
    daemon = start_executor("--runtime", "process", "--name", "stopping", "--grace", "1")
    project.write_main(PARTIAL_MAIN)
    running = project.start("run", "-f")
    running.wait_for("wrote partial")
    daemon.proc.send_signal(stop)
    code, _, err = daemon.finish(timeout=30)
    assert code == 0, err
    code, out, err = running.finish()
    assert code == 1
    assert "finished" not in out
    assert "FAILED: infrastructure failure (the executor was shut down)" in err
    assert "results were not uploaded" not in err
    pid = submitted_id(err)
    # run -f fetched them itself: the executor uploads before it closes the process.
    partial = project.root / "cfs" / "result" / pid / "partial.txt"
    assert partial.read_text() == "written before the end\n"
    assert f"results: cfs/result/{pid}/ (1 new file)" in err


def test_cancel_uploads_what_the_job_wrote(
    project: LocalProject,  # noqa: F811
    start_executor: StartExecutor,  # noqa: F811
) -> None:
    start_executor("--runtime", "process", "--name", "cancelled")
    project.write_main(PARTIAL_MAIN)
    running = project.start("run", "-f")
    running.wait_for("wrote partial")
    pid = submitted_id("".join(running.err))
    assert project.cli("cancel", pid[:12]).returncode == 0
    code, _, err = running.finish()
    assert code == 1
    assert f"process {pid[:12]} CANCELLED" in err
    # Cancelled on the server at once; the files follow once the executor stopped the job:
    # run -f has them, or says how to fetch them.
    assert "(1 new file)" in err or f"fetch it with `pollinator results {pid[:12]}`" in err
    assert fetched(project, pid).read_text() == "written before the end\n"


@pytest.fixture
def local_project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "local", "process", "")
    yield made
    made.cli("executor", "stop")


def test_stopping_the_local_agent_uploads_what_the_job_wrote(local_project: LocalProject) -> None:
    local_project.write_main(PARTIAL_MAIN)
    running = local_project.start("run", "-f", "--runtime", "process")
    running.wait_for("wrote partial")
    stopped = local_project.cli("executor", "stop", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    code, _, err = running.finish()
    pid = submitted_id(err)
    assert code in (1, 3), err  # closed FAILED, or the agent was gone before the follower saw it
    # The next command starts the agent again; the results went up before the old one stopped.
    assert fetched(local_project, pid).read_text() == "written before the end\n"
