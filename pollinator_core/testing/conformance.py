"""The runtime contract as tests: subclass :class:`RuntimeConformance` and your runtime is
checked the way the executor loop relies on it.

::

    from pollinator_core.testing import RuntimeConformance

    class TestMyRuntime(RuntimeConformance):
        def make_runtime(self, request):
            return MyRuntime(...)

        def leftovers(self, runtime, handle, job):
            return [f"job dir {d}" for d in SPOOL.glob(job.name)]

That is all: pytest collects the inherited tests (exit codes 0, N and a signal; output as
whole lines, in order, with unicode, a long line and no final newline; streaming; the job's
environment without the executor's secrets; mounts both ways and the working directory;
walltime; cancel, twice; cleanup; and for runtimes whose jobs outlive the executor
(``detached``), adoption by a second runtime instance, with the output resumed at a byte offset).

Class attributes tune it to your runtime: :attr:`image` for container runtimes, :attr:`walltime`
for schedulers that count in minutes, :attr:`slack` for those that take a while to start a job.
Override :meth:`host_dir` when jobs cannot see the test's temporary directory (a batch cluster
needs a shared one), and :meth:`job` to add fields every job of yours needs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pollinator_core.execution.job import Job, Mount
from pollinator_core.execution.lines import LineAssembler
from pollinator_core.execution.runtime import Runtime
from pollinator_core.execution.termination import Reason, Termination
from pollinator_core.testing.jobs import follow_job, run_job

#: variables an executor may hold that no job may see (their values are fakes)
EXECUTOR_SECRETS = (
    "COLONIES_PRVKEY",
    "COLONIES_COLONY_PRVKEY",
    "AWS_S3_ACCESSKEY",
    "AWS_S3_SECRETKEY",
    "POLLINATOR_STORAGE",
    "EXECUTOR_FS_DIR",
)
#: a value with spaces, quotes and shell syntax: it must reach the job verbatim
AWKWARD_VALUE = "hej då $HOME 'quoted' \"double\" `date` ; exit 9"
#: longer than a pipe's buffer, shorter than the loop's longest line (64 KiB)
LONG_LINE = 50_000


def _printenv(names: list[str]) -> str:
    return "; ".join(f"printf '%s=%s\\n' {name} \"${{{name}-unset}}\"" for name in names)


class RuntimeConformance:
    """The contract of :class:`pollinator_core.api.Runtime`, as inherited tests."""

    #: the image jobs name (container runtimes need one; "" for the others)
    image: str = ""
    #: the walltime, in seconds, the walltime test gives its job
    walltime: int = 1
    #: seconds a job may take beyond what it asks for: starting, polling, the kill grace
    slack: float = 20.0

    # --- what a subclass provides -------------------------------------------------------

    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        """A new instance of the runtime under test (called once per test, twice for the
        adoption tests). ``request`` gives access to other fixtures
        (``request.getfixturevalue("tmp_path")``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_runtime()")

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        """What the job left behind after :meth:`Runtime.cleanup` (processes, containers,
        scheduler jobs, files), in words; the cleanup test expects none."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement leftovers(runtime, handle, job): what of "
            "the job still exists after cleanup(handle) (empty when nothing)"
        )

    def host_dir(self, tmp_path: Path) -> Path:
        """A directory on this machine that jobs can mount (a shared one for a cluster)."""
        return tmp_path

    def job(self, command: str, **fields: Any) -> Job:
        """A job running ``command``, with a fresh process id and :attr:`image`."""
        fields.setdefault("image", self.image)
        fields.setdefault("process_id", uuid.uuid4().hex * 2)
        return Job(command=command, **fields)

    # --- fixtures -----------------------------------------------------------------------

    @pytest.fixture
    def executor_secrets(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
        """The executor's environment holds secrets, as a real one does, before the runtime
        is made: a runtime that copies its environment into jobs is caught."""
        values = {name: f"secret-{uuid.uuid4().hex[:8]}" for name in EXECUTOR_SECRETS}
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return values

    @pytest.fixture
    def conformance_runtime(
        self, request: pytest.FixtureRequest, executor_secrets: dict[str, str]
    ) -> Iterator[Runtime]:
        runtime = self.make_runtime(request)
        yield runtime
        runtime.close()

    # --- exit codes -----------------------------------------------------------------------

    def test_exit_code_0_is_success(self, conformance_runtime: Runtime) -> None:
        run = run_job(conformance_runtime, self.job("echo ok"), timeout=self.slack)
        assert run.termination.succeeded, run.termination
        assert (run.termination.reason, run.termination.exit_code) == (Reason.EXIT, 0)
        assert run.termination.signal is None
        assert run.lines == ["ok\n"]

    def test_exit_code_n_is_reported(self, conformance_runtime: Runtime) -> None:
        run = run_job(conformance_runtime, self.job("echo failing; exit 3"), timeout=self.slack)
        assert (run.termination.reason, run.termination.exit_code) == (Reason.EXIT, 3)
        assert not run.termination.succeeded
        assert run.termination.summary() == "exit code 3"
        assert run.lines == ["failing\n"]

    def test_a_job_killed_by_a_signal_says_which(self, conformance_runtime: Runtime) -> None:
        run = run_job(conformance_runtime, self.job("echo bye; kill -KILL $$"), timeout=self.slack)
        assert run.termination.exit_code == 137, run.termination
        assert run.termination.signal == 9
        assert not run.termination.succeeded
        assert run.lines == ["bye\n"]

    # --- output -----------------------------------------------------------------------------

    def test_output_arrives_in_whole_lines_in_order(self, conformance_runtime: Runtime) -> None:
        command = (
            'i=1; while [ "$i" -le 300 ]; do echo "line $i"; i=$((i + 1)); done; '
            "echo 'grüße 🐝 ✓'; echo 'to stderr' >&2; "
            f"head -c {LONG_LINE} /dev/zero | tr '\\000' x; echo; "
            "printf 'no newline at the end'"
        )
        run = run_job(conformance_runtime, self.job(command), timeout=self.slack)
        expected = [f"line {i}\n" for i in range(1, 301)]
        expected += ["grüße 🐝 ✓\n", "to stderr\n", "x" * LONG_LINE + "\n", "no newline at the end"]
        assert run.termination.succeeded, run.termination
        assert run.lines == expected

    def test_output_streams_while_the_job_runs(self, conformance_runtime: Runtime) -> None:
        run = run_job(
            conformance_runtime, self.job("echo now; sleep 3; echo later"), timeout=self.slack
        )
        assert run.lines == ["now\n", "later\n"]
        (first, _), (last, _) = run.timed_lines
        assert last - first > 1.5, "the first line came only with the last: output is not streamed"

    # --- environment and files ----------------------------------------------------------------

    def test_environment_has_the_job_env_and_no_executor_secrets(
        self, conformance_runtime: Runtime
    ) -> None:
        pid = uuid.uuid4().hex * 2
        job = self.job(
            _printenv(["GREETING", "COLONIES_PROCESS_ID", "PYTHONUNBUFFERED", *EXECUTOR_SECRETS]),
            process_id=pid,
            env={"GREETING": AWKWARD_VALUE, "COLONIES_PROCESS_ID": pid},
        )
        run = run_job(conformance_runtime, job, timeout=self.slack)
        assert run.termination.succeeded, run.termination
        seen = dict(line.rstrip("\n").split("=", 1) for line in run.lines)
        assert seen["GREETING"] == AWKWARD_VALUE
        assert seen["COLONIES_PROCESS_ID"] == job.process_id
        assert seen["PYTHONUNBUFFERED"] == "1", "job_env(job) sets it: Python output streams"
        leaked = [name for name in EXECUTOR_SECRETS if seen[name] != "unset"]
        assert not leaked, f"the executor's private variables reached the job: {leaked}"

    def test_mounts_carry_files_both_ways(
        self, conformance_runtime: Runtime, tmp_path: Path
    ) -> None:
        host = self.host_dir(tmp_path) / "cfs"
        (host / "p" / "data").mkdir(parents=True)
        (host / "p" / "data" / "in.txt").write_text("from the host\n")
        command = (
            'cat "$PROJECT_DIR/data/in.txt"; mkdir -p "$PROJECT_DIR/result"; '
            'echo "from the job" > "$PROJECT_DIR/result/out.txt"; echo here > relative.txt'
        )
        job = self.job(
            command,
            env={"PROJECT_DIR": "/cfs/p"},
            mounts=(Mount(str(host), "/cfs"),),
            workdir="/cfs/p",
        )
        run = run_job(conformance_runtime, job, timeout=self.slack)
        assert run.termination.succeeded, (run.termination, run.lines)
        assert run.lines == ["from the host\n"]
        assert (host / "p" / "result" / "out.txt").read_text() == "from the job\n"
        assert (host / "p" / "relative.txt").read_text() == "here\n", "workdir was not used"

    # --- limits and stopping ------------------------------------------------------------------

    def test_walltime_ends_the_job_with_reason_walltime(self, conformance_runtime: Runtime) -> None:
        job = self.job("echo start; sleep 600", walltime=self.walltime)
        run = run_job(conformance_runtime, job, timeout=self.walltime + self.slack)
        assert run.termination.reason is Reason.WALLTIME, run.termination
        assert run.lines == ["start\n"]
        assert run.seconds >= self.walltime * 0.9, "stopped before its walltime"

    def test_cancel_stops_the_job_and_twice_is_harmless(self, conformance_runtime: Runtime) -> None:
        cancelled: list[float] = []
        why = Termination(Reason.CANCELLED, detail="by the conformance test")

        def cancel(handle: str, line: str) -> None:
            if line == "ready\n":
                cancelled.append(time.monotonic())
                conformance_runtime.cancel(handle, why)
                conformance_runtime.cancel(handle, Termination(Reason.LOST, detail="again"))

        # The job ignores SIGTERM: only the kill after the grace ends it.
        job = self.job("trap '' TERM; echo ready; sleep 600; echo never")
        run = run_job(conformance_runtime, job, timeout=2 * self.slack, on_line=cancel)
        assert cancelled, "the job never printed its first line"
        assert time.monotonic() - cancelled[0] < self.slack
        assert run.termination.reason is Reason.CANCELLED, run.termination
        assert run.termination.detail == why.detail, "a second cancel changed the record"
        assert run.lines == ["ready\n"]

    def test_cleanup_leaves_nothing_behind(self, conformance_runtime: Runtime) -> None:
        job = self.job("sleep 600 & echo main done")
        handle = conformance_runtime.submit(job)
        try:
            run = follow_job(conformance_runtime, handle, timeout=self.slack)
        finally:
            conformance_runtime.cleanup(handle)
        # The job is its main process: a background child neither keeps it going nor
        # outlives it.
        assert run.termination.succeeded, run.termination
        assert run.lines == ["main done\n"]
        assert not self.leftovers(conformance_runtime, handle, job)

    # --- adoption ---------------------------------------------------------------------------

    def test_find_knows_no_job_that_was_never_submitted(self, conformance_runtime: Runtime) -> None:
        assert conformance_runtime.find(self.job("echo never submitted")) is None

    @staticmethod
    def _require_detached(runtime: Runtime) -> None:
        if not runtime.detached:
            pytest.skip(f"{type(runtime).__name__} is not detached: its jobs end with the executor")

    def test_a_running_job_is_adopted_and_its_output_resumes_at_the_offset(
        self, conformance_runtime: Runtime, request: pytest.FixtureRequest
    ) -> None:
        command = 'i=1; while [ "$i" -le 8 ]; do echo "line $i"; sleep 0.4; i=$((i + 1)); done'
        self._require_detached(conformance_runtime)
        job = self.job(command + "; exit 5")
        handle = conformance_runtime.submit(job)
        assembler = LineAssembler()
        first: list[str] = []
        offset = 0
        stream = conformance_runtime.logs(handle)
        for item in stream:
            if isinstance(item, bytes):
                first += assembler.feed(item)
                offset += len(item)
            if len(first) >= 2:
                break
        if isinstance(stream, Generator):
            stream.close()
        offset -= assembler.pending  # resume after the last whole line, as the loop's journal
        conformance_runtime.close()  # the first executor stops; its job goes on
        second = self.make_runtime(request)
        try:
            found = second.find(job)
            assert found is not None, "a second runtime instance cannot find the running job"
            try:
                run = follow_job(second, found, offset=offset, timeout=self.slack)
            finally:
                second.cleanup(found)
        finally:
            second.close()
        assert first + run.lines == [f"line {i}\n" for i in range(1, 9)]
        assert (run.termination.reason, run.termination.exit_code) == (Reason.EXIT, 5)

    def test_a_job_that_ended_meanwhile_is_found_with_its_outcome(
        self, conformance_runtime: Runtime, request: pytest.FixtureRequest
    ) -> None:
        self._require_detached(conformance_runtime)
        job = self.job("echo done; exit 4")
        handle = conformance_runtime.submit(job)
        deadline = time.monotonic() + self.slack
        while not conformance_runtime.status(handle).finished:
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.1)
        conformance_runtime.close()
        second = self.make_runtime(request)
        try:
            found = second.find(job)
            assert found is not None, "an ended job is no longer found before its cleanup"
            try:
                run = follow_job(second, found, timeout=self.slack)
            finally:
                second.cleanup(found)
        finally:
            second.close()
        assert run.lines == ["done\n"]
        assert (run.termination.reason, run.termination.exit_code) == (Reason.EXIT, 4)
