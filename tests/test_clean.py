"""`pollinator clean` (issue 13, item 14): old runs' results here and on the server, snapshots
no run uses, unreferenced objects and the executor's staged copies go; the newest runs, runs in
flight and everything they refer to stay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.components import S3Server
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_colonies import colonies_env
from test_run_local import POLLINATOR, SLOW_MAIN, LocalProject, Output, submitted_id


def new_data(project: LocalProject, files: int = 20, size: int = 50_000) -> None:
    """Fresh random data: each run's data objects differ, and the old ones become garbage."""
    for i in range(files):
        (project.root / "cfs" / "data" / f"f{i}.bin").write_bytes(os.urandom(size))


def store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


@pytest.fixture
def project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    yield made
    made.cli("executor", "stop")


def run_ok(project: LocalProject, *args: str) -> str:
    done = project.cli(*project.run_args(*args))
    assert done.returncode == 0, done.stderr
    return submitted_id(done.stderr)


def test_clean_keeps_the_newest_runs_and_what_they_need(project: LocalProject) -> None:
    local = project.root / ".pollinator" / "local"
    pids = []
    for _ in range(3):
        new_data(project)
        pids.append(run_ok(project))
    before = store_bytes(local / "storage")
    assert before > 3 * 20 * 50_000  # three generations of data

    dry = project.cli("clean", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 old run(s): 2 result folder(s) here" in dry.stderr
    assert "would remove 40 unreferenced object(s) from the store (2.0 MB)" in dry.stderr
    assert store_bytes(local / "storage") == before  # a dry run removes nothing
    assert all((project.root / "cfs" / "result" / pid).is_dir() for pid in pids)

    done = project.cli("clean", "--keep", "1")
    assert done.returncode == 0, done.stderr
    assert "removed 2 old run(s)" in done.stderr
    assert store_bytes(local / "storage") <= before - 2 * 20 * 50_000  # the old data
    assert [r["id"] for r in json.loads(project.cli("ps", "--json").stdout)] == [pids[2]]
    assert not (project.root / "cfs" / "result" / pids[0]).exists()
    assert os.readlink(project.root / "cfs" / "result" / "latest") == pids[2]
    assert not [p for p in (local / "executor" / ".objects").rglob("*") if p.is_file()]

    # What stays is whole: the kept run's results come back, and a new run finds its data.
    (project.root / "cfs" / "result" / pids[2] / "result.txt").unlink()
    assert project.cli("results", pids[2][:12]).returncode == 0
    assert (project.root / "cfs" / "result" / pids[2] / "result.txt").is_file()
    run_ok(project)
    again = project.cli("clean", "--keep", "5", "--dry-run")
    assert "unreferenced" not in again.stderr and "old run" not in again.stderr


def test_a_run_in_flight_is_never_cleaned(project: LocalProject) -> None:
    run_ok(project)
    project.write_main(SLOW_MAIN)
    project.edit_yaml("# env:", "env:\n  SLEEP: '4'\n# was env:")
    going = project.cli("run", "--runtime", "process").stdout.strip()
    done = project.cli("clean", "--keep", "0")
    assert done.returncode == 0, done.stderr
    assert "removed 1 old run(s)" in done.stderr
    assert [r["id"] for r in json.loads(project.cli("ps", "--json").stdout)] == [going]
    follow = project.cli("logs", "-f", going[:12])
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.splitlines() == ["started", "finished"]
    assert project.cli("results", going[:12]).returncode == 0
    assert (project.root / "cfs" / "result" / going / "result.txt").read_text() == going


RESULT_MAIN = """\
import os, time
open(os.environ["PROJECT_DIR"] + "/result/r.txt", "w").write(str(time.time_ns()))
"""


@pytest.mark.s3
def test_clean_objects_on_s3_removes_only_what_it_freed_itself(
    sim_colony: SimColony,  # noqa: F811
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    import boto3

    # A prefix of the test's own: nothing beside it in the shared bucket is ever looked at.
    prefix = f"clean-test-{os.getpid()}-{time.time_ns()}"
    env = {**colonies_env(sim_colony, tmp_path / "unused"), **s3_server.env()}
    env["POLLINATOR_STORAGE"] = f"s3://{s3_server.bucket}/{prefix}"
    daemon = Output(
        subprocess.Popen(
            [
                POLLINATOR,
                "executor",
                "start",
                "--runtime",
                "process",
                "--name",
                "s3-clean",
                "--fs-dir",
                str(tmp_path / "fs"),
            ],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    )
    daemon.wait_for("serving colony test", stderr=True)
    project = LocalProject(tmp_path / "demo", "process", "")
    project.env = env
    project.write_main(RESULT_MAIN)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )

    def keys() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=s3_server.bucket, Prefix=prefix + "/"
        )
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    try:
        for _ in range(2):
            done = project.cli("run", "-f")
            assert done.returncode == 0, done.stderr
        before = keys()
        without = project.cli("clean", "--keep", "0")
        assert without.returncode == 0, without.stderr
        assert "removed 2 old run(s)" in without.stderr
        assert keys() == before  # a shared store is swept only when asked
        # Both runs' result objects are unreferenced now, but younger than the grace: kept.
        swept = project.cli("clean", "--objects")
        assert swept.returncode == 0, swept.stderr
        assert keys() == before and "unreferenced" not in swept.stderr

        done = project.cli("run", "-f")
        assert done.returncode == 0, done.stderr
        before = keys()
        freed = project.cli("clean", "--keep", "0", "--objects")
        assert freed.returncode == 0, freed.stderr
        # The clean freed this run's result object itself: that one goes at once.
        assert len(before - keys()) == 1
        assert "removed 1 unreferenced object(s) from the store" in freed.stderr
        data = project.cli("sync", "--dry-run", "src", "data")
        assert data.returncode == 0 and "upload" not in data.stdout  # src and data intact
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.finish()
        gone = [{"Key": key} for key in keys()]
        if gone:
            s3.delete_objects(Bucket=s3_server.bucket, Delete={"Objects": gone})
