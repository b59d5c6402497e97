"""Pytest fixtures for tests that need a Colonies server: the embedded simulator, set up by the
test kit (``pollinator_core.testing.simulator``, whose ``pollinator_sim`` fixture plugin
authors use), plus raw signed RPCs for protocol-level tests.

Use them from a test module (or a conftest) by importing them::

    from sim_fixtures import sim_colony, simulator  # noqa: F401  (pytest fixtures)

    def test_something(sim_colony: SimColony) -> None:
        sim_colony.url, sim_colony.host, sim_colony.port
        sim_colony.keys.server_prvkey / .colony_prvkey / .prvkey (a member user) / .colony_name
        sim_colony.executor_prvkey, .executor_name, .executor_type  (an APPROVED executor)
        sim_colony.env()        # COLONIES_* variables for a client, executor key as COLONIES_PRVKEY
        sim_colony.rpc(prvkey, "getprocessmsg", processid=...)   # one signed RPC, decoded

- ``simulator``: a running :class:`EmbeddedSimulator` on a free loopback port (function scope),
  timeout loop every 0.2 s so timeout tests stay short.
- ``sim_colony``: that simulator with the colony "test" bootstrapped, a member user, and an
  approved executor of type "container-executor" named "sim-executor".

``RawRpc`` (and ``RpcError``) is a minimal signed-HTTP client for protocol-level tests: it
builds envelopes exactly as the official clients do and can also send malformed ones.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3
from pollinator_simulator.embedded import EmbeddedSimulator

from pollinator_core.colonies.crypto import sign
from pollinator_core.testing import simulator as kit


class RpcError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int
    payload_type: str
    error: bool
    payload: Any
    raw: bytes


class RawRpc:
    """Signed RPCs over one keep-alive pool (thread-safe)."""

    def __init__(self, url: str, maxsize: int = 16) -> None:
        self.url = url + "/api"
        self.http = urllib3.PoolManager(maxsize=maxsize)

    @staticmethod
    def envelope(msg: dict[str, Any], prvkey: str | None) -> bytes:
        payload = base64.b64encode(json.dumps(msg).encode()).decode()
        signature = sign(payload, prvkey) if prvkey else ""
        envelope = {"payloadtype": msg["msgtype"], "payload": payload, "signature": signature}
        return json.dumps(envelope).encode()

    def send(self, body: bytes, timeout: float = 30.0) -> Reply:
        response = self.http.request("POST", self.url, body=body, timeout=timeout)
        reply = json.loads(response.data)
        payload = json.loads(base64.b64decode(reply["payload"]))
        return Reply(response.status, reply["payloadtype"], reply["error"], payload, response.data)

    def call(self, prvkey: str | None, msgtype: str, **fields: Any) -> Any:
        reply = self.send(self.envelope({"msgtype": msgtype, **fields}, prvkey))
        if reply.error:
            raise RpcError(reply.payload["status"], reply.payload["message"])
        return reply.payload


class SimColony(kit.SimColony):
    """The test kit's colony (pollinator_core.testing.simulator), plus raw signed RPCs."""

    @functools.cached_property
    def raw(self) -> RawRpc:
        return RawRpc(self.url)

    def rpc(self, prvkey: str | None, msgtype: str, **fields: Any) -> Any:
        return self.raw.call(prvkey, msgtype, **fields)


@pytest.fixture
def simulator() -> Iterator[EmbeddedSimulator]:
    with EmbeddedSimulator(sweep_interval=0.2) as sim:
        yield sim


@pytest.fixture
def sim_colony(simulator: EmbeddedSimulator) -> SimColony:
    return SimColony.bootstrap(simulator)
