"""The Python API (issue 13, item 15), as a script or notebook uses it: submit with
overrides, stream the output, wait, read how it ended, fetch the results, cancel; on the
local backend with host processes. And the example that ships with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_local import SLOW_MAIN, LocalProject

import pollinator

MAIN = """\
import os, sys
print("args", sys.argv[1:], flush=True)
print("greeting", os.environ.get("GREETING", "-"), flush=True)
with open(os.path.join(os.environ["PROJECT_DIR"], "result", "out.txt"), "w") as f:
    f.write(" ".join(sys.argv[1:]))
sys.exit(int(os.environ.get("EXIT", "0")))
"""
PROCESS = {"local": {"runtime": "process"}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("COLONIES_SERVER_HOST", "COLONIES_COLONY_NAME", "COLONIES_PRVKEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLLINATOR_LOCAL_IDLE", "120")
    made = LocalProject(tmp_path / "demo", "process", "")
    made.write_main(MAIN)
    yield made.root
    made.cli("executor", "stop")


def test_submit_follow_wait_and_fetch(project: Path) -> None:
    run = pollinator.submit(
        project, args=["--lr", "0.1"], env={"GREETING": "hi"}, name="first", settings=PROCESS
    )
    assert len(run.id) == 64 and run.name == "first"
    assert list(run.logs(follow=True)) == ["args ['--lr', '0.1']\n", "greeting hi\n"]
    outcome = run.wait(timeout=60)
    assert outcome.succeeded and outcome.state == "SUCCESS"
    assert (outcome.exit_code, outcome.reason) == (0, pollinator.Reason.EXIT)
    pulled = run.fetch_results()
    assert pulled.directory == project / "cfs" / "result" / run.id
    assert (pulled.directory / "out.txt").read_text() == "--lr 0.1" and pulled.new == 1
    assert list(run.logs(tail=1)) == ["greeting hi\n"]

    again = pollinator.attach(run.id[:10], project)
    assert again.id == run.id and again.outcome() == outcome
    assert [r.id for r in pollinator.runs(project)] == [run.id]


def test_a_failure_says_how_it_ended(project: Path) -> None:
    run = pollinator.submit(project, env={"EXIT": "3"}, settings=PROCESS)
    outcome = run.wait(timeout=60)
    assert (outcome.state, outcome.exit_code, outcome.reason) == (
        "FAILED",
        3,
        pollinator.Reason.EXIT,
    )
    assert outcome.termination is not None and outcome.termination.summary() == "exit code 3"
    assert "greeting -" in outcome.output_tail


def test_cancel_and_wait_with_a_timeout(project: Path) -> None:
    (project / "cfs" / "src" / "main.py").write_text(SLOW_MAIN)
    run = pollinator.submit(project, settings=PROCESS)
    with pytest.raises(TimeoutError):
        run.wait(timeout=0.5)
    assert run.cancel()
    outcome = run.wait(timeout=30)
    assert outcome.state == "CANCELLED" and outcome.reason is pollinator.Reason.CANCELLED
    assert not run.cancel()  # it had ended


def test_bad_overrides_are_usage_errors(project: Path) -> None:
    with pytest.raises(pollinator.UsageError, match=r"--walltime: conditions\.walltime"):
        pollinator.submit(project, walltime="soon", settings=PROCESS)
    with pytest.raises(pollinator.UsageError, match="no plugin has a settings section 'nope'"):
        pollinator.submit(project, settings={"nope": {"x": "1"}})


def test_the_example_sweep_runs(project: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "python_api" / "sweep.py"
    (project / "project.yaml").write_text(
        (project / "project.yaml").read_text().replace("# local:", "local:\n  runtime: process\n#")
    )
    done = subprocess.run(
        [sys.executable, str(example), str(project), "0.1", "0.01"],
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["lr", "0.1", "SUCCESS"],
        ["lr", "0.01", "SUCCESS"],
    ]
