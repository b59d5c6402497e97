"""A batch runtime over an in-memory scheduler that a test scripts, faults included.

:class:`FakeBatchRuntime` is a real :class:`~pollinator_core.execution.batch.BatchRuntime`
(the same polling, outage handling, verdicts, log tailing and adoption as a Slurm or Kubernetes
runtime), over a :class:`FakeScheduler` that runs no processes: each submitted job runs a
*program*, a Python function of the test's that drives a :class:`FakeJob` (start it, write its
output, wait, end it with an exit code). Faults come on demand:

- ``scheduler.down("why")`` / ``scheduler.up()``: every scheduler call fails with InfraError (an
  outage at submit, a poll that cannot reach the scheduler);
- ``scheduler.hang_status("cmd")``: the runtime's ``status()`` of the job running command
  ``cmd`` blocks until the returned event is set;
- ``scheduler.break_logs("cmd", after=n)``: the first output stream of that job breaks
  (InfraError) after ``n`` bytes;
- an executor killed mid-job: :meth:`pollinator_core.testing.LoopHarness.kill`, then a second
  FakeBatchRuntime over the same scheduler adopts the job.

Faults are keyed by the job's command, which the test knows before the executor submits.

::

    def program(ctl: FakeJob) -> None:
        ctl.start()
        ctl.write("working\\n")
        ctl.wait(go)               # until the test sets `go` (or the job is cancelled)
        ctl.finish(3)

    scheduler = FakeScheduler(tmp_path, program)
    loop = pollinator_executor(FakeBatchRuntime(scheduler))
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pollinator_core.errors import InfraError
from pollinator_core.execution.batch import BatchRuntime, Polling, SchedulerJob
from pollinator_core.execution.job import Job
from pollinator_core.execution.runtime import JobState, JobStatus
from pollinator_core.execution.termination import Reason, Termination

log = logging.getLogger("pollinator.testing")

#: polling for tests: fast, and a job that vanished is called lost after 10 s, not minutes
FAST = Polling(
    min_interval=0.05,
    max_interval=0.25,
    jitter=0.1,
    lost_after=10.0,
    repeat_notice=60.0,
    cancel_confirm=5.0,
)


class FakeJob:
    """One job of the :class:`FakeScheduler`, driven by its program (or the test)."""

    def __init__(self, scheduler: FakeScheduler, external: str, job: Job, directory: Path):
        self.scheduler = scheduler
        self.id = external
        self.job = job
        self.output = directory / "output.log"
        self.state = JobState.PENDING
        #: why it is still pending, as the scheduler would say
        self.waiting = "Priority"
        #: when True, a polite cancel (TERM) does not end it: only a kill does
        self.ignores_term = False
        self.exit_code: int | None = None
        self.ended = threading.Event()
        directory.mkdir(parents=True, exist_ok=True)
        self.output.touch()

    def start(self) -> None:
        with self.scheduler.lock:
            if self.state is JobState.PENDING:
                self.state = JobState.RUNNING

    def write(self, data: str | bytes) -> None:
        """Append to the job's output (nothing, once it ended)."""
        with self.scheduler.lock:
            if self.state is JobState.ENDED:
                return
            with open(self.output, "ab") as f:
                f.write(data.encode() if isinstance(data, str) else data)

    def wait(self, event: threading.Event, timeout: float = 60.0) -> bool:
        """Wait for ``event``; False when the job ended (cancelled) or ``timeout`` passed."""
        waited = 0.0
        while not event.is_set():
            if self.ended.is_set() or waited >= timeout:
                return False
            event.wait(0.05)
            waited += 0.05
        return True

    def finish(self, exit_code: int | None) -> None:
        """End the job with ``exit_code`` (None: it never ran); it leaves the live view and
        its accounting record appears."""
        with self.scheduler.lock:
            if self.state is JobState.ENDED:
                return
            self.state = JobState.ENDED
            self.exit_code = exit_code
        self.ended.set()


def default_program(ctl: FakeJob) -> None:
    """Start at once, print the command, end with exit code 0."""
    ctl.start()
    ctl.write(f"{ctl.job.command}\n")
    ctl.finish(0)


class FakeScheduler:
    """An in-memory batch scheduler: jobs by id, a live view, accounting, and faults.

    Output files live under ``directory`` (one subdirectory per job name), so the runtime tails
    them as it would a shared filesystem's."""

    def __init__(
        self, directory: Path, program: Callable[[FakeJob], None] = default_program
    ) -> None:
        self.directory = directory
        self.program = program
        self.lock = threading.RLock()
        self._jobs: dict[str, FakeJob] = {}
        self._ids = itertools.count(1)
        self._outage: str | None = None
        self._status_hangs: dict[str, threading.Event] = {}
        self._log_breaks: dict[str, int] = {}
        #: the names of the jobs submitted, in order: a resubmission shows here
        self.submissions: list[str] = []
        #: calls by kind (submit, poll, accounting, cancel, lookup)
        self.calls: dict[str, int] = {}

    # --- faults ---------------------------------------------------------------------------

    def down(self, why: str = "connection refused") -> None:
        """From now on every call fails with InfraError(``why``) until :meth:`up`."""
        self._outage = why

    def up(self) -> None:
        self._outage = None

    def hang_status(self, command: str) -> threading.Event:
        """Make ``status()`` of the job running ``command`` block until the event is set."""
        event = threading.Event()
        self._status_hangs[command] = event
        return event

    def break_logs(self, command: str, after: int) -> None:
        """Break the first output stream of the job running ``command`` after ``after`` bytes."""
        self._log_breaks[command] = after

    # --- the scheduler's interface ------------------------------------------------------------

    def _call(self, kind: str) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
        if self._outage is not None:
            raise InfraError(f"the fake scheduler does not answer: {self._outage}")

    def submit(self, job: Job) -> str:
        self._call("submit")
        with self.lock:
            external = f"fake-{next(self._ids)}"
            ctl = self._jobs[external] = FakeJob(self, external, job, self.directory / job.name)
            self.submissions.append(job.name)
        threading.Thread(
            target=self._run, args=(ctl,), name=f"fake-job-{external}", daemon=True
        ).start()
        return external

    def _run(self, ctl: FakeJob) -> None:
        try:
            self.program(ctl)
        except Exception:
            log.exception("the fake job %s's program failed", ctl.id)
            ctl.finish(70)

    def poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        """The live view: jobs that have not ended."""
        self._call("poll")
        with self.lock:
            return {
                i: SchedulerJob(job.state, job.waiting if job.state is JobState.PENDING else "")
                for i in ids
                if (job := self._jobs.get(i)) is not None and job.state is not JobState.ENDED
            }

    def accounting(self, ids: Sequence[str]) -> dict[str, Termination]:
        """How ended jobs ended."""
        self._call("accounting")
        out = {}
        with self.lock:
            for i in ids:
                job = self._jobs.get(i)
                if job is None or job.state is not JobState.ENDED:
                    continue
                seen = f"fake scheduler: job {i} ended, exit code {job.exit_code}"
                if job.exit_code is None:
                    out[i] = Termination(Reason.CANCELLED, detail="before it started").with_exit(
                        None, seen
                    )
                else:
                    out[i] = Termination.exited(job.exit_code, evidence=[seen])
        return out

    def cancel(self, external: str, kill: bool) -> None:
        self._call("cancel")
        with self.lock:
            job = self._jobs.get(external)
            if job is None or job.state is JobState.ENDED:
                return
            if job.state is JobState.PENDING:
                code: int | None = None
            elif kill:
                code = 137
            elif job.ignores_term:
                return
            else:
                code = 143
        job.finish(code)

    def lookup(self, name: str) -> str | None:
        self._call("lookup")
        with self.lock:
            return next((i for i, job in self._jobs.items() if job.job.name == name), None)

    def forget(self, external: str) -> None:
        """The job's cleanup: its record and files go."""
        with self.lock:
            job = self._jobs.pop(external, None)
        if job is not None:
            shutil.rmtree(job.output.parent, ignore_errors=True)

    # --- for the test -----------------------------------------------------------------------

    def job(self, external: str) -> FakeJob:
        with self.lock:
            return self._jobs[external]

    def jobs(self) -> list[FakeJob]:
        with self.lock:
            return list(self._jobs.values())

    def status_hang(self, external: str) -> threading.Event | None:
        with self.lock:
            job = self._jobs.get(external)
        return self._status_hangs.get(job.job.command) if job else None

    def take_log_break(self, external: str) -> int | None:
        with self.lock:
            job = self._jobs.get(external)
            return self._log_breaks.pop(job.job.command, None) if job else None


class FakeBatchRuntime(BatchRuntime):
    """A :class:`BatchRuntime` whose scheduler is a :class:`FakeScheduler`."""

    type = "fake"

    def __init__(self, scheduler: FakeScheduler, polling: Polling = FAST) -> None:
        super().__init__(polling)
        self.scheduler = scheduler

    def describe(self) -> str:
        return "the fake scheduler"

    def _submit(self, job: Job) -> str:
        return self.scheduler.submit(job)

    def _poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        return self.scheduler.poll(ids)

    def _final(self, ids: Sequence[str]) -> dict[str, Termination]:
        return self.scheduler.accounting(ids)

    def _cancel(self, external: str, kill: bool) -> None:
        self.scheduler.cancel(external, kill)

    def _lookup(self, job: Job) -> str | None:
        return self.scheduler.lookup(job.name)

    def _output(self, job: Job) -> Path:
        return self.scheduler.directory / job.name / "output.log"

    def status(self, handle: str) -> JobStatus:
        hang = self.scheduler.status_hang(handle)
        if hang is not None:
            hang.wait()
        return super().status(handle)

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        limit = self.scheduler.take_log_break(handle)
        sent = 0
        for item in super().logs(handle, offset):
            if limit is not None and isinstance(item, bytes) and sent + len(item) >= limit:
                if limit > sent:
                    yield item[: limit - sent]
                raise InfraError(f"the output stream of fake job {handle} broke")
            sent += len(item) if isinstance(item, bytes) else 0
            yield item

    def cleanup(self, handle: str) -> None:
        super().cleanup(handle)
        self.scheduler.forget(handle)
