"""The simulated Colonies server: an aiohttp application speaking the Colonies wire protocol.

``Simulator`` owns the state, the lifecycle engine and the HTTP/WebSocket endpoints:
``POST /api`` (every RPC), ``GET /health`` and ``GET /pubsub``. It runs on one asyncio event
loop; handlers never await between checking and changing state, which keeps each RPC atomic.
With a database file, the write-through transaction is committed before any reply is sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from . import (  # noqa: F401  (register RPCs)
    blueprint_handlers,
    cfs_handlers,
    channel_handlers,
    child_handlers,
    colony_handlers,
    cron_handlers,
    generator_handlers,
    location_handlers,
    process_handlers,
    process_history_handlers,
)
from .auth import Authorizer, recover_signer
from .blueprints import Blueprints
from .channels import ChannelRouter
from .crons import CronEngine
from .generators import GeneratorEngine
from .lifecycle import Engine
from .location_handlers import Locations
from .pubsub import PubSub
from .rpc import ROUTES
from .store import Doc, Persistence, ProcessRec, SqlitePersistence, State
from .wire import ApiError, Payload, dumps, fmt_time, now_ns

log = logging.getLogger("pollinator_simulator")

BUILD_VERSION = "pollinator-simulator"
_ALIVE_SAVE_EVERY = 30 * 1_000_000_000
_EMPTY_PAYLOAD_TYPE = (
    "invalid rpcMsg.PayloadType: empty (this usually means the client is misconfigured - check "
    "that COLONIES_PRVKEY and other environment variables are set correctly)"
)


def _reply(payload_type: str, payload: Any) -> web.Response:
    body = base64.b64encode(dumps(payload).encode()).decode()
    text = f'{{"payloadtype":{dumps(payload_type)},"payload":"{body}","error":false}}'
    return web.Response(text=text, content_type="text/plain")


def _error(status: int, message: str, then: int | None = None) -> web.Response:
    text = ""
    for code in (status,) if then is None else (status, then):
        body = base64.b64encode(dumps({"status": code, "message": message}).encode()).decode()
        text += f'{{"payloadtype":"error","payload":"{body}","error":true}}'
    return web.Response(status=status, text=text, content_type="text/plain")


class Simulator:
    """One simulated server. ``server_id`` is the ID of the server owner's key (what
    COLONIES_SERVER_ID holds); ``db_path`` enables SQLite persistence. ``cron_period`` and
    ``generator_period`` are how often (seconds) crons and generators are looked at.

    The other settings are the official server's: ``allow_executor_reregister``
    (COLONIES_ALLOW_EXECUTOR_REREGISTER, off unless set), ``stale_executor_seconds``
    (COLONIES_STALE_EXECUTOR_DURATION; None: never) checked every ``stale_check_seconds``
    (COLONIES_CLEANUP_INTERVAL), and ``exclusive_assign`` (COLONIES_EXCLUSIVE_ASSIGN, which the
    official deployment sets): in that mode the assign reply carries the execdeadline the process
    had before this assignment, as there; a following getprocess has the new one.
    """

    def __init__(
        self,
        server_id: str,
        *,
        db_path: str | Path | None = None,
        allow_executor_reregister: bool = False,
        stale_executor_seconds: float | None = 600.0,
        stale_check_seconds: float = 60.0,
        exclusive_assign: bool = True,
        sweep_interval: float = 1.0,
        cron_period: float = 1.0,
        generator_period: float = 1.0,
    ) -> None:
        persistence = SqlitePersistence(db_path) if db_path else Persistence()
        self.state = State(persistence)
        self.state.load()
        self.authz = Authorizer(self.state, server_id)
        self.pubsub = PubSub(self)
        self.engine = Engine(
            self.state,
            self._process_changed,
            stale_check_ns=int(stale_check_seconds * 1e9),
            exclusive_assign=exclusive_assign,
        )
        self.engine.rebuild_queues()
        self.channels = ChannelRouter(self.state)
        self.crons = CronEngine(self, cron_period)
        self.generators = GeneratorEngine(self, generator_period)
        self.locations = Locations(self.state)
        self.blueprints = Blueprints(self.state)
        self._timers: list[asyncio.Task[None]] = []
        self.allow_executor_reregister = allow_executor_reregister
        self.exclusive_assign = exclusive_assign
        self._stale_ns = (
            None if stale_executor_seconds is None else int(stale_executor_seconds * 1e9)
        )
        self._sweep_interval = sweep_interval
        self._alive_saved: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.host = ""
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api", self._api)
        app.router.add_get("/health", self._health)
        app.router.add_get("/pubsub", self.pubsub.handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free port), start the timeout loop; return the port."""
        # handler_cancellation: a client that hangs up abandons its long-poll, as in Go where the
        # request context ends; otherwise a process could go to an executor that is gone.
        self._runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.host = host
        self.port = int(self._runner.addresses[0][1])
        self._sweeper = asyncio.create_task(self._sweep_loop())
        self._timers = [
            asyncio.create_task(self.crons.run()),
            asyncio.create_task(self.generators.run()),
        ]
        log.info("simulator listening on http://%s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop serving, then commit and close the database."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.state.persistence.close()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                self.engine.sweep(now_ns(), self._stale_ns)
            except Exception:
                log.exception("timeout loop failed")
            finally:
                self.state.commit()

    def _process_changed(self, rec: ProcessRec) -> None:
        self.pubsub.publish(rec)
        self.channels.process_changed(rec)

    def mark_alive(self, executor: Doc) -> None:
        """Record that an executor asked for work (stale executors are removed after a while)."""
        now = now_ns()
        executor["lastheardfromtime"] = fmt_time(now)
        if now - self._alive_saved.get(executor["executorid"], 0) > _ALIVE_SAVE_EVERY:
            self._alive_saved[executor["executorid"]] = now
            self.state.save_executor(executor)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _api(self, request: web.Request) -> web.Response:
        try:
            return await self._dispatch(await request.read())
        except ApiError as err:
            return _error(err.status, err.message, err.then)
        except Exception:
            log.exception("internal error while handling an RPC")
            return _error(500, "internal server error")
        finally:
            self.state.commit()

    async def _dispatch(self, body: bytes) -> web.Response:
        try:
            envelope = json.loads(body)
            if not isinstance(envelope, dict):
                raise ValueError("the RPC message is not a JSON object")
            fields = {str(k).lower(): v for k, v in envelope.items()}
            payload_type = fields.get("payloadtype") or ""
            payload = fields.get("payload") or ""
            signature = fields.get("signature") or ""
            if not all(isinstance(v, str) for v in (payload_type, payload, signature)):
                raise ValueError("payloadtype, payload and signature must be strings")
        except ValueError as err:
            raise ApiError(400, str(err)) from None

        if payload_type == "versionmsg":
            msg = self._decode(payload, "Failed to get server version, invalid JSON")
            if msg.string("msgtype") != payload_type:
                raise ApiError(
                    400, "Failed to get server version, msg.MsgType does not match payloadType"
                )
            info = {"buildversion": BUILD_VERSION, "buildtime": "", "msgtype": payload_type}
            return _reply(payload_type, info)
        if payload_type == "getserverinfomsg":
            backend = {"type": "http", "port": self.port, "host": self.host}
            info = {"buildversion": BUILD_VERSION, "buildtime": "", "backends": [backend]}
            return _reply(payload_type, info)

        signer = recover_signer(payload, signature)
        route = ROUTES.get(payload_type)
        if route is None:
            if not payload_type:
                raise ApiError(403, _EMPTY_PAYLOAD_TYPE)
            raise ApiError(403, "invalid rpcMsg.PayloadType: " + payload_type)
        msg = self._decode(payload, route.invalid)
        if msg.string("msgtype") != payload_type:
            raise ApiError(400, route.mismatch)
        return _reply(route.reply_type, await route.handler(self, signer, msg))

    @staticmethod
    def _decode(payload: str, invalid: str) -> Payload:
        try:
            data = json.loads(base64.b64decode(payload, validate=True))
        except (ValueError, binascii.Error):
            raise ApiError(400, invalid) from None
        if not isinstance(data, dict):
            raise ApiError(400, invalid)
        return Payload(data, invalid)
