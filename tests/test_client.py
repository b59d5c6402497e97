"""Every ColoniesClient method against the simulator, over real HTTP and WebSocket."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)

from pollinator_core.colonies.client import (
    AccessDenied,
    BadRequest,
    ColoniesClient,
    NotFound,
    WaitTimeout,
)
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.colonies.models import (
    Attribute,
    AttributeType,
    Colony,
    Conditions,
    Executor,
    ExecutorState,
    File,
    Function,
    FunctionSpec,
    ProcessState,
    Reference,
    S3Object,
    User,
    WorkflowSpec,
)

pytestmark = pytest.mark.timeout(60)


@dataclass
class Clients:
    sim: SimColony
    member: ColoniesClient  # a user of the colony (submits, reads)
    server: ColoniesClient  # the server owner
    owner: ColoniesClient  # the colony owner
    executor: ColoniesClient  # the approved executor "sim-executor"

    @property
    def colony(self) -> str:
        return self.sim.colony

    def spec(self, **kw: object) -> FunctionSpec:
        conditions = Conditions(colonyname=self.colony, executortype=self.sim.executor_type)
        # maxexectime 0 would mean "already past the deadline" to the server's timeout loop.
        kw.setdefault("maxexectime", -1)
        return FunctionSpec(funcname="execute", conditions=conditions, **kw)  # type: ignore[arg-type]

    def running(self) -> str:
        """A process submitted by the member and assigned to the executor."""
        pid = self.member.submit(self.spec()).processid
        assigned = self.executor.assign(self.colony, timeout=5)
        assert assigned is not None and assigned.processid == pid
        return pid


@pytest.fixture
def clients(sim_colony: SimColony) -> Iterator[Clients]:  # noqa: F811
    config = ClientConfig(
        sim_colony.host,
        sim_colony.port,
        colony_name=sim_colony.colony,
        prvkey=sim_colony.keys.prvkey,
        timeout=10,
    )
    member = ColoniesClient(config)
    yield Clients(
        sim_colony,
        member,
        member.with_key(sim_colony.keys.server_prvkey),
        member.with_key(sim_colony.keys.colony_prvkey),
        member.with_key(sim_colony.executor_prvkey),
    )
    member.close()


def later(delay: float, fn: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        fn()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# --- server, colonies, users, executors, functions ---------------------------------------


def test_server_calls(clients: Clients) -> None:
    assert clients.member.version()
    assert clients.member.server_info()["backends"][0]["port"] == clients.sim.port
    assert clients.member.health() is True


def test_colonies(clients: Clients) -> None:
    key = generate_private_key()
    added = clients.server.add_colony(Colony(colonyid=id_from_private_key(key), name="second"))
    assert (added.name, added.colonyid) == ("second", id_from_private_key(key))
    assert {c.name for c in clients.server.get_colonies()} == {clients.colony, "second"}
    assert clients.member.get_colony(clients.colony).colonyid == clients.sim.keys.colony_id
    stats = clients.member.get_colony_stats(clients.colony)
    assert isinstance(stats, dict) and "waitingprocesses" in {k.lower() for k in stats}
    clients.server.remove_colony("second")
    assert [c.name for c in clients.server.get_colonies()] == [clients.colony]
    with pytest.raises(AccessDenied):
        clients.member.get_colonies()  # only the server owner lists colonies


def test_users(clients: Clients) -> None:
    alice = id_from_private_key(generate_private_key())
    user = User(colonyname=clients.colony, userid=alice, name="alice", email="a@example.org")
    assert clients.owner.add_user(user).userid == alice
    assert {"alice", "pollinator"} <= {u.name for u in clients.member.get_users(clients.colony)}
    assert clients.member.get_user(clients.colony, "alice").email == "a@example.org"
    clients.owner.remove_user(clients.colony, "alice")
    assert "alice" not in {u.name for u in clients.member.get_users(clients.colony)}


def test_executors(clients: Clients) -> None:
    key = generate_private_key()
    new = Executor(
        executorid=id_from_private_key(key),
        executortype="gpu-executor",
        executorname="e2",
        colonyname=clients.colony,
        state=ExecutorState.APPROVED,  # ignored: executors start PENDING
    )
    assert clients.owner.add_executor(new).state is ExecutorState.PENDING
    clients.owner.approve_executor(clients.colony, "e2")
    assert clients.member.get_executor(clients.colony, "e2").state is ExecutorState.APPROVED
    names = {e.executorname for e in clients.member.get_executors(clients.colony)}
    assert names == {"e2", clients.sim.executor_name}
    clients.owner.reject_executor(clients.colony, "e2")
    assert clients.member.get_executor(clients.colony, "e2").state is ExecutorState.REJECTED
    clients.owner.remove_executor(clients.colony, "e2")
    # The official server (v1.9.12) keeps a removed executor's record, UNREGISTERED.
    states = {e.executorname: e.state for e in clients.member.get_executors(clients.colony)}
    assert states == {
        "e2": ExecutorState.UNREGISTERED,
        clients.sim.executor_name: ExecutorState.APPROVED,
    }


def test_functions(clients: Clients) -> None:
    name = clients.sim.executor_name
    fn = Function(executorname=name, colonyname=clients.colony, funcname="execute")
    added = clients.executor.add_function(fn)
    assert added.functionid and added.funcname == "execute"
    assert [f.functionid for f in clients.member.get_functions(clients.colony)] == [
        added.functionid
    ]
    assert len(clients.member.get_functions(clients.colony, executor_name=name)) == 1
    clients.executor.remove_function(added.functionid)
    assert clients.member.get_functions(clients.colony) == []


# --- processes -----------------------------------------------------------------------------


def test_process_lifecycle(clients: Clients) -> None:
    member, executor, colony = clients.member, clients.executor, clients.colony
    submitted = member.submit(clients.spec(args=["a"], kwargs={"cmd": "echo"}, env={"K": "V"}))
    assert submitted.state is ProcessState.WAITING and submitted.initiatorname == "pollinator"
    assert member.get_process(submitted.processid).spec.kwargs == {"cmd": "echo"}
    waiting = member.get_processes(colony, ProcessState.WAITING)
    assert [p.processid for p in waiting] == [submitted.processid]
    assigned = executor.assign(colony, timeout=5, cpu="1000m", mem="1Gi")
    assert assigned is not None and assigned.processid == submitted.processid
    assert assigned.state is ProcessState.RUNNING and assigned.isassigned
    pid = assigned.processid

    executor.set_output(pid, ["partial"])
    assert member.get_process(pid).out == ["partial"]
    attribute = executor.add_attribute(
        Attribute(targetid=pid, key="k", value="v", attributetype=AttributeType.OUT)
    )
    assert attribute.attributeid
    assert member.get_attribute(attribute.attributeid).value == "v"

    executor.close_successful(pid, [1, "two", {"three": 3}])
    done = member.get_process(pid)
    assert done.state is ProcessState.SUCCESS and done.out == [1, "two", {"three": 3}]
    assert [p.processid for p in member.get_processes(colony, ProcessState.SUCCESS)] == [pid]
    assert member.get_processes(colony, ProcessState.RUNNING) == []  # null decodes as []

    member.remove_process(pid)
    with pytest.raises(NotFound):
        member.get_process(pid)


def test_close_failed_and_filters(clients: Clients) -> None:
    pid = clients.running()
    clients.executor.close_failed(pid, ["exit code 3", "last line"])
    failed = clients.member.get_process(pid)
    assert failed.state is ProcessState.FAILED and failed.errors == ["exit code 3", "last line"]
    colony, member = clients.colony, clients.member
    assert len(member.get_processes(colony, ProcessState.FAILED, initiator="pollinator")) == 1
    assert member.get_processes(colony, ProcessState.FAILED, executor_type="other") == []
    assert member.get_processes(colony, ProcessState.FAILED, label="nope") == []


def test_close_successful_without_output_keeps_it(clients: Clients) -> None:
    pid = clients.running()
    clients.executor.set_output(pid, ["kept"])
    clients.executor.close_successful(pid)
    assert clients.member.get_process(pid).out == ["kept"]


def test_cancel_and_remove_all(clients: Clients) -> None:
    member, colony = clients.member, clients.colony
    first = member.submit(clients.spec()).processid
    member.submit(clients.spec())
    member.cancel_process(first)
    assert member.get_process(first).state is ProcessState.CANCELLED
    clients.owner.remove_all_processes(colony, state=ProcessState.CANCELLED)
    assert len(member.get_processes(colony, ProcessState.WAITING)) == 1
    clients.owner.remove_all_processes(colony)
    assert member.get_processes(colony, ProcessState.WAITING) == []


def test_assign_returns_none_when_the_long_poll_expires(clients: Clients) -> None:
    started = time.monotonic()
    assert clients.executor.assign(clients.colony, timeout=1) is None
    assert 0.9 < time.monotonic() - started < 5
    assert clients.executor.assign(clients.colony, timeout=0) is None  # one attempt


def test_assign_waits_for_a_submit(clients: Clients) -> None:
    thread = later(0.3, lambda: clients.member.submit(clients.spec()))
    assigned = clients.executor.assign(clients.colony, timeout=10)
    thread.join()
    assert assigned is not None and assigned.state is ProcessState.RUNNING


def test_pause_and_resume_assignments(clients: Clients) -> None:
    clients.member.submit(clients.spec())
    clients.owner.pause_assignments(clients.colony)
    assert clients.executor.assign(clients.colony, timeout=0) is None  # 503 while paused
    assert clients.executor.assign(clients.colony, timeout=1) is None  # 408 while paused
    clients.owner.resume_assignments(clients.colony)
    assert clients.executor.assign(clients.colony, timeout=1) is not None


# --- logs ------------------------------------------------------------------------------------


def test_logs(clients: Clients) -> None:
    pid = clients.running()
    member, colony = clients.member, clients.colony
    assert member.get_logs(colony, pid) == []  # the server sends null
    for n in range(5):
        clients.executor.add_log(pid, f"line {n}\n")
    logs = member.get_logs(colony, pid)
    assert [log.message for log in logs] == [f"line {n}\n" for n in range(5)]
    assert all(log.executorname == clients.sim.executor_name for log in logs)
    stamps = [log.timestamp for log in logs]
    assert stamps == sorted(stamps)
    since = member.get_logs(colony, pid, since=stamps[2])
    assert [log.message for log in since] == ["line 3\n", "line 4\n"]
    assert [log.message for log in member.get_logs(colony, pid, count=2)] == [
        "line 0\n",
        "line 1\n",
    ]
    latest = member.get_logs(colony, pid, count=2, latest=True)
    assert [log.message for log in latest] == ["line 3\n", "line 4\n"]
    by_executor = member.get_logs(colony, "", executor_name=clients.sim.executor_name)
    assert len(by_executor) == 5


# --- subscriptions -------------------------------------------------------------------------


def test_wait_for_state(clients: Clients) -> None:
    pid = clients.member.submit(clients.spec()).processid
    thread = later(0.3, lambda: clients.executor.assign(clients.colony, timeout=5))
    running = clients.member.wait_for_state(pid, ProcessState.RUNNING, timeout=10)
    thread.join()
    assert running.state is ProcessState.RUNNING and running.processid == pid
    thread = later(0.3, lambda: clients.executor.close_successful(pid, ["ok"]))
    done = clients.member.wait_for_state(pid, ProcessState.SUCCESS, timeout=10)
    thread.join()
    assert done.state is ProcessState.SUCCESS and done.out == ["ok"]
    # Already there: answered without waiting.
    started = time.monotonic()
    assert clients.member.wait_for_state(pid, ProcessState.SUCCESS, 10).state.finished
    assert time.monotonic() - started < 1


def test_wait_for_success_returns_on_failure(clients: Clients) -> None:
    pid = clients.running()
    thread = later(0.3, lambda: clients.executor.close_failed(pid, ["boom"]))
    started = time.monotonic()
    ended = clients.member.wait_for_state(pid, ProcessState.SUCCESS, timeout=20)
    thread.join()
    assert ended.state is ProcessState.FAILED and ended.errors == ["boom"]
    assert time.monotonic() - started < 5


def test_wait_for_state_times_out(clients: Clients) -> None:
    pid = clients.member.submit(clients.spec()).processid
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=f"{pid} did not reach RUNNING within 1 s"):
        clients.member.wait_for_state(pid, ProcessState.RUNNING, timeout=1)
    assert 0.9 < time.monotonic() - started < 5


def test_wait_for_state_of_someone_elses_process(clients: Clients) -> None:
    pid = clients.member.submit(clients.spec()).processid
    stranger = clients.member.with_key(generate_private_key())
    with pytest.raises(AccessDenied):
        stranger.wait_for_state(pid, ProcessState.SUCCESS, timeout=1)


# --- files and snapshots -------------------------------------------------------------------


def file_record(clients: Clients, label: str, name: str, checksum: str) -> File:
    ref = Reference(protocol="s3", s3object=S3Object(bucket="b", object=f"obj-{checksum}"))
    return File(
        colonyname=clients.colony,
        label=label,
        name=name,
        size=len(checksum),
        checksum=checksum,
        checksumalg="SHA256",
        ref=ref,
    )


def test_files(clients: Clients) -> None:
    member, colony, label = clients.member, clients.colony, "/pollinator/p/src"
    first = member.add_file(file_record(clients, label, "a.txt", "c1"))
    second = member.add_file(file_record(clients, label, "a.txt", "c2"))
    member.add_file(file_record(clients, label + "/sub", "b.txt", "c3"))
    assert first.fileid and second.fileid != first.fileid
    assert second.sequencenr > first.sequencenr

    assert member.get_file(colony, file_id=first.fileid)[0].checksum == "c1"
    (latest,) = member.get_file(colony, label=label, name="a.txt")
    assert latest.fileid == second.fileid and latest.ref.s3object.object == "obj-c2"
    revisions = member.get_file(colony, label=label, name="a.txt", latest=False)
    assert {f.fileid for f in revisions} == {first.fileid, second.fileid}

    (data,) = member.get_files(colony, label)
    assert (data.name, data.checksum, data.s3filename) == ("a.txt", "c2", "obj-c2")
    assert member.get_files(colony, "/nothing/here") == []
    labels = {lab.name: lab.files for lab in member.get_file_labels(colony)}
    assert labels == {label: 2, label + "/sub": 1}  # files counts revisions
    assert [lab.name for lab in member.get_file_labels(colony, "/pollinator/p/src/sub")] == [
        label + "/sub"
    ]
    exact = {lab.name for lab in member.get_file_labels(colony, label, exact=True)}
    assert exact == {label, label + "/sub"}
    assert member.get_file_labels(colony, "/other") == []

    member.remove_file(colony, file_id=first.fileid)
    assert [f.fileid for f in member.get_file(colony, label=label, name="a.txt", latest=False)] == [
        second.fileid
    ]
    member.remove_file(colony, label=label, name="a.txt")
    with pytest.raises(NotFound):
        member.get_file(colony, label=label, name="a.txt")


def test_snapshots(clients: Clients) -> None:
    member, colony, label = clients.member, clients.colony, "/pollinator/p/src"
    a = member.add_file(file_record(clients, label, "a.txt", "c1"))
    b = member.add_file(file_record(clients, label + "/sub", "b.txt", "c2"))
    snapshot = member.create_snapshot(colony, label, "snap-1")
    assert snapshot.snapshotid and set(snapshot.fileids) == {a.fileid, b.fileid}
    assert member.get_snapshot(colony, snapshot_id=snapshot.snapshotid).name == "snap-1"
    assert member.get_snapshot(colony, name="snap-1").snapshotid == snapshot.snapshotid
    member.create_snapshot(colony, label, "snap-2")
    assert {s.name for s in member.get_snapshots(colony)} == {"snap-1", "snap-2"}
    member.remove_snapshot(colony, name="snap-1")
    with pytest.raises(NotFound):  # the official server's 500 "not found"
        member.get_snapshot(colony, name="snap-1")
    member.remove_snapshot(
        colony, snapshot_id=member.get_snapshot(colony, name="snap-2").snapshotid
    )
    member.create_snapshot(colony, label, "snap-3")
    member.remove_all_snapshots(colony)
    assert member.get_snapshots(colony) == []


# --- workflows -----------------------------------------------------------------------------


def test_workflows(clients: Clients) -> None:
    first = clients.spec(nodename="first")
    second = clients.spec(nodename="second")
    second.conditions.dependencies = ["first"]
    spec = WorkflowSpec(colonyname=clients.colony, functionspecs=[first, second])
    graph = clients.member.submit_workflow(spec)
    assert graph.processgraphid and len(graph.processids) == 2
    fetched = clients.member.get_process_graph(graph.processgraphid)
    assert sorted(fetched.processids) == sorted(graph.processids)
    assert fetched.colonyname == clients.colony
    every = clients.member.get_process_graphs(clients.colony)
    assert [g.processgraphid for g in every] == [graph.processgraphid]
    waiting = clients.member.get_process_graphs(clients.colony, state=ProcessState.WAITING)
    assert [g.processgraphid for g in waiting] == [graph.processgraphid]
    assert clients.member.get_process_graphs(clients.colony, state=ProcessState.SUCCESS) == []
    # Only the root is assignable until it has finished.
    assigned = clients.executor.assign(clients.colony, timeout=-1)
    assert assigned is not None and assigned.spec.nodename == "first"
    assert clients.executor.assign(clients.colony, timeout=-1) is None


# --- errors from the real server -----------------------------------------------------------


def test_errors_from_the_simulator(clients: Clients) -> None:
    with pytest.raises(NotFound) as not_found:
        clients.member.get_process("0" * 64)
    assert not_found.value.status == 404
    with pytest.raises(BadRequest, match="Count is larger than MaxCount"):
        clients.member.get_processes(clients.colony, ProcessState.WAITING, count=101)
    with pytest.raises(BadRequest, match="priority outside range"):
        clients.member.submit(clients.spec(priority=100_000))
    stranger = clients.member.with_key(generate_private_key())
    with pytest.raises(AccessDenied) as denied:
        stranger.get_processes(clients.colony, ProcessState.WAITING)
    assert denied.value.exit_code == 3 and stranger.signer_id in str(denied.value)
    with pytest.raises(AccessDenied, match="not colony owner"):
        clients.member.approve_executor(clients.colony, clients.sim.executor_name)


def test_siblings_share_one_pool_across_threads(clients: Clients) -> None:
    """Submits and assigns from several threads at once: each process goes out exactly once."""
    extra = [clients.sim.add_executor(f"x{n}") for n in range(3)]
    executors = [clients.executor] + [clients.member.with_key(k) for k in extra]
    for n in range(20):
        clients.member.submit(clients.spec(nodename=f"n{n}"))
    got: list[str] = []

    def drain(client: ColoniesClient) -> None:
        while (process := client.assign(clients.colony, timeout=-1)) is not None:
            got.append(process.processid)
            client.close_successful(process.processid)

    threads = [threading.Thread(target=drain, args=(c,)) for c in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == len(set(got)) == 20
    assert len(clients.member.get_processes(clients.colony, ProcessState.SUCCESS)) == 20
