"""A Colonies server for tests: the simulator on a free loopback port, with a colony ready.

::

    with start_simulator() as sim:
        sim.url, sim.host, sim.port, sim.colony
        sim.user_client()        # a ColoniesClient signing as a member of the colony
        sim.executor_client()    # ... as the approved executor (type container-executor)
        sim.env()                # the COLONIES_* variables the official tools read

The simulator speaks the Colonies protocol over real HTTP, as the official server does
(docs/simulator.md lists where they differ); the pytest fixture ``pollinator_sim`` is one
of these per test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key
from pollinator_core.project.funcspec import EXECUTOR_TYPE

if TYPE_CHECKING:
    from pollinator_simulator.bootstrap import DevKeys
    from pollinator_simulator.embedded import EmbeddedSimulator

#: the colony every simulator of the kit bootstraps
COLONY = "test"
#: the executor every simulator of the kit registers and approves
EXECUTOR_NAME = "sim-executor"


@dataclass
class SimColony:
    """A running simulator, its colony and keys, and an approved executor."""

    sim: EmbeddedSimulator
    keys: DevKeys
    executor_prvkey: str
    executor_name: str = EXECUTOR_NAME
    executor_type: str = EXECUTOR_TYPE

    @classmethod
    def bootstrap(cls, sim: EmbeddedSimulator, colony: str = COLONY) -> SimColony:
        """Create ``colony`` with a member user and an approved executor on ``sim``."""
        keys = sim.bootstrap(colony)
        executor_prvkey = generate_private_key()
        sim.register_executor(colony, executor_prvkey, EXECUTOR_NAME, EXECUTOR_TYPE)
        return cls(sim, keys, executor_prvkey)

    @property
    def url(self) -> str:
        return self.sim.url

    @property
    def host(self) -> str:
        return self.sim.host

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def colony(self) -> str:
        return self.keys.colony_name

    def env(self) -> dict[str, str]:
        """COLONIES_* variables: the server, the colony (with its owner's key, so that
        ``pollinator executor start`` registers itself), a member's key as COLONIES_PRVKEY,
        and the approved executor's as COLONIES_EXECUTOR_PRVKEY."""
        env = self.keys.environment(self.host, self.port)
        env["COLONIES_EXECUTOR_PRVKEY"] = self.executor_prvkey
        env["COLONIES_EXECUTOR_NAME"] = self.executor_name
        env["COLONIES_EXECUTOR_TYPE"] = self.executor_type
        return env

    def config(self, prvkey: str) -> ClientConfig:
        return ClientConfig(
            host=self.host, port=self.port, colony_name=self.colony, prvkey=prvkey, tls=False
        )

    def user_client(self) -> ColoniesClient:
        """A client signing as a member of the colony (close it when done)."""
        return ColoniesClient(self.config(self.keys.prvkey))

    def executor_client(self) -> ColoniesClient:
        """A client signing as the approved executor (close it when done)."""
        return ColoniesClient(self.config(self.executor_prvkey))

    def add_executor(
        self, name: str, executortype: str = EXECUTOR_TYPE, *, approved: bool = True
    ) -> str:
        """Another executor in the colony; returns its private key."""
        prvkey = generate_private_key()
        self.sim.register_executor(self.colony, prvkey, name, executortype, approved=approved)
        return prvkey


@contextlib.contextmanager
def start_simulator(*, sweep_interval: float = 0.2) -> Iterator[SimColony]:
    """A simulator on a free loopback port with the colony ``test``, stopped on exit.

    ``sweep_interval`` (seconds between checks of deadlines) is short, so that timeout tests
    stay short."""
    from pollinator_simulator.embedded import EmbeddedSimulator

    with EmbeddedSimulator(sweep_interval=sweep_interval) as sim:
        yield SimColony.bootstrap(sim)
