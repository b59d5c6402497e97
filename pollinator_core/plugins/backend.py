"""The ``--backend`` interface: where a run goes, as plugins register it.

A :class:`Backend` turns a project into a :class:`Connection`: a Colonies client signing as the
user, the colony, and the storage that holds the CFS bytes. Everything after that (sync, submit,
follow, pull) is the same code for every backend.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.models import FunctionSpec
    from pollinator_core.project.loader import Project
    from pollinator_core.storage.location import StorageLocation


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
    #: the backend's last word on a run's spec before it is submitted (the local backend
    #: hands the job the submitting command's environment)
    prepare_spec: Callable[[FunctionSpec], None] | None = None

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
    def connect(
        self, project: Project, options: Mapping[str, Mapping[str, str]] | None = None
    ) -> Connection:
        """Connect for ``project``; raise InfraError (exit 3) when that is not possible.

        ``options`` are the command line's plugin settings by section (``-s slurm.qos=long``,
        ``--runtime``), for backends that run jobs themselves; None: whatever is running will
        do (``logs``, ``cancel``, ``status`` only talk to it).
        """
