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
import time
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


class Executors:
    """`pollinator executor start --type spool` processes serving the simulator's colony (each
    registers itself with the colony owner's key), all with the same name and directory, and
    the file storage they and the user share."""

    def __init__(self, sim: SimColony, spool: Spool, tmp_path: Path) -> None:
        self.sim, self.spool, self.tmp_path = sim, spool, tmp_path
        self.storage = tmp_path / "storage"
        self.storage.mkdir()
        self.log = tmp_path / "executor.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, fs_dir: str = "executor") -> subprocess.Popen[bytes]:
        argv = [POLLINATOR, "executor", "start", "--type", "spool", "--name", "spool-executor"]
        argv += ["-s", f"dir={self.spool.root}", "--storage", f"file://{self.storage}"]
        argv += ["--fs-dir", str(self.tmp_path / fs_dir)]
        with open(self.log, "ab") as out:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **self.sim.env()},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, as a service manager stops it; it must exit cleanly."""
        os.kill(process.pid, signal.SIGTERM)
        try:
            assert process.wait(30) == 0, self.log.read_text()
        finally:
            if process.poll() is None:
                process.kill()

    def user_env(self) -> dict[str, str]:
        return {**self.sim.env(), "POLLINATOR_STORAGE": f"file://{self.storage}"}


@pytest.fixture
def executors(pollinator_sim: SimColony, spool: Spool, tmp_path: Path) -> Iterator[Executors]:
    started = Executors(pollinator_sim, spool, tmp_path)
    yield started
    for process in started.processes:
        if process.poll() is None:
            started.stop(process)


@pytest.mark.parametrize("fs_dir", ["executor", "exec dir;echo INJECTED $HOME ü"])
def test_the_generated_example_runs_on_the_spool(
    executors: Executors, demo: Path, fs_dir: str
) -> None:
    """Also from an executor directory a shell would split and interpret: the job reaches it
    through a link, and nothing of its name runs."""
    executors.start(fs_dir)
    user_env = executors.user_env()
    done = pollinator("run", "--backend", "colonies", "--follow", cwd=demo, env=user_env)
    assert done.returncode == 0, done.stdout + done.stderr + executors.log.read_text()
    assert "data/hello.txt says: Hello world!" in done.stdout
    assert "succeeded" in done.stderr
    result = demo / "cfs" / "result" / "latest" / "result.txt"
    assert result.read_text().startswith("Hello world! (from ")
    assert "INJECTED" not in done.stdout


def test_a_restarted_executor_takes_its_running_job_back(executors: Executors, demo: Path) -> None:
    """SIGTERM leaves a spool job running (the runtime is detached); the next executor with the
    same name and directory re-attaches to it: the whole output, once, and its exit code."""
    (demo / "cfs" / "src" / "main.py").write_text(
        "import sys, time\n"
        "for i in range(1, 9):\n"
        "    print('step', i, flush=True)\n"
        "    time.sleep(0.5)\n"
        "sys.exit(3)\n"
    )
    first = executors.start()
    env = executors.user_env()
    submitted = pollinator("run", "--backend", "colonies", cwd=demo, env=env)
    assert submitted.returncode == 0, submitted.stderr
    pid = submitted.stdout.strip() or submitted.stderr.split("submitted process ")[1].split()[0]
    deadline = time.monotonic() + 30
    while "step 2" not in (logs := pollinator("logs", pid, cwd=demo, env=env).stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    executors.stop(first)
    assert "1 job(s) left running" in executors.log.read_text()
    executors.start()
    done = pollinator("logs", "-f", pid, cwd=demo, env=env)
    steps = [line for line in done.stdout.splitlines() if line.startswith("step")]
    assert steps == [f"step {i}" for i in range(1, 9)], done.stdout
    assert "re-attached to job pln-" in done.stdout + done.stderr
    status = json.loads(pollinator("status", "--json", pid, cwd=demo, env=env).stdout)
    assert (status["state"], status["errors"][0]) == ("FAILED", "exit code 3"), status
