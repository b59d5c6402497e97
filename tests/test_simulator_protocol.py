"""Wire-protocol details and process lifecycle rules, checked over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import aiohttp
import pytest
import urllib3
from sim_fixtures import RawRpc, RpcError, SimColony, sim_colony, simulator  # noqa: F401

from pollinator_core.colonies.crypto import sign

pytestmark = pytest.mark.timeout(60)


def _spec(colony: str, **extra: Any) -> dict[str, Any]:
    conditions = {"colonyname": colony, "executortype": "container-executor"}
    conditions.update(extra.pop("conditions", {}))
    return {"funcname": "f", "maxexectime": -1, "conditions": conditions, **extra}


def _submit(sim: SimColony, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = sim.rpc(
        sim.keys.prvkey, "submitfuncspecmsg", spec=_spec(sim.colony, **extra)
    )
    return result


def _assign(sim: SimColony, prvkey: str | None = None, timeout: int = -1, **kw: Any) -> Any:
    key = prvkey or sim.executor_prvkey
    return sim.rpc(key, "assignprocessmsg", colonyname=sim.colony, timeout=timeout, **kw)


def _error(fn: Any, *args: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(RpcError) as err:
        fn(*args, **kw)
    return err.value.status, err.value.message


# --- transport --------------------------------------------------------------------------------


def test_health_version_and_server_info(sim_colony: SimColony) -> None:  # noqa: F811
    health = urllib3.request("GET", sim_colony.url + "/health")
    assert (health.status, health.data) == (200, b"")
    version = sim_colony.raw.send(RawRpc.envelope({"msgtype": "versionmsg"}, None))
    assert (version.status, version.payload_type, version.error) == (200, "versionmsg", False)
    assert version.payload["buildversion"]
    info = sim_colony.rpc(None, "getserverinfomsg")
    assert info["backends"][0]["port"] == sim_colony.port


def test_envelope_errors(sim_colony: SimColony) -> None:  # noqa: F811
    raw, key = sim_colony.raw, sim_colony.keys.prvkey
    reply = raw.send(b"not json")
    assert (reply.status, reply.error, reply.payload["status"]) == (400, True, 400)
    mismatch = json.loads(RawRpc.envelope({"msgtype": "submitfuncspecmsg"}, key))
    mismatch["payloadtype"] = "getprocessmsg"
    reply = raw.send(json.dumps(mismatch).encode())
    assert (reply.status, reply.payload["message"]) == (
        400,
        "Failed to get process, msg.MsgType does not match payloadType",
    )
    assert _error(sim_colony.rpc, key, "nosuchmsg") == (
        403,
        "invalid rpcMsg.PayloadType: nosuchmsg",
    )
    payload = base64.b64encode(b"[1, 2]").decode()
    body = {"payloadtype": "getprocessmsg", "payload": payload, "signature": sign(payload, key)}
    reply = raw.send(json.dumps(body).encode())
    assert (reply.status, reply.payload["message"]) == (400, "Failed to get process, invalid JSON")
    with pytest.raises(RpcError, match="invalid JSON"):
        sim_colony.rpc(key, "getprocessmsg", processid=5)  # a number where Go wants a string


def test_go_style_decoding(sim_colony: SimColony) -> None:  # noqa: F811
    spec = {
        "NodeName": "n",
        "FUNCNAME": "f",
        "args": None,
        "kwargs": None,
        "env": None,
        "maxexectime": -1,
        "whatever": {"unknown": True},
        "Conditions": {"ColonyName": sim_colony.colony, "ExecutorType": "container-executor"},
    }
    process = sim_colony.rpc(sim_colony.keys.prvkey, "submitfuncspecmsg", Spec=spec, extra=1)
    assert process["spec"]["funcname"] == "f" and process["spec"]["args"] == []
    assert process["spec"]["conditions"]["cpu"] == "0m"  # resources come back normalised
    assert process["errors"] == [] and process["parents"] == [] and process["in"] == []


def test_empty_listings_are_null(sim_colony: SimColony) -> None:  # noqa: F811
    key, c = sim_colony.keys.prvkey, sim_colony.colony
    assert sim_colony.rpc(key, "getprocessesmsg", colonyname=c, count=10, state=0) is None
    assert sim_colony.rpc(key, "getfilelabelsmsg", colonyname=c, name="") is None
    assert sim_colony.rpc(key, "getfilesmsg", colonyname=c, label="/x") == []
    assert sim_colony.rpc(key, "getsnapshotsmsg", colonyname=c) is None
    pid = _submit(sim_colony)["processid"]
    assert sim_colony.rpc(key, "getlogsmsg", colonyname=c, processid=pid, count=10) is None


# --- logs -------------------------------------------------------------------------------------


def test_log_windows(sim_colony: SimColony) -> None:  # noqa: F811
    c, key, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    _submit(sim_colony)
    pid = _assign(sim_colony)["processid"]
    for n in range(6):
        sim_colony.rpc(exe, "addlogmsg", processid=pid, message=f"{n}")

    def logs(**kw: Any) -> list[str]:
        found = sim_colony.rpc(key, "getlogsmsg", colonyname=c, processid=pid, **kw) or []
        return [log["message"] for log in found]

    everything = sim_colony.rpc(key, "getlogsmsg", colonyname=c, processid=pid, count=100)
    stamps = [log["timestamp"] for log in everything]
    assert stamps == sorted(set(stamps))  # strictly increasing
    assert logs(count=3) == ["0", "1", "2"]
    assert logs(count=100, since=stamps[3]) == ["4", "5"]
    assert logs(count=1, since=stamps[0]) == ["1"]
    assert logs(count=2, latest=True) == ["4", "5"]
    assert logs(count=0) == []
    assert logs(count=10, executorname="sim-executor")[:2] == ["0", "1"]
    assert _error(logs, count=501) == (403, "Count exceeds max log count (500)")


# --- assignment -------------------------------------------------------------------------------


def test_priority_then_submission_order(sim_colony: SimColony) -> None:  # noqa: F811
    low = _submit(sim_colony, priority=0)["processid"]
    later = _submit(sim_colony, priority=0)["processid"]
    high = _submit(sim_colony, priority=5)["processid"]
    assert [_assign(sim_colony)["processid"] for _ in range(3)] == [high, low, later]


def test_executor_names_and_types(sim_colony: SimColony) -> None:  # noqa: F811
    other_type = sim_colony.add_executor("slurm-1", "slurm-executor")
    _submit(sim_colony, conditions={"executornames": ["someone-else"]})
    assert _error(_assign, sim_colony)[0] == 404
    mine = _submit(sim_colony, conditions={"executornames": ["sim-executor"]})["processid"]
    anyone = _submit(sim_colony, conditions={"executornames": []})["processid"]
    assert _error(_assign, sim_colony, other_type)[0] == 404  # the type must be equal
    assert {_assign(sim_colony)["processid"], _assign(sim_colony)["processid"]} == {mine, anyone}
    # ["*"] is "any" to the distributed assign only; the exclusive scheduler (the default, as
    # in the official deployment) never assigns it.
    _submit(sim_colony, conditions={"executornames": ["*"]})
    assert _error(_assign, sim_colony)[0] == 404


def test_resources_must_fit(sim_colony: SimColony) -> None:  # noqa: F811
    pid = _submit(sim_colony, conditions={"cpu": "2000m", "mem": "4Gi"})["processid"]
    too_small = {"availablecpu": "1000m", "availablemem": "8Gi"}
    assert _error(_assign, sim_colony, **too_small)[0] == 404
    process = _assign(sim_colony, availablecpu="4000m", availablemem="4Gi")
    assert process["processid"] == pid
    assert (process["spec"]["conditions"]["cpu"], process["spec"]["conditions"]["mem"]) == (
        "2000m",
        "4096Mi",
    )


def test_long_poll(sim_colony: SimColony) -> None:  # noqa: F811
    assert _error(_assign, sim_colony, timeout=0) == (
        400,
        "Invalid timeout value, timeout cannot be zero",
    )
    started = time.monotonic()
    assert _error(_assign, sim_colony, timeout=1) == (404, "No process available for assignment")
    assert 0.9 < time.monotonic() - started < 3
    threading.Timer(0.3, _submit, args=(sim_colony,)).start()
    started = time.monotonic()
    assert _assign(sim_colony, timeout=10)["state"] == 1
    assert time.monotonic() - started < 2


def test_pause_and_resume(sim_colony: SimColony) -> None:  # noqa: F811
    owner, c = sim_colony.keys.colony_prvkey, sim_colony.colony
    _submit(sim_colony)
    sim_colony.rpc(owner, "pauseassignmentsmsg", colonyname=c)
    status = sim_colony.raw.send(
        RawRpc.envelope({"msgtype": "getpausestatusmsg", "colonyname": c}, sim_colony.keys.prvkey)
    )
    assert status.payload_type == "pausestatusreplymsg" and status.payload["ispaused"] is True
    assert _error(_assign, sim_colony) == (
        503,
        "No processes available: colony assignments are paused",
    )
    assert _error(_assign, sim_colony, timeout=1) == (
        408,
        "Assignment timeout: colony assignments are paused",
    )
    resume = threading.Timer(
        0.3, lambda: sim_colony.rpc(owner, "resumeassignmentsmsg", colonyname=c)
    )
    resume.start()
    assert _assign(sim_colony, timeout=10)["state"] == 1


def test_get_processes_filters(sim_colony: SimColony) -> None:  # noqa: F811
    key, c = sim_colony.keys.prvkey, sim_colony.colony
    _submit(sim_colony, label="a")
    _submit(sim_colony, label="b")
    _submit(sim_colony, conditions={"executortype": "other"})

    def ids(**kw: Any) -> int:
        return len(sim_colony.rpc(key, "getprocessesmsg", colonyname=c, **kw) or [])

    assert ids(count=100, state=0) == 3
    assert ids(count=2, state=0) == 2
    assert ids(count=100, state=0, executortype="other") == 1
    assert ids(count=100, state=0, label="a") == 1
    assert ids(count=100, state=0, initiator="pollinator") == 3
    assert ids(count=100, state=1) == 0
    assert _error(ids, count=101, state=0) == (400, "Count is larger than MaxCount limit <100>")
    assert _error(ids, count=10, state=7) == (400, "Failed to get processes, invalid msg.State")
    assert _error(ids, count=10, state=0, initiator="nobody") == (
        400,
        "User <nobody> does not exist",
    )


def test_cancel(sim_colony: SimColony) -> None:  # noqa: F811
    key, exe = sim_colony.keys.prvkey, sim_colony.executor_prvkey
    waiting = _submit(sim_colony)["processid"]
    sim_colony.rpc(key, "cancelprocessmsg", processid=waiting)
    assert sim_colony.rpc(key, "getprocessmsg", processid=waiting)["state"] == 4
    assert _error(_assign, sim_colony)[0] == 404
    _submit(sim_colony)
    running = _assign(sim_colony)["processid"]
    assert _error(sim_colony.rpc, key, "removeprocessmsg", processid=running) == (
        400,
        "Failed to remove process, cannot remove a running process",
    )
    sim_colony.rpc(key, "cancelprocessmsg", processid=running)
    process = sim_colony.rpc(key, "getprocessmsg", processid=running)
    assert process["state"] == 4 and process["assignedexecutorid"]  # it keeps its executor
    assert _error(sim_colony.rpc, exe, "closesuccessfulmsg", processid=running) == (
        400,
        "Tried to set cancelled process as successful",
    )
    assert _error(sim_colony.rpc, exe, "addlogmsg", processid=running, message="x") == (
        403,
        "Failed to set output, process is not running",
    )
    assert _error(sim_colony.rpc, key, "cancelprocessmsg", processid=running) == (
        400,
        "Tried to cancel already cancelled process",
    )
    owner, c = sim_colony.keys.colony_prvkey, sim_colony.colony
    sim_colony.rpc(owner, "removeallprocessesmsg", colonyname=c, state=-1)
    assert sim_colony.rpc(key, "getcolonystatsmsg", colonyname=c)["cancelledprocesses"] == 0


def test_processes_subscription(sim_colony: SimColony) -> None:  # noqa: F811
    msg = {
        "msgtype": "subscribeprocessesmsg",
        "colonyname": sim_colony.colony,
        "executortype": "container-executor",
        "state": 0,
        "timeout": 5,
    }
    frame = RawRpc.envelope(msg, sim_colony.executor_prvkey).decode()

    async def subscribe() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim_colony.url.replace("http", "ws") + "/pubsub") as ws,
        ):
            await ws.send_str(frame)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(_submit, sim_colony)
            reply = json.loads(await ws.receive_str(timeout=5))
            payload: dict[str, Any] = json.loads(base64.b64decode(reply["payload"]))
            return payload

    process = asyncio.run(subscribe())
    assert process["state"] == 0 and process["spec"]["funcname"] == "f"


def test_subscription_timeout_and_errors(sim_colony: SimColony) -> None:  # noqa: F811
    pid = _submit(sim_colony)["processid"]

    async def frames(msg: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        got = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim_colony.url.replace("http", "ws") + "/pubsub") as ws,
        ):
            await ws.send_str(RawRpc.envelope(msg, sim_colony.keys.prvkey).decode())
            async for frame in ws:
                reply = json.loads(frame.data)
                got.append({**reply, "payload": json.loads(base64.b64decode(reply["payload"]))})
        return got, time.monotonic() - started

    wait_success = {"msgtype": "subscribeprocessmsg", "processid": pid, "state": 2, "timeout": 1}
    got, took = asyncio.run(frames(wait_success))
    assert got == [] and 0.9 < took < 3  # nothing happened: closed after the timeout
    unknown = {**wait_success, "processid": "0" * 64}
    got, _ = asyncio.run(frames(unknown))
    assert got[0]["error"] is True and got[0]["payload"]["message"].startswith("Invalid process")


def test_workflow_cancel_and_remove(sim_colony: SimColony) -> None:  # noqa: F811
    key, c = sim_colony.keys.prvkey, sim_colony.colony
    specs = [
        {**_spec(c), "nodename": "a"},
        {**_spec(c, conditions={"dependencies": ["a"]}), "nodename": "b"},
    ]
    graph = sim_colony.rpc(
        key, "submitworkflowspecmsg", spec={"colonyname": c, "functionspecs": specs}
    )
    assert graph["state"] == 0 and len(graph["rootprocessids"]) == 1
    (root,) = graph["rootprocessids"]
    assert _error(sim_colony.rpc, key, "cancelprocessmsg", processid=root)[0] == 400
    sim_colony.rpc(key, "cancelprocessgraphmsg", processgraphid=graph["processgraphid"])
    assert {
        sim_colony.rpc(key, "getprocessmsg", processid=p)["state"] for p in graph["processids"]
    } == {4}
    assert (
        sim_colony.rpc(key, "getprocessgraphmsg", processgraphid=graph["processgraphid"])["state"]
        == 4
    )
    sim_colony.rpc(key, "removeprocessgraphmsg", processgraphid=graph["processgraphid"])
    assert _error(sim_colony.rpc, key, "getprocessmsg", processid=root)[0] == 404
    bad = [{**_spec(c, conditions={"dependencies": ["missing"]}), "nodename": "x"}]
    status, message = _error(
        sim_colony.rpc, key, "submitworkflowspecmsg", spec={"colonyname": c, "functionspecs": bad}
    )
    assert status == 500 and "invalid dependencies" in message
