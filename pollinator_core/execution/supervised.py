"""A base for runtimes that enforce the walltime themselves (containers, host processes): a
timer per job, and one way to stop a job: a polite SIGTERM, then SIGKILL after ``kill_grace``
seconds, so a job can save its state but cannot outlive its limit by more than the grace.

Batch schedulers enforce walltime on their own and use :mod:`pollinator_core.execution.batch`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable

from pollinator_core.execution.runtime import JobStatus, Runtime
from pollinator_core.execution.termination import Reason, Termination

DEFAULT_KILL_GRACE = 3.0


class SupervisedRuntime(Runtime):
    """Walltime timers and the record of why this runtime stopped a job."""

    def __init__(self, kill_grace: float = DEFAULT_KILL_GRACE) -> None:
        self.kill_grace = kill_grace
        self._lock = threading.Lock()
        self._stopped: dict[str, Termination] = {}
        self._timers: dict[str, list[threading.Timer]] = {}
        self._preambles: dict[str, list[str]] = {}

    @abc.abstractmethod
    def _signal(self, handle: str, kill: bool) -> None:
        """Send SIGTERM (or SIGKILL when ``kill``) to everything the job runs; ignore if gone."""

    def _started(self, handle: str, walltime: int, notices: list[str] | None = None) -> None:
        """Note a started job: notice lines to show before its output, and its walltime."""
        with self._lock:
            self._preambles[handle] = list(notices or [])
        if walltime > 0:
            why = Termination(Reason.WALLTIME, detail=f"{walltime} s")
            self._after(handle, walltime, self._stop, handle, why)

    def _take_notices(self, handle: str) -> list[str]:
        with self._lock:
            return self._preambles.pop(handle, [])

    def _after(self, handle: str, delay: float, fn: Callable[..., object], *args: object) -> None:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        with self._lock:
            self._timers.setdefault(handle, []).append(timer)
        timer.start()

    def _stop(self, handle: str, why: Termination) -> None:
        with self._lock:
            if handle in self._stopped:
                return
            self._stopped[handle] = why
        self._signal(handle, kill=False)
        self._after(handle, self.kill_grace, self._signal, handle, True)

    def cancel(self, handle: str, why: Termination) -> None:
        self._stop(handle, why)

    def _ended(
        self, handle: str, exit_code: int, *, oom: str = "", evidence: tuple[str, ...] = ()
    ) -> JobStatus:
        """The final status: ours when we stopped the job, else what its exit says.

        ``oom`` (the limit that was hit, in words) when the kernel killed the job for memory;
        ``evidence``: what the runtime saw, for the termination record."""
        with self._lock:
            why = self._stopped.get(handle)
        if why is not None:
            return JobStatus.ended(why.with_exit(exit_code, *evidence))
        if oom:
            return JobStatus.ended(
                Termination(Reason.OOM, detail=oom).with_exit(exit_code, *evidence)
            )
        return JobStatus.ended(Termination.exited(exit_code, evidence=evidence))

    def _forget(self, handle: str) -> None:
        with self._lock:
            timers = self._timers.pop(handle, [])
            self._stopped.pop(handle, None)
            self._preambles.pop(handle, None)
        for timer in timers:
            timer.cancel()
