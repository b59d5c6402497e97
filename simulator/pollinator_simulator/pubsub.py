"""The /pubsub WebSocket: process state subscriptions.

A client sends a signed ``subscribeprocessmsg`` (one process reaching a state) or
``subscribeprocessesmsg`` (any process of an executor type reaching a state) as a text frame.
Each match arrives as a reply frame whose payload is the process; a process already in the asked
state is sent at once. After ``timeout`` seconds the server closes the connection, as the
official server does. Processes subscriptions share matches round-robin, one subscriber each,
like the official event handler's general listeners.

Unlike the official server, subscribing requires membership of the process's colony, and a
processes subscription only sees its own colony.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .auth import recover_signer
from .store import ProcessRec
from .wire import ApiError, Payload, dumps

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

_PROCESS = "subscribeprocessmsg"
_PROCESSES = "subscribeprocessesmsg"

# Other subscription kinds, registered by the modules that hold them (channels): payload type ->
# a function of (simulator, socket, signer, base64 payload) that checks the request, raising
# ApiError, and returns the coroutine that then serves the subscription.
WsRoute = Callable[["Simulator", web.WebSocketResponse, str, str], Coroutine[Any, Any, None]]
WS_ROUTES: dict[str, WsRoute] = {}


@dataclass(eq=False)
class Subscription:
    colony: str
    exectype: str
    state: int
    process_id: str = ""  # empty: any process of the type (a processes subscription)
    # Frames are rendered when the change happens: the document keeps changing afterwards.
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


def reply_frame(payload_type: str, payload: Any) -> str:
    body = base64.b64encode(dumps(payload).encode()).decode()
    return dumps({"payloadtype": payload_type, "payload": body, "error": False})


def error_frame(status: int, message: str) -> str:
    body = base64.b64encode(dumps({"status": status, "message": message}).encode()).decode()
    return dumps({"payloadtype": "error", "payload": body, "error": True})


class PubSub:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._subs: set[Subscription] = set()
        self._turn = itertools.count()

    def publish(self, rec: ProcessRec) -> None:
        """Called on every state change (from the event-loop thread)."""
        if not self._subs:
            return
        chosen = []
        general = []
        for sub in self._subs:
            if sub.state != rec.state or sub.exectype != rec.exectype:
                continue
            if sub.process_id:
                if sub.process_id == rec.id:
                    chosen.append(sub)
            elif sub.colony == rec.colony:
                general.append(sub)
        if general:
            chosen.append(general[next(self._turn) % len(general)])
        if chosen:
            frame = reply_frame(_PROCESS, rec.doc)
            for sub in chosen:
                sub.queue.put_nowait(frame)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        pumps: list[asyncio.Task[None]] = []
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    pump = self._start(ws, str(frame.data))
                except ApiError as err:
                    await ws.send_str(error_frame(err.status, err.message))
                    break
                pumps.append(asyncio.create_task(pump))
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await ws.close()
        return ws

    def _start(self, ws: web.WebSocketResponse, text: str) -> Coroutine[Any, Any, None]:
        try:
            envelope = json.loads(text)
            payload_type = envelope["payloadtype"]
            body = envelope["payload"]
            signature = envelope["signature"]
            if not all(isinstance(v, str) for v in (payload_type, body, signature)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "invalid RPC message") from None
        signer = recover_signer(body, signature)
        route = WS_ROUTES.get(payload_type)
        if route is not None:
            return route(self.sim, ws, signer, body)
        sub, timeout = self._subscribe(signer, payload_type, body)
        return self._pump(ws, sub, timeout)

    def _subscribe(self, signer: str, payload_type: str, body: str) -> tuple[Subscription, float]:
        if payload_type not in (_PROCESS, _PROCESSES):
            raise ApiError(403, "invalid rpcMsg.PayloadType: " + payload_type)
        what = "process" if payload_type == _PROCESS else "processes"
        try:
            data = json.loads(base64.b64decode(body, validate=True))
            if not isinstance(data, dict):
                raise ValueError
        except (ValueError, binascii.Error):
            raise ApiError(400, f"Failed to subscribe to {what}, invalid JSON") from None
        msg = Payload(data, f"Failed to subscribe to {what}, invalid JSON")
        if msg.string("msgtype") != payload_type:
            raise ApiError(
                403, f"Failed to subscribe to {what}, msg.msgType does not match rpcMsg.PayloadType"
            )
        state, timeout = msg.integer("state"), msg.integer("timeout")
        exectype = msg.string("executortype")
        if payload_type == _PROCESS:
            rec = self.sim.state.processes.get(msg.string("processid"))
            if rec is None:
                raise ApiError(403, "Invalid process with Id " + msg.string("processid"))
            self.sim.authz.require_member(signer, rec.colony)
            sub = Subscription(rec.colony, exectype or rec.exectype, state, rec.id)
            if rec.state == state:
                sub.queue.put_nowait(reply_frame(_PROCESS, rec.doc))
        else:
            if signer not in self.sim.state.executor_by_id:
                raise ApiError(403, "executor not found")
            colony = msg.string("colonyname")
            self.sim.authz.require_member(signer, colony)
            sub = Subscription(colony, exectype, state)
        self._subs.add(sub)
        return sub, float(timeout)

    async def _pump(self, ws: web.WebSocketResponse, sub: Subscription, timeout: float) -> None:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                while True:
                    await ws.send_str(await sub.queue.get())
        except TimeoutError:
            # A match already queued when the time ran out is still delivered.
            while not sub.queue.empty():
                await ws.send_str(sub.queue.get_nowait())
            await ws.close()
        except ConnectionResetError:
            log.debug("subscriber went away")
        finally:
            self._subs.discard(sub)
