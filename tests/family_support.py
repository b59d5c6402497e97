"""A restartable simulator stack for the tests of the simulator's message families (crons,
generators, channels, blueprints, locations, workflow children, process history).

``stack`` (fixture): a simulator persisting to SQLite in the test's tmp dir, with the colony
``fam``, a member user, and an approved executor of type ``cli``; crons and generators are looked
at every 0.1 s and timeouts every 0.2 s. ``stack.restart()`` stops it and starts it again on the
same port from the same database, so every client keeps working across the restart.

Two clients speak to it: Pollinator's own (``stack.rpc(key, msgtype, **fields)``, one signed
RPC, raising ``RpcRefused`` with the server's status and words) and the official SDK
(``stack.sdk``, a pycolonies ``Colonies``). The imports of pollinator_core are all here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pollinator_simulator.bootstrap import DevKeys
from pollinator_simulator.embedded import EmbeddedSimulator
from pycolonies import Colonies

from pollinator_core.colonies.client import ColoniesClient, ColoniesError
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key

COLONY = "fam"
EXECUTOR_TYPE = "cli"
EXECUTOR_NAME = "exe"
PERIOD = 0.1  # cron and generator checkers, seconds

T = TypeVar("T")
RpcRefused = ColoniesError  # .status and .server_message: the server's refusal


class Stack:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.server_prvkey = generate_private_key()
        self.keys = DevKeys(
            self.server_prvkey, COLONY, generate_private_key(), generate_private_key()
        )
        self.executor_prvkey = generate_private_key()
        self.port = 0
        self.sim = self._start()
        self.sim.bootstrap(COLONY, self.keys)
        self.sim.register_executor(COLONY, self.executor_prvkey, EXECUTOR_NAME, EXECUTOR_TYPE)
        self.sdk = Colonies("127.0.0.1", self.port)
        self._client = ColoniesClient(ClientConfig(host="127.0.0.1", port=self.port, timeout=10))

    def _start(self) -> EmbeddedSimulator:
        sim = EmbeddedSimulator(
            self.server_prvkey,
            db_path=self.db,
            port=self.port,
            sweep_interval=0.2,
            cron_period=PERIOD,
            generator_period=PERIOD,
        ).start()
        self.port = sim.port
        return sim

    def restart(self) -> None:
        """Stop the simulator and start it again from its database, on the same port."""
        self.sim.stop()
        # Pollinator's client does not probe a connection it used in the last second before
        # reusing it, so the first call after a quick restart would find it broken.
        self._client.close()
        self.sim = self._start()

    def stop(self) -> None:
        self.sim.stop()
        self._client.close()

    @property
    def user(self) -> str:
        """The key of a member user (not an executor)."""
        return self.keys.prvkey

    @property
    def owner(self) -> str:
        """The colony owner's key (the owner is not a member)."""
        return self.keys.colony_prvkey

    @property
    def executor(self) -> str:
        return self.executor_prvkey

    @property
    def executor_id(self) -> str:
        return id_from_private_key(self.executor_prvkey)

    @property
    def user_id(self) -> str:
        return id_from_private_key(self.keys.prvkey)

    def rpc(self, prvkey: str, msgtype: str, **fields: Any) -> Any:
        """One RPC through Pollinator's client (its one raw entry point, ``_call``)."""
        return self._client.with_key(prvkey)._call(msgtype, fields, safe=False)

    def add_executor(self, name: str, *, approved: bool = True) -> str:
        """Another executor of type cli (approved unless told otherwise); returns its key."""
        prvkey = generate_private_key()
        self.sim.register_executor(COLONY, prvkey, name, EXECUTOR_TYPE, approved=approved)
        return prvkey


def id_of(prvkey: str) -> str:
    return id_from_private_key(prvkey)


def spec(funcname: str = "f", **fields: Any) -> dict[str, Any]:
    """A function spec for the stack's executor type, as JSON data."""
    conditions = {"colonyname": COLONY, "executortype": EXECUTOR_TYPE}
    conditions.update(fields.pop("conditions", {}))
    return {
        "nodename": funcname,
        "funcname": funcname,
        "maxexectime": -1,
        **fields,
        "conditions": conditions,
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``probe`` every 50 ms until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path / "sim.db")
    try:
        yield s
    finally:
        s.stop()
