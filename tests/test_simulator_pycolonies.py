"""The official Python SDK (pycolonies 1.0.25), unchanged, against the simulator over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from model import Conditions, FuncSpec, Workflow
from pollinator_simulator.embedded import EmbeddedSimulator
from pycolonies import Colonies, ColoniesConnectionError, func_spec
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401

from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sdk(sim_colony: SimColony) -> Colonies:  # noqa: F811
    return Colonies("127.0.0.1", sim_colony.port)


def _spec(colony: str, **kw: Any) -> FuncSpec:
    return func_spec("echo", ["hello", 1], colony, "container-executor", **kw)


def test_colony_and_executor_setup_and_approval(simulator: EmbeddedSimulator) -> None:  # noqa: F811
    sdk = Colonies("127.0.0.1", simulator.port)
    server = simulator.server_prvkey
    colony_prv, exec_prv = generate_private_key(), generate_private_key()
    colony = {"colonyid": id_from_private_key(colony_prv), "name": "c1"}
    assert sdk.add_colony(colony, server) == colony
    assert sdk.list_colonies(server) == [colony]
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.get_colony("c1", colony_prv)  # the colony owner is not a member
    executor = {
        "executorid": id_from_private_key(exec_prv),
        "executortype": "t",
        "executorname": "e1",
        "colonyname": "c1",
        "state": 1,  # asks to be approved already: ignored
    }
    added = sdk.add_executor(executor, colony_prv)
    assert added["state"] == 0
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.assign("c1", -1, exec_prv)  # pending: not yet a member
    sdk.approve_executor("c1", "e1", colony_prv)
    assert sdk.get_executor("c1", "e1", exec_prv)["state"] == 1
    assert [e["executorname"] for e in sdk.list_executors("c1", exec_prv)] == ["e1"]
    with pytest.raises(ColoniesConnectionError, match="No process available"):
        sdk.assign("c1", -1, exec_prv)
    sdk.reject_executor("c1", "e1", colony_prv)
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.assign("c1", -1, exec_prv)
    sdk.remove_executor("c1", "e1", colony_prv)
    # As on the official server (v1.9.12): the record stays, UNREGISTERED, and its key no
    # longer assigns.
    assert [e["state"] for e in sdk.list_executors("c1", exec_prv)] == [3]
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.assign("c1", -1, exec_prv)
    sdk.del_colony("c1", server)
    assert sdk.list_colonies(server) is None


def test_submit_assign_log_close(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    submitted = sdk.submit_func_spec(_spec(c, maxexectime=30), user)
    assert submitted.state == 0 and submitted.initiatorname == "pollinator"
    assigned = sdk.assign(c, 5, exe)
    assert assigned.processid == submitted.processid and assigned.state == 1
    assert assigned.assignedexecutorid == id_from_private_key(exe)
    for n in range(3):
        sdk.add_log(assigned.processid, f"line {n}\n", exe)
    logs = sdk.get_process_log(c, assigned.processid, 100, 0, user)
    assert [log["message"] for log in logs] == ["line 0\n", "line 1\n", "line 2\n"]
    later = sdk.get_process_log(c, assigned.processid, 100, logs[0]["timestamp"], user)
    assert [log["message"] for log in later] == ["line 1\n", "line 2\n"]
    assert [log["message"] for log in sdk.get_executor_log(c, "sim-executor", 2, 0, user)] == [
        "line 0\n",
        "line 1\n",
    ]
    sdk.set_output(assigned.processid, ["partial"], exe)
    sdk.close(assigned.processid, ["result", 42], exe)
    done = sdk.get_process(assigned.processid, user)
    assert done.state == 2 and done.output == ["result", 42]
    assert [p["processid"] for p in sdk.list_processes(c, 10, 2, user)] == [done.processid]
    assert sdk.list_processes(c, 10, 0, user) is None
    stats = sdk.stats(c, user)
    assert stats["successfulprocesses"] == 1 and stats["activeexecutors"] == 1
    sdk.remove_process(done.processid, user)
    with pytest.raises(ColoniesConnectionError, match="not found"):
        sdk.get_process(done.processid, user)


def test_close_failed(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    sdk.submit_func_spec(_spec(c), user)
    assigned = sdk.assign(c, 5, exe)
    sdk.fail(assigned.processid, ["exit code 3", "boom"], exe)
    failed = sdk.get_process(assigned.processid, user)
    assert failed.state == 3 and failed.errors == ["exit code 3", "boom"]
    with pytest.raises(ColoniesConnectionError, match="Tried to set failed process as successful"):
        sdk.close(assigned.processid, [], exe)


def test_wait_over_pubsub(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    process = sdk.submit_func_spec(_spec(c), user)
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(sdk.wait(process, 20, user)))
    waiter.start()
    assigned = sdk.assign(c, 5, exe)
    sdk.close(assigned.processid, ["ok"], exe)
    waiter.join(20)
    assert result and result[0].state == 2 and result[0].output == ["ok"]
    # Already in the state: answered at once.
    assert sdk.wait(process, 5, user).state == 2


def test_functions(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    added = sdk.add_function(c, "sim-executor", "echo", exe)
    assert added["funcname"] == "echo" and len(added["functionid"]) == 64
    assert [f["funcname"] for f in sdk.get_functions_by_executor(c, "sim-executor", user)] == [
        "echo"
    ]
    with pytest.raises(ColoniesConnectionError, match="another executor"):
        sdk.add_function(c, "sim-executor", "other", user)
    sdk.submit_func_spec(_spec(c), user)
    sdk.close(sdk.assign(c, 5, exe).processid, [], exe)
    (stats,) = sdk.get_functions_by_colony(c, user)
    assert stats["counter"] == 1


def test_attributes(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    sdk.submit_func_spec(_spec(c), user)
    assigned = sdk.assign(c, 5, exe)
    attribute = sdk.add_attribute(assigned.processid, "progress", "50%", exe)
    assert sdk.get_attribute(attribute["attributeid"], user)["value"] == "50%"
    with pytest.raises(ColoniesConnectionError, match="is allowed to set attributes"):
        sdk.add_attribute(assigned.processid, "k", "v", user)
    process = sdk.get_process(assigned.processid, user)
    assert [(a.key, a.value) for a in process.attributes or []][-1] == ("progress", "50%")


def test_workflow_children_wait_for_parents(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey

    def node(name: str, deps: list[str]) -> FuncSpec:
        spec = _spec(c)
        spec.nodename = name
        spec.conditions = Conditions(
            colonyname=c, executortype="container-executor", dependencies=deps
        )
        return spec

    workflow = Workflow(colonyname=c, functionspecs=[node("a", []), node("b", ["a"])])
    graph = sdk.submit_workflow(workflow, user)
    assert len(graph.processids) == 2 and len(graph.rootprocessids) == 1
    first = sdk.assign(c, 5, exe)
    assert first.spec.nodename == "a"
    with pytest.raises(ColoniesConnectionError, match="No process available"):
        sdk.assign(c, -1, exe)  # b waits for a
    sdk.close(first.processid, ["from a"], exe)
    second = sdk.assign(c, 5, exe)
    assert second.spec.nodename == "b" and second.input == ["from a"]
    sdk.close(second.processid, [], exe)
    fetched = sdk.get_processgraph(graph.processgraphid, user)
    assert fetched.state == 2 and len(fetched.nodes) == 2 and len(fetched.edges) == 1
    assert [g["processgraphid"] for g in sdk.get_processgraphs(c, 10, user, state=2)] == [
        graph.processgraphid
    ]


def test_workflow_failed_parent_fails_children(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, user, exe = sim_colony.colony, sim_colony.keys.prvkey, sim_colony.executor_prvkey
    specs = []
    for name, deps in (("a", []), ("b", ["a"])):
        spec = _spec(c)
        spec.nodename = name
        spec.conditions.dependencies = deps
        specs.append(spec)
    graph = sdk.submit_workflow(Workflow(colonyname=c, functionspecs=specs), user)
    sdk.fail(sdk.assign(c, 5, exe).processid, ["bad"], exe)
    assert sdk.get_processgraph(graph.processgraphid, user).state == 3
    assert {sdk.get_process(p, user).state for p in graph.processids} == {3}
    with pytest.raises(ColoniesConnectionError, match="No process available"):
        sdk.assign(c, -1, exe)


@pytest.fixture
def files(sim_colony: SimColony) -> Iterator[list[dict[str, Any]]]:  # noqa: F811
    """File records as pycolonies' upload_file sends them after putting the bytes in S3."""
    added = []
    for label, name, checksum in (
        ("/src", "main.py", "aa"),
        ("/src", "main.py", "bb"),  # a second revision
        ("/src/pkg", "mod.py", "cc"),
        ("/srcx", "other.py", "dd"),
    ):
        file = {
            "fileid": "",
            "colonyname": sim_colony.colony,
            "label": label,
            "name": name,
            "size": 3,
            "sequencenr": 1,
            "checksum": checksum,
            "checksumalg": "SHA256",
            "ref": {
                "protocol": "s3",
                "s3object": {
                    "server": "s3.local",
                    "port": 9000,
                    "tls": False,
                    "accesskey": "AKIA-SECRET",
                    "secretkey": "very-secret",
                    "region": "",
                    "encryptionkey": "",
                    "encryptionalg": "",
                    "object": f"obj-{checksum}",
                    "bucket": "b",
                },
            },
            "added": None,
        }
        added.append(sim_colony.rpc(sim_colony.keys.prvkey, "addfilemsg", file=file))
    yield added


def test_file_records(sdk: Colonies, sim_colony: SimColony, files: list[dict[str, Any]]) -> None:  # noqa: F811
    c, user = sim_colony.colony, sim_colony.keys.prvkey
    assert [f["sequencenr"] for f in files] == [1, 2, 3, 4]
    assert len({f["fileid"] for f in files}) == 4
    assert files[0]["ref"]["s3object"]["secretkey"] == ""  # credentials are not kept
    (latest,) = sdk.get_file(c, user, label="/src", filename="main.py")
    assert latest["checksum"] == "bb"
    revisions = sdk.get_file(c, user, label="/src", filename="main.py", latest=False)
    assert [r["checksum"] for r in revisions] == ["bb", "aa"]
    assert sdk.get_file(c, user, fileid=files[2]["fileid"])[0]["name"] == "mod.py"
    assert sdk.get_files("/src", c, user) == [
        {"name": "main.py", "checksum": "bb", "size": 3, "s3filename": "obj-bb"}
    ]
    assert sdk.get_files("/nothing", c, user) == []
    labels = {lbl["name"]: lbl["files"] for lbl in sdk.get_file_labels(c, user)}
    assert labels == {"/src": 2, "/src/pkg": 1, "/srcx": 1}
    prefix = sdk.get_file_labels(c, user, name="/src", exact=False)
    assert sorted(lbl["name"] for lbl in prefix) == ["/src", "/src/pkg", "/srcx"]
    exact = sdk.get_file_labels(c, user, name="/src", exact=True)
    assert sorted(lbl["name"] for lbl in exact) == ["/src", "/src/pkg"]
    with pytest.raises(ColoniesConnectionError, match="Failed to get file"):
        sdk.get_file(c, user, label="/src", filename="missing.py")


def test_snapshots(sdk: Colonies, sim_colony: SimColony, files: list[dict[str, Any]]) -> None:  # noqa: F811
    c, user = sim_colony.colony, sim_colony.keys.prvkey
    snapshot = sdk.create_snapshot(c, "/src/", "snap1", user)
    assert snapshot["label"] == "/src"
    assert sorted(snapshot["fileids"]) == sorted([files[1]["fileid"], files[2]["fileid"]])
    assert sdk.get_snapshot_by_name(c, "snap1", user)["snapshotid"] == snapshot["snapshotid"]
    assert sdk.get_snapshot_by_id(c, snapshot["snapshotid"], user)["name"] == "snap1"
    assert [s["name"] for s in sdk.get_snapshots(c, user)] == ["snap1"]
    with pytest.raises(ColoniesConnectionError, match="already exists"):
        sdk.create_snapshot(c, "/src", "snap1", user)


def test_users(sdk: Colonies, sim_colony: SimColony) -> None:  # noqa: F811
    c, owner = sim_colony.colony, sim_colony.keys.colony_prvkey
    prv = generate_private_key()
    user = {"colonyname": c, "userid": id_from_private_key(prv), "name": "alice", "email": ""}
    sdk.add_user(user, owner)
    assert {u["name"] for u in sdk.get_users(c, prv)} == {"pollinator", "alice"}
    sdk.submit_func_spec(_spec(c), prv)  # a user is a member without approval
    sdk.remove_user(c, "alice", owner)
    with pytest.raises(ColoniesConnectionError, match="not a member"):
        sdk.get_users(c, prv)
