"""Per-run overrides and scripting (issue 13, items 12 and 13), as a user runs them: arguments
after `--`, --env, --walltime, --cpu, --mem, --gpus and --name, checked as project.yaml's keys
are; `ID=$(pollinator run)`, run --json, ps with name, exit code, reason and --state, logs
--tail, cancel ID... and cancel --all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_local import SLOW_MAIN, LocalProject

ECHO_MAIN = """\
import os, sys
print("args", sys.argv[1:])
print("env", os.environ.get("GREETING", "-"))
for i in range(5):
    print("line", i)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    made.write_main(ECHO_MAIN)
    yield made
    made.cli("executor", "stop")


def dry_spec(project: LocalProject, *options: str) -> dict[str, object]:
    done = project.cli("run", "--dry-run", "--json", *options)
    assert done.returncode == 0, done.stderr
    spec: dict[str, object] = json.loads(done.stdout)["spec"]
    return spec


def test_overrides_change_the_spec_of_this_run_only(project: LocalProject) -> None:
    spec = dry_spec(
        project,
        "--walltime", "90m", "--cpu", "0.5", "--mem", "2Gi", "--gpus", "1",
        "-e", "GREETING=hi there", "--env", "EMPTY=",
        "--", "--lr", "0.1", "two words",
    )  # fmt: skip
    kwargs, conditions = spec["kwargs"], spec["conditions"]
    assert isinstance(kwargs, dict) and isinstance(conditions, dict)
    assert kwargs["args"][1:] == ["--lr", "0.1", "two words"]
    assert kwargs["walltime"] == 5400
    assert (conditions["cpu"], conditions["mem"], conditions["gpu"]["count"]) == (
        "500m",
        "2048Mi",
        1,
    )
    assert spec["env"]["GREETING"] == "hi there" and spec["env"]["EMPTY"] == ""  # type: ignore[index]
    # project.yaml itself is untouched: the next run has its values again.
    plain = dry_spec(project)
    assert plain["kwargs"]["args"][1:] == [] and plain["kwargs"]["walltime"] == 600  # type: ignore[index]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--walltime", "99x"], "--walltime: conditions.walltime: "),
        (["--walltime", "0"], "--walltime: conditions.walltime: it is '0', but must be more"),
        (["--cpu", "lots"], "--cpu: conditions.cpu: "),
        (["--mem", "0"], "--mem: conditions.mem: "),
        (["--gpus", "-1"], "--gpus: conditions.gpu.count is -1, but must be at least 0"),
        (["--gpus", "two"], "--gpus: conditions.gpu.count must be a whole number"),
        (["--env", "1BAD=x"], "--env: env name '1BAD' is not a valid environment variable name"),
        (["--env", "PROJECT_DIR=/x"], "--env: env.PROJECT_DIR is set by Pollinator"),
        (["--env", "NOVALUE"], "--env 'NOVALUE': write NAME=VALUE"),
        (["--cpu", "5m"], "--cpu: conditions.cpu: it is '5m', but must be at least 10m"),
        (["--walltime", "99999999999"], "--walltime: walltime + maxqueuetime is "),
        (
            [arg for i in range(9) for arg in ("--env", f"BIG{i}=" + "x" * 120_000)],
            "--env: env is 1080045 bytes in all (NAME=value), but at most 1048576",
        ),
        (["--name", ""], "a run's name is 1 to 64 printable characters"),
        (["stray"], "Got unexpected extra argument (stray)"),
    ],
)
def test_bad_overrides_are_refused_as_project_yaml_refuses_them(
    project: LocalProject, options: list[str], message: str
) -> None:
    done = project.cli("run", "--dry-run", *options)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_id_on_stdout_json_ps_and_logs_tail(project: LocalProject) -> None:
    submitted = project.cli("run", "--name", "first try", "--", "a", "b c")
    assert submitted.returncode == 0, submitted.stderr
    pid = submitted.stdout.strip()
    assert submitted.stdout == pid + "\n" and len(pid) == 64  # ID=$(pollinator run) works
    assert f"submitted process {pid}" in submitted.stderr

    followed = project.cli("logs", "-f", pid[:12])
    assert followed.returncode == 0
    assert "args ['a', 'b c']" in followed.stdout
    tail = project.cli("logs", "--tail", "2", pid[:12])
    assert tail.stdout.splitlines() == ["line 3", "line 4"]

    failed = project.cli("run", "-f", "--json", "-e", "EXIT=3", "--runtime", "process")
    assert failed.returncode == 1
    report = json.loads(failed.stdout)  # stdout is the one JSON object; the output went to stderr
    assert "line 4" in failed.stderr
    assert (report["state"], report["exit_code"], report["reason"]) == ("FAILED", 3, "exit")
    assert report["results"].endswith(report["id"])

    walled = project.cli("run", "-f", "--walltime", "1", "-e", "EXIT=0", "--name", "slow", "--")
    assert walled.returncode == 0  # fast enough for its walltime: a success
    project.write_main(SLOW_MAIN)
    slow = project.cli("run", "-f", "--walltime", "1", "--name", "too slow")
    assert slow.returncode == 1

    rows = json.loads(project.cli("ps", "--json").stdout)
    assert [(r["name"], r["state"], r["exit_code"], r["reason"]) for r in rows] == [
        ("too slow", "FAILED", 143, "walltime"),
        ("slow", "SUCCESS", 0, "exit"),
        ("", "FAILED", 3, "exit"),
        ("first try", "SUCCESS", 0, "exit"),
    ]
    failed_only = json.loads(project.cli("ps", "--json", "--state", "failed").stdout)
    assert [r["name"] for r in failed_only] == ["too slow", ""]
    table = project.cli("ps").stdout.splitlines()
    assert table[0].split() == [
        "ID", "NAME", "STATE", "EXIT", "REASON", "SUBMITTED", "DURATION", "EXECUTOR"
    ]  # fmt: skip
    assert table[1].split()[1:6] == ["too", "slow", "FAILED", "143", "walltime"]
    status = project.cli("status").stdout.splitlines()  # the latest run: in words, no record
    assert "name:      too slow" in status and "exit code: 143" in status
    assert "reason:    walltime" in status and not [s for s in status if "termination {" in s]
    none = project.cli("ps", "--state", "running")
    assert none.returncode == 0 and "No RUNNING runs" in none.stderr


def test_cancel_several_by_id_and_all(project: LocalProject) -> None:
    project.write_main(SLOW_MAIN)
    ids = [project.cli("run", "--runtime", "process").stdout.strip() for _ in range(3)]
    done = project.cli("cancel", ids[0][:10], ids[1][:10])
    assert done.returncode == 0, done.stderr
    assert f"cancelled process {ids[0]}" in done.stderr
    assert f"cancelled process {ids[1]}" in done.stderr
    every = project.cli("cancel", "--all")
    assert every.returncode == 0, every.stderr
    assert every.stderr.count("cancelled process") == 1 and ids[2] in every.stderr
    deadline = time.monotonic() + 20
    while {r["state"] for r in json.loads(project.cli("ps", "--json").stdout)} != {"CANCELLED"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert project.cli("cancel").returncode == 2  # neither IDs nor --all
    again = project.cli("cancel", ids[0][:10])
    assert again.returncode == 0 and "already ended (CANCELLED)" in again.stderr
