"""Colonies servers side by side for differential tests: the official server and the simulator.

A :class:`Peer` is one server seen through the same doors: signed raw RPCs that keep every detail
of the reply (HTTP status, error envelope, ``null`` vs ``[]``, a second envelope glued to the
first) and Pollinator's own client. Each test gets a colony of its own, created through the
protocol with the server key (``addcolonymsg``) plus a user, so tests never see each other's
processes, files or snapshots on the long-lived official server. Executors are added by the
colony owner (``addexecutormsg`` + ``approveexecutormsg``) with a type unique to the test.

The simulator peer is configured as the official instance it stands beside: same stale-executor
window and cleanup period, re-registration refused, the same assign mode.

Imports from pollinator_core are kept to this module (client, config, crypto) so that a move of
those modules is a one-place change for the differential suite.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import urllib3
from infra.components import ColoniesServer
from pollinator_simulator.embedded import EmbeddedSimulator

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key, sign

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class Reply:
    """One HTTP reply to an RPC. ``more`` holds envelopes sent after the first in the same body
    (the official server does that when a handler reports an error twice)."""

    status: int
    payload_type: str
    error: bool
    payload: Any
    more: list[Any] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The error message of an error reply ("" otherwise)."""
        return str(self.payload.get("message", "")) if self.error else ""

    def ok(self) -> Any:
        """The payload of a successful reply; AssertionError with the reply otherwise."""
        assert not self.error and self.status == 200, f"expected success, got {self}"
        return self.payload

    def refused(self, status: int, message: str | None = None) -> str:
        """Assert an error reply with ``status`` (and ``message`` when given); return the
        message. The envelope must say so three ways: HTTP status, ``error``, payload status."""
        assert self.error, f"expected a refusal ({status}), got success: {self.payload!r}"
        assert self.payload_type == "error", self
        assert (self.status, self.payload.get("status")) == (status, status), self
        if message is not None:
            assert self.message == message, self
        return self.message


def _envelopes(body: bytes) -> list[dict[str, Any]]:
    """Every JSON object in a reply body (usually one; the server sometimes writes two)."""
    decoder = json.JSONDecoder()
    text = body.decode()
    found, index = [], 0
    while index < len(text):
        obj, end = decoder.raw_decode(text, index)
        found.append(obj)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return found


@dataclass
class Executor:
    prvkey: str = field(repr=False)
    id: str
    name: str
    type: str


@dataclass
class Peer:
    """One server with a colony of this test's own."""

    kind: str  # "official", "official-distributed", "official-v187" or "simulator"
    version: str
    host: str
    port: int
    exclusive_assign: bool
    stale_seconds: int  # 0: executors are never removed for silence
    cleanup_seconds: int
    server_prvkey: str = field(repr=False)
    colony: str = ""
    colony_prvkey: str = field(default="", repr=False)
    user_prvkey: str = field(default="", repr=False)
    user_name: str = ""
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(maxsize=8))
    _clients: list[ColoniesClient] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return self.kind == "simulator"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    # --- the two doors -----------------------------------------------------------------------

    def call(self, prvkey: str | None, msgtype: str, **fields: Any) -> Reply:
        """One signed RPC (unsigned when ``prvkey`` is None), the reply kept whole."""
        payload = base64.b64encode(json.dumps({"msgtype": msgtype, **fields}).encode()).decode()
        envelope = {
            "payloadtype": msgtype,
            "payload": payload,
            "signature": sign(payload, prvkey) if prvkey else "",
        }
        timeout = 30.0 + max(int(fields.get("timeout", 0) or 0), 0)
        response = self.http.request(
            "POST", self.url + "/api", body=json.dumps(envelope).encode(), timeout=timeout
        )
        decoded = []
        for env in _envelopes(response.data):
            decoded.append((env, json.loads(base64.b64decode(env["payload"]))))
        (first, first_payload), rest = decoded[0], decoded[1:]
        return Reply(
            response.status,
            first["payloadtype"],
            bool(first.get("error")),
            first_payload,
            [p for _, p in rest],
        )

    def client(self, prvkey: str) -> ColoniesClient:
        """Pollinator's client signing with ``prvkey``, closed at the end of the test."""
        client = ColoniesClient(
            ClientConfig(host=self.host, port=self.port, colony_name=self.colony, prvkey=prvkey)
        )
        self._clients.append(client)
        return client

    # --- a colony of the test's own ----------------------------------------------------------

    def new_colony(self) -> None:
        self.colony = self.unique("diff")
        self.colony_prvkey = generate_private_key()
        self.call(
            self.server_prvkey,
            "addcolonymsg",
            colony={"colonyid": id_from_private_key(self.colony_prvkey), "name": self.colony},
        ).ok()
        self.user_prvkey = generate_private_key()
        self.user_name = self.unique("user")
        user = {
            "colonyname": self.colony,
            "userid": id_from_private_key(self.user_prvkey),
            "name": self.user_name,
            "email": "",
            "phone": "",
        }
        self.call(self.colony_prvkey, "addusermsg", user=user).ok()

    def capabilities(self) -> dict[str, Any]:
        """The executor capabilities this version decodes (objects up to v1.9.4)."""
        if self.version.startswith("v1.8"):
            return {"hardware": {}, "software": {}}
        return {"hardware": [], "software": []}

    def add_executor(self, executortype: str, name: str | None = None, prvkey: str = "") -> Reply:
        """addexecutormsg by the colony owner (not approved); the raw reply."""
        prvkey = prvkey or generate_private_key()
        body = {
            "executorid": id_from_private_key(prvkey),
            "executortype": executortype,
            "executorname": name or self.unique("exec"),
            "colonyname": self.colony,
            "capabilities": self.capabilities(),
        }
        return self.call(self.colony_prvkey, "addexecutormsg", executor=body)

    def new_executor(self, executortype: str = "", *, approve: bool = True) -> Executor:
        prvkey = generate_private_key()
        executortype = executortype or self.unique("type")
        name = self.unique("exec")
        self.add_executor(executortype, name, prvkey).ok()
        if approve:
            self.approve(name)
        return Executor(prvkey, id_from_private_key(prvkey), name, executortype)

    def approve(self, name: str) -> None:
        self.call(
            self.colony_prvkey, "approveexecutormsg", colonyname=self.colony, executorname=name
        ).ok()

    def remove_executor(self, name: str) -> Reply:
        return self.call(
            self.colony_prvkey, "removeexecutormsg", colonyname=self.colony, executorname=name
        )

    def get_executor(self, name: str) -> dict[str, Any]:
        reply = self.call(
            self.user_prvkey, "getexecutormsg", colonyname=self.colony, executorname=name
        )
        return dict(reply.ok())

    # --- processes -----------------------------------------------------------------------------

    def spec(self, executortype: str, **fields: Any) -> dict[str, Any]:
        """A function spec for this colony; ``conditions`` entries merge with the defaults."""
        conditions = {"colonyname": self.colony, "executortype": executortype}
        conditions.update(fields.pop("conditions", {}))
        return {"funcname": "diff", "maxexectime": -1, "conditions": conditions, **fields}

    def submit(self, executortype: str, **fields: Any) -> dict[str, Any]:
        reply = self.call(
            self.user_prvkey, "submitfuncspecmsg", spec=self.spec(executortype, **fields)
        )
        return dict(reply.ok())

    def assign(self, executor: Executor, timeout: int = -1, cpu: str = "", mem: str = "") -> Reply:
        return self.call(
            executor.prvkey,
            "assignprocessmsg",
            colonyname=self.colony,
            timeout=timeout,
            availablecpu=cpu,
            availablemem=mem,
        )

    def process(self, processid: str) -> dict[str, Any]:
        return dict(self.call(self.user_prvkey, "getprocessmsg", processid=processid).ok())

    def wait_for(
        self, what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2
    ) -> float:
        """Poll ``check`` until true; the seconds it took. AssertionError after ``timeout``."""
        start = time.monotonic()
        while not check():
            assert time.monotonic() - start < timeout, f"{self.kind}: {what} within {timeout} s"
            time.sleep(interval)
        return time.monotonic() - start

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self.colony and not self.simulated:
            # The official server keeps everything; a removed colony takes its data along.
            self.call(self.server_prvkey, "removecolonymsg", colonyname=self.colony)
        self.http.clear()


def official_peer(kind: str, server: ColoniesServer) -> Peer:
    return Peer(
        kind=kind,
        version=server.version,
        host=server.host,
        port=server.port,
        exclusive_assign=server.exclusive_assign,
        stale_seconds=server.stale_seconds,
        cleanup_seconds=server.cleanup_seconds,
        server_prvkey=server.server_prvkey,
    )


#: The stale-executor window and cleanup period tests/infra/colonies_up.sh gives the official
#: v1.9.12 instances; the simulator peer gets the same.
STALE_SECONDS, CLEANUP_SECONDS = 10, 1


@contextmanager
def simulator_peer(*, exclusive_assign: bool = True) -> Iterator[Peer]:
    """A fresh simulator with the official test instances' settings."""
    with EmbeddedSimulator(
        allow_executor_reregister=False,
        stale_executor_seconds=STALE_SECONDS,
        stale_check_seconds=CLEANUP_SECONDS,
        exclusive_assign=exclusive_assign,
        sweep_interval=1.0,
    ) as sim:
        yield Peer(
            kind="simulator",
            version="v1.9.12",
            host=sim.host,
            port=sim.port,
            exclusive_assign=exclusive_assign,
            stale_seconds=STALE_SECONDS,
            cleanup_seconds=CLEANUP_SECONDS,
            server_prvkey=sim.server_prvkey,
        )
