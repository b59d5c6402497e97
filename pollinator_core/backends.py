"""``--backend``: where a run goes, and where the lifecycle commands find it again.

A :class:`Backend` turns a project into a :class:`Connection`: a Colonies client signing as the
user, the colony, and the storage that holds the CFS bytes. Everything after that (sync, submit,
follow, pull) is the same code for every backend.

- ``colonies``: a real Colonies server from the official COLONIES_* / AWS_S3_* variables.
- ``local``: a local agent (the simulator plus a docker-type executor, see local_agent) that
  keeps its state in the project's ``.pollinator/local/``. Plugins may register more backends
  of this kind for their own executor type (``slurm``, ``k8s``).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from pollinator_core.client import ColoniesClient
    from pollinator_core.project import Project
    from pollinator_core.storage import StorageLocation

COLONIES = "colonies"
LOCAL = "local"


@attrs.define
class Connection:
    """A live link to where runs go: ``client`` signs as the user in ``colony``."""

    backend: str
    client: ColoniesClient
    colony: str
    #: the storage, or a function that opens it (see :attr:`storage`)
    _storage: StorageLocation | Callable[[], StorageLocation] = attrs.field(alias="storage")
    #: one line worth telling the user once (say, "jobs run as host processes")
    notice: str = ""

    @property
    def storage(self) -> StorageLocation:
        """Where the CFS bytes live, opened on first use: commands that only talk to the server
        (logs, status, ps, cancel) then need no storage settings."""
        if callable(self._storage):
            self._storage = self._storage()
        return self._storage

    @property
    def server(self) -> str:
        return self.client.config.address

    def close(self) -> None:
        self.client.close()


class Backend(abc.ABC):
    """One ``--backend`` choice. ``name`` is what the option takes; ``help`` one line."""

    name: str = ""
    help: str = ""

    @abc.abstractmethod
    def connect(self, project: Project, *, runtime: str | None = None) -> Connection:
        """Connect for ``project``; raise InfraError (exit 3) when that is not possible.

        ``runtime`` is ``--runtime`` for backends that run jobs locally (others ignore it).
        """


class ColoniesBackend(Backend):
    name = COLONIES
    help = "A Colonies server from COLONIES_* and AWS_S3_* (as the official tools read them)."

    def connect(self, project: Project, *, runtime: str | None = None) -> Connection:
        from pollinator_core.client import ColoniesClient
        from pollinator_core.config import ClientConfig, ConfigError
        from pollinator_core.storage import open_storage

        config = ClientConfig.from_env()
        if not config.colony_name:
            raise ConfigError("COLONIES_COLONY_NAME is not set: which colony should run the job?")
        if not config.prvkey:
            raise ConfigError("COLONIES_PRVKEY is not set: the key that signs your requests.")
        return Connection(COLONIES, ColoniesClient(config), config.colony_name, open_storage)


class LocalBackend(Backend):
    """The simulator and an executor of ``executor_type`` in a local agent process."""

    def __init__(self, name: str, executor_type: str, help: str) -> None:
        self.name = name
        self.executor_type = executor_type
        self.help = help

    def connect(self, project: Project, *, runtime: str | None = None) -> Connection:
        from pollinator_core.local_agent import connect_agent

        return connect_agent(project, self.name, self.executor_type, runtime)


def default_backend(project: Project) -> str:
    """project.yaml's ``backend``, else ``colonies`` when a server is configured, else local."""
    if project.backend:
        return project.backend
    return COLONIES if os.environ.get("COLONIES_SERVER_HOST") else LOCAL


def get_backend(name: str) -> Backend:
    from pollinator_core.errors import UsageError
    from pollinator_core.plugins import hooks

    backends = hooks().backends()
    if name not in backends:
        raise UsageError(
            f"unknown backend {name!r}; installed backends: {', '.join(sorted(backends))}"
        )
    return backends[name]
