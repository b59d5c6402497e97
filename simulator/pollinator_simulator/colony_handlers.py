"""RPC handlers for colonies, users, executors, functions and server statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models
from pollinator_core.colonies.models import ZERO_TIME, ExecutorState, ProcessState

from .rpc import EMPTY, rpc
from .store import Doc
from .wire import ApiError, Payload, fmt_time, now_ns, or_null, parse_time, random_id

if TYPE_CHECKING:
    from .server import Simulator


# --- colonies ---------------------------------------------------------------------------------


@rpc("addcolonymsg", "add colony")
async def add_colony(sim: Simulator, signer: str, msg: Payload) -> Any:
    sim.authz.require_server_owner(signer)
    colony = msg.model("colony", models.Colony)
    if colony is None:
        raise ApiError(400, "Failed to add colony, colony is <nil>")
    if len(colony.colonyid) != 64:
        raise ApiError(400, "Failed to add colony, invalid colony Id length")
    if colony.name in sim.state.colonies:
        raise ApiError(400, f"A Colony with name <{colony.name}> already exists")
    doc = {"colonyid": colony.colonyid, "name": colony.name}
    sim.state.save_colony(doc)
    return doc


@rpc("removecolonymsg", "remove colony")
async def remove_colony(sim: Simulator, signer: str, msg: Payload) -> Any:
    sim.authz.require_server_owner(signer)
    name = msg.string("colonyname")
    if name not in sim.state.colonies:
        raise ApiError(400, f"Colony with name <{name}> not found")
    sim.state.remove_colony(name)
    return EMPTY


@rpc("getcoloniesmsg", "get colonies")
async def get_colonies(sim: Simulator, signer: str, msg: Payload) -> Any:
    sim.authz.require_server_owner(signer)
    return or_null(list(sim.state.colonies.values()))


@rpc("getcolonymsg", "get colony")
async def get_colony(sim: Simulator, signer: str, msg: Payload) -> Any:
    name = msg.string("colonyname")
    sim.authz.require_member(signer, name)
    return sim.state.colonies[name]


def _process_counts(sim: Simulator, colony: str | None) -> dict[int, int]:
    counts = dict.fromkeys(range(5), 0)
    for rec in sim.state.processes.values():
        if colony is None or rec.colony == colony:
            counts[rec.state] += 1
    return counts


@rpc("getcolonystatsmsg", "get colony statistics")
async def get_colony_stats(sim: Simulator, signer: str, msg: Payload) -> Any:
    name = msg.string("colonyname")
    if name not in sim.state.colonies:
        raise ApiError(400, f"Colony with name <{name}> not found")
    sim.authz.require_member(signer, name)
    executors = [e for (c, _), e in sim.state.executors.items() if c == name]
    procs = _process_counts(sim, name)
    graphs = dict.fromkeys(range(5), 0)
    for graph in sim.state.graphs.values():
        if graph["colonyname"] == name:
            graphs[graph["state"]] += 1
    return {
        "colonies": 1,
        "executors": len(executors),
        "activeexecutors": sum(e["state"] == ExecutorState.APPROVED for e in executors),
        "unregisteredexecutors": sum(e["state"] == ExecutorState.UNREGISTERED for e in executors),
        "waitingprocesses": procs[ProcessState.WAITING],
        "runningprocesses": procs[ProcessState.RUNNING],
        "successfulprocesses": procs[ProcessState.SUCCESS],
        "failedprocesses": procs[ProcessState.FAILED],
        "cancelledprocesses": procs[ProcessState.CANCELLED],
        "waitingworkflows": graphs[ProcessState.WAITING],
        "runningworkflows": graphs[ProcessState.RUNNING],
        "successfulworkflows": graphs[ProcessState.SUCCESS],
        "failedworkflows": graphs[ProcessState.FAILED],
        "cancelledworkflows": graphs[ProcessState.CANCELLED],
    }


@rpc("getstatisticsmsg", "get server version", invalid="Failed to get statistics, invalid JSON")
async def get_statistics(sim: Simulator, signer: str, msg: Payload) -> Any:
    sim.authz.require_server_owner(signer)
    procs = _process_counts(sim, None)
    zero = dict.fromkeys(
        [
            "activeexecutors",
            "unregisteredexecutors",
            "cancelledprocesses",
            "waitingworkflows",
            "runningworkflows",
            "successfulworkflows",
            "failedworkflows",
            "cancelledworkflows",
        ],
        0,
    )
    return {
        **zero,
        "colonies": len(sim.state.colonies),
        "executors": len(sim.state.executors),
        "waitingprocesses": procs[ProcessState.WAITING],
        "runningprocesses": procs[ProcessState.RUNNING],
        "successfulprocesses": procs[ProcessState.SUCCESS],
        "failedprocesses": procs[ProcessState.FAILED],
    }


# --- users ------------------------------------------------------------------------------------


def _existing_colony(sim: Simulator, name: str) -> None:
    if name not in sim.state.colonies:
        raise ApiError(400, f"Colony with name <{name}> does not exists")


@rpc("addusermsg", "add user")
async def add_user(sim: Simulator, signer: str, msg: Payload) -> Any:
    user = msg.model("user", models.User)
    if user is None:
        raise ApiError(400, "Failed to add user, executor is nil")
    _existing_colony(sim, user.colonyname)
    sim.authz.require_colony_owner(signer, user.colonyname)
    if (user.colonyname, user.name) in sim.state.users:
        raise ApiError(
            400,
            f"A user with name <{user.name}> already exists in Colony with name "
            f"<{user.colonyname}>",
        )
    if sim.state.user_by_id(user.colonyname, user.userid) is not None:
        raise ApiError(
            400,
            f"A user with Id <{user.userid}> already exists in Colony with name "
            f"<{user.colonyname}>",
        )
    doc = models.to_dict(user)
    sim.state.save_user(doc)
    return doc


@rpc("getusersmsg", "get users")
async def get_users(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _existing_colony(sim, colony)
    sim.authz.require_member(signer, colony, approved=False)
    return or_null([u for (c, _), u in sim.state.users.items() if c == colony])


@rpc("getusermsg", "get user")
async def get_user(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _existing_colony(sim, colony)
    sim.authz.require_member(signer, colony, approved=False)
    user = sim.state.users.get((colony, msg.string("name")))
    if user is None:
        raise ApiError(500, "Failed to get user, user is nil")
    return user


@rpc("getuserbyidmsg", "get user by ID")
async def get_user_by_id(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _existing_colony(sim, colony)
    sim.authz.require_member(signer, colony, approved=False)
    user = sim.state.user_by_id(colony, msg.string("userid"))
    if user is None:
        raise ApiError(404, "Failed to get user by ID, user is nil")
    return user


@rpc("removeusermsg", "remove user")
async def remove_user(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _existing_colony(sim, colony)
    sim.authz.require_colony_owner(signer, colony)
    name = msg.string("name")
    if (colony, name) not in sim.state.users:
        raise ApiError(400, f"User with name <{name}> not found")
    sim.state.remove_user(colony, name)
    return EMPTY


# --- executors --------------------------------------------------------------------------------


def executor_doc(
    executor_id: str,
    executortype: str,
    name: str,
    colony: str,
    *,
    requirefuncreg: bool = False,
    capabilities: Doc | None = None,
    locationname: str = "",
    lastheardfromtime: str = ZERO_TIME,
) -> Doc:
    """A new executor record: PENDING whatever the client sent, commissioned now. The server
    stores the lastheardfromtime the client sent (the zero time from every official client):
    the executor counts as heard from at its first assign, and the stale-executor cleanup
    skips one never heard from."""
    doc: Doc = {
        "executorid": executor_id,
        "executortype": executortype,
        "executorname": name,
        "colonyname": colony,
        "state": ExecutorState.PENDING,
        "requirefuncreg": requirefuncreg,
        "commissiontime": fmt_time(now_ns()),
        "lastheardfromtime": lastheardfromtime,
        "capabilities": capabilities or {"hardware": [], "software": []},
        "allocations": {"projects": None},
    }
    if locationname:
        doc["locationname"] = locationname
    return doc


@rpc("addexecutormsg", "add executor")
async def add_executor(sim: Simulator, signer: str, msg: Payload) -> Any:
    executor = msg.model("executor", models.Executor)
    if executor is None:
        raise ApiError(400, "Failed to add executor, executor is nil")
    try:
        heard = fmt_time(parse_time(executor.lastheardfromtime))
    except ValueError:
        raise ApiError(400, "Failed to add executor, invalid JSON") from None
    colony, name = executor.colonyname, executor.executorname
    sim.authz.require_colony_owner(signer, colony)
    existing = sim.state.executors.get((colony, name))
    if existing is not None:
        # A removed executor stays as UNREGISTERED and keeps its name taken.
        if not sim.allow_executor_reregister:
            raise ApiError(400, f"Executor with name <{name}> in Colony <{colony}> already exists")
        sim.engine.unregister_executor(existing)
    owner = sim.state.executor_by_id.get(executor.executorid)
    if owner is not None and owner is not existing:
        # One ID, one executor: the ID is what authorisation is decided on. (The official
        # server accepts a second name for a key, then resolves the key to either record.)
        raise ApiError(400, f"Executor with Id <{executor.executorid}> already exists")
    doc = executor_doc(
        executor.executorid,
        executor.executortype,
        name,
        colony,
        requirefuncreg=executor.requirefuncreg,
        capabilities=models.to_dict(executor.capabilities),
        locationname=executor.locationname,
        lastheardfromtime=heard,
    )
    sim.state.save_executor(doc)
    return doc


@rpc("getexecutorsmsg", "get executors")
async def get_executors(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony, approved=False)
    return or_null([e for (c, _), e in sim.state.executors.items() if c == colony])


def _named_executor(sim: Simulator, msg: Payload, what: str) -> Doc:
    executor = sim.state.executors.get((msg.string("colonyname"), msg.string("executorname")))
    if executor is None:
        raise ApiError(500, f"Failed to {what}, executor is nil")
    return executor


@rpc("getexecutormsg", "get executor")
async def get_executor(sim: Simulator, signer: str, msg: Payload) -> Any:
    executor = _named_executor(sim, msg, "get executor")
    sim.authz.require_member(signer, executor["colonyname"])
    return executor


@rpc("getexecutorbyidmsg", "get executor by ID")
async def get_executor_by_id(sim: Simulator, signer: str, msg: Payload) -> Any:
    executor = sim.state.executor_by_id.get(msg.string("executorid"))
    if executor is None:
        raise ApiError(404, "Failed to get executor by ID, executor is nil")
    sim.authz.require_member(signer, executor["colonyname"])
    return executor


async def _set_executor_state(
    sim: Simulator, signer: str, msg: Payload, verb: str, state: int
) -> Any:
    executor = _named_executor(sim, msg, f"{verb} executor")
    sim.authz.require_colony_owner(signer, executor["colonyname"])
    executor["state"] = state
    sim.state.save_executor(executor)
    return EMPTY


@rpc("approveexecutormsg", "approve executor")
async def approve_executor(sim: Simulator, signer: str, msg: Payload) -> Any:
    return await _set_executor_state(sim, signer, msg, "approve", ExecutorState.APPROVED)


@rpc("rejectexecutormsg", "reject executor")
async def reject_executor(sim: Simulator, signer: str, msg: Payload) -> Any:
    return await _set_executor_state(sim, signer, msg, "reject", ExecutorState.REJECTED)


@rpc("removeexecutormsg", "remove executor")
async def remove_executor(sim: Simulator, signer: str, msg: Payload) -> Any:
    executor = _named_executor(sim, msg, "remove executor")
    sim.authz.require_colony_owner(signer, executor["colonyname"])
    sim.engine.unregister_executor(executor)
    return EMPTY


# --- functions --------------------------------------------------------------------------------


@rpc("addfunctionmsg", "add function")
async def add_function(sim: Simulator, signer: str, msg: Payload) -> Any:
    fun = msg.model("fun", models.Function)
    if fun is None:
        raise ApiError(400, "Failed to add function, msg.Function is nil")
    sim.authz.require_member(signer, fun.colonyname)
    executor = sim.state.executors.get((fun.colonyname, fun.executorname))
    if executor is None:
        raise ApiError(
            400, f"Failed to add function, Executor with name <{fun.executorname}> does not exist"
        )
    if executor["executorid"] != signer:
        raise ApiError(403, "Not allowed to add a function to another executor")
    doc = models.to_dict(fun)
    doc["functionid"] = fun.functionid or random_id()
    doc["executortype"] = fun.executortype or executor["executortype"]
    sim.state.save_function(doc)
    return doc


@rpc("getfunctionsmsg", "get function")
async def get_functions(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    name = msg.string("executorname")
    return or_null(
        [
            f
            for f in sim.state.functions.values()
            if f["colonyname"] == colony and (not name or f["executorname"] == name)
        ]
    )


@rpc("removefunctionmsg", "remove function")
async def remove_function(sim: Simulator, signer: str, msg: Payload) -> Any:
    function_id = msg.string("functionid")
    if not function_id:
        raise ApiError(400, "Failed to remove function, msg.FunctionID is empty")
    fun = sim.state.functions.get(function_id)
    if fun is None:
        raise ApiError(404, "Failed to remove function, function does not exist")
    sim.authz.require_member(signer, fun["colonyname"])
    executor = sim.state.executors.get((fun["colonyname"], fun["executorname"]))
    if executor is None or executor["executorid"] != signer:
        raise ApiError(403, "Not allowed to remove a function from another executor")
    sim.state.remove_function(function_id)
    return EMPTY
