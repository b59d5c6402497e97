"""Lifecycle commands on the local backend: ps, status, logs, results, executors, ID prefixes,
and what happens to a run whose local agent died."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_local import SLOW_MAIN, LocalProject, submitted_id

from pollinator_core.executor.loop import LOST_ORPHAN


@pytest.fixture
def project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    yield made
    made.cli("executor", "stop")


def run_ok(project: LocalProject) -> str:
    done = project.cli("run", "-f", "--runtime", "process")
    assert done.returncode == 0, done.stderr
    return submitted_id(done.stderr)


def test_ps_status_logs_results_and_executors(project: LocalProject) -> None:
    first, second = run_ok(project), run_ok(project)
    runs = json.loads(project.cli("ps", "--json").stdout)
    assert [r["id"] for r in runs] == [second, first]  # newest first
    assert {r["state"] for r in runs} == {"SUCCESS"}
    assert all(r["executor"] == "local-docker" and r["duration"] >= 0 for r in runs)
    table = project.cli("ps").stdout
    assert "ID" in table and first[:12] in table and "SUCCESS" in table

    status = json.loads(project.cli("status", "--json", first[:6]).stdout)
    assert (status["id"], status["state"], status["backend"]) == (first, "SUCCESS", "local")
    assert "state:     SUCCESS" in project.cli("status").stdout  # the latest run

    logs = project.cli("logs", first[:8])
    assert "data/hello.txt says: Hello world!" in logs.stdout

    result = project.root / "cfs" / "result" / first / "result.txt"
    result.unlink()
    fetched = project.cli("results", first[:8])
    assert fetched.returncode == 0, fetched.stderr
    assert result.read_text().startswith("Hello world!")
    # Fetching an older run's results again does not make it the latest (issue 13, item 9).
    assert os.readlink(project.root / "cfs" / "result" / "latest") == second

    executors = json.loads(project.cli("executors", "--json").stdout)
    assert [(e["name"], e["type"], e["state"]) for e in executors] == [
        ("local-docker", "container-executor", "APPROVED")
    ]
    assert executors[0]["last_heard_from"] > time.time() - 60
    assert "LAST HEARD FROM" in project.cli("executors").stdout


def test_ids_that_match_nothing_or_several_runs_are_usage_errors(project: LocalProject) -> None:
    assert "no runs yet" in project.cli("status").stderr
    run_ok(project)
    missing = project.cli("logs", "zzzz")
    assert missing.returncode == 2
    assert "No run of this project has an ID starting with 'zzzz'" in missing.stderr
    run_ok(project)
    ambiguous = project.cli("status", "")
    assert ambiguous.returncode == 2
    assert "matches several runs" in ambiguous.stderr


def test_run_without_follow_returns_at_once_and_the_job_goes_on(project: LocalProject) -> None:
    project.write_main(SLOW_MAIN)
    project.edit_yaml("# env:", "env:\n  SLEEP: '1'\n# was env:")
    started = time.monotonic()
    done = project.cli("run", "--runtime", "process")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    pid = submitted_id(done.stderr)
    assert f"pollinator logs -f {pid[:12]}" in done.stderr
    follow = project.cli("logs", "-f")
    assert follow.returncode == 0
    assert follow.stdout.splitlines() == ["started", "finished"]


def test_a_run_whose_agent_died_is_closed_failed_not_left_running(project: LocalProject) -> None:
    project.write_main(SLOW_MAIN)
    project.edit_yaml("# env:", "env:\n  SLEEP: '5'\n# was env:")  # the orphaned job ends soon
    first = project.start("run", "-f", "--runtime", "process")
    first.wait_for("started")
    agent = json.loads((project.root / ".pollinator" / "local" / "agent.json").read_text())
    os.kill(agent["pid"], signal.SIGKILL)  # the agent dies with the job in its hands
    code, _, err = first.finish()
    assert code == 3  # the server went away: infrastructure
    pid = submitted_id(err)
    # `status` starts a new agent, which takes the process back and, its job gone, closes it.
    deadline = time.monotonic() + 20
    while (status := json.loads(project.cli("status", "--json", pid[:12]).stdout))[
        "state"
    ] == "RUNNING":
        assert time.monotonic() < deadline, "the orphan is still RUNNING after 20 s"
        time.sleep(0.2)
    assert status["state"] == "FAILED"
    assert status["errors"][0] == f"lost ({LOST_ORPHAN})"


def test_cancel_on_interrupt_needs_follow(project: LocalProject) -> None:
    done = project.cli("run", "--cancel-on-interrupt")
    assert done.returncode == 2
    assert "--cancel-on-interrupt only applies with --follow" in done.stderr
