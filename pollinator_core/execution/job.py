"""What a runtime receives: one process to run, in terms every runtime understands.

The executor loop builds a :class:`Job` from an assigned Colonies process (its files already
staged onto the executor's storage) and hands it to a runtime; the runtime translates it into
its world (a container, an sbatch script, a Kubernetes Job).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import attrs

#: external job names start with this, so an operator (and an adopting executor) can tell ours
NAME_PREFIX = "pln-"


def external_name(process_id: str) -> str:
    """The name a runtime gives the external job of ``process_id``: deterministic, so a restarted
    executor finds its jobs again; short and ``[a-z0-9-]`` only, so every scheduler and the
    Kubernetes name rules (63 characters, DNS labels) take it."""
    return NAME_PREFIX + hashlib.sha256(process_id.encode()).hexdigest()[:16]


@attrs.frozen
class Mount:
    """A host directory made visible to the job at ``target``."""

    source: str
    target: str
    read_only: bool = False


@attrs.frozen
class Job:
    """One process to run.

    ``command`` is the user's command line (``cmd`` + ``args``), run by ``sh -c`` after
    ``init_command`` (when set) has succeeded; :func:`pollinator_core.execution.script.shell_script`
    gives the text. ``cpu_millis``/``mem_bytes`` of 0 mean "no limit"; ``walltime`` is the job's
    own limit in seconds (0: none), counted from when the job starts, not from when the
    executor took the process: queue time and staging are not the job's.
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
    #: for runtimes that run the job on the executor's host, not in a container: the
    #: environment it starts from instead of the executor's own (the local backend hands over
    #: the submitting command's); ``env`` still goes on top. None: the executor's.
    host_env: Mapping[str, str] | None = None

    @property
    def name(self) -> str:
        """The external job's name (see :func:`external_name`)."""
        return external_name(self.process_id)
