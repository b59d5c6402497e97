"""RPC handlers for generators (the batching itself runs in generators.GeneratorEngine).

Any approved member of the generator's colony may add, read, pack and remove it. Departures from
the official server: a trigger of 0 is refused (the official controller divides by it and
crashes), and a generator whose workflow targets another colony also needs membership of that
colony.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rpc import EMPTY, rpc
from .specs import check_dependencies, initiator_name, parse_workflow
from .store import Doc
from .wire import ApiError, Payload, fmt_time, or_null, random_id

if TYPE_CHECKING:
    from .server import Simulator


def _reply(generator: Doc, queue_size: int = 0, checker_period: int = 0) -> Doc:
    return {**generator, "queuesize": queue_size, "checkerperiod": checker_period}


@rpc("addgeneratormsg", "add generator")
async def add_generator(sim: Simulator, signer: str, msg: Payload) -> Any:
    generator = msg.object("generator")
    if generator is None:
        raise ApiError(400, "Failed to add generator, msg.Generator is nil")
    colony = generator.string("colonyname")
    sim.authz.require_member(signer, colony)
    try:
        workflow, _ = parse_workflow(generator.string("workflowspec"))
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    check_dependencies(workflow)
    trigger = generator.integer("trigger")
    if trigger == 0:
        raise ApiError(400, "Failed to add generator, trigger must not be 0")
    if workflow.colonyname != colony:
        sim.authz.require_member(signer, workflow.colonyname)
    name = initiator_name(sim, colony, signer)
    if name is None:
        raise ApiError(500, "Failed to resolve initiator")
    doc: Doc = {
        "generatorid": random_id(),
        "initiatorid": signer,
        "initiatorname": name,
        "colonyname": colony,
        "name": generator.string("name"),
        "workflowspec": generator.string("workflowspec"),
        "trigger": trigger,
        "timeout": generator.integer("timeout"),
        "firstpack": fmt_time(0),
        "lastrun": fmt_time(0),
    }
    sim.generators.add(doc)
    return _reply(doc)


def _by_id(sim: Simulator, signer: str, msg: Payload, what: str) -> Doc:
    generator = sim.generators.generators.get(msg.string("generatorid"))
    if generator is None:
        raise ApiError(500, f"Failed to {what}, generator is nil")
    sim.authz.require_member(signer, generator["colonyname"])
    return generator


@rpc("getgeneratormsg", "get generator")
async def get_generator(sim: Simulator, signer: str, msg: Payload) -> Any:
    generator = _by_id(sim, signer, msg, "get generator")
    engine = sim.generators
    return _reply(generator, engine.queue_size(generator["generatorid"]), engine.checker_period_ms)


@rpc("resolvegeneratormsg", "resolve generator")
async def resolve_generator(sim: Simulator, signer: str, msg: Payload) -> Any:
    generator = sim.generators.by_name(msg.string("colonyname"), msg.string("generatorname"))
    if generator is None:
        raise ApiError(500, "Failed to resolve generator, generator is nil")
    sim.authz.require_member(signer, generator["colonyname"])
    return _reply(generator)


@rpc("getgeneratorsmsg", "get generators")
async def get_generators(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    count = msg.integer("count")
    if count < 0:
        raise ApiError(400, "pq: LIMIT must not be negative")
    generators = [g for g in sim.generators.generators.values() if g["colonyname"] == colony]
    return or_null([_reply(g) for g in generators[:count]])


@rpc(
    "packgeneratormsg",
    "increment generator",
    invalid="Failed to inc generator, invalid JSON",
)
async def pack_generator(sim: Simulator, signer: str, msg: Payload) -> Any:
    arg = msg.string("arg")
    generator = _by_id(sim, signer, msg, "increment generator")
    sim.generators.pack(generator, arg)
    return EMPTY


@rpc("removegeneratormsg", "remove generator")
async def remove_generator(sim: Simulator, signer: str, msg: Payload) -> Any:
    generator = _by_id(sim, signer, msg, "remove generator")
    sim.generators.remove(generator["generatorid"])
    return EMPTY
