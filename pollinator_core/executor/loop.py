"""The generic executor loop: the same for every runtime (docker, process, slurm, k8s ...).

register -> long-poll assign -> pre-sync -> hand the job to the runtime while forwarding its
output line by line -> post-sync -> close successful, or failed with the termination record and
the output's tail. Each process gets its own host directory under ``<fs_dir>/<processid>/``,
mounted at the spec's ``fs.mount``, so concurrent runs never share a result directory; it is
removed once the results are safely up, and kept (and named in the process log) when not.

What the official server needs from an executor, and this loop guarantees:

- **Stay alive while busy.** The server removes an executor it has not heard from for its
  stale-executor window and requeues its processes; it hears from executors only in assign.
  When the loop is not long-polling (all slots busy, or paused by an outage) it sends a
  heartbeat that can take no work (:meth:`ColoniesClient.heartbeat`).
- **Deadlines from the server's record.** The assign reply's ``execdeadline`` can be the zero
  time or a requeued process's old one; the loop reads the process again and otherwise counts
  ``maxexectime`` from the assignment itself. A job still running shortly before the deadline
  is stopped, its results uploaded and the process closed, so the server never requeues a
  process mid-upload.
- **Outages do not eat the queue.** A runtime that is unreachable at submit pauses assignment
  (with heartbeats), retries with backoff and says so in the process log; the process is failed
  only after ``outage_limit`` seconds, with the reason.
- **Results go up on every path** that ends a job: success, failure, walltime, cancel,
  shutdown.
- **Restarts lose nothing.** With a runtime whose jobs outlive the executor (``detached``), a
  stopping executor leaves its jobs running, and a starting one adopts them (:meth:`adopt`):
  same directory, no second submission, the output from where it stopped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

import attrs

from pollinator_core.colonies.client import (
    AccessDenied,
    BadRequest,
    ColoniesClient,
    ColoniesError,
    NotFound,
)
from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.colonies.timestamps import parse_time
from pollinator_core.errors import InfraError, PollinatorError
from pollinator_core.execution.job import Job
from pollinator_core.execution.lines import LineAssembler
from pollinator_core.execution.runtime import JobStatus, Runtime
from pollinator_core.execution.termination import TAIL_MARK, Reason, Termination
from pollinator_core.executor.journal import Entry, Journal
from pollinator_core.executor.translate import job_from_process
from pollinator_core.project.funcspec import STAGE_FUNCNAME

log = logging.getLogger("pollinator.executor")

TAIL_LINES = 30
#: one addlog message at most; a burst of output becomes several
MAX_MESSAGE = 64 * 1024
#: assign refused this many times in a row for the key (403): the executor's record is gone
DENIED_LIMIT = 3
#: seconds shutdown waits for the threads of jobs it leaves running to stop following them
LEAVE_WAIT = 10.0
#: PostgreSQL refuses NUL in text, and the whole addlog with it: shown as this instead
NUL_STAND_IN = "\u2400"
T = TypeVar("T")
LOST_ORPHAN = (
    "the executor running this process stopped while it ran (killed, crashed or restarted), "
    "and its job could not be found again"
)


class Stager(Protocol):
    """Moves a process's files between the CFS and its host directory (see staging)."""

    def pre_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        """Download the spec's snapshots and ``dirs`` (onstart policy) under ``root``; ``say``
        puts a progress line into the process log."""

    def post_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        """Upload the spec's ``dirs`` (onclose policy) from under ``root``."""

    def finish(self, process: Process) -> None:
        """After the process is closed: remove the spec's snapshots marked keepsnapshot false."""


class _Unreachable(Exception):
    """The runtime stayed unreachable past the outage limit, or the process was stopped."""


@attrs.frozen
class ExecutorSettings:
    name: str
    colony: str
    fs_dir: Path
    max_jobs: int = 1
    #: seconds one assign call long-polls; also how long shutdown may wait for it
    poll: float = 5.0
    #: seconds between checks of the server's view of running processes
    monitor_interval: float = 1.0
    #: seconds between heartbeats while not long-polling; well inside the server's
    #: stale-executor window (COLONIES_STALE_EXECUTOR_DURATION, 600 s by default)
    heartbeat: float = 60.0
    #: seconds a runtime may stay unreachable before an assigned process is failed
    outage_limit: float = 600.0
    #: the last word on a job before its first submission (the local agent hands over the
    #: submitting command's environment)
    prepare: Callable[[Job], Job] | None = None


@attrs.define
class _Active:
    process: Process
    #: when we took it (time.time()), the start of the deadline if the server gave none
    taken: float
    handle: str | None = None
    #: why we stopped the job: set once, by the monitor, a cancel or shutdown
    stopped: Termination | None = None
    #: the server no longer lets us close the process (cancelled, failed, requeued)
    lost: bool = False
    #: the results must not go up (requeued: another executor runs it)
    no_results: bool = False
    #: shutdown with a detached runtime: stop following, leave the job running
    leave: bool = False


def _deadline(process: Process, taken: float) -> float | None:
    """The server's execdeadline when it is believable, else ``taken + maxexectime``."""
    if process.spec.maxexectime <= 0:
        return None
    own = taken + process.spec.maxexectime
    server = parse_time(process.execdeadline)
    if server is None or server < taken:  # the zero time, or a requeued process's old one
        return own
    return server


def _margin(process: Process) -> float:
    """How long before the server's deadline a job is stopped: time to upload its results
    (a tenth of the limit, at least 2 s and at most a minute, never more than half of it)."""
    limit = process.spec.maxexectime
    return min(max(2.0, limit * 0.1), 60.0, limit / 2)


class Executor:
    """Runs processes assigned by a Colonies server on a :class:`Runtime`.

    ``client`` signs as this executor (already registered and approved; see setup).
    """

    def __init__(
        self,
        client: ColoniesClient,
        runtime: Runtime,
        stager: Stager,
        settings: ExecutorSettings,
    ) -> None:
        self._client = client
        self._runtime = runtime
        self._stager = stager
        self.settings = settings
        self._journal = Journal(settings.fs_dir)
        self._id = client.signer_id
        self._slots = threading.BoundedSemaphore(settings.max_jobs)
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._serving = threading.Event()
        self._served = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._heard = time.monotonic()  # the last call that told the server we are alive
        self._paused_until = 0.0  # no assignment before this (time.monotonic())
        #: why the executor stopped serving by itself (its registration is gone), else None
        self.fatal: str | None = None
        #: jobs left running at shutdown for a later executor to adopt
        self.left_running = 0

    # --- start: adopt what a previous incarnation left --------------------------------------

    def adopt(self) -> int:
        """Take back the processes still RUNNING for this executor's key: a job that lives on
        is followed again; one never submitted is run; one that cannot be found is closed as
        lost. The runtime first reconciles (removes jobs of processes no longer ours). Call
        before :meth:`serve`; returns how many processes were taken back."""
        mine = [
            p
            for p in self._client.get_processes(self.settings.colony, ProcessState.RUNNING)
            if p.assignedexecutorid == self._id
        ]
        self._runtime.reconcile(self._id, {p.processid for p in mine})
        for process in mine:
            # Adopted jobs take a slot when one is free, and run regardless.
            slot = self._slots.acquire(blocking=False)
            self._start(process, self._journal.get(process.processid), slot=slot)
        return len(mine)

    # --- the loop ------------------------------------------------------------------------

    def serve(self) -> None:
        """Assign and run processes until :meth:`stop`; then call :meth:`shutdown`."""
        self._serving.set()
        monitor = threading.Thread(target=self._monitor, name="executor-monitor", daemon=True)
        monitor.start()
        try:
            self._serve()
        finally:
            self._served.set()

    def _serve(self) -> None:
        failures = denied = 0
        while not self._stopping.is_set():
            if time.monotonic() < self._paused_until or not self._slots.acquire(timeout=0.5):
                self._stopping.wait(0.5)
                continue
            try:
                # An idle executor is heard from at each long-poll: no longer than a heartbeat.
                poll = min(self.settings.poll, self.settings.heartbeat)
                process = self._client.assign(self.settings.colony, poll)
                self._heard = time.monotonic()
                failures = denied = 0
            except ColoniesError as exc:
                self._slots.release()
                failures += 1
                denied = denied + 1 if isinstance(exc, AccessDenied) else 0
                if denied >= DENIED_LIMIT:
                    # Retrying cannot help: the record was removed or replaced (say, by another
                    # executor started under the same name).
                    self.fatal = (
                        f"the server no longer accepts this executor: {exc} Was another "
                        f"executor started as {self.settings.name!r}, or this one removed? "
                        "Give each executor its own --name."
                    )
                    log.error("%s", self.fatal)
                    self._stopping.set()
                    break
                log.warning("assign failed (%s); retrying", exc)
                self._stopping.wait(min(0.5 * 2**failures, 10.0))
                continue
            except Exception:
                # A process we cannot even decode must not take the executor down.
                self._slots.release()
                log.exception("assign returned something this executor cannot read")
                continue
            if process is None:
                self._slots.release()
                continue
            self._start(process, None, slot=True)

    def _beat(self) -> None:
        """A heartbeat when the loop has not called assign for a while (all slots busy)."""
        if time.monotonic() - self._heard < self.settings.heartbeat:
            return
        try:
            process = self._client.heartbeat(self.settings.colony)
        except ColoniesError as exc:
            log.warning("heartbeat failed: %s", exc)
            return
        self._heard = time.monotonic()
        if process is not None:  # a server that ignores the cpu we offered: run it anyway
            log.warning("process %s came with a heartbeat; running it", process.processid)
            self._start(process, None, slot=False)

    def _start(self, process: Process, entry: Entry | None, *, slot: bool) -> None:
        pid = process.processid
        with self._lock:
            old = self._active.get(pid)
            if old is not None:
                # Requeued while we still held it (say, mid-upload) and given to us again: the
                # old run must neither upload into the new one's label nor close it.
                old.lost = old.no_results = True
            active = self._active[pid] = _Active(process, time.time())
        thread = threading.Thread(
            target=self._run,
            args=(active, entry, slot),
            name=f"job-{pid[:12]}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def stop(self) -> None:
        """Stop assigning new processes (running ones go on)."""
        self._stopping.set()

    def shutdown(self, grace: float) -> None:
        """Stop assigning, then end what runs: with a detached runtime the jobs are left
        running for the next executor to adopt; otherwise running jobs get ``grace`` seconds,
        then are stopped, their results uploaded and their processes closed FAILED."""
        self.stop()
        deadline = time.monotonic() + grace
        if self._serving.is_set():
            # An assign in flight may still bring a process: it must be handled too.
            self._served.wait(self.settings.poll + self._client.config.timeout)
        with self._idle:
            if not self._runtime.detached:
                while self._threads and time.monotonic() < deadline:
                    self._idle.wait(max(deadline - time.monotonic(), 0.01))
            remaining = list(self._active.values())
        why = Termination(Reason.INFRASTRUCTURE, detail="the executor was shut down")
        for active in remaining:
            if self._runtime.detached and active.handle is not None:
                with self._lock:
                    active.leave = True
                self.left_running += 1
            else:
                self._halt(active, why, lost=False)
        # Jobs left running stop being followed at their runtime's next yield; a runtime that
        # does not yield while its job is quiet is not waited for beyond LEAVE_WAIT.
        leave_by = time.monotonic() + LEAVE_WAIT
        with self._idle:
            while self._threads and not (
                time.monotonic() > leave_by and all(a.leave for a in self._active.values())
            ):
                self._idle.wait(1.0)
        self._closed.set()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._active)

    # --- one process -----------------------------------------------------------------------

    def _run(self, active: _Active, entry: Entry | None, slot: bool) -> None:
        process = active.process
        pid = process.processid
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        if entry is None:
            # A directory of this attempt's own: a requeued process we held before (or its
            # remains) never shares files with this run.
            root = self.settings.fs_dir / pid / uuid.uuid4().hex[:8]
            entry = Entry(pid, str(root))
            self._journal.put(entry)
        root = Path(entry.root)
        keep = False
        try:
            termination, uploaded = self._execute(active, entry, tail)
            keep = not uploaded
            if not active.leave:
                self._close(active, termination, tail, root, uploaded)
        except Exception as exc:  # a bug or a runtime gone wrong: fail this process, not all
            log.exception("process %s: the executor failed while running it", pid)
            why = Termination(
                Reason.INFRASTRUCTURE, detail=f"executor error: {type(exc).__name__}: {exc}"
            )
            keep = True
            self._close(active, why, tail, root, False)
        finally:
            if not active.leave:
                if keep and root.exists():
                    log.warning("process %s: its files stay in %s", pid, root)
                else:
                    shutil.rmtree(root, ignore_errors=True)
                    with contextlib.suppress(OSError):
                        root.parent.rmdir()  # the process's directory, once no attempt is left
                self._journal.remove(pid)
            with self._idle:
                if self._active.get(pid) is active:
                    del self._active[pid]
                self._threads.discard(threading.current_thread())
                self._idle.notify_all()
            if slot:
                self._slots.release()

    def _execute(
        self, active: _Active, entry: Entry, tail: collections.deque[str]
    ) -> tuple[Termination, bool]:
        """Run the job; how it ended and whether its results went up."""
        process = active.process
        pid = process.processid
        root = Path(entry.root)
        self._refresh_deadline(process)
        say = self._sayer(active, tail)
        try:
            job = job_from_process(process, root)
        except PollinatorError as exc:
            return Termination(Reason.INFRASTRUCTURE, detail=str(exc)), True
        handle = None
        if self._runtime.detached:
            try:
                handle = self._riding_out(active, say, lambda: self._runtime.find(job))
            except _Unreachable:
                return self._unreachable(active), True
        if handle is None and entry.submitted:
            return Termination(Reason.LOST, detail=LOST_ORPHAN), True
        if handle is None:
            try:
                root.mkdir(parents=True, exist_ok=True)
                self._stager.pre_sync(process, root, say)
            except PollinatorError as exc:
                return Termination(Reason.INFRASTRUCTURE, detail=f"staging failed: {exc}"), True
            if process.spec.funcname == STAGE_FUNCNAME:
                # The original's data-staging process: files in, then out, nothing to run.
                return self._upload(active, root, Termination.exited(0), say)
            if active.stopped is not None:
                return self._upload(active, root, active.stopped, say)
            if self.settings.prepare is not None:
                job = self.settings.prepare(job)
            try:
                handle = self._riding_out(active, say, lambda: self._runtime.submit(job))
            except _Unreachable:
                return self._upload(active, root, self._unreachable(active), say)
            except PollinatorError as exc:  # the runtime refuses this job (a missing image ...)
                return self._upload(
                    active, root, Termination(Reason.INFRASTRUCTURE, detail=str(exc)), say
                )
            entry.submitted = True
            self._journal.put(entry)
        else:
            log.info("process %s: adopted its job %s", pid, handle)
            say(f"pollinator: executor {self.settings.name} re-attached to job {handle}\n")
        with self._lock:
            active.handle = handle
            stopped = active.stopped
        if stopped is not None:  # stopped between submit and now: the monitor had no handle
            self._runtime.cancel(handle, stopped)
        log.info("process %s: running as %s", pid, handle)
        try:
            self._follow(active, entry, handle, tail)
            if active.leave:
                return Termination(Reason.INFRASTRUCTURE), False
            termination = self._final(handle)
        finally:
            if not active.leave:
                self._runtime.cleanup(handle)
        return self._upload(active, root, termination, say)

    def _riding_out(self, active: _Active, say: Callable[[str], None], call: Callable[[], T]) -> T:
        """``call()`` (a submit, a find), riding out an outage of the runtime: InfraError is
        retried with backoff while assignment is paused; _Unreachable when the outage outlasts
        ``outage_limit`` or the process is stopped meanwhile."""
        first = time.monotonic()
        delay = 2.0
        while True:
            try:
                return call()
            except InfraError as exc:
                waited = time.monotonic() - first
                if waited >= self.settings.outage_limit or active.stopped is not None:
                    raise _Unreachable from exc
                delay = min(delay * 1.5, 60.0, max(self.settings.outage_limit - waited, 0.5))
                wait = delay * random.uniform(0.8, 1.2)
                # No new work while the runtime is down: queued processes stay queued until
                # this retry has shown whether it is back.
                with self._lock:
                    self._paused_until = max(self._paused_until, time.monotonic() + wait + 1.0)
                log.warning("%s is unreachable (%s); assignment paused", self._runtime.type, exc)
                say(
                    f"pollinator: {self._runtime.describe()} is unreachable ({exc}); "
                    f"trying again in {wait:.0f} s\n"
                )
                self._closed.wait(wait)

    def _unreachable(self, active: _Active) -> Termination:
        return active.stopped or Termination(
            Reason.INFRASTRUCTURE,
            detail=f"{self._runtime.describe()} stayed unreachable for "
            f"{self.settings.outage_limit:.0f} s",
        )

    def _upload(
        self, active: _Active, root: Path, termination: Termination, say: Callable[[str], None]
    ) -> tuple[Termination, bool]:
        """Post-sync whatever the job wrote, however it ended."""
        process = active.process
        pid = process.processid
        with self._lock:
            skip = active.no_results
        if skip or not process.spec.fs.dirs:
            return termination, not skip
        try:
            self._stager.post_sync(process, root, say)
        except PollinatorError as exc:
            log.warning("process %s: uploading results failed: %s", pid, exc)
            say(f"pollinator: uploading results failed: {exc}\n")
            if termination.succeeded:
                return Termination(
                    Reason.INFRASTRUCTURE, 0, detail=f"uploading results failed: {exc}"
                ), False
            return termination, False
        return termination, True

    def _final(self, handle: str) -> Termination:
        # The output ends when the job does; the runtime may take a moment to say how it ended.
        delay = 0.01
        while True:
            status: JobStatus = self._runtime.status(handle)
            if status.finished and status.termination is not None:
                return status.termination
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # --- output --------------------------------------------------------------------------

    def _follow(
        self, active: _Active, entry: Entry, handle: str, tail: collections.deque[str]
    ) -> None:
        """Forward the job's output to its end. A stream that breaks (InfraError: a dropped
        connection, an unreadable file) is opened again at the last whole line forwarded, so
        no line is lost or sent twice; after ``outage_limit`` seconds without progress the rest
        of the output is given up (the job's end is still read from its status)."""
        broken_since: float | None = None
        progress = entry.offset
        delay = 0.5
        while True:
            try:
                self._forward(active, entry, self._runtime.logs(handle, entry.offset), tail)
                return
            except InfraError as exc:
                now = time.monotonic()
                if broken_since is None or entry.offset != progress:
                    broken_since, progress, delay = now, entry.offset, 0.5
                pid = active.process.processid
                if active.leave:
                    return
                if now - broken_since >= self.settings.outage_limit:
                    log.warning("process %s: giving up on the output of job %s", pid, handle)
                    line = f"pollinator: the rest of the job's output could not be read ({exc})\n"
                    self._send(active, [line], tail)
                    return
                log.warning(
                    "process %s: the output stream of job %s broke (%s); reading on from byte %d",
                    pid,
                    handle,
                    exc,
                    entry.offset,
                )
                self._closed.wait(delay)
                delay = min(delay * 2, 30.0)

    def _forward(
        self,
        active: _Active,
        entry: Entry,
        items: Iterable[bytes | str],
        tail: collections.deque[str],
    ) -> None:
        """Send output to the process log as whole lines, as soon as they are complete.

        Whatever arrived together goes in one addlog; while one is in flight the next chunk
        gathers in the pipe, so a chatty job costs few calls and a quiet one no delay. The
        journal keeps the offset of the last whole line sent, for an adopting executor."""
        assembler = LineAssembler()
        read = entry.offset
        for item in items:
            if active.leave:
                return
            if isinstance(item, str):
                self._send(active, [item], tail)
                continue
            read += len(item)
            self._send(active, assembler.feed(item), tail)
            done = read - assembler.pending
            if done != entry.offset:
                entry.offset = done
                self._journal.put(entry)
        self._send(active, assembler.flush(), tail)

    def _sayer(self, active: _Active, tail: collections.deque[str]) -> Callable[[str], None]:
        return lambda line: self._send(active, [line], tail)

    def _send(self, active: _Active, lines: list[str], tail: collections.deque[str]) -> None:
        if not lines:
            return
        tail.extend(lines)
        message = ""
        for line in lines:
            if message and len(message) + len(line) > MAX_MESSAGE:
                self._add_log(active, message)
                message = ""
            message += line
        self._add_log(active, message)

    def _add_log(self, active: _Active, message: str) -> None:
        pid = active.process.processid
        if active.lost:
            return  # the server refuses logs of a process that is no longer running
        message = message.replace("\x00", NUL_STAND_IN)
        try:
            self._client.add_log(pid, message)
        except BadRequest as exc:
            # Refused as a whole: send it line by line, so one bad line loses only itself.
            lines = message.splitlines(keepends=True)
            if len(lines) == 1:
                log.warning("process %s: the server refused a log line: %s", pid, exc)
                return
            for line in lines:
                self._add_log(active, line)
        except ColoniesError as exc:
            if active.lost:
                return  # cancelled or closed meanwhile: the refusal is expected
            log.warning("process %s: the server refused its log: %s", pid, exc)

    # --- closing ---------------------------------------------------------------------------

    def _close(
        self,
        active: _Active,
        termination: Termination,
        tail: collections.deque[str],
        root: Path,
        uploaded: bool,
    ) -> None:
        process = active.process
        pid = process.processid
        if active.lost:
            log.info("process %s: ended (%s); not ours to close", pid, termination.summary())
            self._finish(process)
            return
        try:
            if termination.succeeded:
                self._client.close_successful(pid)
                log.info("process %s: successful", pid)
            else:
                errors = termination.errors()
                if tail:
                    errors.append(f"last {len(tail)}{TAIL_MARK}" + "".join(tail).rstrip("\n"))
                if not uploaded and process.spec.fs.dirs:
                    errors.append(f"results were not uploaded; they stay on the executor in {root}")
                self._client.close_failed(pid, errors)
                log.info("process %s: failed: %s", pid, errors[0])
        except ColoniesError as exc:
            log.warning("process %s: could not close it: %s", pid, exc)
        self._finish(process)

    def _finish(self, process: Process) -> None:
        try:
            self._stager.finish(process)
        except PollinatorError as exc:
            log.warning("process %s: %s", process.processid, exc)

    # --- stopping jobs ---------------------------------------------------------------------

    def cancel(self, pid: str, why: Termination) -> None:
        """Stop a running process's job (the Python API and tests use it)."""
        with self._lock:
            active = self._active.get(pid)
        if active is not None:
            self._halt(active, why, lost=False)

    def _halt(
        self, active: _Active, why: Termination, *, lost: bool, no_results: bool = False
    ) -> None:
        with self._lock:
            if active.stopped is not None:
                return
            active.stopped = why
            active.lost = lost
            active.no_results = no_results
            handle = active.handle
        log.info("process %s: stopping it: %s", active.process.processid, why.summary())
        if handle is not None:
            self._runtime.cancel(handle, why)

    def _refresh_deadline(self, process: Process) -> None:
        """Read the process again: the assign reply's execdeadline is not to be trusted."""
        try:
            fresh = self._client.get_process(process.processid)
        except ColoniesError:
            return
        with self._lock:
            active = self._active.get(process.processid)
            if active is not None and active.process.processid == fresh.processid:
                active.process = fresh

    def _monitor(self) -> None:
        while not self._closed.wait(self.settings.monitor_interval):
            self._beat()
            with self._lock:
                actives = [a for a in self._active.values() if not a.stopped and not a.leave]
            for active in actives:
                self._check(active)

    def _check(self, active: _Active) -> None:
        pid = active.process.processid
        try:
            now = self._client.get_process(pid)
        except NotFound:
            self._halt(
                active, Termination(Reason.CANCELLED, detail="removed from the server"), lost=True
            )
            return
        except ColoniesError as exc:
            log.debug("process %s: cannot check its state: %s", pid, exc)
            now = active.process
        if now.state is not ProcessState.RUNNING or now.assignedexecutorid != self._id:
            if now.state is ProcessState.CANCELLED:
                self._halt(
                    active, Termination(Reason.CANCELLED, detail="cancelled by a user"), lost=True
                )
            elif now.state.finished:
                what = now.state.name.lower()
                self._halt(
                    active, Termination(Reason.CANCELLED, detail=f"{what} on the server"), lost=True
                )
            else:
                why = Termination(
                    Reason.LOST, detail="requeued by the server, taken from this executor"
                )
                self._halt(active, why, lost=True, no_results=True)
            return
        with self._lock:
            active.process = now
        deadline = _deadline(now, active.taken)
        if deadline is not None and time.time() > deadline - _margin(now):
            spec = now.spec
            why = Termination(
                Reason.WALLTIME,
                detail=f"maxexectime {spec.maxexectime} s, the server's limit, runs out",
            )
            self._halt(active, why, lost=False)
