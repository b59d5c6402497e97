"""Crons on the simulator: schedules, waiting for the previous run, RPCs, restarts; through
Pollinator's client and through the official SDK."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from family_support import COLONY, EXECUTOR_TYPE, RpcRefused, Stack, spec, stack, wait_for
from model import Conditions, FuncSpec, Workflow
from pollinator_simulator.wire import parse_time
from pycolonies import ColoniesConnectionError

pytestmark = pytest.mark.timeout(60)
__all__ = ["stack"]  # the fixture, used by name
ZERO = "0001-01-01T00:00:00Z"


def _workflow(*nodes: dict[str, Any]) -> str:
    return json.dumps({"colonyname": COLONY, "functionspecs": list(nodes)})


def _graphs(stack: Stack, state: int = 0) -> list[dict[str, Any]]:
    found = stack.rpc(stack.user, "getprocessgraphsmsg", colonyname=COLONY, state=state, count=100)
    return sorted(found or [], key=lambda g: parse_time(g["submissiontime"]))


def _run(stack: Stack, out: list[Any]) -> dict[str, Any]:
    """The executor takes the next process and closes it with ``out``."""
    process = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    stack.rpc(stack.executor, "closesuccessfulmsg", processid=process["processid"], out=out)
    return dict(process)


def test_interval_cron_runs_every_interval_also_after_a_restart(stack: Stack) -> None:
    cron = stack.rpc(
        stack.user,
        "addcronmsg",
        cron={
            "name": "tick",
            "colonyname": COLONY,
            "interval": 1,
            "workflowspec": _workflow(spec("a")),
        },
    )
    added = time.monotonic()
    # As officially: nothing is scheduled until the checker first looks at the cron.
    assert (cron["nextrun"], cron["lastrun"], cron["checkerperiod"]) == (ZERO, ZERO, 0)
    assert cron["initiatorname"] == "pollinator" and cron["waitforprevprocessgraph"] is False
    first = wait_for("the first run", lambda: _graphs(stack), timeout=5)[0]
    assert time.monotonic() - added >= 0.9  # the first look schedules it a second ahead
    got = stack.rpc(stack.user, "getcronmsg", cronid=cron["cronid"])
    assert got["prevprocessgraphid"] == first["processgraphid"] and got["checkerperiod"] == 100
    assert parse_time(got["nextrun"]) - parse_time(got["lastrun"]) == pytest.approx(1e9, abs=2e6)
    process = stack.rpc(stack.user, "getprocessmsg", processid=first["rootprocessids"][0])
    assert process["initiatorname"] == "pollinator"  # the cron runs as whoever added it

    stack.restart()
    assert stack.rpc(stack.user, "getcronmsg", cronid=cron["cronid"])["name"] == "tick"
    graphs = wait_for("two more runs", lambda: g if len(g := _graphs(stack)) >= 3 else None)
    starts = [parse_time(g["submissiontime"]) / 1e9 for g in graphs]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.95 <= gap <= 2.5 for gap in gaps), gaps


def test_waiting_for_the_previous_run_and_feeding_its_output_forward(stack: Stack) -> None:
    a = spec("a")
    b = spec("b", conditions={"dependencies": ["a"]})
    cron = stack.rpc(
        stack.user,
        "addcronmsg",
        cron={
            "name": "chain",
            "colonyname": COLONY,
            "interval": 1,
            "waitforprevprocessgraph": True,
            "workflowspec": _workflow(a, b),
        },
    )
    assert cron["waitforprevprocessgraph"] is True
    first = wait_for("the first run", lambda: _graphs(stack), timeout=5)[0]
    time.sleep(1.5)  # past the next run time, but the first graph is still waiting
    assert [g["processgraphid"] for g in _graphs(stack)] == [first["processgraphid"]]

    stack.restart()  # the wait holds across a restart too
    time.sleep(0.5)
    assert len(_graphs(stack)) == 1
    assert _run(stack, ["from a"])["spec"]["nodename"] == "a"
    assert _run(stack, ["from b", 2])["spec"]["nodename"] == "b"
    second = wait_for("the run after the first ended", lambda: _graphs(stack), timeout=5)[0]
    root = stack.rpc(stack.user, "getprocessmsg", processid=second["rootprocessids"][0])
    assert root["in"] == ["from b", 2]  # the previous graph's leaves' output


def test_expression_cron_and_refusals(stack: Stack) -> None:
    every_second = {
        "name": "sec",
        "colonyname": COLONY,
        "interval": -1,
        "cronexpression": "* * * * * *",
        "workflowspec": _workflow(spec("a")),
    }
    stack.rpc(stack.user, "addcronmsg", cron=every_second)
    wait_for("a run of the every-second cron", lambda: _graphs(stack), timeout=5)

    def refused(**changes: Any) -> tuple[int, str]:
        with pytest.raises(RpcRefused) as err:
            stack.rpc(
                changes.pop("key", stack.user), "addcronmsg", cron={**every_second, **changes}
            )
        return err.value.status, err.value.server_message

    assert refused() == (400, "Cron with name <sec> in Colony <fam> already exists")
    assert refused(name="n", interval=0) == (
        400,
        "Cron interval must be -1 (disabled) or larger than 0",
    )
    assert refused(name="n", cronexpression="* * * * *") == (
        400,
        "expected exactly 6 fields, found 5: [* * * * *]",
    )
    assert refused(name="n", random=True) == (
        400,
        "Random cron is only supported when specifying intervals",
    )
    assert (
        refused(name="n", workflowspec=_workflow(spec("b", conditions={"dependencies": ["x"]})))[0]
        == 400
    )
    assert refused(name="n", workflowspec="") == (400, "unexpected end of JSON input")
    assert refused(name="n", key=stack.owner)[0] == 403  # the colony owner is not a member
    assert refused(name="n", interval=2**63) == (400, "Failed to add cron, invalid JSON")
    with pytest.raises(RpcRefused) as err:
        stack.rpc(stack.user, "addcronmsg")
    assert (err.value.status, err.value.server_message) == (
        400,
        "Failed to add cron, msg.Cron is nil",
    )


def test_crons_through_the_official_sdk(stack: Stack) -> None:
    sdk, user = stack.sdk, stack.user
    node = FuncSpec(
        nodename="a",
        funcname="a",
        maxexectime=-1,
        conditions=Conditions(colonyname=COLONY, executortype=EXECUTOR_TYPE),
    )
    workflow = Workflow(colonyname=COLONY, functionspecs=[node])
    cron = sdk.add_cron("yearly", "0 0 0 1 1 *", True, workflow, COLONY, user)
    # The SDK misspells the key ("waitforprevprocessgrap"); the official server ignores it too.
    assert cron["waitforprevprocessgraph"] is False
    ran = sdk.run_cron(cron["cronid"], user)
    assert ran["cronid"] == cron["cronid"] and ran["lastrun"] == ZERO  # as it was before the run
    graph = wait_for("the run", lambda: _graphs(stack), timeout=5)[0]
    after = sdk.get_cron(cron["cronid"], user)
    assert after["prevprocessgraphid"] == graph["processgraphid"] and after["lastrun"] != ZERO
    assert after["nextrun"].startswith(f"{time.gmtime().tm_year + 1}-01-01T")

    stack.restart()
    assert [c["cronid"] for c in sdk.get_crons(COLONY, 10, user)] == [cron["cronid"]]
    assert sdk.get_cron(cron["cronid"], user)["prevprocessgraphid"] == graph["processgraphid"]
    assert sdk.get_crons(COLONY, 0, user) == []  # as officially: a count, and [] for none
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.get_cron(cron["cronid"], stack.owner)
    sdk.del_cron(cron["cronid"], user)
    with pytest.raises(ColoniesConnectionError, match="Failed to get cron, cron is nil"):
        sdk.get_cron(cron["cronid"], user)
    with pytest.raises(ColoniesConnectionError, match="cron not found"):
        sdk.run_cron(cron["cronid"], user)


def test_a_cron_beyond_the_calendar_is_never_due_and_holds_up_no_other(stack: Stack) -> None:
    far = {
        "name": "far",
        "colonyname": COLONY,
        "interval": 2**62,
        "workflowspec": _workflow(spec("never")),
    }
    cron = stack.rpc(stack.user, "addcronmsg", cron=far)
    soon = {
        "name": "soon",
        "colonyname": COLONY,
        "interval": -1,
        "cronexpression": "@every 1s",
        "workflowspec": _workflow(spec("soon")),
    }
    stack.rpc(stack.user, "addcronmsg", cron=soon)
    graph = wait_for("the other cron's run", lambda: _graphs(stack), timeout=5)[0]
    root = stack.rpc(stack.user, "getprocessmsg", processid=graph["rootprocessids"][0])
    assert root["spec"]["nodename"] == "soon"
    assert stack.rpc(stack.user, "getcronmsg", cronid=cron["cronid"])["nextrun"] == ZERO
