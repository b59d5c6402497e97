"""RPC handlers for crons (the schedule itself runs in crons.CronEngine).

Any approved member of the cron's colony may add, read, run and remove it. Two departures from
the official server, both refusals of what only a non-member could do there: ``runcronmsg``
checks membership before it starts anything (the official handler starts the cron first and
checks afterwards), and a cron whose workflow targets another colony also needs membership of
that colony.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import cron_schedule
from .rpc import EMPTY, rpc
from .specs import check_dependencies, initiator_name, parse_workflow
from .store import Doc
from .wire import ApiError, Payload, fmt_time, random_id

if TYPE_CHECKING:
    from .server import Simulator


def _reply(cron: Doc, checker_period: int = 0) -> Doc:
    return {**cron, "checkerperiod": checker_period}


@rpc("addcronmsg", "add cron")
async def add_cron(sim: Simulator, signer: str, msg: Payload) -> Any:
    cron = msg.object("cron")
    if cron is None:
        raise ApiError(400, "Failed to add cron, msg.Cron is nil")
    colony = cron.string("colonyname")
    sim.authz.require_member(signer, colony)
    try:
        workflow, _ = parse_workflow(cron.string("workflowspec"))
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    check_dependencies(workflow)
    interval, expression = cron.integer("interval"), cron.string("cronexpression")
    if interval == 0:
        raise ApiError(400, "Cron interval must be -1 (disabled) or larger than 0")
    if interval == -1:
        try:
            cron_schedule.parse(expression)
        except ValueError as err:
            raise ApiError(400, str(err)) from None
        if cron.boolean("random"):
            raise ApiError(400, "Random cron is only supported when specifying intervals")
    if workflow.colonyname != colony:
        sim.authz.require_member(signer, workflow.colonyname)
    name = initiator_name(sim, workflow.colonyname, signer)
    if name is None:
        raise ApiError(500, "Could not derive InitiatorName")
    doc: Doc = {
        "cronid": random_id(),
        "initiatorid": signer,
        "initiatorname": name,
        "colonyname": colony,
        "name": cron.string("name"),
        "cronexpression": expression,
        "interval": interval,
        "random": cron.boolean("random"),
        "nextrun": fmt_time(cron.time("nextrun")),
        "lastrun": fmt_time(cron.time("lastrun")),
        "workflowspec": cron.string("workflowspec"),
        "prevprocessgraphid": cron.string("prevprocessgraphid"),
        "waitforprevprocessgraph": cron.boolean("waitforprevprocessgraph"),
    }
    sim.crons.add(doc)
    return _reply(doc)


def _cron(sim: Simulator, signer: str, msg: Payload, status: int, missing: str) -> Doc:
    cron = sim.crons.crons.get(msg.string("cronid"))
    if cron is None:
        raise ApiError(status, missing)
    sim.authz.require_member(signer, cron["colonyname"])
    return cron


@rpc("getcronmsg", "get cron")
async def get_cron(sim: Simulator, signer: str, msg: Payload) -> Any:
    cron = _cron(sim, signer, msg, 500, "Failed to get cron, cron is nil")
    return _reply(cron, sim.crons.checker_period_ms)


@rpc("getcronsmsg", "get crons")
async def get_crons(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    count = msg.integer("count")
    if count < 0:
        raise ApiError(400, "pq: LIMIT must not be negative")
    crons = [c for c in sim.crons.crons.values() if c["colonyname"] == colony]
    return [_reply(c) for c in crons[:count]]


@rpc("runcronmsg", "run cron")
async def run_cron(sim: Simulator, signer: str, msg: Payload) -> Any:
    cron = _cron(sim, signer, msg, 400, "cron not found")
    before = _reply(cron)  # the official reply shows the cron as it was before this run
    sim.crons.run_now(cron)
    return before


@rpc("removecronmsg", "remove cron")
async def remove_cron(sim: Simulator, signer: str, msg: Payload) -> Any:
    cron = _cron(sim, signer, msg, 500, "Failed to remove cron, cron is nil")
    sim.crons.remove(cron["cronid"])
    return EMPTY
