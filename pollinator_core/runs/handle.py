"""Runs as Python objects, for scripts and notebooks (``import pollinator``): submit a project
with per-run overrides, wait for it, stream its output, read how it ended, fetch its results,
cancel it. Each does what the command of the same name does, through the same code.

::

    import pollinator

    run = pollinator.submit("~/demo", args=["--lr", "0.1"], walltime="10m", name="lr 0.1")
    for line in run.logs(follow=True):
        print(line, end="")
    outcome = run.wait()
    if outcome.succeeded:
        print(run.fetch_results().directory)

A :class:`Run` holds no connection between calls: each call connects to where the run went
(a local agent that was restarted meanwhile is found again) and closes what it opened.
Errors are the CLI's: :class:`~pollinator_core.errors.UsageError` for a bad project or
override, :class:`~pollinator_core.errors.InfraError` for a server, storage or engine that is
unreachable or misconfigured.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.execution.termination import TAIL_MARK, Reason, Termination, from_errors
from pollinator_core.plugins.backend import Connection
from pollinator_core.project.loader import Project
from pollinator_core.runs.backends import default_backend, get_backend
from pollinator_core.runs.follow import stream
from pollinator_core.runs.overrides import Overrides, apply
from pollinator_core.runs.submit import (
    Pulled,
    RunBook,
    RunRecord,
    check_options,
    check_sources,
    check_state_dir,
    connect_for,
    forget_snapshot,
    open_project,
    pull_results,
    submit_run,
)

#: seconds between state checks while waiting, at first and at most
_WAIT_FIRST, _WAIT_MOST = 0.2, 2.0


@attrs.frozen
class Outcome:
    """How a run ended."""

    #: SUCCESS, FAILED or CANCELLED
    state: str
    #: the executor's termination record (exit code, signal, reason, evidence); None when the
    #: executor wrote none (an official executor, or a run cancelled before it started)
    termination: Termination | None
    #: the process's errors as the server keeps them (a summary line first)
    errors: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.state == ProcessState.SUCCESS.name

    @property
    def exit_code(self) -> int | None:
        if self.termination is not None:
            return self.termination.exit_code
        return 0 if self.succeeded else None

    @property
    def reason(self) -> Reason | None:
        """Why it ended: ``Reason.EXIT`` (by itself, see :attr:`exit_code`), ``WALLTIME``,
        ``OOM``, ``CANCELLED`` ...; None when nothing says."""
        if self.termination is not None:
            return self.termination.reason
        if self.succeeded:
            return Reason.EXIT
        return Reason.CANCELLED if self.state == ProcessState.CANCELLED.name else None

    @property
    def output_tail(self) -> str:
        """The last lines of output the executor kept with a failure ("" otherwise)."""
        for error in self.errors:
            if TAIL_MARK in error:
                return error.split(TAIL_MARK, 1)[1]
        return ""

    @classmethod
    def of(cls, process: Process) -> Outcome:
        return cls(process.state.name, from_errors(process.errors), tuple(process.errors))


class Run:
    """One run of a project: submitted here (:func:`submit`) or found again (:func:`attach`)."""

    def __init__(self, project: Project, record: RunRecord) -> None:
        self.project = project
        self.record = record

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<Run {self.record.short_id}{name} on {self.record.backend}>"

    @property
    def id(self) -> str:
        """The Colonies process id."""
        return self.record.process_id

    @property
    def name(self) -> str:
        return self.record.name

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Connection]:
        conn = connect_for(self.project, self.record)
        try:
            yield conn
        finally:
            conn.close()

    def process(self) -> Process:
        """The process as the server has it now."""
        with self._connected() as conn:
            return conn.client.get_process(self.id)

    @property
    def state(self) -> str:
        """WAITING, RUNNING, SUCCESS, FAILED or CANCELLED, as the server has it now."""
        return self.process().state.name

    @property
    def done(self) -> bool:
        return self.process().state.finished

    def wait(self, timeout: float | None = None) -> Outcome:
        """Wait until the run has ended; how it ended. ``TimeoutError`` after ``timeout``
        seconds (the run goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _WAIT_FIRST
        with self._connected() as conn:
            while True:
                process = conn.client.get_process(self.id)
                if process.state.finished:
                    forget_snapshot(conn, self.record)
                    return Outcome.of(process)
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"run {self.record.short_id} still {process.state.name}")
                left = pause if deadline is None else min(pause, deadline - time.monotonic())
                time.sleep(max(left, 0.0))
                pause = min(pause * 1.5, _WAIT_MOST)

    def outcome(self) -> Outcome | None:
        """How the run ended; None while it has not."""
        process = self.process()
        return Outcome.of(process) if process.state.finished else None

    def logs(self, *, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """The run's output, line by line (each with its newline); ``follow``: until it ends;
        ``tail``: from its last lines."""
        with self._connected() as conn:
            yield from stream(conn.client, conn.colony, self.id, follow=follow, tail=tail)

    def fetch_results(self) -> Pulled:
        """Download the run's results into ``cfs/result/<id>/`` (as ``pollinator results``):
        what came down, and the files you had changed there (kept; the run's version saved
        beside each)."""
        with self._connected() as conn:
            return pull_results(self.project, conn, conn.client.get_process(self.id))

    def cancel(self) -> bool:
        """Cancel the run; its executor stops the job and uploads what it wrote. False when
        it had ended already."""
        with self._connected() as conn:
            if conn.client.get_process(self.id).state.finished:
                return False
            conn.client.cancel_process(self.id)
            return True


def _project(project: str | os.PathLike[str] | None) -> Project:
    directory = None if project is None else Path(project).expanduser()
    return open_project(directory)


def submit(
    project: str | os.PathLike[str] | None = None,
    *,
    backend: str | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    walltime: str | int | None = None,
    cpu: str | int | float | None = None,
    mem: str | int | None = None,
    gpus: int | None = None,
    name: str | None = None,
    settings: Mapping[str, Mapping[str, str]] | None = None,
) -> Run:
    """Sync and submit the project in ``project`` (a directory holding project.yaml; default:
    found from the current directory), as ``pollinator run`` does, with this run's overrides
    checked as project.yaml's keys are. ``settings``: plugin settings by section
    (``{"local": {"runtime": "process"}}``, as ``-s local.runtime=process``)."""
    overrides = Overrides(tuple(args), dict(env or {}), walltime, cpu, mem, gpus, name)
    loaded = apply(_project(project), overrides)
    options = {section: dict(values) for section, values in (settings or {}).items()}
    check_options(options)
    check_sources(loaded)
    check_state_dir(loaded)
    conn = get_backend(backend or default_backend(loaded)).connect(loaded, options)
    try:
        record = submit_run(loaded, conn, quiet=True, name=name or "")
    finally:
        conn.close()
    return Run(loaded, record)


def attach(run_id: str | None = None, project: str | os.PathLike[str] | None = None) -> Run:
    """A run of the project by (a prefix of) its id; the latest run when None."""
    loaded = _project(project)
    return Run(loaded, RunBook(loaded).find(run_id))


def runs(project: str | os.PathLike[str] | None = None) -> list[Run]:
    """The project's runs, newest first."""
    loaded = _project(project)
    return [Run(loaded, record) for record in RunBook(loaded).all()]
