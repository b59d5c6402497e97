"""RPC handlers for processes, workflows, attributes, logs and assignment pauses."""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models
from pollinator_core.colonies.models import ProcessState

from .rpc import EMPTY, rpc
from .specs import spec_channels, workflow_channels
from .store import Doc, ProcessRec
from .wire import (
    NUL_IN_TEXT,
    ApiError,
    Payload,
    has_nul,
    now_ns,
    or_null,
    parse_cpu,
    parse_mem,
    parse_time,
)

if TYPE_CHECKING:
    from .server import Simulator

MAX_COUNT = 100
MAX_LOG_COUNT = 500
#: A negative count becomes a negative SQL LIMIT, which PostgreSQL refuses.
NEGATIVE_LIMIT = "pq: LIMIT must not be negative"
MIN_PRIORITY, MAX_PRIORITY = -50000, 50000
_NO_LIMIT = 2**62  # an assign that names no cpu/mem fits anything


def _initiator_name(sim: Simulator, colony: str, signer: str) -> str:
    executor = sim.state.executor_by_id.get(signer)
    if executor is not None:
        return str(executor["executorname"])
    user = sim.state.user_by_id(colony, signer)
    if user is None:
        raise ApiError(500, "Could not derive InitiatorName")
    return str(user["name"])


def _process(sim: Simulator, msg: Payload, missing: str, status: int = 500) -> ProcessRec:
    rec = sim.state.processes.get(msg.string("processid"))
    if rec is None:
        raise ApiError(status, missing)
    return rec


# --- submitting and assigning -----------------------------------------------------------------


@rpc(
    "submitfuncspecmsg",
    "submit process spec",
    invalid="Failed to submit process, invalid JSON",
)
async def submit(sim: Simulator, signer: str, msg: Payload) -> Any:
    spec = msg.model("spec", models.FunctionSpec)
    if spec is None:
        raise ApiError(400, "Failed to submit process spec, msg.FunctionSpec is nil")
    colony = spec.conditions.colonyname
    sim.authz.require_member(signer, colony)
    if not MIN_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise ApiError(
            400,
            "Failed to submit function spec, priority outside range "
            f"[{MIN_PRIORITY}, {MAX_PRIORITY}]",
        )
    try:
        channels = spec_channels(msg.raw("spec"))
    except ValueError:
        raise ApiError(400, msg.invalid) from None
    name = _initiator_name(sim, colony, signer)
    if _text_columns_hold_nul(spec):
        raise ApiError(400, NUL_IN_TEXT)
    env_has_nul = has_nul(*spec.env.keys(), *map(str, spec.env.values()))
    if env_has_nul:
        # The official server inserts the process first and its env (as attributes) after;
        # the second insert fails, so the submit is refused but the process stays queued,
        # without its env.
        spec.env = {}
    try:
        rec = sim.engine.new_process(
            spec, signer, name, names_given=_names_given(msg), channels=channels
        )
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    sim.engine.add_process(rec)
    if env_has_nul:
        raise ApiError(400, NUL_IN_TEXT)
    return rec.doc


def _names_given(msg: Payload) -> bool:
    """Whether the spec's conditions carried executornames as a list, even an empty one (Go
    decodes JSON keys case-insensitively)."""
    spec = msg.raw("spec")
    conditions = _lower_get(spec, "conditions") if isinstance(spec, dict) else None
    names = _lower_get(conditions, "executornames") if isinstance(conditions, dict) else None
    return isinstance(names, list)


def _lower_get(obj: dict[str, Any], key: str) -> Any:
    return next((v for k, v in obj.items() if str(k).lower() == key), None)


def _text_columns_hold_nul(spec: models.FunctionSpec) -> bool:
    """A NUL in a spec field the official server keeps in a text column of the process row
    (args, kwargs and fs are stored as JSON, where a NUL is escaped, so those pass; env is
    stored afterwards, see submit)."""
    c = spec.conditions
    texts = [spec.nodename, spec.funcname, spec.label, c.colonyname, c.executortype, c.gpu.name]
    return has_nul(*texts, *c.executornames, *c.dependencies)


@rpc(
    "assignprocessmsg",
    "assign process",
    mismatch="Failed to assign process, msg.msgType does not match payloadType",
)
async def assign(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    timeout = msg.integer("timeout")
    if timeout == 0:
        raise ApiError(400, "Invalid timeout value, timeout cannot be zero")
    executor = sim.state.executor_by_id.get(signer)
    if executor is None:
        raise ApiError(500, "Failed to assign process, executor not found")
    try:
        cpu_text, mem_text = msg.string("availablecpu"), msg.string("availablemem")
        cpu = parse_cpu(cpu_text) if cpu_text else _NO_LIMIT
        mem = parse_mem(mem_text) if mem_text else _NO_LIMIT
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    deadline = time.monotonic() + timeout if timeout > 0 else 0.0
    engine = sim.engine
    while True:
        sim.mark_alive(executor)
        if colony in sim.state.paused:
            if timeout < 0:
                raise ApiError(503, "No processes available: colony assignments are paused")
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await engine.wait_for_resume(colony, remaining)
            if colony in sim.state.paused:
                raise ApiError(408, "Assignment timeout: colony assignments are paused")
            continue
        assigned = engine.assign(executor, colony, cpu, mem)
        if assigned is not None:
            if sim.exclusive_assign:
                # The official scheduler sets the new deadline in the database only, so its
                # reply carries the old one: zero on a first run, the passed one on a retry.
                return {**assigned.rec.doc, "execdeadline": assigned.previous_execdeadline}
            return assigned.rec.doc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(404, "No process available for assignment")
        await engine.wait_for_work(colony, executor["executortype"], remaining)
        # The executor may have been removed while it waited.
        if sim.state.executor_by_id.get(signer) is not executor:
            raise ApiError(500, "Failed to assign process, executor not found")


# --- reading and removing ---------------------------------------------------------------------


@rpc("getprocessmsg", "get process")
async def get_process(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _process(sim, msg, "Failed to get process, process not found", 404)
    sim.authz.require_member(signer, rec.colony)
    return rec.doc


_ORDER = {
    ProcessState.WAITING: lambda r: r.doc["prioritytime"],
    ProcessState.RUNNING: lambda r: r.started,
}


@rpc("getprocessesmsg", "get processes")
async def get_processes(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    count = msg.integer("count")
    if count > MAX_COUNT:
        raise ApiError(400, f"Count is larger than MaxCount limit <{MAX_COUNT}>")
    initiator = msg.string("initiator")
    if initiator and not any(
        u["name"] == initiator for (c, _), u in sim.state.users.items() if c == colony
    ):
        raise ApiError(400, f"User <{initiator}> does not exist")
    state = msg.integer("state")
    if state not in ProcessState._value2member_map_:
        raise ApiError(400, "Failed to get processes, invalid msg.State")
    if count < 0:
        raise ApiError(400, NEGATIVE_LIMIT)
    exectype, label = msg.string("executortype"), msg.string("label")
    recs = [r for r in sim.state.processes.values() if r.colony == colony and r.state == state]
    # The official queries apply one filter only, in this order of precedence.
    if exectype:
        recs = [r for r in recs if r.exectype == exectype]
    elif initiator:
        recs = [r for r in recs if r.doc["initiatorname"] == initiator]
    elif label:
        recs = [r for r in recs if r.doc["spec"]["label"] == label]
    if state in _ORDER:
        recs.sort(key=_ORDER[ProcessState(state)])
    else:
        recs.sort(key=lambda r: parse_time(r.doc["endtime"]), reverse=True)
    return or_null([r.doc for r in recs[: max(count, 0)]])


@rpc("removeprocessmsg", "remove process")
async def remove_process(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _process(sim, msg, "Failed to remove process, process is nil")
    sim.authz.require_member(signer, rec.colony)
    if rec.graph:
        raise ApiError(
            400,
            "Failed to remove, cannot remove a process part of a workflow, "
            "delete the entire workflow instead",
        )
    if rec.state == ProcessState.RUNNING:
        raise ApiError(400, "Failed to remove process, cannot remove a running process")
    sim.state.remove_process(rec.id)
    return EMPTY


@rpc("removeallprocessesmsg", "remove all processes")
async def remove_all_processes(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_colony_owner(signer, colony)
    state = msg.integer("state")
    if state == ProcessState.RUNNING:
        raise ApiError(400, "Not possible to remove running processes")
    if state != -1 and state not in ProcessState._value2member_map_:
        raise ApiError(400, "Invalid state when deleting all processes")
    for rec in list(sim.state.processes.values()):
        if rec.colony == colony and not rec.graph and state in (-1, rec.state):
            sim.state.remove_process(rec.id)
    return EMPTY


# --- closing ----------------------------------------------------------------------------------


def _assigned(sim: Simulator, signer: str, msg: Payload, what: str, short: str) -> ProcessRec:
    rec = _process(sim, msg, f"Failed to {what}, process is nil")
    sim.authz.require_member(signer, rec.colony)
    if rec.doc["assignedexecutorid"] == "":
        raise ApiError(403, f"Failed to {what}, process is not assigned")
    if rec.doc["assignedexecutorid"] != signer:
        raise ApiError(403, f"Failed to {what}, not allowed to {short}")
    return rec


@rpc(
    "closesuccessfulmsg",
    "close process as successful",
    invalid="Failed to close successful, invalid JSON",
)
async def close_successful(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _assigned(sim, signer, msg, "close process as successful", "close process as successful")
    sim.engine.close_successful(rec, signer, msg.array("out"))
    return EMPTY


@rpc("closefailedmsg", "close process as failed", invalid="Failed to close failed, invalid JSON")
async def close_failed(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _assigned(sim, signer, msg, "close process as failed", "close process as failed")
    errors = msg.strings("errors")
    if has_nul(*errors):
        # The official server marks the process FAILED first and stores the errors after; that
        # second write fails, so the close is refused but the process is FAILED, without errors.
        sim.engine.close_failed(rec, [])
        raise ApiError(400, NUL_IN_TEXT)
    sim.engine.close_failed(rec, errors)
    return EMPTY


@rpc("setoutputmsg", "set output")
async def set_output(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _process(sim, msg, "Failed to set output, process is nil")
    sim.authz.require_member(signer, rec.colony)
    if rec.doc["assignedexecutorid"] != signer:
        # Sic: the official server words this refusal as for a close.
        raise ApiError(
            403,
            "Failed to close process as successful, not allowed to close process as successful",
        )
    if rec.state != ProcessState.RUNNING:
        raise ApiError(403, "Failed to set output, process is not running")
    output = msg.array("out")
    if output:
        sim.engine.set_output(rec, output)
    return EMPTY


@rpc("cancelprocessmsg", "cancel process")
async def cancel_process(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _process(sim, msg, "Failed to cancel process, process is nil")
    sim.authz.require_member(signer, rec.colony)
    if rec.graph:
        raise ApiError(
            400,
            "Failed to cancel, cannot cancel a process part of a workflow, "
            "cancel the entire workflow instead",
        )
    sim.engine.cancel(rec)
    return EMPTY


# --- pausing assignments ----------------------------------------------------------------------


@rpc("pauseassignmentsmsg", "pause assignments")
async def pause_assignments(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_colony_owner(signer, colony)
    sim.engine.set_paused(colony, True)
    return EMPTY


@rpc("resumeassignmentsmsg", "resume assignments")
async def resume_assignments(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_colony_owner(signer, colony)
    sim.engine.set_paused(colony, False)
    return EMPTY


@rpc("getpausestatusmsg", "get pause status", reply_type="pausestatusreplymsg")
async def get_pause_status(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony, approved=False)
    return {
        "msgtype": "pausestatusreplymsg",
        "colonyname": colony,
        "ispaused": colony in sim.state.paused,
    }


# --- attributes -------------------------------------------------------------------------------


@rpc("addattributemsg", "add attribute")
async def add_attribute(sim: Simulator, signer: str, msg: Payload) -> Any:
    attribute = msg.model("attribute", models.Attribute) or models.Attribute()
    rec = sim.state.processes.get(attribute.targetid)
    if rec is None:
        raise ApiError(404, "Failed to add attribute, process not found")
    sim.authz.require_member(signer, rec.colony)
    if rec.state != ProcessState.RUNNING:
        raise ApiError(403, "Failed to add attribute, process is not running")
    if rec.doc["assignedexecutorid"] != signer:
        raise ApiError(
            403,
            "Failed to add attribute, only executor with id "
            f"<{rec.doc['assignedexecutorid']}> is allowed to set attributes",
        )
    if has_nul(attribute.key, attribute.value):
        raise ApiError(400, NUL_IN_TEXT)
    return sim.engine.add_attribute(
        rec,
        int(attribute.attributetype),
        attribute.key,
        attribute.value,
        colony=attribute.targetcolonyname,
        state=_sent_state(msg),
    )


def _sent_state(msg: Payload) -> int:
    """The attribute's state as the client sent it (Pollinator's models do not carry it)."""
    raw = msg.raw("attribute")
    state = _lower_get(raw, "state") if isinstance(raw, dict) else None
    return state if isinstance(state, int) and not isinstance(state, bool) else 0


@rpc("getattributemsg", "get attribute")
async def get_attribute(sim: Simulator, signer: str, msg: Payload) -> Any:
    attribute = sim.state.attributes.get(msg.string("attributeid"))
    if attribute is None:
        # The database's words, with the status of any database error there.
        raise ApiError(400, "Attribute does not exists")
    rec = sim.state.processes.get(attribute["targetid"])
    if rec is None:
        raise ApiError(404, "Failed to get attribute, process not found")
    sim.authz.require_member(signer, rec.colony)
    return attribute


# --- logs -------------------------------------------------------------------------------------


@rpc("addlogmsg", "add log")
async def add_log(sim: Simulator, signer: str, msg: Payload) -> Any:
    rec = _process(sim, msg, "Failed to add log, process is nil")
    sim.authz.require_member(signer, rec.colony)
    if rec.state != ProcessState.RUNNING:
        # Sic: the official server's wording.
        raise ApiError(403, "Failed to set output, process is not running")
    if rec.doc["assignedexecutorid"] != signer:
        raise ApiError(
            403,
            "Failed to add log, not allowed to add log, only the assigned Executor may att logs",
        )
    message = msg.string("message")
    if has_nul(message):
        # PostgreSQL refuses the line; the official handler reports that twice in one body.
        raise ApiError(400, NUL_IN_TEXT, then=500)
    state = sim.state
    # Strictly increasing stamps, so a follower asking for ts > last never skips a line.
    ts = max(now_ns(), state.last_log_ts + 1)
    state.add_log(
        {
            "processid": rec.id,
            "colonyname": rec.colony,
            "executorname": state.executor_by_id[signer]["executorname"],
            "message": message,
            "timestamp": ts,
        }
    )
    return EMPTY


def _window(logs: list[Doc], stamps: list[int], count: int, since: int, latest: bool) -> list[Doc]:
    if latest:
        return logs[len(logs) - count :] if count > 0 else []
    start = bisect.bisect_right(stamps, since) if since > 0 else 0
    return logs[start : start + count]


@rpc("getlogsmsg", "get logs")
async def get_logs(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, executor_name = msg.string("colonyname"), msg.string("executorname")
    if executor_name:
        executor = sim.state.executors.get((colony, executor_name))
        if executor is None:
            raise ApiError(500, "Failed to get logs, executor does not exist")
        sim.authz.require_member(signer, executor["colonyname"])
    else:
        rec = _process(sim, msg, "Failed to get logs, process does not exist")
        sim.authz.require_member(signer, rec.colony)
    count = msg.integer("count")
    if count > MAX_LOG_COUNT:
        raise ApiError(403, f"Count exceeds max log count ({MAX_LOG_COUNT})")
    if count < 0:
        raise ApiError(400, NEGATIVE_LIMIT, then=500)  # reported twice, as by the official handler
    since, latest = msg.integer("since"), msg.boolean("latest")
    if executor_name:
        logs = sim.state.executor_logs.get((colony, executor_name), [])
        stamps = [log["timestamp"] for log in logs] if since > 0 and not latest else []
    else:
        pid = msg.string("processid")
        logs = sim.state.logs.get(pid, [])
        stamps = sim.state.log_ts.get(pid, [])
    return or_null(_window(logs, stamps, count, since, latest))


# --- workflows --------------------------------------------------------------------------------


@rpc("submitworkflowspecmsg", "submit workflow", invalid="Failed to submit workkflow, invalid JSON")
async def submit_workflow(sim: Simulator, signer: str, msg: Payload) -> Any:
    workflow = msg.model("spec", models.WorkflowSpec)
    if workflow is None:
        raise ApiError(400, "Failed to submit workflow, msg.WorkflowSpec is nil")
    sim.authz.require_member(signer, workflow.colonyname)
    name = _initiator_name(sim, workflow.colonyname, signer)
    try:
        channels = workflow_channels(msg.raw("spec"))
    except ValueError:
        raise ApiError(400, msg.invalid) from None
    return sim.engine.submit_workflow(workflow, signer, name, channels)


def _graph(sim: Simulator, msg: Payload, what: str) -> Doc:
    graph = sim.state.graphs.get(msg.string("processgraphid"))
    if graph is None:
        raise ApiError(500, f"Failed to {what}, graph is nil")
    return graph


_STATE_COLOURS = {0: "#eee8d8", 1: "#4689cd", 2: "#92d050", 3: "#cb4239", 4: "#f5a623"}


def _with_layout(sim: Simulator, graph: Doc) -> Doc:
    """The graph with the nodes and edges the official server draws for its web UI."""
    procs = sim.state.processes
    depth: dict[str, int] = {}
    frontier = [p for p in graph["rootprocessids"] if p in procs]
    level = 0
    while frontier:
        nxt: list[str] = []
        for pid in frontier:
            if pid not in depth:
                depth[pid] = level
                nxt.extend(c for c in procs[pid].doc["children"] if c in procs)
        frontier, level = nxt, level + 1
    per_level: dict[int, int] = {}
    nodes, edges = [], []
    for pid, d in depth.items():
        rec = procs[pid]
        x = per_level.get(d, 0)
        per_level[d] = x + 1
        doc = rec.doc
        kind = "input" if not doc["parents"] else ("output" if not doc["children"] else "")
        nodes.append(
            {
                "id": pid,
                "data": {"label": doc["spec"]["nodename"]},
                "position": {"x": x * 200, "y": d * 80},
                "type": kind,
                "style": {"color": "", "background": _STATE_COLOURS.get(rec.state, "#eee8d8")},
            }
        )
        for child in doc["children"]:
            edges.append(
                {
                    "id": f"{pid}-{child}",
                    "source": pid,
                    "target": child,
                    "animated": rec.state == ProcessState.RUNNING,
                }
            )
    return {**graph, "nodes": nodes, "edges": edges}


@rpc("getprocessgraphmsg", "get processgraph")
async def get_processgraph(sim: Simulator, signer: str, msg: Payload) -> Any:
    graph = _graph(sim, msg, "get processgraph")
    sim.authz.require_member(signer, graph["colonyname"])
    return _with_layout(sim, graph)


@rpc("getprocessgraphsmsg", "get processgraphs")
async def get_processgraphs(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    state = msg.integer("state")
    if state not in ProcessState._value2member_map_:
        raise ApiError(400, "invalid msg.State")
    count = msg.integer("count")
    if count > MAX_COUNT:
        raise ApiError(400, f"Count is larger than MaxCount limit <{MAX_COUNT}>")
    graphs = [
        g for g in sim.state.graphs.values() if g["colonyname"] == colony and g["state"] == state
    ]
    graphs.sort(key=lambda g: parse_time(g["submissiontime"]), reverse=True)
    return or_null([_with_layout(sim, g) for g in graphs[: max(count, 0)]])


@rpc("removeprocessgraphmsg", "remove processgraph")
async def remove_processgraph(sim: Simulator, signer: str, msg: Payload) -> Any:
    graph = _graph(sim, msg, "remove processgraph")
    sim.authz.require_member(signer, graph["colonyname"])
    if graph["state"] == ProcessState.RUNNING:
        raise ApiError(400, "Failed to remove processgraph, cannot remove a running processgraph")
    sim.state.remove_graph(graph["processgraphid"])
    return EMPTY


@rpc("removeallprocessgraphsmsg", "remove all processgraphs")
async def remove_all_processgraphs(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_colony_owner(signer, colony)
    state = msg.integer("state")
    if state == ProcessState.RUNNING:
        raise ApiError(400, "not possible to remove running processgraphs")
    if state != -1 and state not in ProcessState._value2member_map_:
        raise ApiError(400, "invalid state when deleting all processgraphs")
    for graph in list(sim.state.graphs.values()):
        if graph["colonyname"] == colony and state in (-1, graph["state"]):
            sim.state.remove_graph(graph["processgraphid"])
    return EMPTY


@rpc("cancelprocessgraphmsg", "cancel processgraph")
async def cancel_processgraph(sim: Simulator, signer: str, msg: Payload) -> Any:
    graph = _graph(sim, msg, "cancel processgraph")
    sim.authz.require_member(signer, graph["colonyname"])
    sim.engine.cancel_graph(graph)
    return EMPTY
