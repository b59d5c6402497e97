"""``--backend``: where a run goes, and where the lifecycle commands find it again.

The backends Pollinator itself provides (see ``pollinator_core.plugins.backend`` for the interface):

- ``colonies``: a real Colonies server from the official COLONIES_* / AWS_S3_* variables.
- ``local``: a local agent (the simulator plus a docker-type executor, see local_agent) that
  keeps its state in the project's ``.pollinator/local/``. Plugins may register more backends
  of this kind for their own executor type (``slurm``, ``k8s``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pollinator_core.plugins.backend import Backend, Connection

if TYPE_CHECKING:
    from pollinator_core.project.loader import Project

COLONIES = "colonies"
LOCAL = "local"


class ColoniesBackend(Backend):
    name = COLONIES
    help = "A Colonies server from COLONIES_* and AWS_S3_* (as the official tools read them)."

    def connect(
        self, project: Project, options: Mapping[str, Mapping[str, str]] | None = None
    ) -> Connection:
        from pollinator_core.colonies.client import ColoniesClient
        from pollinator_core.colonies.config import ClientConfig, ConfigError
        from pollinator_core.plugins.manager import open_storage

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

    def connect(
        self, project: Project, options: Mapping[str, Mapping[str, str]] | None = None
    ) -> Connection:
        from pollinator_core.runs.agent import connect_agent

        return connect_agent(project, self.name, self.executor_type, options)


def default_backend(project: Project) -> str:
    """project.yaml's ``backend``, else ``colonies`` when a server is configured, else local."""
    if project.backend:
        return project.backend
    return COLONIES if os.environ.get("COLONIES_SERVER_HOST") else LOCAL


def get_backend(name: str) -> Backend:
    from pollinator_core.errors import UsageError
    from pollinator_core.plugins.manager import hooks

    backends = hooks().backends()
    if name not in backends:
        raise UsageError(
            f"unknown backend {name!r}; installed backends: {', '.join(sorted(backends))}"
        )
    return backends[name]
