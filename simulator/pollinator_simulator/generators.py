"""Generators: arguments packed one by one, started as workflows in batches, as the official
server's generator controller does it.

``packgeneratormsg`` queues an argument (the first one ever also stamps ``firstpack``). Every
``period`` seconds (the official COLONIES_GENERATOR_CHECKER_PERIOD, 1 s by default) each
generator with at least ``trigger`` queued arguments starts its workflow once per full batch of
``trigger`` arguments, oldest first; the roots of each graph get the batch as their args (and no
kwargs). A generator with fewer, but some, queued arguments starts one graph with all of them
once ``timeout`` (> 0) seconds have passed since its last start, or since its first pack if it
never started. Deadlines compare in whole seconds, as there. Arguments leave the queue only once
their graph exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from .specs import launch, parse_workflow
from .store import Doc
from .wire import ApiError, fmt_time, now_ns, parse_time

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

KIND = "generator"  # record kinds in the store
ARG_KIND = "generatorarg"
_SECOND = 1_000_000_000


def _arg_key(generator_id: str, seq: int) -> str:
    return f"{generator_id}\x1f{seq:020d}"


class GeneratorEngine:
    def __init__(self, sim: Simulator, period: float) -> None:
        self.sim = sim
        self.period = period
        self.generators: dict[str, Doc] = sim.state.records[KIND]  # by id, in creation order
        self._queues: dict[str, deque[Doc]] = {}
        args = sorted(sim.state.records[ARG_KIND].values(), key=lambda a: a["seq"])
        for arg in args:
            self._queues.setdefault(arg["generatorid"], deque()).append(arg)
        self._seq = args[-1]["seq"] + 1 if args else 1
        sim.state.colony_listeners.append(self._colony_removed)

    @property
    def checker_period_ms(self) -> int:
        return round(self.period * 1000)

    def queue_size(self, generator_id: str) -> int:
        return len(self._queues.get(generator_id, ()))

    def by_name(self, colony: str, name: str) -> Doc | None:
        for generator in self.generators.values():
            if generator["colonyname"] == colony and generator["name"] == name:
                return generator
        return None

    def add(self, generator: Doc) -> None:
        name, colony = generator["name"], generator["colonyname"]
        if self.by_name(colony, name) is not None:
            raise ApiError(400, f"Generator with name <{name}> in Colony <{colony}> already exists")
        self.sim.state.put_record(KIND, generator["generatorid"], generator)

    def remove(self, generator_id: str) -> None:
        self.sim.state.drop_record(KIND, generator_id)
        for arg in self._queues.pop(generator_id, ()):
            self.sim.state.drop_record(ARG_KIND, _arg_key(generator_id, arg["seq"]))

    def _colony_removed(self, colony: str) -> None:
        for gid in [g for g, d in self.generators.items() if d["colonyname"] == colony]:
            self.remove(gid)

    def pack(self, generator: Doc, arg: str) -> None:
        gid = generator["generatorid"]
        doc = {
            "generatorid": gid,
            "colonyname": generator["colonyname"],
            "arg": arg,
            "seq": self._seq,
        }
        self._seq += 1
        self._queues.setdefault(gid, deque()).append(doc)
        self.sim.state.put_record(ARG_KIND, _arg_key(gid, doc["seq"]), doc)
        if not parse_time(generator["firstpack"]):
            generator["firstpack"] = fmt_time(now_ns())
            self.sim.state.put_record(KIND, gid, generator)

    def _submit(self, generator: Doc, count: int) -> None:
        """Start the workflow with the ``count`` oldest arguments; on failure keep them."""
        gid = generator["generatorid"]
        try:
            workflow, channels = parse_workflow(generator["workflowspec"])
        except ValueError as err:
            log.warning("generator %s: unreadable workflow spec: %s", gid, err)
            return
        queue = self._queues.get(gid, deque())
        batch = [queue[i] for i in range(min(count, len(queue)))]
        try:
            launch(
                self.sim,
                workflow,
                channels,
                generator["initiatorid"],
                args=[a["arg"] for a in batch],
            )
        except ApiError as err:
            log.warning("generator %s: cannot start its workflow: %s", gid, err.message)
            return
        for arg in batch:
            queue.popleft()
            self.sim.state.drop_record(ARG_KIND, _arg_key(gid, arg["seq"]))
        generator["lastrun"] = fmt_time(now_ns())
        self.sim.state.put_record(KIND, gid, generator)

    def tick(self) -> None:
        """One look at every generator; one that fails is logged and holds up no other."""
        for generator in list(self.generators.values()):
            try:
                self._look(generator)
            except Exception:
                log.exception("generator %s could not be looked at", generator["generatorid"])

    def _look(self, generator: Doc) -> None:
        counter = self.queue_size(generator["generatorid"])
        trigger, timeout = generator["trigger"], generator["timeout"]
        now_s = now_ns() // _SECOND
        since = parse_time(generator["lastrun"]) or parse_time(generator["firstpack"])
        timed_out = bool(since) and now_s > since // _SECOND + timeout
        if counter >= trigger:
            # A negative trigger never starts anything, as officially (0 is refused).
            for _ in range(counter // trigger if trigger > 0 else 0):
                self._submit(generator, trigger)
        elif counter >= 1 and timeout > 0 and timed_out:
            self._submit(generator, counter)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                self.tick()
            finally:
                self.sim.state.commit()
