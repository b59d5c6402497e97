"""Crons: workflows started on a schedule, as the official server's cron controller runs them.

Every ``period`` seconds (the official COLONIES_CRON_CHECKER_PERIOD, 1 s by default) each cron
is looked at. The first look only computes its next run. Once that time has passed, the cron's
workflow is started as a process graph, unless the cron waits for its previous graph
(``waitforprevprocessgraph``) and that graph has neither succeeded nor failed yet; the previous
graph's leaves' outputs become the new roots' input. A cron with ``interval`` > 0 runs that many
seconds after its last start (``random`` changes nothing: the official controller never reaches
its random branch); otherwise its ``cronexpression`` decides (see cron_schedule). A start whose
workflow can no longer be created (for example because its initiator was removed) is retried at
the next look.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pollinator_core.colonies.models import ProcessState

from . import cron_schedule
from .specs import launch, parse_workflow
from .store import Doc
from .wire import ApiError, fmt_time, now_ns, parse_time

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

KIND = "cron"  # record kind in the store
_SECOND = 1_000_000_000
_SETTLED = (ProcessState.SUCCESS, ProcessState.FAILED)
_LAST = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp()) * _SECOND


def next_run(cron: Doc, now: int) -> int:
    """When the cron runs next, in UTC nanoseconds; 0 when there is no next time (an
    expression that never matches, or an interval beyond the calendar)."""
    interval: int = cron["interval"]
    if interval > 0:
        nxt = now + interval * _SECOND
        return nxt if nxt <= _LAST else 0
    try:
        schedule = cron_schedule.parse(cron["cronexpression"])
    except ValueError:
        return 0
    when = schedule.next(datetime.fromtimestamp(now / 1e9, UTC))
    return 0 if when is None else int(when.timestamp()) * _SECOND


class CronEngine:
    def __init__(self, sim: Simulator, period: float) -> None:
        self.sim = sim
        self.period = period
        self.crons: dict[str, Doc] = sim.state.records[KIND]  # by cronid, in creation order
        sim.state.colony_listeners.append(self._colony_removed)

    @property
    def checker_period_ms(self) -> int:
        return round(self.period * 1000)

    def by_name(self, colony: str, name: str) -> Doc | None:
        for cron in self.crons.values():
            if cron["colonyname"] == colony and cron["name"] == name:
                return cron
        return None

    def add(self, cron: Doc) -> None:
        if self.by_name(cron["colonyname"], cron["name"]) is not None:
            raise ApiError(
                400,
                f"Cron with name <{cron['name']}> in Colony <{cron['colonyname']}> already exists",
            )
        self.sim.state.put_record(KIND, cron["cronid"], cron)

    def remove(self, cron_id: str) -> None:
        self.sim.state.drop_record(KIND, cron_id)

    def _colony_removed(self, colony: str) -> None:
        for cron_id in [i for i, c in self.crons.items() if c["colonyname"] == colony]:
            self.remove(cron_id)

    def _update(self, cron: Doc, nxt: int, last: int, graph_id: str) -> None:
        cron["nextrun"] = fmt_time(nxt)
        cron["lastrun"] = fmt_time(last)
        cron["prevprocessgraphid"] = graph_id
        self.sim.state.put_record(KIND, cron["cronid"], cron)

    def start(self, cron: Doc) -> None:
        """Start the cron's workflow now; on failure leave the cron as it is (logged)."""
        try:
            workflow, channels = parse_workflow(cron["workflowspec"])
        except ValueError as err:
            log.warning("cron %s: unreadable workflow spec: %s", cron["cronid"], err)
            return
        root_input: list[Any] = []
        prev = self.sim.state.graphs.get(cron["prevprocessgraphid"])
        if prev is not None:
            for pid in self._leaves(prev):
                root_input.extend(self.sim.state.processes[pid].doc["out"])
        try:
            graph = launch(self.sim, workflow, channels, cron["initiatorid"], root_input=root_input)
        except ApiError as err:
            log.warning("cron %s: cannot start its workflow: %s", cron["cronid"], err.message)
            return
        now = now_ns()
        self._update(cron, next_run(cron, now), now, graph["processgraphid"])

    def _leaves(self, graph: Doc) -> list[str]:
        """The graph's processes without children, depth first from its roots."""
        procs = self.sim.state.processes
        seen: set[str] = set()
        leaves: list[str] = []
        stack = list(reversed(graph["rootprocessids"]))
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in procs:
                continue
            seen.add(pid)
            children = procs[pid].doc["children"]
            if not children:
                leaves.append(pid)
            stack.extend(reversed(children))
        return leaves

    def run_now(self, cron: Doc) -> None:
        """``runcronmsg``: start at once, unless it waits for a previous graph still going."""
        if cron["waitforprevprocessgraph"] and cron["prevprocessgraphid"]:
            prev = self.sim.state.graphs.get(cron["prevprocessgraphid"])
            if prev is not None and prev["state"] not in _SETTLED:
                return
        self.start(cron)

    def tick(self) -> None:
        """One look at every cron; one that fails is logged and holds up no other."""
        for cron in list(self.crons.values()):
            try:
                self._look(cron)
            except Exception:
                log.exception("cron %s could not be looked at", cron["cronid"])

    def _look(self, cron: Doc) -> None:
        now = now_ns()
        nxt = parse_time(cron["nextrun"])
        if nxt == 0:
            self._update(cron, next_run(cron, now), 0, "")
            return
        if now <= nxt:
            return
        prev = self.sim.state.graphs.get(cron["prevprocessgraphid"])
        if prev is None or not cron["waitforprevprocessgraph"] or prev["state"] in _SETTLED:
            self.start(cron)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                self.tick()
            finally:
                self.sim.state.commit()
