"""What an execution plugin receives and returns: a backend-neutral job and its status.

The core's executor loop turns an assigned Colonies process into a :class:`Job` (paths already
synced onto the executor's storage), hands it to an :class:`ExecutionBackend`, streams what
:meth:`ExecutionBackend.logs` yields into the process log and closes the process from the final
:class:`JobStatus`. A plugin only translates a Job into its world: a container, an sbatch script,
a Kubernetes Job.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Mapping

import attrs


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@attrs.frozen
class Mount:
    """A host directory made visible to the job at ``target``."""

    source: str
    target: str
    read_only: bool = False


@attrs.frozen
class Job:
    """One process to run, in terms every backend understands.

    ``command`` is the user's command line (``cmd`` + ``args``), run by ``sh -c`` after
    ``init_command`` (when set) has succeeded. ``cpu_millis``/``mem_bytes`` of 0 mean "no limit";
    ``walltime`` of 0 means none.
    """

    process_id: str
    image: str
    command: str
    init_command: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict)
    mounts: tuple[Mount, ...] = ()
    workdir: str = ""
    cpu_millis: int = 0
    mem_bytes: int = 0
    gpu_count: int = 0
    gpu_name: str = ""
    nodes: int = 1
    processes_per_node: int = 1
    walltime: int = 0
    rebuild_image: bool = False
    build_context: str = ""  # a directory with a Dockerfile, for rebuild_image


@attrs.frozen
class JobStatus:
    state: JobState
    exit_code: int | None = None
    reason: str = ""  # why it ended, for the process's errors: "OOM killed", "walltime exceeded"


class ExecutionBackend(abc.ABC):
    """One way to run jobs, registered by executor type (``docker``, ``slurm``, ``k8s`` ...).

    Methods may block; the executor loop calls each job's methods from its own thread. Handles
    are opaque strings chosen by the backend (a container id, a Slurm job id).
    """

    #: the executor type this backend serves, as in ``pollinator executor start --type``
    type: str = ""

    def render(self, job: Job) -> dict[str, str]:
        """The artefacts a dry run shows (file name -> text), such as an sbatch script."""
        return {}

    @abc.abstractmethod
    def submit(self, job: Job) -> str:
        """Start the job and return its handle. Raise ``InfraError`` when the backend is down."""

    @abc.abstractmethod
    def status(self, handle: str) -> JobStatus:
        """The job's current state; a finished state carries the exit code and reason."""

    @abc.abstractmethod
    def logs(self, handle: str) -> Iterator[bytes]:
        """Yield the job's output (stdout and stderr) as it appears, until the job ends.

        Chunks may split lines or UTF-8 characters anywhere: the core reassembles lines.
        """

    @abc.abstractmethod
    def cancel(self, handle: str, reason: str) -> None:
        """Stop the job (cancelled, or walltime/maxexectime expired). Must be idempotent."""

    def cleanup(self, handle: str) -> None:
        """Release what the job left behind (containers, scripts). Called once, at the end."""
        return None

    def close(self) -> None:
        """Release the backend's own resources when the executor stops."""
        return None
