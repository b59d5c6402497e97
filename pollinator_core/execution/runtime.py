"""The interface every runtime implements: start a job, report its state, stream its output,
stop it, find it again.

The contract, which the executor loop relies on and the conformance suite in
``pollinator_core.testing`` checks:

- **submit** starts the job and returns an opaque handle. ``InfraError``: the runtime itself is
  unreachable (engine down, scheduler not answering); the loop keeps the process, backs off and
  tries again. ``JobFailed``: this job cannot run (bad image, a refused option); the process is
  failed with that message.
- **walltime** is the runtime's to enforce, from the job's start (Slurm ``--time``, Kubernetes
  ``activeDeadlineSeconds``, a timer for containers and processes), ending the job with
  reason ``walltime``. The loop only guards the server's own deadline.
- **logs** yields the job's output as ``bytes`` (chunks may split lines anywhere), and the
  runtime's own notices as ``str`` lines (``pending: waiting for resources``), until the job
  has ended *and* everything it wrote has been yielded; ``offset`` skips that many bytes of
  output already forwarded (an executor adopting a job it followed before). Never ends early
  on a dropped stream. While the job is quiet it yields ``b""`` now and then (every second or
  so), so the loop can stop following (an executor shutting down leaves detached jobs running).
- **status** is cheap (a cached answer is fine; batch runtimes poll all jobs in one call) and,
  once the job ended, carries its :class:`~pollinator_core.execution.termination.Termination`.
  A job the runtime cannot see is never reported successful.
- **cancel** stops the job (TERM, a grace, then KILL) and is idempotent; the final status then
  carries the given termination with the exit code the job really had.
- **find** returns the handle of an external job for this process, running or ended, for
  runtimes whose jobs outlive the executor (``detached``); the loop calls it before every
  submit, so a process is never submitted twice, and at start to adopt its running jobs.
- **reconcile** is called once when an executor starts, before it adopts: with the executor's
  id and the processes the server still has running for it, so that a detached runtime marks
  its jobs as that executor's and removes the ones of processes no longer running for it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Collection, Iterator
from typing import ClassVar

import attrs

from pollinator_core.execution.job import Job
from pollinator_core.execution.termination import Termination


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    ENDED = "ended"


@attrs.frozen
class JobStatus:
    """A job's state; ``termination`` once it ended, ``waiting`` why it is still pending."""

    state: JobState
    termination: Termination | None = None
    waiting: str = ""

    @classmethod
    def ended(cls, termination: Termination) -> JobStatus:
        return cls(JobState.ENDED, termination)

    @property
    def finished(self) -> bool:
        return self.state is JobState.ENDED


class Runtime(abc.ABC):
    """One way to run jobs, registered under an executor type (``docker``, ``slurm``, ``k8s``).

    Methods may block; the loop calls each job's methods from that job's own thread.
    """

    #: the executor type this runtime serves, as in ``pollinator executor start --type``
    type: ClassVar[str] = ""
    #: True when jobs go on without the executor (a scheduler or an engine keeps them): the
    #: loop then leaves them running when it stops, and adopts them when it starts again
    detached: ClassVar[bool] = False

    def describe(self) -> str:
        """What runs the jobs, in a few words, for the executor's start line."""
        return self.type

    @abc.abstractmethod
    def submit(self, job: Job) -> str:
        """Start the job; its handle."""

    @abc.abstractmethod
    def status(self, handle: str) -> JobStatus:
        """The job's current state."""

    @abc.abstractmethod
    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        """Output bytes and notice lines until the job ended and all output was yielded."""

    @abc.abstractmethod
    def cancel(self, handle: str, why: Termination) -> None:
        """Stop the job; its final status carries ``why``. Idempotent."""

    def find(self, job: Job) -> str | None:
        """The handle of this job's external job if one exists (running or ended)."""
        return None

    def reconcile(self, owner: str, running: Collection[str]) -> None:
        """The executor ``owner`` (its id, the same across its restarts) starts; the server
        has the processes ``running`` running for it. A detached runtime marks the jobs it
        submits from now on as ``owner``'s, and may remove ``owner``'s jobs whose process is
        not in ``running`` (left behind by a crash)."""
        return None

    def cleanup(self, handle: str) -> None:
        """Release what the job left behind (containers, scripts). Called once, at the end."""
        return None

    def close(self) -> None:
        """Release the runtime's own resources when the executor stops."""
        return None
