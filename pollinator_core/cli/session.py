"""What ``run --follow`` and ``logs -f`` share: following a run to its end, Ctrl-C, exit codes.

Ctrl-C while following never kills or orphans the job silently: by default it detaches (the job
goes on; the command prints how to re-attach and how to cancel), or, when asked, it cancels the
job and says so. Either way the exit status is 130. SIGTERM and SIGHUP (a closed terminal) are
treated alike, with exit status 143 and 129.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import attrs
import click

from pollinator_core.colonies.client import NotFound
from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.colonies.timestamps import parse_time
from pollinator_core.errors import JobFailed, PollinatorError, UsageError, interrupt_exit_code
from pollinator_core.execution.termination import Reason, from_errors
from pollinator_core.plugins.backend import Connection
from pollinator_core.project.loader import Project
from pollinator_core.runs.backends import COLONIES, LocalBackend, get_backend
from pollinator_core.runs.follow import failure_summary, follow
from pollinator_core.runs.submit import (
    Pulled,
    ResultsNotWritten,
    RunBook,
    RunRecord,
    connect_for,
    forget_snapshot,
    pull_results,
)

#: seconds a run may wait in the queue before the follower says so
WAITING_NOTE = 5.0


class Session:
    """A connection in use by one command, with its messages to stderr."""

    def __init__(self, project: Project, conn: Connection) -> None:
        self.project = project
        self.conn = conn
        self._executors: dict[str, str] | None = None
        self._said: set[str] = set()
        self._created = time.monotonic()
        #: what fetching the results did, once the run ended and they were fetched
        self.pulled: Pulled | None = None

    def note(self, message: str) -> None:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            click.echo(f"pollinator: {message}", err=True)

    def executor_name(self, executor_id: str) -> str:
        if self._executors is None:
            executors = self.conn.client.get_executors(self.conn.colony)
            self._executors = {e.executorid: e.executorname for e in executors}
        return self._executors.get(executor_id, executor_id[:12])

    def on_state(self, process: Process) -> None:
        """Say once that the run started, or that it has waited a while for an executor."""
        said = self._said
        if process.state is ProcessState.RUNNING and "running" not in said:
            said.add("running")
            if isinstance(get_backend(self.conn.backend), LocalBackend):
                # The agent's executor is named for its type ("local-docker"), whatever runs
                # the job; how jobs run was said when the backend was connected.
                self.note("running")
            else:
                self.note(f"running on {self.executor_name(process.assignedexecutorid)}")
        elif process.state is ProcessState.WAITING and "waiting" not in said:
            waited = time.monotonic() - self._created
            if waited > WAITING_NOTE:
                said.add("waiting")
                self.note(
                    f"still waiting for an executor after {waited:.0f} s "
                    "(`pollinator executors` lists the colony's executors)"
                )


def watch(
    session: Session,
    record: RunRecord,
    *,
    cancel_on_interrupt: bool,
    fetch: bool = True,
    out: TextIO | None = None,
    tail: int | None = None,
) -> int:
    """Follow the run to its end (its output to ``out``, from its last ``tail`` lines): its
    exit status (see the ``run`` help)."""
    conn = session.conn
    try:
        process = follow(
            conn.client,
            conn.colony,
            record.process_id,
            out=out,
            on_state=session.on_state,
            tail=tail,
        )
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (see cli.main)
        with contextlib.suppress(OSError):
            sys.stdout.flush()
        if cancel_on_interrupt:
            conn.client.cancel_process(record.process_id)
            session.note(f"interrupted: cancelled process {record.process_id}")
        else:
            session.note(
                f"detached; process {record.short_id} goes on.\n"
                f"  re-attach: pollinator logs -f {record.short_id}\n"
                f"  cancel:    pollinator cancel {record.short_id}"
            )
        return interrupt_exit_code(exc)
    return finish(session, record, process, fetch=fetch)


def finish(session: Session, record: RunRecord, process: Process, *, fetch: bool) -> int:
    """Report how the run ended (results fetched when ``fetch``); 0 on success, else 1."""
    if fetch:
        forget_snapshot(session.conn, record)
        try:
            pulled = session.pulled = pull_results(session.project, session.conn, process)
        except ResultsNotWritten:
            _outcome(session, record, process)  # how the job ended, whatever the disk says
            raise
        if pulled.new or pulled.conflicts or process.state is ProcessState.SUCCESS:
            for line in pulled.describe(session.project.root):
                session.note(line)
        elif process.state is ProcessState.CANCELLED:
            # Cancelled on the server at once; its executor uploads after stopping the job.
            session.note(
                "what the job wrote before it was stopped is uploaded by its executor in a "
                f"moment: fetch it with `pollinator results {record.short_id}`"
            )
    return _outcome(session, record, process)


def _outcome(session: Session, record: RunRecord, process: Process) -> int:
    if process.state is ProcessState.SUCCESS:
        session.note(f"process {record.short_id} succeeded")
        return 0
    session.note(failure_summary(process, with_tail=False))
    return JobFailed.exit_code


@contextlib.contextmanager
def open_run(ctx: click.Context, run_id: str | None) -> Iterator[tuple[Session, RunRecord]]:
    """The run ``run_id`` (an ID prefix; None: the latest) of the command's project, connected
    to the backend it ran on."""
    from pollinator_core.cli.context import load

    project = load(ctx)
    record = RunBook(project).find(run_id)
    conn = connect_for(project, record)
    try:
        yield Session(project, conn), record
    except NotFound as exc:
        raise elsewhere(record, conn, exc) from None
    finally:
        conn.close()


def elsewhere(record: RunRecord, conn: Connection, exc: NotFound) -> PollinatorError:
    """What to say when the server does not know a run: that it went to another server, when
    it did (a local agent's port changes with each start: not that)."""
    if record.backend != COLONIES or record.server in ("", conn.server):
        return exc
    return UsageError(
        f"Process {record.short_id} is not on the Colonies server at {conn.server}: it was "
        f"submitted to {record.server}. Point COLONIES_SERVER_HOST and "
        f"COLONIES_SERVER_PORT there to reach it ({exc.server_message or 'not found'})."
    )


@attrs.frozen
class RunRow:
    """One run as plain data, for ``status`` and ``ps`` (tables and ``--json`` alike)."""

    id: str
    state: str
    backend: str
    submitted: float | None
    started: float | None
    ended: float | None
    duration: float | None
    executor: str
    errors: list[str]
    name: str = ""
    #: the job's exit code, when its executor recorded one
    exit_code: int | None = None
    #: why it ended: exit, oom, walltime, cancelled, node failure, lost, infrastructure
    reason: str = ""


def ending(process: Process) -> tuple[int | None, str]:
    """The exit code and reason of a finished process: its executor's termination record,
    else what its state says."""
    termination = from_errors(process.errors)
    if termination is not None:
        return termination.exit_code, termination.reason.value
    if process.state is ProcessState.SUCCESS:
        return 0, Reason.EXIT.value
    if process.state is ProcessState.CANCELLED:
        return None, Reason.CANCELLED.value
    return None, ""


def process_row(session: Session, record: RunRecord, process: Process) -> RunRow:
    start, end = parse_time(process.starttime), parse_time(process.endtime)
    until = end if end is not None or process.state is not ProcessState.RUNNING else time.time()
    executor = process.assignedexecutorid
    exit_code, reason = ending(process) if process.state.finished else (None, "")
    return RunRow(
        id=process.processid,
        state=process.state.name,
        backend=record.backend,
        submitted=parse_time(process.submissiontime) or record.submitted,
        started=start,
        ended=end,
        duration=None if start is None or until is None else until - start,
        executor=session.executor_name(executor) if executor else "",
        errors=list(process.errors),
        name=record.name,
        exit_code=exit_code,
        reason=reason,
    )
