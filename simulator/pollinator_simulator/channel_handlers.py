"""RPC handlers for process channels, and their WebSocket subscription (``subscribechannelmsg``).

Who may use a channel: a member of the process's colony who is the process's submitter or its
assigned executor. A subscription first receives the entries after ``afterseq`` (a position in
the log) in one frame, then each new entry in a frame of its own, in log order; when
``timeout`` seconds (30 if 0) pass it receives an empty list and the subscription ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .channels import CLOSED, Channel, decode_payload
from .pubsub import WS_ROUTES, reply_frame
from .rpc import EMPTY, rpc
from .store import Doc
from .wire import ApiError, Payload

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

_SUBSCRIBE = "subscribechannelmsg"
_DEFAULT_TIMEOUT = 30


def _channel(sim: Simulator, signer: str, msg: Payload) -> Channel:
    rec = sim.state.processes.get(msg.string("processid"))
    if rec is None:
        raise ApiError(404, "Process not found")
    sim.authz.require_member(signer, rec.colony)
    return sim.channels.get(rec, msg.string("name"))


@rpc("channelappendmsg", "append to channel")
async def channel_append(sim: Simulator, signer: str, msg: Payload) -> Any:
    try:
        payload = decode_payload(msg.raw("payload"))
    except ValueError:  # binascii.Error is one
        raise ApiError(400, msg.invalid) from None
    sequence, in_reply_to = msg.integer("sequence"), msg.integer("inreplyto")
    kind = msg.string("payloadtype")
    channel = _channel(sim, signer, msg)
    try:
        sim.channels.append(channel, signer, sequence, in_reply_to, payload, kind)
    except PermissionError:
        raise ApiError(403, "Not authorized to write to channel") from None
    return EMPTY


@rpc("channelreadmsg", "read from channel")
async def channel_read(sim: Simulator, signer: str, msg: Payload) -> Any:
    after, limit = msg.integer("afterseq"), msg.integer("limit")
    channel = _channel(sim, signer, msg)
    try:
        return sim.channels.read_after(channel, signer, after, limit)
    except PermissionError:
        raise ApiError(403, "Not authorized to read from channel") from None


def _subscribe(
    sim: Simulator, ws: web.WebSocketResponse, signer: str, body: str
) -> Coroutine[Any, Any, None]:
    invalid = "Failed to subscribe to channel, invalid JSON"
    try:
        data = json.loads(base64.b64decode(body, validate=True))
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:  # binascii.Error is one
        raise ApiError(400, invalid) from None
    msg = Payload(data, invalid)
    if msg.string("msgtype") != _SUBSCRIBE:
        raise ApiError(
            400, "Failed to subscribe to channel, msg.MsgType does not match rpcMsg.PayloadType"
        )
    after, timeout = msg.integer("afterseq"), msg.integer("timeout")
    channel = _channel(sim, signer, msg)
    try:
        queue = sim.channels.subscribe(channel, signer)
    except PermissionError:
        raise ApiError(403, "Not authorized to subscribe to channel") from None
    # Read in the same step as subscribing: no entry can fall between the two, or come twice.
    backlog = sim.channels.read_after(channel, signer, after, 0)
    return _serve(sim, ws, channel, queue, backlog, timeout or _DEFAULT_TIMEOUT)


async def _serve(
    sim: Simulator,
    ws: web.WebSocketResponse,
    channel: Channel,
    queue: asyncio.Queue[Doc],
    backlog: list[Doc],
    timeout: float,
) -> None:
    try:
        if backlog:
            await ws.send_str(reply_frame(_SUBSCRIBE, backlog))
        async with asyncio.timeout(max(timeout, 0.0)):
            while True:
                entry = await queue.get()
                if entry is CLOSED:
                    return  # the channel was dropped: the official server just stops sending
                await ws.send_str(reply_frame(_SUBSCRIBE, [entry]))
    except TimeoutError:
        await ws.send_str(reply_frame(_SUBSCRIBE, []))
    except ConnectionResetError:
        log.debug("channel subscriber went away")
    finally:
        sim.channels.unsubscribe(channel, queue)


WS_ROUTES[_SUBSCRIBE] = _subscribe
