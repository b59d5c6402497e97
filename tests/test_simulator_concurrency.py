"""Eight executors racing for 2,000 processes: each is assigned, and closed, exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sim_fixtures import RawRpc, RpcError, SimColony, sim_colony, simulator  # noqa: F401

PROCESSES = 2000
EXECUTORS = 8


@pytest.mark.timeout(110)
def test_no_process_is_assigned_twice(sim_colony: SimColony) -> None:  # noqa: F811
    c = sim_colony.colony
    keys = [sim_colony.add_executor(f"racer-{i}") for i in range(EXECUTORS)]
    spec = {
        "funcname": "f",
        "maxexectime": -1,
        "conditions": {"colonyname": c, "executortype": "container-executor"},
    }
    submitted: list[str] = []
    taken: dict[int, list[str]] = {i: [] for i in range(EXECUTORS)}
    submitting_done = threading.Event()
    failures: list[BaseException] = []

    def submit() -> None:
        raw = RawRpc(sim_colony.url)
        try:
            for _ in range(PROCESSES):
                process = raw.call(sim_colony.keys.prvkey, "submitfuncspecmsg", spec=spec)
                submitted.append(process["processid"])
        except BaseException as err:
            failures.append(err)
        finally:
            submitting_done.set()

    def race(i: int) -> None:
        raw = RawRpc(sim_colony.url)
        try:
            while True:
                try:
                    process = raw.call(keys[i], "assignprocessmsg", colonyname=c, timeout=1)
                except RpcError as err:
                    if err.status == 404 and submitting_done.is_set():
                        return
                    if err.status != 404:
                        raise
                    continue
                taken[i].append(process["processid"])
                raw.call(keys[i], "closesuccessfulmsg", processid=process["processid"], out=[i])
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(EXECUTORS)]
    threads.append(threading.Thread(target=submit))
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)

    all_taken = [pid for pids in taken.values() for pid in pids]
    duplicates = [pid for pid, n in Counter(all_taken).items() if n > 1]
    assert duplicates == []
    assert sorted(all_taken) == sorted(submitted) and len(submitted) == PROCESSES
    assert sum(1 for pids in taken.values() if pids) > 1  # they really raced
    stats = sim_colony.rpc(sim_colony.keys.prvkey, "getcolonystatsmsg", colonyname=c)
    assert (stats["successfulprocesses"], stats["waitingprocesses"]) == (PROCESSES, 0)
    # Each process was closed by the executor it was assigned to.
    owner = {pid: i for i, pids in taken.items() for pid in pids}
    for pid in submitted[:: PROCESSES // 50]:
        process = sim_colony.rpc(sim_colony.keys.prvkey, "getprocessmsg", processid=pid)
        assert process["state"] == 2 and process["out"] == [owner[pid]]
