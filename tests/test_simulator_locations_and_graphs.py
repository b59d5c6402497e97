"""Locations, processes added to a running workflow (addchildmsg), process history, and what
goes with a removed colony, on the simulator and across restarts; through Pollinator's client
and through the official SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from family_support import COLONY, EXECUTOR_TYPE, RpcRefused, Stack, id_of, spec, stack
from model import Conditions, FuncSpec

pytestmark = pytest.mark.timeout(60)
__all__ = ["stack"]  # the fixture, used by name


def _refused(stack: Stack, key: str, msgtype: str, **fields: Any) -> tuple[int, str]:
    with pytest.raises(RpcRefused) as err:
        stack.rpc(key, msgtype, **fields)
    return err.value.status, err.value.server_message


def test_locations_belong_to_the_colony_owner_and_survive_a_restart(stack: Stack) -> None:
    lab = {
        "locationid": "loc-1",
        "name": "lab",
        "colonyname": COLONY,
        "description": "the lab",
        "long": 18.07,
        "lat": 59.0,
    }
    assert stack.rpc(stack.owner, "addlocationmsg", location=lab) == lab
    assert _refused(stack, stack.user, "addlocationmsg", location={**lab, "name": "x"}) == (
        403,
        "Access denied, not colony owner",
    )
    assert _refused(stack, stack.owner, "addlocationmsg", location=lab) == (
        400,
        "A location with name <lab> already exists in Colony with name <fam>",
    )
    assert _refused(stack, stack.owner, "addlocationmsg", location={**lab, "colonyname": "x"}) == (
        400,
        "Colony with name <x> does not exists",
    )

    stack.restart()
    assert stack.rpc(stack.user, "getlocationmsg", colonyname=COLONY, name="lab")["lat"] == 59
    pending = stack.add_executor("pending", approved=False)
    assert [x["name"] for x in stack.rpc(pending, "getlocationsmsg", colonyname=COLONY)] == ["lab"]
    assert _refused(stack, stack.user, "getlocationmsg", colonyname=COLONY, name="none") == (
        404,
        "Failed to get location, location is nil",
    )
    assert _refused(stack, stack.owner, "removelocationmsg", colonyname=COLONY, name="none") == (
        400,
        "Location with name <none> not found",
    )
    stack.rpc(stack.owner, "removelocationmsg", colonyname=COLONY, name="lab")
    assert stack.rpc(stack.user, "getlocationsmsg", colonyname=COLONY) is None


def test_a_removed_colony_takes_its_crons_generators_and_locations(stack: Stack) -> None:
    workflow = json.dumps({"colonyname": COLONY, "functionspecs": [spec("a")]})
    stack.rpc(
        stack.user,
        "addcronmsg",
        cron={"name": "c", "colonyname": COLONY, "interval": 3600, "workflowspec": workflow},
    )
    gen = {"name": "g", "colonyname": COLONY, "workflowspec": workflow, "trigger": 5}
    gid = stack.rpc(stack.user, "addgeneratormsg", generator=gen)["generatorid"]
    stack.rpc(stack.user, "packgeneratormsg", generatorid=gid, arg="x")
    stack.rpc(stack.owner, "addlocationmsg", location={"name": "lab", "colonyname": COLONY})
    stack.rpc(stack.server_prvkey, "removecolonymsg", colonyname=COLONY)
    stack.restart()
    stack.sim.bootstrap(COLONY, stack.keys)  # the same colony again, empty
    assert stack.rpc(stack.user, "getcronsmsg", colonyname=COLONY, count=10) == []
    assert stack.rpc(stack.user, "getgeneratorsmsg", colonyname=COLONY, count=10) is None
    assert stack.rpc(stack.user, "getlocationsmsg", colonyname=COLONY) is None


def _workflow_running_a(stack: Stack) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A workflow a -> b with a running on the executor: (graph, a, b's id)."""
    b = spec("b", conditions={"dependencies": ["a"]})
    graph = stack.rpc(
        stack.user,
        "submitworkflowspecmsg",
        spec={"colonyname": COLONY, "functionspecs": [spec("a"), b]},
    )
    a = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert a["spec"]["nodename"] == "a"
    b_id = next(p for p in graph["processids"] if p != a["processid"])
    return graph, a, b_id


def _get(stack: Stack, pid: str) -> dict[str, Any]:
    return dict(stack.rpc(stack.user, "getprocessmsg", processid=pid))


def test_a_running_process_inserts_a_child_through_the_sdk_and_it_runs_next(stack: Stack) -> None:
    graph, a, b_id = _workflow_running_a(stack)
    child = FuncSpec(
        funcname="x",
        maxexectime=-1,
        conditions=Conditions(colonyname=COLONY, executortype=EXECUTOR_TYPE),
    )
    x = stack.sdk.add_child(
        graph["processgraphid"], a["processid"], "", child, "x", True, stack.executor
    )
    # Between a and b, waiting for a, and (as officially) without an initiator.
    assert x["parents"] == [a["processid"]] and x["children"] == [b_id]
    assert x["waitforparents"] is True and x["initiatorid"] == "" and x["state"] == 0
    assert _get(stack, a["processid"])["children"] == [x["processid"]]
    assert _get(stack, b_id)["parents"] == [x["processid"]]
    got = stack.rpc(stack.user, "getprocessgraphmsg", processgraphid=graph["processgraphid"])
    assert got["processids"] == [a["processid"], x["processid"], b_id]

    stack.restart()
    stack.rpc(stack.executor, "closesuccessfulmsg", processid=a["processid"], out=["from a"])
    nxt = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert nxt["processid"] == x["processid"] and nxt["in"] == ["from a"]
    stack.rpc(stack.executor, "closesuccessfulmsg", processid=x["processid"], out=["from x"])
    last = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert last["processid"] == b_id and last["in"] == ["from x"]


def test_a_child_beside_the_others_and_refusals(stack: Stack) -> None:
    graph, a, b_id = _workflow_running_a(stack)
    body = {
        "processgraphid": graph["processgraphid"],
        "parentprocessid": a["processid"],
        "childprocessid": b_id,
        "insert": False,
        "spec": spec("y"),
    }
    y = stack.rpc(stack.executor, "addchildmsg", **body)
    assert y["parents"] == [a["processid"]] and y["children"] == [b_id]
    assert _get(stack, a["processid"])["children"] == [b_id, y["processid"]]
    assert _get(stack, b_id)["parents"] == [a["processid"], y["processid"]]

    other = stack.add_executor("other")
    assert _refused(stack, other, "addchildmsg", **body) == (
        400,
        f"Process with Id {a['processid']} is not assigned to executor with Id {id_of(other)}",
    )
    assert _refused(stack, stack.executor, "addchildmsg", **{**body, "parentprocessid": b_id}) == (
        400,
        f"Process with Id {b_id} is not running",
    )
    assert _refused(stack, stack.executor, "addchildmsg", **{**body, "spec": None}) == (
        400,
        "Failed to add child to processgraph, msg.FunctionSpec is nil",
    )
    # Once a is done, y runs; b waits for both of its parents.
    stack.rpc(stack.executor, "closesuccessfulmsg", processid=a["processid"], out=[])
    nxt = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert nxt["processid"] == y["processid"]
    assert _get(stack, b_id)["waitforparents"] is True


def test_process_history_by_state_age_and_executor(stack: Stack) -> None:
    first = stack.rpc(stack.user, "submitfuncspecmsg", spec=spec("one"))
    second = stack.rpc(stack.user, "submitfuncspecmsg", spec=spec("two"))
    running = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert running["processid"] == first["processid"]

    def hist(**fields: Any) -> list[str]:
        found = stack.rpc(stack.user, "getprocesshistmsg", colonyname=COLONY, **fields)
        return [p["processid"] for p in found or []]

    stack.restart()
    assert hist(seconds=60, state=0) == [second["processid"]]
    assert hist(seconds=60, state=1, executorid=stack.executor_id) == [first["processid"]]
    assert hist(seconds=60, state=1, executorid=stack.user_id) == []
    assert hist(seconds=0, state=0) == []  # submitted more than 0 s ago
    assert (
        _refused(stack, stack.owner, "getprocesshistmsg", colonyname=COLONY, seconds=60, state=0)[0]
        == 403
    )
