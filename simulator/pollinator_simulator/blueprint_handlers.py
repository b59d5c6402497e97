"""RPC handlers for blueprint definitions and blueprints (documents and rules in blueprints.py).

Who may do what, as on the official server: the colony owner adds and removes definitions;
members or the colony owner read definitions and add, read, update and remove blueprints;
members report status and ask for reconciliation.

What a blueprint sets in motion when its kind's definition names a handler (an executor type and
a function): adding one creates, once per kind and location, a cron ``reconcile-<kind>[-<loc>]``
that every 60 s starts the handler for the whole kind, and submits a process that reconciles the
new blueprint at once; a spec change (or a forced generation) submits another; removing one
submits a ``cleanup`` process, and removes the cron with the last blueprint of its kind there.
A location a blueprint names is created when the colony has none of that name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models

from . import blueprints
from .location_handlers import location_doc
from .rpc import EMPTY, rpc
from .specs import initiator_name
from .store import Doc
from .wire import ApiError, Payload, fmt_time, or_null, random_id

if TYPE_CHECKING:
    from .server import Simulator

RECONCILE_INTERVAL = 60  # seconds, the official server's fixed interval for reconciliation crons


def _member_or_owner(sim: Simulator, signer: str, colony: str) -> None:
    try:
        sim.authz.require_member(signer, colony)
    except ApiError:
        sim.authz.require_colony_owner(signer, colony)


def _submit(
    sim: Simulator,
    colony: str,
    handler_type: str,
    nodename: str,
    funcname: str,
    location: str,
    kwargs: dict[str, Any],
    initiator: tuple[str, str],
) -> Doc:
    """A process for a blueprint handler, as the official server builds it (no time limits)."""
    spec = models.FunctionSpec(
        nodename=nodename,
        funcname=funcname,
        kwargs=kwargs,
        maxexectime=-1,
        maxretries=-1,
        conditions=models.Conditions(colonyname=colony, executortype=handler_type),
    )
    rec = sim.engine.new_process(spec, *initiator)
    if location:
        rec.doc["spec"]["conditions"]["locationname"] = location
    sim.engine.add_process(rec)
    return rec.doc


def _cron_name(bp: Doc) -> str:
    location = bp["metadata"].get("locationname", "")
    return f"reconcile-{bp['kind']}" + (f"-{location}" if location else "")


def _reconciler_workflow(colony: str, kind: str, handler: Doc, location: str) -> str:
    """The workflow spec of a reconciliation cron, as JSON text."""
    conditions: Doc = {
        "colonyname": colony,
        "executornames": None,
        "executortype": handler["executorType"],
    }
    if location:
        conditions["locationname"] = location
    conditions.update(
        dependencies=None,
        nodes=0,
        cpu="",
        processes=0,
        processespernode=0,
        mem="",
        storage="",
        gpu={"name": "", "mem": "", "count": 0, "nodecount": 0},
        walltime=0,
    )
    spec = {
        "nodename": f"{handler['executorType']}-{handler['functionName']}",
        "funcname": handler["functionName"],
        "args": [],
        "kwargs": {"kind": kind},
        "priority": 0,
        "maxwaittime": 0,
        "maxexectime": -1,
        "maxretries": -1,
        "conditions": conditions,
        "label": "",
        "fs": {"mount": "", "snapshots": None, "dirs": None},
        "env": {},
    }
    return json.dumps({"colonyname": colony, "functionspecs": [spec]}, separators=(",", ":"))


def _definition_for(sim: Simulator, bp: Doc) -> Doc:
    """The definition of the blueprint's kind in its colony, after checking the kind."""
    colony = bp["metadata"]["colonyname"]
    if not bp["kind"]:
        raise ApiError(400, "blueprint kind is required")
    sd = sim.blueprints.definition_for(colony, bp["kind"])
    if sd is None:
        raise ApiError(
            400, f"BlueprintDefinition for kind '{bp['kind']}' not found in namespace '{colony}'"
        )
    if "schema" in sd["spec"]:
        blueprints.validate(bp, sd["spec"]["schema"])
    return sd


# --- definitions ------------------------------------------------------------------------------


@rpc("addblueprintdefinitionmsg", "add blueprint definition")
async def add_definition(sim: Simulator, signer: str, msg: Payload) -> Any:
    raw = msg.object("blueprintdefinition")
    if raw is None:
        raise ApiError(400, "Failed to add blueprint definition, blueprint definition is nil")
    sd = blueprints.definition(raw)
    sim.authz.require_colony_owner(signer, sd["metadata"]["colonyname"])
    if not sd["blueprintdefinitionid"]:
        sd["blueprintdefinitionid"] = random_id()
    sim.blueprints.add_definition(sd)
    return sd


@rpc("getblueprintdefinitionmsg", "get blueprint definition")
async def get_definition(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _member_or_owner(sim, signer, colony)
    sd = sim.blueprints.definition(colony, msg.string("name"))
    if sd is None:
        raise ApiError(404, "Blueprint definition not found")
    return sd


@rpc("getblueprintdefinitionsmsg", "get blueprint definitions")
async def get_definitions(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _member_or_owner(sim, signer, colony)
    return sim.blueprints.definitions_of(colony)


@rpc("removeblueprintdefinitionmsg", "remove blueprint definition")
async def remove_definition(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, name = msg.string("namespace"), msg.string("name")
    sim.authz.require_colony_owner(signer, colony)
    sd = sim.blueprints.definition(colony, name)
    if sd is None:
        raise ApiError(404, f"BlueprintDefinition '{name}' not found in namespace '{colony}'")
    kind = sd["spec"]["names"]["kind"]
    remaining = sim.blueprints.of_colony(colony, kind)
    if remaining:
        raise ApiError(
            409,
            f"cannot remove BlueprintDefinition '{name}': {len(remaining)} blueprint(s) of kind "
            f"'{kind}' still exist",
        )
    sim.blueprints.remove_definition(colony, name)
    return EMPTY


# --- blueprints -------------------------------------------------------------------------------


@rpc("addblueprintmsg", "add blueprint")
async def add_blueprint(sim: Simulator, signer: str, msg: Payload) -> Any:
    raw = msg.object("blueprint")
    if raw is None:
        raise ApiError(400, "Failed to add blueprint, blueprint is nil")
    bp = blueprints.blueprint(raw)
    meta = bp["metadata"]
    colony, name = meta["colonyname"], meta["name"]
    _member_or_owner(sim, signer, colony)
    if not bp["blueprintid"]:
        bp["blueprintid"] = random_id()
    sd = _definition_for(sim, bp)
    if sim.blueprints.by_name(colony, name) is not None:
        raise ApiError(409, f"blueprint with name '{name}' already exists in colony '{colony}'")
    if bp["blueprintid"] in sim.blueprints.blueprints:
        raise ApiError(
            500, 'pq: duplicate key value violates unique constraint "prod_blueprints_pkey"'
        )
    location = meta.get("locationname", "")
    if location and sim.locations.get(colony, location) is None:
        sim.locations.add(
            location_doc(random_id(), location, colony, f"Auto-created from blueprint {name}", 0, 0)
        )
    sim.blueprints.save(bp)
    sim.blueprints.record(bp, signer, "create")
    handler = sd["spec"]["handler"]
    if handler["executorType"] and handler["functionName"]:
        initiator = (signer, initiator_name(sim, colony, signer) or "")
        if sim.crons.by_name(colony, _cron_name(bp)) is None:
            sim.crons.add(
                {
                    "cronid": random_id(),
                    "initiatorid": signer,
                    "initiatorname": initiator[1],
                    "colonyname": colony,
                    "name": _cron_name(bp),
                    "cronexpression": "",
                    "interval": RECONCILE_INTERVAL,
                    "random": False,
                    "nextrun": fmt_time(0),
                    "lastrun": fmt_time(0),
                    "workflowspec": _reconciler_workflow(colony, bp["kind"], handler, location),
                    "prevprocessgraphid": "",
                    "waitforprevprocessgraph": True,
                }
            )
        _submit(
            sim,
            colony,
            handler["executorType"],
            f"{handler['executorType']}-{handler['functionName']}",
            handler["functionName"],
            location,
            {"kind": bp["kind"], "blueprintName": name},
            initiator,
        )
    return bp


def _blueprint(sim: Simulator, colony: str, name: str) -> Doc:
    bp = sim.blueprints.by_name(colony, name)
    if bp is None:
        raise ApiError(404, "Blueprint not found")
    return bp


@rpc("getblueprintmsg", "get blueprint")
async def get_blueprint(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("namespace")
    _member_or_owner(sim, signer, colony)
    return _blueprint(sim, colony, msg.string("name"))


@rpc("getblueprintsmsg", "get blueprints")
async def get_blueprints(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, kind, location = msg.string("namespace"), msg.string("kind"), msg.string("locationname")
    _member_or_owner(sim, signer, colony)
    if not kind:
        found = sim.blueprints.of_colony(colony)
    else:
        found = sim.blueprints.of_colony(colony, kind, location or None)
    return or_null(found)


@rpc("updateblueprintmsg", "update blueprint")
async def update_blueprint(sim: Simulator, signer: str, msg: Payload) -> Any:
    raw = msg.object("blueprint")
    force = msg.boolean("forcegeneration")
    if raw is None:
        raise ApiError(400, "Failed to update blueprint, blueprint is nil")
    bp = blueprints.blueprint(raw)
    meta = bp["metadata"]
    colony, name = meta["colonyname"], meta["name"]
    _member_or_owner(sim, signer, colony)
    old = sim.blueprints.by_name(colony, name)
    if old is None:
        raise ApiError(404, f"blueprint '{name}' not found in namespace '{colony}'")
    sd = _definition_for(sim, bp)
    bp["blueprintid"] = old["blueprintid"]
    generation = old["metadata"].get("generation", 0)
    changed = blueprints.spec_changed(old, bp) or force
    blueprints.set_generation(bp, generation + 1 if changed else generation)
    sim.blueprints.save(bp)
    if changed:
        sim.blueprints.record(bp, signer, "update")
        handler = sd["spec"]["handler"]
        name_of_signer = initiator_name(sim, colony, signer)
        if handler["executorType"] and handler["functionName"] and name_of_signer is not None:
            _submit(
                sim,
                colony,
                handler["executorType"],
                f"{handler['executorType']}-{handler['functionName']}",
                handler["functionName"],
                bp["metadata"].get("locationname", ""),
                {"kind": bp["kind"], "blueprintName": name},
                (signer, name_of_signer),
            )
    return bp


@rpc("removeblueprintmsg", "remove blueprint")
async def remove_blueprint(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, name = msg.string("namespace"), msg.string("name")
    _member_or_owner(sim, signer, colony)
    bp = _blueprint(sim, colony, name)
    location = bp["metadata"].get("locationname", "")
    sim.blueprints.remove(bp["blueprintid"])
    same_place = [
        b
        for b in sim.blueprints.of_colony(colony, bp["kind"])
        if b["metadata"].get("locationname", "") == location
    ]
    if not same_place:
        cron = sim.crons.by_name(colony, _cron_name(bp))
        if cron is not None:
            sim.crons.remove(cron["cronid"])
    sd = sim.blueprints.any_definition_for(bp["kind"])
    if sd is not None and sd["spec"]["handler"]["executorType"]:
        handler_type = sd["spec"]["handler"]["executorType"]
        _submit(
            sim,
            colony,
            handler_type,
            f"{handler_type}-cleanup",
            "cleanup",
            location,
            {"blueprintName": name, "kind": bp["kind"]},
            (signer, initiator_name(sim, colony, signer) or ""),
        )
    return EMPTY


@rpc("getblueprinthistorymsg", "get blueprint history")
async def get_history(sim: Simulator, signer: str, msg: Payload) -> Any:
    blueprint_id, limit = msg.string("blueprintid"), msg.integer("limit")
    bp = sim.blueprints.blueprints.get(blueprint_id)
    if bp is None:
        raise ApiError(404, "Blueprint not found")
    _member_or_owner(sim, signer, bp["metadata"]["colonyname"])
    return or_null(sim.blueprints.history(blueprint_id, limit))


@rpc("updateblueprintstatusmsg", "update blueprint status")
async def update_status(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    status = msg.raw("status")
    if status is not None and not isinstance(status, dict):
        raise ApiError(400, msg.invalid)
    sim.authz.require_member(signer, colony)
    bp = _blueprint(sim, colony, msg.string("blueprintname"))
    bp.pop("status", None)
    if status:
        bp["status"] = status
    sim.blueprints.save(bp)
    return EMPTY


@rpc("reconcileblueprintmsg", "reconcile blueprint")
async def reconcile_blueprint(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, force = msg.string("namespace"), msg.boolean("force")
    sim.authz.require_member(signer, colony)
    bp = _blueprint(sim, colony, msg.string("name"))
    if force:
        blueprints.set_generation(bp, bp["metadata"].get("generation", 0) + 1)
        sim.blueprints.save(bp)
    name = initiator_name(sim, colony, signer)
    if name is None:
        raise ApiError(500, "Could not derive InitiatorName")
    sd = sim.blueprints.any_definition_for(bp["kind"])
    if sd is None or not sd["spec"]["handler"]["executorType"]:
        raise ApiError(400, "Blueprint has no handler with executor type defined")
    handler = sd["spec"]["handler"]
    if not handler["functionName"]:
        raise ApiError(400, "Blueprint has no handler with function name defined")
    kwargs: dict[str, Any] = {"kind": bp["kind"], "blueprintName": bp["metadata"]["name"]}
    if force:
        kwargs["force"] = True
    return _submit(
        sim,
        colony,
        handler["executorType"],
        f"{handler['executorType']}-{handler['functionName']}",
        handler["functionName"],
        bp["metadata"].get("locationname", ""),
        kwargs,
        (signer, name),
    )
