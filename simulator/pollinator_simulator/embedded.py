"""An in-process simulator on a background thread, for tests, benchmarks and ``--backend local``.

API::

    from pollinator_simulator.embedded import EmbeddedSimulator

    with EmbeddedSimulator() as sim:              # starts at once; stops on exit
        keys = sim.bootstrap("dev")               # -> DevKeys: a colony and a member user
        sim.register_executor(keys.colony_name, executor_prvkey, "exec-1", "container-executor")
        sim.url                                   # "http://127.0.0.1:<port>"
        sim.host, sim.port                        # "127.0.0.1", <port>
        keys.environment(sim.host, sim.port)      # COLONIES_* variables for a client

``EmbeddedSimulator(server_prvkey=None, *, db_path=None, host="127.0.0.1", port=0,
allow_executor_reregister=True, stale_executor_seconds=600.0, stale_check_seconds=60.0,
exclusive_assign=True, sweep_interval=1.0, cron_period=1.0, generator_period=1.0)``: the server
settings are described in :class:`Simulator`; re-registration is allowed here, as the official
deployment configures it (the local backend re-registers its executor on every start), and
refused by ``Simulator`` itself, as by the official server binary.
``server_prvkey`` defaults to a fresh key (``.server_prvkey``, ``.server_id``); ``port=0`` picks
a free port; ``db_path`` persists to SQLite. ``start()`` returns self and raises if the server
could not start; ``stop()`` closes every socket and joins the thread (idempotent). ``call(fn)``
runs ``fn(simulator)`` on the server's thread and returns its result: the only safe way to touch
the live ``Simulator`` (its state is not thread-safe). ``bootstrap`` and ``register_executor`` use
it. DevKeys holds ``server_prvkey``, ``colony_name``, ``colony_prvkey``, ``prvkey`` (a member) and
the derived ``server_id``, ``colony_id``, ``member_id``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key

from .bootstrap import DevKeys, bootstrap, register_executor
from .server import Simulator
from .store import Doc

T = TypeVar("T")


class EmbeddedSimulator:
    def __init__(
        self,
        server_prvkey: str | None = None,
        *,
        db_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_executor_reregister: bool = True,
        stale_executor_seconds: float | None = 600.0,
        stale_check_seconds: float = 60.0,
        exclusive_assign: bool = True,
        sweep_interval: float = 1.0,
        cron_period: float = 1.0,
        generator_period: float = 1.0,
    ) -> None:
        self.server_prvkey = server_prvkey or generate_private_key()
        self.server_id = id_from_private_key(self.server_prvkey)
        self.host = host
        self.port = port
        self._db_path = db_path
        self._reregister = allow_executor_reregister
        self._stale_seconds = stale_executor_seconds
        self._stale_check_seconds = stale_check_seconds
        self._exclusive_assign = exclusive_assign
        self._sweep_interval = sweep_interval
        self._periods = (cron_period, generator_period)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Simulator | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedSimulator:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="pollinator-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"the simulator did not start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join()

    def __enter__(self) -> EmbeddedSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, fn: Callable[[Simulator], T]) -> T:
        """Run ``fn(simulator)`` on the server's thread and return its result."""
        if self._loop is None or self._sim is None:
            raise RuntimeError("the simulator is not running")
        sim = self._sim

        async def run() -> T:
            return fn(sim)

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result()

    def bootstrap(self, colony_name: str = "dev", keys: DevKeys | None = None) -> DevKeys:
        """Create a colony with fresh keys (or ``keys``) and a member user; returns the keys."""
        if keys is None:
            keys = DevKeys(
                self.server_prvkey, colony_name, generate_private_key(), generate_private_key()
            )
        chosen = keys
        self.call(lambda sim: bootstrap(sim, chosen))
        return chosen

    def register_executor(
        self,
        colony_name: str,
        prvkey: str,
        name: str,
        executortype: str,
        *,
        approved: bool = True,
    ) -> Doc:
        """Register an executor (approved unless told otherwise) and return its record."""
        return self.call(
            lambda sim: register_executor(
                sim, colony_name, prvkey, name, executortype, approved=approved
            )
        )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        sim: Simulator | None = None
        try:
            sim = Simulator(
                self.server_id,
                db_path=self._db_path,
                allow_executor_reregister=self._reregister,
                stale_executor_seconds=self._stale_seconds,
                stale_check_seconds=self._stale_check_seconds,
                exclusive_assign=self._exclusive_assign,
                sweep_interval=self._sweep_interval,
                cron_period=self._periods[0],
                generator_period=self._periods[1],
            )
            self.port = await sim.start(self.host, self.port)
        except BaseException as err:
            if sim is not None:
                await sim.stop()
            self._error = err
            self._ready.set()
            return
        self._sim, self._loop, self._stop = sim, loop, asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await sim.stop()
            self._sim = None
