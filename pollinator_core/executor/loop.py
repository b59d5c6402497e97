"""The generic executor loop: the same for every execution plugin (docker, slurm, k8s).

register -> long-poll assign -> pre-sync -> run the job on the backend while forwarding its
output line by line -> post-sync -> close successful, or failed with the exit code and the log
tail. Each process gets its own host directory ``<fs_dir>/<processid>/``, mounted at the spec's
``fs.mount``, so concurrent runs of one project never share a result directory; it is removed
once the process is closed.

A monitor thread watches the server: a process that is no longer RUNNING for us (cancelled,
failed by the server, requeued) has its backend job stopped; one whose ``execdeadline`` is about
to pass is stopped and closed FAILED before the server would requeue it.

Shutdown (SIGTERM): stop assigning, give running jobs ``grace`` seconds to finish, then stop
the rest and close them FAILED "executor shut down", so nothing is left RUNNING for a dead
executor.
"""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import attrs

from pollinator_core.colonies.client import AccessDenied, ColoniesClient, ColoniesError
from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.colonies.timestamps import parse_time
from pollinator_core.errors import PollinatorError
from pollinator_core.execution.lines import LineAssembler
from pollinator_core.execution.runtime import ExecutionBackend, JobState, JobStatus
from pollinator_core.execution.termination import TAIL_MARK
from pollinator_core.executor.translate import job_from_process

log = logging.getLogger("pollinator.executor")

EXECUTOR_TYPE = "container-executor"
#: how `--runtime` reaches an execution plugin's factory (which takes no arguments)
RUNTIME_ENV = "POLLINATOR_RUNTIME"
ORPHAN_ERROR = (
    "the executor running this process stopped while it ran (killed, crashed or restarted); "
    "run it again"
)
TAIL_LINES = 30
#: one addlog message at most; a burst of output becomes several
MAX_MESSAGE = 64 * 1024
#: stop a job this long before the server's execdeadline, so we close it, not the server
DEADLINE_MARGIN = 2.0
#: assign refused this many times in a row for the key (403): the executor's record is gone
DENIED_LIMIT = 3


class Stager(Protocol):
    """Moves a process's files between the CFS and its host directory (see executor_sync)."""

    def pre_sync(self, process: Process, root: Path) -> None:
        """Download the spec's snapshots and ``dirs`` (onstart policy) under ``root``."""

    def post_sync(self, process: Process, root: Path) -> list[str]:
        """Upload the spec's ``dirs`` (onclose policy) from under ``root``; return a line for
        each file that could not go up (an unsafe name, a link leading outside), for the log."""


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
    executor_type: str = EXECUTOR_TYPE


@attrs.define
class _Active:
    process: Process
    handle: str | None = None
    #: why we stopped the job: set once, by the monitor or by shutdown
    stopped: str | None = None
    #: True when the server no longer lets us close the process (cancelled, requeued)
    lost: bool = False


def _deadline(process: Process) -> float | None:
    """The execdeadline as a time.time() value, or None when the process has none."""
    return parse_time(process.execdeadline)


class Executor:
    """Runs processes assigned by a Colonies server on an :class:`ExecutionBackend`.

    ``client`` signs as this executor (already registered and approved; see executor_setup).
    """

    def __init__(
        self,
        client: ColoniesClient,
        backend: ExecutionBackend,
        stager: Stager,
        settings: ExecutorSettings,
    ) -> None:
        self._client = client
        self._backend = backend
        self._stager = stager
        self.settings = settings
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
        #: why the executor stopped serving by itself (its registration is gone), else None
        self.fatal: str | None = None

    # --- the loop ------------------------------------------------------------------------

    def close_orphans(self) -> int:
        """Close as FAILED the processes still RUNNING for this executor's key: a previous
        incarnation died with them. Call before :meth:`serve`; returns how many."""
        orphans = [
            p
            for p in self._client.get_processes(self.settings.colony, ProcessState.RUNNING)
            if p.assignedexecutorid == self._id
        ]
        for process in orphans:
            log.warning("process %s: closing it, its executor died", process.processid)
            self._client.close_failed(process.processid, [ORPHAN_ERROR])
        return len(orphans)

    def serve(self) -> None:
        """Assign and run processes until :meth:`stop`; then call :meth:`shutdown`."""
        self._serving.set()
        try:
            self._serve()
        finally:
            self._served.set()

    def _serve(self) -> None:
        monitor = threading.Thread(target=self._monitor, name="executor-monitor", daemon=True)
        monitor.start()
        failures = denied = 0
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                process = self._client.assign(self.settings.colony, self.settings.poll)
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
            self._start(process)

    def _start(self, process: Process) -> None:
        with self._lock:
            self._active[process.processid] = _Active(process)
        thread = threading.Thread(
            target=self._run, args=(process,), name=f"job-{process.processid[:12]}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def stop(self) -> None:
        """Stop assigning new processes (running ones go on)."""
        self._stopping.set()

    def shutdown(self, grace: float) -> None:
        """Stop assigning; wait up to ``grace`` s for running jobs, then stop and fail the rest."""
        self.stop()
        deadline = time.monotonic() + grace
        if self._serving.is_set():
            # An assign in flight may still bring a process: it must be run or failed too.
            self._served.wait(self.settings.poll + self._client.config.timeout)
        with self._idle:
            while self._threads and time.monotonic() < deadline:
                self._idle.wait(max(deadline - time.monotonic(), 0.01))
            remaining = list(self._active.values())
        for active in remaining:
            self._halt(active, "executor shut down", lost=False)
        with self._idle:
            while self._threads:
                self._idle.wait(1.0)
        self._closed.set()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._active)

    # --- one process -----------------------------------------------------------------------

    def _run(self, process: Process) -> None:
        pid = process.processid
        root = self.settings.fs_dir / pid
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            status, synced = self._execute(process, root, tail)
            self._close(process, status, tail, synced)
        except Exception as exc:  # a bug or a backend gone wrong: fail this process, not all
            log.exception("process %s: the executor failed while running it", pid)
            reason = f"executor error: {type(exc).__name__}: {exc}"
            self._close(process, JobStatus(JobState.FAILED, None, reason), tail, False)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            with self._idle:
                self._active.pop(pid, None)
                self._threads.discard(threading.current_thread())
                self._idle.notify_all()
            self._slots.release()

    def _execute(
        self, process: Process, root: Path, tail: collections.deque[str]
    ) -> tuple[JobStatus, bool]:
        """Run the job; the final status and whether results were synced up."""
        pid = process.processid
        try:
            job = job_from_process(process, root)
            root.mkdir(parents=True, exist_ok=True)
            self._stager.pre_sync(process, root)
            if self._stopped_reason(pid):
                return JobStatus(JobState.CANCELLED, None, self._stopped_reason(pid) or ""), False
            handle = self._backend.submit(job)
        except PollinatorError as exc:
            return JobStatus(JobState.FAILED, None, str(exc)), False
        with self._lock:
            self._active[pid].handle = handle
            stopped = self._active[pid].stopped
        if stopped:  # stopped between submit and now: the monitor could not reach the handle
            self._backend.cancel(handle, stopped)
        log.info("process %s: running as %s", pid, handle)
        try:
            self._forward(pid, self._backend.logs(handle), tail)
            status = self._final_status(handle)
        finally:
            self._backend.cleanup(handle)
        reason = self._stopped_reason(pid)
        if reason:
            status = JobStatus(JobState.FAILED, status.exit_code, reason)
        if self._is_lost(pid) or reason == "executor shut down":
            return status, False
        try:
            self._send(pid, self._stager.post_sync(process, root), tail)
        except PollinatorError as exc:
            if status.state is JobState.SUCCEEDED:
                return JobStatus(JobState.FAILED, 0, f"uploading results failed: {exc}"), False
            log.warning("process %s: uploading results failed: %s", pid, exc)
        return status, True

    def _final_status(self, handle: str) -> JobStatus:
        # The output ends when the job does; the backend may take a moment to say how it ended.
        delay = 0.01
        while True:
            status = self._backend.status(handle)
            if status.state.finished:
                return status
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _forward(self, pid: str, chunks: Iterable[bytes], tail: collections.deque[str]) -> None:
        """Send output to the process log as whole lines, as soon as they are complete.

        Whatever arrived together goes in one addlog; while one is in flight the next chunk
        gathers in the pipe, so a chatty job costs few calls and a quiet one no delay.
        """
        assembler = LineAssembler()
        for chunk in chunks:
            self._send(pid, assembler.feed(chunk), tail)
        self._send(pid, assembler.flush(), tail)

    def _send(self, pid: str, lines: list[str], tail: collections.deque[str]) -> None:
        if not lines:
            return
        tail.extend(lines)
        message = ""
        for line in lines:
            if message and len(message) + len(line) > MAX_MESSAGE:
                self._add_log(pid, message)
                message = ""
            message += line
        self._add_log(pid, message)

    def _add_log(self, pid: str, message: str) -> None:
        if self._is_lost(pid):
            return  # the server refuses logs of a process that is no longer running
        try:
            self._client.add_log(pid, message)
        except ColoniesError as exc:
            log.warning("process %s: could not add to its log: %s", pid, exc)

    def _close(
        self, process: Process, status: JobStatus, tail: collections.deque[str], synced: bool
    ) -> None:
        pid = process.processid
        if self._is_lost(pid):
            log.info("process %s: stopped (%s); not ours to close", pid, self._stopped_reason(pid))
            return
        try:
            if status.state is JobState.SUCCEEDED:
                self._client.close_successful(pid)
                log.info("process %s: successful", pid)
                return
            # The backend's reason says "exit code N" for a plain failure; for a job we stopped
            # (walltime, deadline, shutdown) the exit code is our own signal's, so left out.
            errors = [status.reason or "failed"]
            if tail:
                errors.append(f"last {len(tail)}{TAIL_MARK}" + "".join(tail).rstrip("\n"))
            if not synced and status.exit_code is not None and process.spec.fs.dirs:
                errors.append("results were not uploaded")
            self._client.close_failed(pid, errors)
            log.info("process %s: failed: %s", pid, errors[0])
        except ColoniesError as exc:
            log.warning("process %s: could not close it: %s", pid, exc)

    # --- stopping jobs ---------------------------------------------------------------------

    def _stopped_reason(self, pid: str) -> str | None:
        with self._lock:
            active = self._active.get(pid)
            return active.stopped if active else None

    def _is_lost(self, pid: str) -> bool:
        with self._lock:
            active = self._active.get(pid)
            return bool(active and active.lost)

    def _halt(self, active: _Active, reason: str, *, lost: bool) -> None:
        with self._lock:
            if active.stopped:
                return
            active.stopped = reason
            active.lost = lost
            handle = active.handle
        log.info("process %s: stopping it: %s", active.process.processid, reason)
        if handle is not None:
            self._backend.cancel(handle, reason)

    def _monitor(self) -> None:
        while not self._closed.wait(self.settings.monitor_interval):
            with self._lock:
                actives = [a for a in self._active.values() if not a.stopped]
            for active in actives:
                self._check(active)

    def _check(self, active: _Active) -> None:
        pid = active.process.processid
        deadline = _deadline(active.process)
        if deadline is not None and time.time() > deadline - DEADLINE_MARGIN:
            spec = active.process.spec
            # Pollinator's specs set maxexectime to the walltime: say so in the user's terms.
            what = (
                "walltime"
                if spec.maxexectime == spec.conditions.walltime
                else "maximum execution time"
            )
            self._halt(active, f"{what} exceeded ({spec.maxexectime} s)", lost=False)
            return
        try:
            now = self._client.get_process(pid)
        except ColoniesError as exc:
            log.debug("process %s: cannot check its state: %s", pid, exc)
            return
        if now.state is not ProcessState.RUNNING or now.assignedexecutorid != self._id:
            what = now.state.name.lower() if now.state.finished else "taken from this executor"
            self._halt(active, f"process {what} on the server", lost=True)
