"""The timeout loop: dead executors' processes are re-queued, then failed when out of retries."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sim_fixtures import RpcError, SimColony, sim_colony, simulator  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def _submit(sim: SimColony, **spec: Any) -> str:
    body = {
        "funcname": "f",
        "conditions": {"colonyname": sim.colony, "executortype": sim.executor_type},
    }
    process = sim.rpc(sim.keys.prvkey, "submitfuncspecmsg", spec={**body, **spec})
    return str(process["processid"])


def _assign(sim: SimColony, prvkey: str, timeout: int = 10) -> dict[str, Any]:
    result: dict[str, Any] = sim.rpc(
        prvkey, "assignprocessmsg", colonyname=sim.colony, timeout=timeout
    )
    return result


def _wait_for(sim: SimColony, pid: str, state: int, within: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        process: dict[str, Any] = sim.rpc(sim.keys.prvkey, "getprocessmsg", processid=pid)
        if process["state"] == state or time.monotonic() > deadline:
            return process
        time.sleep(0.1)


def test_dead_executor_work_is_requeued_and_finished_by_another(sim_colony: SimColony) -> None:  # noqa: F811
    dies, survives = sim_colony.executor_prvkey, sim_colony.add_executor("survivor")
    pid = _submit(sim_colony, maxexectime=1, maxretries=3)
    assert _assign(sim_colony, dies)["processid"] == pid  # ... and never closes it
    # The survivor long-polls; the timeout loop hands it the re-queued process.
    process = _assign(sim_colony, survives)
    assert process["processid"] == pid and process["retries"] == 1
    sim_colony.rpc(survives, "closesuccessfulmsg", processid=pid, out=["done"])
    with pytest.raises(RpcError) as err:
        sim_colony.rpc(dies, "closesuccessfulmsg", processid=pid, out=[])
    assert err.value.status == 403
    assert _wait_for(sim_colony, pid, 2)["out"] == ["done"]


def test_out_of_retries_fails_with_the_official_message(sim_colony: SimColony) -> None:  # noqa: F811
    first, second = sim_colony.executor_prvkey, sim_colony.add_executor("second")
    pid = _submit(sim_colony, maxexectime=1, maxretries=1)
    assert _assign(sim_colony, first)["processid"] == pid
    assert _assign(sim_colony, second)["processid"] == pid  # retry 1, and this one dies too
    process = _wait_for(sim_colony, pid, 3)
    assert process["state"] == 3 and process["retries"] == 1
    assert process["errors"] == ["Maximum execution time limit exceeded"]
    with pytest.raises(RpcError, match="No process available"):
        _assign(sim_colony, first, timeout=-1)


def test_max_wait_time(sim_colony: SimColony) -> None:  # noqa: F811
    pid = _submit(sim_colony, maxwaittime=1, maxexectime=-1)
    process = _wait_for(sim_colony, pid, 3)
    assert process["state"] == 3 and process["errors"] == ["Maximum waiting time limit exceeded"]


def test_maxexectime_zero_is_not_unlimited(sim_colony: SimColony) -> None:  # noqa: F811
    """As on the official server: only -1 means no limit; 0 is a deadline already passed."""
    unlimited = _submit(sim_colony, maxexectime=-1)
    zero = _submit(sim_colony, maxexectime=0, maxretries=0)
    assert {_assign(sim_colony, sim_colony.executor_prvkey)["processid"] for _ in range(2)} == {
        unlimited,
        zero,
    }
    assert _wait_for(sim_colony, zero, 3)["errors"] == ["Maximum execution time limit exceeded"]
    assert _wait_for(sim_colony, unlimited, 1, within=0.5)["state"] == 1
