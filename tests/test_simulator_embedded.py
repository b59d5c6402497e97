"""The embedded simulator: starts on a free port, stops without leaving threads or sockets."""

from __future__ import annotations

import socket
import threading

import pytest
import urllib3
from pollinator_simulator.embedded import EmbeddedSimulator
from pollinator_simulator.server import Simulator
from pollinator_simulator.wire import now_ns
from sim_fixtures import RawRpc, RpcError, SimColony, sim_colony, simulator  # noqa: F401

pytestmark = pytest.mark.timeout(30)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_stop_leaves_nothing_behind() -> None:
    threads = threading.active_count()
    with EmbeddedSimulator() as sim:
        assert sim.port > 0 and sim.url == f"http://127.0.0.1:{sim.port}"
        assert urllib3.request("GET", sim.url + "/health").status == 200
        assert threading.active_count() == threads + 1
        port = sim.port
    assert threading.active_count() == threads
    assert not _accepts(port)
    sim.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        sim.call(lambda s: s.port)


def test_a_busy_port_is_a_clear_error() -> None:
    with EmbeddedSimulator() as first:
        threads = threading.active_count()
        with pytest.raises(RuntimeError, match="did not start"):
            EmbeddedSimulator(port=first.port).start()
        assert threading.active_count() == threads


def test_bootstrap_is_idempotent_and_keys_work(simulator: EmbeddedSimulator) -> None:  # noqa: F811
    keys = simulator.bootstrap("dev")
    assert simulator.bootstrap("dev", keys) == keys
    raw = RawRpc(simulator.url)
    users = raw.call(keys.prvkey, "getusersmsg", colonyname="dev")
    assert [u["userid"] for u in users] == [keys.member_id]
    colonies = raw.call(simulator.server_prvkey, "getcoloniesmsg")
    assert colonies == [{"colonyid": keys.colony_id, "name": "dev"}]
    env = keys.environment(simulator.host, simulator.port)
    assert env["COLONIES_SERVER_PORT"] == str(simulator.port)


def test_stale_executors_are_removed(sim_colony: SimColony) -> None:  # noqa: F811
    """As the official cleanup: an executor heard from (it called assign) and then silent for
    the window is removed; one never heard from is kept."""
    never = sim_colony.add_executor("never-polls")

    def sweep_ten_minutes_later(sim: Simulator) -> None:
        sim.engine.sweep(now_ns() + 601 * 10**9, 600 * 10**9)

    with pytest.raises(RpcError, match="No process available"):
        sim_colony.rpc(
            sim_colony.executor_prvkey, "assignprocessmsg", colonyname="test", timeout=-1
        )
    sim_colony.sim.call(sweep_ten_minutes_later)
    with pytest.raises(RpcError, match="not a member"):
        sim_colony.rpc(
            sim_colony.executor_prvkey, "assignprocessmsg", colonyname="test", timeout=-1
        )
    with pytest.raises(RpcError, match="No process available"):
        sim_colony.rpc(never, "assignprocessmsg", colonyname="test", timeout=-1)
