"""Generators on the simulator: packing, batches at the trigger count, the timeout, restarts;
through Pollinator's client and through the official SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from family_support import COLONY, RpcRefused, Stack, spec, stack, wait_for
from pollinator_simulator.wire import parse_time
from pycolonies import ColoniesConnectionError

pytestmark = pytest.mark.timeout(60)
__all__ = ["stack"]  # the fixture, used by name
ZERO = "0001-01-01T00:00:00Z"


def _workflow() -> str:
    root = spec("root", args=["own"], kwargs={"k": "v"})
    leaf = spec("leaf", conditions={"dependencies": ["root"]}, args=["leaf"])
    return json.dumps({"colonyname": COLONY, "functionspecs": [root, leaf]})


def _generator(name: str, trigger: int, timeout: int) -> dict[str, Any]:
    return {
        "name": name,
        "colonyname": COLONY,
        "workflowspec": _workflow(),
        "trigger": trigger,
        "timeout": timeout,
    }


def _root_args(stack: Stack) -> list[list[Any]]:
    """The args of the roots of every waiting graph, oldest graph first."""
    graphs = stack.rpc(stack.user, "getprocessgraphsmsg", colonyname=COLONY, state=0, count=100)
    found = []
    for graph in sorted(graphs or [], key=lambda g: parse_time(g["submissiontime"])):
        root = stack.rpc(stack.user, "getprocessmsg", processid=graph["rootprocessids"][0])
        assert root["spec"]["kwargs"] == {}  # packed args replace the root's args and kwargs
        leaf = next(p for p in graph["processids"] if p not in graph["rootprocessids"])
        assert stack.rpc(stack.user, "getprocessmsg", processid=leaf)["spec"]["args"] == ["leaf"]
        found.append(root["spec"]["args"])
    return found


def _pack(stack: Stack, generator_id: str, *args: str) -> None:
    for arg in args:
        stack.rpc(stack.user, "packgeneratormsg", generatorid=generator_id, arg=arg)


def test_batches_at_the_trigger_and_the_rest_at_the_timeout_across_restarts(stack: Stack) -> None:
    gen = stack.rpc(stack.user, "addgeneratormsg", generator=_generator("g", 3, 1))
    assert (gen["firstpack"], gen["lastrun"], gen["queuesize"]) == (ZERO, ZERO, 0)
    gid = gen["generatorid"]
    _pack(stack, gid, "a", "b")
    got = stack.rpc(stack.user, "getgeneratormsg", generatorid=gid)
    assert got["queuesize"] == 2 and got["checkerperiod"] == 100 and got["firstpack"] != ZERO

    stack.restart()  # the queue survives: the third arg completes the batch of the first two
    assert stack.rpc(stack.user, "getgeneratormsg", generatorid=gid)["queuesize"] == 2
    _pack(stack, gid, "c", "d")
    assert wait_for("the first batch", lambda: _root_args(stack)) == [["a", "b", "c"]]
    started = time.monotonic()
    after = stack.rpc(stack.user, "getgeneratormsg", generatorid=gid)
    assert after["queuesize"] == 1 and after["lastrun"] != ZERO

    # "d" is alone: it goes when the timeout (1 s, counted in whole seconds) has passed.
    batches = wait_for(
        "the timed-out batch", lambda: b if len(b := _root_args(stack)) == 2 else None
    )
    assert batches == [["a", "b", "c"], ["d"]]
    assert 0.9 < time.monotonic() - started < 3.5
    assert stack.rpc(stack.user, "getgeneratormsg", generatorid=gid)["queuesize"] == 0


def test_several_batches_at_once_and_no_timeout(stack: Stack) -> None:
    gen = stack.rpc(stack.user, "addgeneratormsg", generator=_generator("pairs", 2, 0))
    _pack(stack, gen["generatorid"], "1", "2", "3", "4", "5")
    batches = wait_for("two batches", lambda: b if len(b := _root_args(stack)) == 2 else None)
    assert batches == [["1", "2"], ["3", "4"]]
    time.sleep(1.5)  # without a timeout the fifth waits for a partner
    assert len(_root_args(stack)) == 2
    assert (
        stack.rpc(stack.user, "getgeneratormsg", generatorid=gen["generatorid"])["queuesize"] == 1
    )


def test_refusals(stack: Stack) -> None:
    def refused(key: str, msgtype: str, **fields: Any) -> tuple[int, str]:
        with pytest.raises(RpcRefused) as err:
            stack.rpc(key, msgtype, **fields)
        return err.value.status, err.value.server_message

    stack.rpc(stack.user, "addgeneratormsg", generator=_generator("g", 1, 0))
    assert refused(stack.user, "addgeneratormsg", generator=_generator("g", 1, 0)) == (
        400,
        "Generator with name <g> in Colony <fam> already exists",
    )
    assert refused(stack.user, "addgeneratormsg", generator=_generator("z", 0, 0))[0] == 400
    assert refused(stack.owner, "addgeneratormsg", generator=_generator("o", 1, 0))[0] == 403
    assert refused(stack.user, "addgeneratormsg") == (
        400,
        "Failed to add generator, msg.Generator is nil",
    )
    assert refused(stack.user, "packgeneratormsg", generatorid="nope", arg="x") == (
        500,
        "Failed to increment generator, generator is nil",
    )
    assert refused(stack.user, "resolvegeneratormsg", colonyname=COLONY, generatorname="x") == (
        500,
        "Failed to resolve generator, generator is nil",
    )


def test_generators_through_the_official_sdk(stack: Stack) -> None:
    sdk, user = stack.sdk, stack.user
    assert sdk.get_generators(COLONY, user) is None  # as officially: null for none
    gen = sdk.add_generator(_generator("sdk", 5, 0), user)
    assert gen["initiatorname"] == "pollinator" and gen["trigger"] == 5
    _pack(stack, gen["generatorid"], "x")  # the SDK has no pack call
    stack.restart()
    assert sdk.get_generator(gen["generatorid"], user)["queuesize"] == 1
    listed = sdk.get_generators(COLONY, user)
    assert [g["generatorid"] for g in listed] == [gen["generatorid"]]
    assert listed[0]["queuesize"] == 0  # as officially: only getgeneratormsg counts the queue
    resolved = stack.rpc(user, "resolvegeneratormsg", colonyname=COLONY, generatorname="sdk")
    assert resolved["generatorid"] == gen["generatorid"]
    sdk.remove_generator(gen["generatorid"], user)
    with pytest.raises(ColoniesConnectionError, match="generator is nil"):
        sdk.get_generator(gen["generatorid"], user)
