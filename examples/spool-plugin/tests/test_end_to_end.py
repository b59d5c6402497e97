"""The installed plugin, end to end, through Pollinator's own command line: listed by
`pollinator plugins`, rendered by `pollinator run --dry-run`, and running the example that
`pollinator new` generates through `pollinator executor start --type spool` against a
simulator of the Colonies server (the kit's ``pollinator_sim`` fixture)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Spool

from pollinator_core.testing import SimColony

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))


def pollinator(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the pollinator command; its result (stdout and stderr as text)."""
    return subprocess.run(
        [POLLINATOR, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The example project `pollinator new` generates."""
    done = pollinator("new", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "demo"


def test_pollinator_lists_the_plugin(tmp_path: Path) -> None:
    done = pollinator("plugins", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spool = next(p for p in json.loads(done.stdout) if p["name"] == "spool")
    assert spool["distribution"] == "pollinator-spool"
    assert spool["executor_types"] == ["spool"]
    assert spool["backends"] == ["spool"]
    assert [row[0] for row in spool["settings"]["spool"]] == ["dir", "heartbeat_timeout"]


def test_the_dry_run_shows_the_files_a_job_is_submitted_as(demo: Path, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    done = pollinator(
        "run", "--dry-run", "--backend", "spool", "-s", f"spool.dir={spool}", cwd=demo
    )
    assert done.returncode == 0, done.stderr
    assert f"{spool}/jobs/pln-" in done.stdout
    assert "pollinator_exit_record" in done.stdout  # the wrapper
    assert "python3 " in done.stdout and "/src/main.py" in done.stdout  # the command
    assert not spool.exists(), "a dry run wrote into the spool"


@pytest.fixture
def executor(pollinator_sim: SimColony, spool: Spool, tmp_path: Path) -> Iterator[Path]:
    """`pollinator executor start --type spool` serving the simulator's colony (it registers
    itself with the colony owner's key); the file storage it and the user share."""
    storage = tmp_path / "storage"
    storage.mkdir()
    log = tmp_path / "executor.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                POLLINATOR,
                "executor",
                "start",
                "--type",
                "spool",
                "--name",
                "spool-executor",
                "-s",
                f"dir={spool.root}",
                "--storage",
                f"file://{storage}",
                "--fs-dir",
                str(tmp_path / "executor"),
            ],
            env={**os.environ, **pollinator_sim.env()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    yield storage
    os.kill(process.pid, signal.SIGTERM)
    try:
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_the_generated_example_runs_on_the_spool(
    pollinator_sim: SimColony, executor: Path, demo: Path
) -> None:
    user_env = {**pollinator_sim.env(), "POLLINATOR_STORAGE": f"file://{executor}"}
    done = pollinator("run", "--backend", "colonies", "--follow", cwd=demo, env=user_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data/hello.txt says: Hello world!" in done.stdout
    assert "succeeded" in done.stderr
    result = demo / "cfs" / "result" / "latest" / "result.txt"
    assert result.read_text().startswith("Hello world! (from ")
