"""``addchildmsg``: the executor running a process of a workflow adds a process to that workflow.

The new process waits for the running parent, and goes either beside the parent's children (and,
when ``childprocessid`` names one, before that process) or, with ``insert``, between the parent
and all its children. As on the official server it has no initiator. Where the official server
crashes on a parent or child that does not exist, this answers 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models
from pollinator_core.colonies.models import ProcessState

from .rpc import rpc
from .specs import spec_channels
from .wire import ApiError, Payload

if TYPE_CHECKING:
    from .server import Simulator


@rpc("addchildmsg", "add child to processgraph")
async def add_child(sim: Simulator, signer: str, msg: Payload) -> Any:
    spec = msg.model("spec", models.FunctionSpec)
    try:
        channels = spec_channels(msg.raw("spec"))
    except ValueError:
        raise ApiError(400, msg.invalid) from None
    graph_id, parent_id = msg.string("processgraphid"), msg.string("parentprocessid")
    child_id, insert = msg.string("childprocessid"), msg.boolean("insert")
    if spec is None:
        raise ApiError(400, "Failed to add child to processgraph, msg.FunctionSpec is nil")
    sim.authz.require_member(signer, spec.conditions.colonyname)
    procs = sim.state.processes
    parent = procs.get(parent_id)
    if parent is None:
        raise ApiError(400, f"Process with Id {parent_id} not found")
    if parent.state != ProcessState.RUNNING:
        raise ApiError(400, f"Process with Id {parent_id} is not running")
    if parent.doc["assignedexecutorid"] != signer:
        raise ApiError(
            400, f"Process with Id {parent_id} is not assigned to executor with Id {signer}"
        )
    if not parent.graph:
        raise ApiError(400, f"Process with Id {parent_id} does not belong to a processgraph")
    before = procs.get(child_id) if child_id and not insert else None
    if child_id and not insert and before is None:
        raise ApiError(400, f"Process with Id {child_id} not found")
    try:
        rec = sim.engine.new_process(
            spec, "", "", graph_id=graph_id, wait_for_parents=True, channels=channels
        )
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    rec.doc["parents"] = [parent.id]
    children = list(parent.doc["children"])
    if insert:
        rec.doc["children"] = children
        parent.doc["children"] = [rec.id]
        for cid in children:
            child = procs.get(cid)
            if child is not None:
                child.doc["parents"] = [p for p in child.doc["parents"] if p != parent.id]
                child.doc["parents"].append(rec.id)
                sim.state.save_process(child)
    else:
        parent.doc["children"] = [*children, rec.id]
        if before is not None:
            rec.doc["children"] = [before.id]
            before.doc["parents"].append(rec.id)
            sim.state.save_process(before)
    sim.state.save_process(parent)
    sim.engine.add_process(rec)
    # The official graph is whatever its roots reach, depth first: the new process belongs to
    # the parent's graph from now on, in that order.
    graph = sim.state.graphs[parent.graph]
    graph["processids"] = _reachable(sim, graph["rootprocessids"])
    sim.state.save_graph(graph)
    return rec.doc


def _reachable(sim: Simulator, roots: list[str]) -> list[str]:
    procs = sim.state.processes
    seen: list[str] = []
    stack = list(reversed(roots))
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in procs:
            continue
        seen.append(pid)
        stack.extend(reversed(procs[pid].doc["children"]))
    return seen
