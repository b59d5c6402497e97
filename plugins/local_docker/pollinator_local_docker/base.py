"""What the Docker and the host-process runtimes share: the job's shell script, its environment,
and the bookkeeping of jobs this executor stopped (cancelled, or killed at their walltime).

Both runtimes stop a job the same way: a polite SIGTERM, then SIGKILL after ``kill_grace``
seconds, so a job can save its state but cannot outlive its limit by more than the grace.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable

from pollinator_core.api import ExecutionBackend, Job, JobState, JobStatus

DEFAULT_KILL_GRACE = 3.0


def shell_script(job: Job) -> str:
    """The ``sh -c`` text: ``init-cmd`` (whose failure ends the job), then the command.

    Both run in one shell, as in the official executors, so an ``export`` in init-cmd reaches
    the command; unlike them, a failing init-cmd stops the job with its exit code.
    """
    if not job.init_command:
        return job.command
    return (
        f"{{ {job.init_command}\n}}\n"
        "rc=$?\n"
        'if [ "$rc" -ne 0 ]; then\n'
        '  echo "pollinator: init-cmd failed with exit code $rc" >&2\n'
        '  exit "$rc"\n'
        "fi\n"
        f"{job.command}\n"
    )


def job_env(job: Job) -> dict[str, str]:
    """The job's environment; Python output unbuffered so lines stream as they are printed."""
    env = {"PYTHONUNBUFFERED": "1"}
    env.update(job.env)
    return env


class LocalRuntime(ExecutionBackend):
    """An ExecutionBackend that enforces walltime itself and remembers why it stopped a job."""

    type = "docker"

    def __init__(self, kill_grace: float = DEFAULT_KILL_GRACE) -> None:
        self._kill_grace = kill_grace
        self._lock = threading.Lock()
        self._stopped: dict[str, JobStatus] = {}
        self._timers: dict[str, list[threading.Timer]] = {}
        self._preambles: dict[str, bytes] = {}

    @abc.abstractmethod
    def _signal(self, handle: str, kill: bool) -> None:
        """Send SIGTERM (or SIGKILL when ``kill``) to everything the job runs; ignore if gone."""

    def _started(self, handle: str, walltime: int, preamble: bytes = b"") -> None:
        """Note a started job: what to show before its output, and its walltime timer."""
        with self._lock:
            self._preambles[handle] = preamble
        self._arm_walltime(handle, walltime)

    def _take_preamble(self, handle: str) -> bytes:
        with self._lock:
            return self._preambles.pop(handle, b"")

    def _arm_walltime(self, handle: str, walltime: int) -> None:
        if walltime > 0:
            reason = f"walltime exceeded ({walltime} s)"
            self._after(
                handle, walltime, self._stop, handle, JobStatus(JobState.FAILED, None, reason)
            )

    def _after(self, handle: str, delay: float, fn: Callable[..., object], *args: object) -> None:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        with self._lock:
            self._timers.setdefault(handle, []).append(timer)
        timer.start()

    def _stop(self, handle: str, why: JobStatus) -> None:
        with self._lock:
            if handle in self._stopped:
                return
            self._stopped[handle] = why
        self._signal(handle, kill=False)
        self._after(handle, self._kill_grace, self._signal, handle, True)

    def cancel(self, handle: str, reason: str) -> None:
        self._stop(handle, JobStatus(JobState.CANCELLED, None, reason))

    def _finished(self, handle: str, exit_code: int, reason: str) -> JobStatus:
        """The final status: ours when we stopped the job, else what its exit says."""
        with self._lock:
            why = self._stopped.get(handle)
        if why is not None:
            return JobStatus(why.state, exit_code, why.reason)
        if exit_code == 0 and not reason:
            return JobStatus(JobState.SUCCEEDED, 0)
        return JobStatus(JobState.FAILED, exit_code, reason or f"exit code {exit_code}")

    def _forget(self, handle: str) -> None:
        with self._lock:
            timers = self._timers.pop(handle, [])
            self._stopped.pop(handle, None)
            self._preambles.pop(handle, None)
        for timer in timers:
            timer.cancel()
