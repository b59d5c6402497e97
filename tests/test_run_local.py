"""``pollinator run --backend local`` end to end, as a user runs it: the CLI in subprocesses on a
project made by ``pollinator new``, on the process runtime and on a real Docker engine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))
RUNTIMES = [pytest.param("process"), pytest.param("docker", marks=pytest.mark.docker)]
SUBMITTED = re.compile(r"submitted process ([0-9a-f]{64})")


class Output:
    """A subprocess's stdout and stderr, read as they come (for tests that react to output)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._pump, args=(proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                into.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, *, stderr: bool = False, timeout: float = 30) -> re.Match[str]:
        lines = self.err if stderr else self.out
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = re.search(pattern, "".join(lines))
                if found:
                    return found
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"no {pattern!r} in {''.join(lines)!r}")
                self._changed.wait(0.1)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code, "".join(self.out), "".join(self.err)


class LocalProject:
    """A project made by `pollinator new`, driven through the CLI."""

    def __init__(self, root: Path, runtime: str, image: str) -> None:
        self.root = root
        self.runtime = runtime
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
        self.env["POLLINATOR_LOCAL_IDLE"] = "120"  # a leaked agent still goes away
        subprocess.run(
            [POLLINATOR, "new", str(root)], env=self.env, check=True, capture_output=True
        )
        if image:
            self.edit_yaml("docker: python:3.12-rc-bookworm", f"docker: {image}")

    def edit_yaml(self, old: str, new: str) -> None:
        path = self.root / "project.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    def write_main(self, code: str) -> None:
        (self.root / "cfs" / "src" / "main.py").write_text(code)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POLLINATOR, *args], cwd=self.root, env=self.env, text=True, capture_output=True,
            timeout=timeout,
        )  # fmt: skip

    def start(self, *args: str) -> Output:
        proc = subprocess.Popen(
            [POLLINATOR, *args], cwd=self.root, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        return Output(proc)

    def run_args(self, *extra: str) -> list[str]:
        return ["run", "--follow", "--runtime", self.runtime, *extra]

    def run_pairs(self, **env: str) -> dict[str, str]:
        """Run once with ``env`` added to this command's environment only; the job prints
        ``NAME value`` lines, returned as a dict."""
        self.env.update(env)
        try:
            done = self.cli(*self.run_args())
        finally:
            for name in env:
                del self.env[name]
        assert done.returncode == 0, done.stderr
        submitted_id(done.stderr)
        return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.fixture(params=RUNTIMES)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalProject]:
    image = request.getfixturevalue("docker_engine").image if request.param == "docker" else ""
    made = LocalProject(tmp_path / "demo", request.param, image)
    yield made
    made.cli("executor", "stop")


def submitted_id(stderr: str) -> str:
    found = SUBMITTED.search(stderr)
    assert found, stderr
    return found.group(1)


def test_the_example_runs_and_its_result_arrives(project: LocalProject) -> None:
    done = project.cli(*project.run_args())
    assert done.returncode == 0, done.stderr
    assert "data/hello.txt says: Hello world!" in done.stdout
    pid = submitted_id(done.stderr)
    result = project.root / "cfs" / "result" / pid / "result.txt"
    assert result.read_text().startswith("Hello world! (from ")
    assert (project.root / "cfs" / "result" / "latest" / "result.txt").read_text() == (
        result.read_text()
    )
    assert f"results: cfs/result/{pid}/ (1 new file)" in done.stderr


def test_a_failing_main_exits_1_and_shows_its_traceback(project: LocalProject) -> None:
    project.write_main("print('about to fail')\nraise ValueError('boom')\n")
    done = project.cli(*project.run_args())
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stdout
    assert "ValueError: boom" in done.stdout
    assert "FAILED: exit code 1" in done.stderr


def test_walltime_stops_the_job(project: LocalProject) -> None:
    project.edit_yaml("walltime: 600", "walltime: 2")
    project.write_main("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n")
    started = time.monotonic()
    done = project.cli(*project.run_args())
    assert done.returncode == 1
    assert "FAILED: walltime exceeded (2 s)" in done.stderr
    assert time.monotonic() - started < 20


SLOW_MAIN = """\
import os, time
print('started', flush=True)
time.sleep(float(os.environ.get('SLEEP', '60')))
result = os.path.join(os.environ['PROJECT_DIR'], 'result', 'result.txt')
open(result, 'w').write(os.environ['COLONIES_PROCESS_ID'])
print('finished', flush=True)
"""


def test_cancel_from_a_second_shell(project: LocalProject) -> None:
    project.write_main(SLOW_MAIN)
    first = project.start(*project.run_args())
    first.wait_for("started")
    pid = submitted_id("".join(first.err))
    second = project.cli("cancel", pid[:8])
    assert second.returncode == 0, second.stderr
    assert f"cancelled process {pid}" in second.stderr
    code, out, err = first.finish()
    assert code == 1
    assert "finished" not in out
    assert f"process {pid[:12]} CANCELLED" in err
    assert project.cli("status", "--json").stdout.count('"CANCELLED"') == 1


def test_three_concurrent_runs_keep_their_results_apart(project: LocalProject) -> None:
    project.write_main(SLOW_MAIN)
    project.edit_yaml("# env:", "env:\n  SLEEP: '1'\n# was env:")
    runs = [project.start(*project.run_args()) for _ in range(3)]
    pids = []
    for run in runs:
        code, out, err = run.finish()
        assert code == 0, err
        assert out.count("finished") == 1
        pids.append(submitted_id(err))
    assert len(set(pids)) == 3
    for pid in pids:
        assert (project.root / "cfs" / "result" / pid / "result.txt").read_text() == pid


@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_ctrl_c_detaches_and_logs_f_reattaches(
    project: LocalProject, stop: signal.Signals, code: int
) -> None:
    project.write_main(SLOW_MAIN)
    # Long enough that a loaded machine still interrupts the job while it runs.
    project.edit_yaml("# env:", "env:\n  SLEEP: '8'\n# was env:")
    first = project.start(*project.run_args())
    first.wait_for("started")
    first.proc.send_signal(stop)
    exit_code, _, err = first.finish()
    pid = submitted_id(err)
    assert exit_code == code
    assert f"re-attach: pollinator logs -f {pid[:12]}" in err
    assert f"cancel:    pollinator cancel {pid[:12]}" in err
    again = project.cli("logs", "-f", pid[:12])
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["started", "finished"]  # the job went on meanwhile
    results = project.cli("results")
    assert results.returncode == 0, results.stderr
    assert (project.root / "cfs" / "result" / pid / "result.txt").read_text() == pid


@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)], ids=["ctrl-c", "sighup"]
)
def test_ctrl_c_cancels_when_asked(project: LocalProject, stop: signal.Signals, code: int) -> None:
    project.write_main(SLOW_MAIN)
    first = project.start(*project.run_args("--cancel-on-interrupt"))
    first.wait_for("started")
    first.proc.send_signal(stop)
    exit_code, _, err = first.finish()
    assert exit_code == code
    assert "interrupted: cancelled process" in err
    deadline = time.monotonic() + 10
    while '"CANCELLED"' not in project.cli("status", "--json").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
