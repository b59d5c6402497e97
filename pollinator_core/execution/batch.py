"""The base for runtimes whose jobs live in an external scheduler (Slurm, PBS, Kubernetes ...).

What every such runtime must get right, written once:

- **One status call per cycle for all jobs**, whatever their number: a poller thread asks the
  scheduler about every active job at once (:meth:`BatchRuntime._poll`), at an adaptive
  interval (short after a change, growing while nothing happens) with jitter, so N executors
  do not poll in step. :meth:`status` answers from that cache.
- **Outages pause, they never decide.** A scheduler that does not answer makes the poller back
  off and say so in each job's log (rate-limited); no job is failed or succeeded because of it.
- **Never success from absence.** A job that left the scheduler's live view is decided from
  its final detail (accounting, :meth:`BatchRuntime._final`) and the exit record its wrapper
  wrote (:mod:`~pollinator_core.execution.exitrecord`); with neither, the poller keeps waiting
  up to ``lost_after`` seconds, then reports it *lost*.
- **Deterministic names and adoption**: jobs are named from the process id
  (:attr:`Job.name`); :meth:`find` asks the scheduler for a job of that name, so a restarted
  executor re-attaches to its jobs and never submits one twice.
- **Logs from a file**, tailed by byte offset, with a final drain after the job ended, and the
  scheduler's "why is it still pending" forwarded as notice lines, rate-limited.
- **Cancel** asks the scheduler to stop the job and reports it ended only once the scheduler
  shows it gone.

A subclass implements :meth:`_submit`, :meth:`_poll`, :meth:`_cancel`, :meth:`_lookup` and
usually :meth:`_final` and :meth:`_output`; docs/plugins.md builds one from nothing.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import attrs

from pollinator_core.errors import InfraError
from pollinator_core.execution.exitrecord import RECORD_FILE, ExitRecord, decide, read_exit_record
from pollinator_core.execution.job import Job
from pollinator_core.execution.runtime import JobState, JobStatus, Runtime
from pollinator_core.execution.tail import FileTailer
from pollinator_core.execution.termination import Reason, Termination

log = logging.getLogger("pollinator.batch")
P = ParamSpec("P")
#: seconds the poller keeps to settle_interval after a nudge, at most
SETTLE_FOR = 30.0
T = TypeVar("T")


@attrs.frozen
class SchedulerJob:
    """One job in the scheduler's live view. ``termination`` when the scheduler already knows
    how it ended (a Kubernetes Job's conditions); ``waiting`` why it is still pending."""

    state: JobState
    waiting: str = ""
    termination: Termination | None = None


@attrs.frozen
class Polling:
    """How often the poller asks the scheduler, and how long it waits for a verdict."""

    #: seconds between calls right after a change
    min_interval: float = 1.0
    #: seconds between calls after a long quiet spell
    max_interval: float = 30.0
    #: each quiet cycle multiplies the interval by this
    growth: float = 1.5
    #: +- this fraction of the interval, at random
    jitter: float = 0.2
    #: seconds to wait for a verdict of a job that left the live view, before "lost"
    lost_after: float = 120.0
    #: seconds between repeated "still pending because ..." / "scheduler unreachable" lines
    repeat_notice: float = 300.0
    #: seconds a cancelled job may take to leave the scheduler before the cancel is repeated
    cancel_confirm: float = 60.0
    #: seconds between calls while a job is known to have ended (its exit record is there)
    #: and the scheduler has yet to say so: a moment, usually
    settle_interval: float = 0.3


@attrs.define
class _Tracked:
    job: Job
    external: str
    state: JobState = JobState.PENDING
    waiting: str = ""
    termination: Termination | None = None
    #: why we stopped it, when we did
    stopped: Termination | None = None
    stop_sent: float = 0.0
    gone_since: float | None = None
    notices: list[str] = attrs.field(factory=list)
    noticed: dict[str, float] = attrs.field(factory=dict)


class BatchRuntime(Runtime):
    """Runtime base for external schedulers; handles are the scheduler's job ids."""

    detached = True

    def __init__(self, polling: Polling | None = None) -> None:
        self.polling = polling or Polling()
        self._lock = threading.Condition()
        self._jobs: dict[str, _Tracked] = {}
        self._interval = self.polling.min_interval
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._outage: str | None = None
        self._settle_until = 0.0
        self._outage_since = 0.0
        self._poller: threading.Thread | None = None
        #: scheduler calls made, by kind: what the benchmarks count
        self.calls: dict[str, int] = {}

    # --- what a subclass implements ---------------------------------------------------------

    @abc.abstractmethod
    def _submit(self, job: Job) -> str:
        """Submit ``job`` under the name ``job.name``; the scheduler's id.

        InfraError when the scheduler cannot be reached; JobFailed when it refuses the job."""

    @abc.abstractmethod
    def _poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        """The live state of these jobs, in ONE scheduler call. A job the scheduler no longer
        lists is left out. Raise InfraError when the scheduler does not answer."""

    def _final(self, ids: Sequence[str]) -> dict[str, Termination]:
        """How these ended jobs ended, from the scheduler's accounting, in one call; jobs it
        cannot tell (yet) are left out. InfraError when accounting is down."""
        return {}

    @abc.abstractmethod
    def _cancel(self, external: str, kill: bool) -> None:
        """Ask the scheduler to stop the job: politely (TERM, its grace) or, when ``kill``, at
        once. A job it no longer knows is not an error."""

    @abc.abstractmethod
    def _lookup(self, job: Job) -> str | None:
        """The id of a job named ``job.name`` that this runtime submitted, running or ended."""

    def _output(self, job: Job) -> Path | None:
        """The file the job's output goes to (on a filesystem this executor reads)."""
        return None

    def _record(self, job: Job) -> ExitRecord | None:
        """The exit record the job's wrapper wrote, if any."""
        output = self._output(job)
        return read_exit_record(output.parent / RECORD_FILE) if output else None

    def _announce(self, handle: str, line: str) -> None:
        """Put a runtime's own notice (``running on nodes ...``) into the job's log."""
        with self._lock:
            tracked = self._jobs.get(handle)
            if tracked is not None:
                tracked.notices.append(f"pollinator: {line}\n")

    def _nudge(self) -> None:
        """Poll now, then every ``settle_interval`` until something changes: a job is known
        to have ended, and the scheduler is about to say so."""
        with self._lock:
            self._interval = self.polling.min_interval
            self._settle_until = time.monotonic() + SETTLE_FOR
        self._wake.set()

    # --- the Runtime interface ----------------------------------------------------------------

    def submit(self, job: Job) -> str:
        external = self._counted("submit", self._submit, job)
        self._track(job, external)
        return external

    def find(self, job: Job) -> str | None:
        external = self._counted("lookup", self._lookup, job)
        if external is not None:
            self._track(job, external)
        return external

    def status(self, handle: str) -> JobStatus:
        with self._lock:
            tracked = self._jobs.get(handle)
            if tracked is None:
                raise KeyError(f"job {handle} is not followed by this runtime")
            if tracked.termination is not None:
                return JobStatus.ended(tracked.termination)
            return JobStatus(tracked.state, waiting=tracked.waiting)

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        with self._lock:
            tracked = self._jobs[handle]
        output = self._output(tracked.job)
        if output is None:
            yield from self._notices_until_end(handle)
            return
        record = output.parent / RECORD_FILE
        nudged = False

        def ended() -> bool:
            nonlocal nudged
            if self._ended(handle):
                return True
            if not nudged and record.exists():
                # The wrapper writes its record last: the job is over. Ask the scheduler now,
                # not at the next cycle, which may be a minute away.
                nudged = True
                self._nudge()
            return False

        tailer = FileTailer(output, offset)
        # Quiet polls too: notices (why it is still pending) must not wait for the first output.
        # A quarter of a second at most between reads: an open and a stat, while the user waits
        # for each line. The scheduler says "ended" once the job's processes are gone and their
        # files closed, so a fresh open sees the whole file (NFS: close-to-open): a short settle.
        for chunk in tailer.follow(ended, idle=True, max_interval=0.25, settle=0.2):
            yield from self._take_notices(handle)
            yield chunk  # b"" while quiet: the loop gets control back (to stop following)
        yield from self._take_notices(handle)

    def cancel(self, handle: str, why: Termination) -> None:
        with self._lock:
            tracked = self._jobs.get(handle)
            if tracked is None or tracked.stopped is not None or tracked.termination is not None:
                return
            tracked.stopped = why
            tracked.stop_sent = time.monotonic()
            pending = tracked.state is JobState.PENDING
        # A pending job has nothing to save: it goes at once.
        self._counted("cancel", self._cancel, handle, pending)
        self._wake.set()

    def cleanup(self, handle: str) -> None:
        with self._lock:
            self._jobs.pop(handle, None)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(5)

    # --- following --------------------------------------------------------------------------

    def _track(self, job: Job, external: str) -> None:
        with self._lock:
            self._jobs.setdefault(external, _Tracked(job, external))
            self._interval = self.polling.min_interval
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(
                    target=self._poll_loop, name="batch-poller", daemon=True
                )
                self._poller.start()
        self._wake.set()

    def _ended(self, handle: str) -> bool:
        with self._lock:
            tracked = self._jobs.get(handle)
            return tracked is None or tracked.termination is not None

    def _notices_until_end(self, handle: str) -> Iterator[str]:
        while True:
            done = self._ended(handle)
            yield from self._take_notices(handle)
            if done:
                return
            with self._lock:
                self._lock.wait(1.0)

    def _take_notices(self, handle: str) -> list[str]:
        with self._lock:
            tracked = self._jobs.get(handle)
            if tracked is None or not tracked.notices:
                return []
            notices, tracked.notices = tracked.notices, []
            return notices

    def _notice(self, tracked: _Tracked, key: str, line: str, *, now: float) -> None:
        """Queue ``line`` for the job's log, unless the same kind was said recently."""
        last = tracked.noticed.get(key)
        if last is not None and now - last < self.polling.repeat_notice:
            return
        tracked.noticed[key] = now
        tracked.notices.append(f"pollinator: {line}\n")

    def _counted(self, kind: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.calls[kind] = self.calls.get(kind, 0) + 1
        return fn(*args, **kwargs)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                active = [h for h, t in self._jobs.items() if t.termination is None]
            if active:
                changed = self._cycle(active)
                with self._lock:
                    if changed:
                        self._interval = self.polling.min_interval
                    elif self._outage is None:
                        self._interval = min(
                            self._interval * self.polling.growth, self.polling.max_interval
                        )
                    else:
                        self._interval = min(self._interval * 2, self.polling.max_interval)
                    interval = self._interval
                    if changed:
                        self._settle_until = 0.0
                    elif self._outage is None and time.monotonic() < self._settle_until:
                        interval = min(interval, self.polling.settle_interval)
                    self._lock.notify_all()
            else:
                interval = self.polling.max_interval
            spread = interval * self.polling.jitter
            self._wake.wait(max(0.05, interval + random.uniform(-spread, spread)))
            self._wake.clear()

    def _cycle(self, active: list[str]) -> bool:
        """One poll of every active job; True when anything changed."""
        now = time.monotonic()
        try:
            live = self._counted("poll", self._poll, active)
        except InfraError as exc:
            self._scheduler_down(active, str(exc), now)
            return False
        if self._outage is not None:
            log.info("the scheduler answers again after %.0f s", now - self._outage_since)
            with self._lock:
                for handle in active:
                    tracked = self._jobs.get(handle)
                    if tracked is not None:
                        tracked.notices.append("pollinator: the scheduler answers again\n")
                self._outage = None
        changed = False
        gone = []
        with self._lock:
            for handle in active:
                tracked = self._jobs.get(handle)
                if tracked is None:
                    continue
                seen = live.get(handle)
                if seen is None or seen.state is JobState.ENDED:
                    if tracked.gone_since is None:
                        tracked.gone_since = now
                    if seen is not None and seen.termination is not None:
                        tracked.termination = self._stopped_or(tracked, seen.termination)
                        changed = True
                    else:
                        gone.append(handle)
                    continue
                tracked.gone_since = None
                if seen.state is not tracked.state:
                    tracked.state = seen.state
                    changed = True
                    if seen.state is JobState.RUNNING:
                        tracked.noticed.pop("pending", None)
                if seen.state is JobState.PENDING and seen.waiting:
                    if seen.waiting != tracked.waiting:
                        tracked.noticed.pop("pending", None)
                    self._notice(tracked, "pending", f"pending: {seen.waiting}", now=now)
                tracked.waiting = seen.waiting
                if (
                    tracked.stopped is not None
                    and now - tracked.stop_sent > self.polling.cancel_confirm
                ):
                    tracked.stop_sent = now
                    self._cancel(handle, True)  # the polite request did not take: insist
        if gone:
            changed |= self._decide(gone, now)
        return changed

    def _stopped_or(self, tracked: _Tracked, seen: Termination) -> Termination:
        if tracked.stopped is None:
            return seen
        return tracked.stopped.with_exit(seen.exit_code, *seen.evidence)

    def _decide(self, gone: list[str], now: float) -> bool:
        """Settle jobs that left the live view, from accounting and exit records."""
        final: dict[str, Termination]
        try:
            final = self._counted("final", self._final, gone)
        except InfraError as exc:
            final = {}
            reason = f"accounting unavailable ({exc})"
        else:
            reason = "no accounting record yet"
        changed = False
        with self._lock:
            for handle in gone:
                tracked = self._jobs.get(handle)
                if tracked is None:
                    continue
                verdict = decide(self._record(tracked.job), final.get(handle))
                if verdict is None and tracked.gone_since is not None:
                    waited = now - tracked.gone_since
                    if waited >= self.polling.lost_after:
                        verdict = Termination(
                            Reason.LOST,
                            detail=f"left the scheduler, no outcome found in {waited:.0f} s",
                            evidence=(reason, "no exit record"),
                        )
                if verdict is not None:
                    tracked.termination = self._stopped_or(tracked, verdict)
                    changed = True
        return changed

    def _scheduler_down(self, active: list[str], message: str, now: float) -> None:
        with self._lock:
            if self._outage is None:
                self._outage_since = now
                log.warning("the scheduler does not answer: %s", message)
            self._outage = message
            for handle in active:
                tracked = self._jobs.get(handle)
                if tracked is not None:
                    self._notice(
                        tracked,
                        "outage",
                        f"the scheduler does not answer ({message}); the job is not affected, "
                        "still trying",
                        now=now,
                    )
