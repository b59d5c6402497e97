"""The core's executor loop on your runtime, against a simulator: the loop harness.

::

    def test_my_runtime_end_to_end(pollinator_executor):
        loop = pollinator_executor(MyRuntime())          # registered, adopting, serving
        pid = loop.submit("echo hello; exit 3")
        process = loop.wait(pid)                          # closed by the executor
        assert loop.output(pid) == "hello\\n"
        assert loop.termination(pid).exit_code == 3

It is the same :class:`~pollinator_core.executor.loop.Executor` ``pollinator executor start``
runs; only the stager is yours to give (the default, :class:`NoFiles`, moves no files: specs
without an ``fs`` section need none). :meth:`LoopHarness.kill` stops an executor the way
SIGKILL does, and :meth:`LoopHarness.restart` starts its successor with the same key and
directory, to test adoption.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.models import Conditions, FunctionSpec, Process, ProcessState
from pollinator_core.execution.job import Job
from pollinator_core.execution.runtime import JobStatus, Runtime
from pollinator_core.execution.termination import Termination, from_errors
from pollinator_core.executor.journal import Journal
from pollinator_core.executor.loop import Executor, ExecutorSettings, Stager
from pollinator_core.project.funcspec import EXECUTOR_TYPE, FUNCNAME
from pollinator_core.testing.simulator import SimColony

T = TypeVar("T")


class NoFiles:
    """A stager that moves no files, for specs without an ``fs`` section."""

    def pre_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        pass

    def post_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        pass

    def finish(self, process: Process) -> None:
        pass


def function_spec(
    command: str,
    *args: Any,
    colony: str = "test",
    walltime: int = 0,
    maxexectime: int = 60,
    image: str = "",
    env: Mapping[str, str] | None = None,
    **fields: Any,
) -> FunctionSpec:
    """A spec ``pollinator run`` could have built: ``command`` with ``args`` (each one shell
    argument), ``walltime`` the job's own limit, ``maxexectime`` the server's. ``fields`` are
    further FunctionSpec fields (``fs``, ``priority`` ...)."""
    kwargs: dict[str, Any] = {"cmd": command, "args": list(args), "docker-image": image}
    if walltime:
        kwargs["walltime"] = walltime
    return FunctionSpec(
        funcname=FUNCNAME,
        kwargs=kwargs,
        maxexectime=maxexectime,
        maxretries=0,
        conditions=Conditions(colonyname=colony, executortype=EXECUTOR_TYPE, walltime=maxexectime),
        env=dict(env or {}),
        **fields,
    )


class _Killed:
    """A switch that, once thrown, stops every thread that passes it for good."""

    def __init__(self) -> None:
        self.thrown = threading.Event()
        self._never = threading.Event()

    def check(self) -> None:
        if self.thrown.is_set():
            self._never.wait()  # as after SIGKILL: this thread does nothing more, ever


class _KillableClient:
    """A Colonies client that stops its callers when the switch is thrown."""

    def __init__(self, client: ColoniesClient, killed: _Killed) -> None:
        self._client = client
        self._killed = killed

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._killed.check()
            return value(*args, **kwargs)

        return call


class _KillableRuntime(Runtime):
    """``runtime``, except that after the switch is thrown no call reaches it any more."""

    def __init__(self, runtime: Runtime, killed: _Killed) -> None:
        self.inner = runtime
        self._killed = killed
        # What the loop reads of the runtime it drives: the wrapped one's (class variables of
        # Runtime, set on this instance alone).
        vars(self).update(detached=runtime.detached, type=runtime.type)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        self._killed.check()
        return fn(*args)

    def describe(self) -> str:
        return self.inner.describe()

    def submit(self, job: Job) -> str:
        return self._call(self.inner.submit, job)

    def status(self, handle: str) -> JobStatus:
        return self._call(self.inner.status, handle)

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        for item in self._call(self.inner.logs, handle, offset):
            self._killed.check()
            yield item

    def cancel(self, handle: str, why: Termination) -> None:
        self._call(self.inner.cancel, handle, why)

    def find(self, job: Job) -> str | None:
        return self._call(self.inner.find, job)

    def cleanup(self, handle: str) -> None:
        self._call(self.inner.cleanup, handle)

    def close(self) -> None:
        self._call(self.inner.close)


class LoopHarness:
    """An :class:`Executor` on ``runtime`` serving ``sim``'s colony as its approved executor,
    with its files under ``fs_dir``; ``user`` is a member's client for submitting and reading.

    ``settings`` override :class:`ExecutorSettings` fields (``max_jobs``, ``outage_limit``,
    ``heartbeat`` ...). Use it as a context manager, or call :meth:`shutdown`. ``family``
    collects this harness and its successors (:meth:`restart`), for whoever shuts them down."""

    def __init__(
        self,
        sim: SimColony,
        runtime: Runtime,
        fs_dir: Path,
        *,
        stager: Stager | None = None,
        family: list[LoopHarness] | None = None,
        **settings: Any,
    ) -> None:
        self.family = [] if family is None else family
        self.family.append(self)
        self.sim = sim
        self.runtime = runtime
        self.fs_dir = fs_dir
        self.user = sim.user_client()
        self._stager = stager or NoFiles()
        self._settings: dict[str, Any] = {"poll": 1.0, "monitor_interval": 0.2, **settings}
        self._killed = _Killed()
        self._client = sim.executor_client()
        self.executor = Executor(
            cast(ColoniesClient, _KillableClient(self._client, self._killed)),
            _KillableRuntime(runtime, self._killed),
            self._stager,
            ExecutorSettings(
                name=sim.executor_name, colony=sim.colony, fs_dir=fs_dir, **self._settings
            ),
        )
        self._thread: threading.Thread | None = None
        #: processes taken back from a predecessor at start
        self.adopted = 0

    def start(self) -> LoopHarness:
        """Adopt what a predecessor left (as ``pollinator executor start`` does), then serve."""
        self.adopted = self.executor.adopt()
        self._thread = threading.Thread(target=self.executor.serve, name="harness", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> LoopHarness:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- submitting and reading --------------------------------------------------------

    def submit(self, command: str, *args: Any, **options: Any) -> str:
        """Submit :func:`function_spec` (``command``, ``args``, ``options``); the process id."""
        return self.submit_spec(function_spec(command, *args, colony=self.sim.colony, **options))

    def submit_spec(self, spec: FunctionSpec) -> str:
        return self.user.submit(spec).processid

    def process(self, pid: str) -> Process:
        return self.user.get_process(pid)

    def state(self, pid: str) -> ProcessState:
        return self.process(pid).state

    def wait(self, pid: str, timeout: float = 30.0) -> Process:
        """The process once it is closed (successful, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            process = self.process(pid)
            if process.state.finished:
                return process
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"process {pid} is still {process.state.name} after {timeout} s; its log:\n"
                    + self.output(pid)
                )
            time.sleep(0.05)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        """Until ``check()`` is true; an AssertionError naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s for {what}")
            time.sleep(0.05)

    def logs(self, pid: str) -> list[str]:
        """The process log, one entry per addlog the executor made (the first 500, as
        much as the server returns at once)."""
        return [entry.message for entry in self.user.get_logs(self.sim.colony, pid, count=500)]

    def lines(self, pid: str) -> list[str]:
        """The process log as lines (the executor sends whole lines, several per entry)."""
        return self.output(pid).splitlines(keepends=True)

    def output(self, pid: str) -> str:
        return "".join(self.logs(pid))

    def termination(self, pid: str) -> Termination | None:
        """The termination record in the process's errors (None for a successful process)."""
        return from_errors(self.process(pid).errors)

    def forwarded(self, pid: str) -> int:
        """Bytes of the job's output the executor has put in the process log, by its journal."""
        entry = Journal(self.fs_dir).get(pid)
        return entry.offset if entry else 0

    # --- ending -------------------------------------------------------------------------

    def kill(self) -> None:
        """Stop this executor as SIGKILL would: from now on none of its threads reaches the
        server, the runtime or the stager again, and nothing is cleaned up. Its runtime's
        own threads are stopped (:meth:`Runtime.close`); what the runtime started lives on."""
        self._killed.thrown.set()
        self.executor.stop()
        self.runtime.close()

    def restart(self, runtime: Runtime, **settings: Any) -> LoopHarness:
        """A successor with the same key and directory on ``runtime``, started (it adopts)."""
        return LoopHarness(
            self.sim,
            runtime,
            self.fs_dir,
            stager=self._stager,
            family=self.family,
            **{**self._settings, **settings},
        ).start()

    def shutdown(self, grace: float = 0.0) -> None:
        """Shut the executor down as SIGTERM does (see :meth:`Executor.shutdown`), then close
        the runtime and the clients; a killed executor only has its clients closed."""
        if not self._killed.thrown.is_set() and self._thread is not None:
            self.executor.shutdown(grace)
            self._thread.join(10)
            self._thread = None
            with contextlib.suppress(Exception):  # a runtime may fail to close: not the test's
                self.runtime.close()
        if not self._killed.thrown.is_set():
            self._client.close()
        self.user.close()
