"""The same protocol sequences against the official Colonies server and against the simulator.

Every assertion states what the official server v1.9.12 answers (measured on it, and read in its
source: pkg/server/handlers, pkg/server/controllers, pkg/database/postgresql) and is checked on
both peers: HTTP status, error envelope and message, payload keys, ``null`` vs ``[]``, deadlines.
Where the simulator still differs on purpose, the test says so and docs/simulator.md says why.

Peers: ``official`` is the v1.9.12 instance tests/infra/colonies_up.sh runs with exclusive assign
(as the official deployment does); ``simulator`` is a fresh simulator configured like it. A few
sequences also run against ``official-distributed`` (v1.9.12, the server's default assign mode),
``official-v187`` and a simulator in distributed mode. Each test works in a colony of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from infra.components import ColoniesServers
from peers import ZERO_TIME, Peer, official_peer, simulator_peer

from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key, sha3_hex

OFFICIAL = pytest.param("official", marks=pytest.mark.colonies_server)
SIMULATOR = pytest.param("simulator")
DISTRIBUTED = pytest.param("official-distributed", marks=pytest.mark.colonies_server)
V187 = pytest.param("official-v187", marks=pytest.mark.colonies_server)
SIMULATOR_DISTRIBUTED = pytest.param("simulator-distributed")

WAITING, RUNNING, SUCCESS, FAILED, CANCELLED = range(5)
APPROVED, UNREGISTERED = 1, 3

#: The keys of a process document (v1.9.12 omits none of them).
PROCESS_KEYS = {
    "processid",
    "initiatorid",
    "initiatorname",
    "assignedexecutorid",
    "isassigned",
    "state",
    "prioritytime",
    "submissiontime",
    "starttime",
    "endtime",
    "waitdeadline",
    "execdeadline",
    "retries",
    "attributes",
    "spec",
    "waitforparents",
    "parents",
    "children",
    "processgraphid",
    "in",
    "out",
    "errors",
}
EXECUTOR_KEYS = {
    "executorid",
    "executortype",
    "executorname",
    "colonyname",
    "state",
    "requirefuncreg",
    "commissiontime",
    "lastheardfromtime",
    "capabilities",
    "allocations",
}


def _make_peer(request: pytest.FixtureRequest, kind: str) -> Iterator[Peer]:
    if kind.startswith("official"):
        servers: ColoniesServers = request.getfixturevalue("colonies_servers")
        server = {
            "official": servers.main,
            "official-distributed": servers.distributed,
            "official-v187": servers.v187,
        }[kind]
        peer = official_peer(kind, server)
        try:
            peer.new_colony()
            yield peer
        finally:
            peer.close()
        return
    with simulator_peer(exclusive_assign=kind != "simulator-distributed") as peer:
        try:
            peer.new_colony()
            yield peer
        finally:
            peer.close()


@pytest.fixture(params=[OFFICIAL, SIMULATOR])
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """The official server v1.9.12 (exclusive assign), then the simulator."""
    yield from _make_peer(request, request.param)


@pytest.fixture(params=[OFFICIAL, DISTRIBUTED, V187, SIMULATOR, SIMULATOR_DISTRIBUTED])
def any_peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """Every server version and assign mode, for the sequences where they differ."""
    yield from _make_peer(request, request.param)


def _ts(text: str) -> float:
    """An RFC 3339 time as seconds since the epoch (0.0 for Go's zero time)."""
    if text == ZERO_TIME:
        return 0.0
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (float("0." + frac) if frac else 0.0)


# --- setup: colonies, users, executors --------------------------------------------------------


def test_executor_registration_envelopes(peer: Peer) -> None:
    reply = peer.add_executor("diff-type", "exec-a")
    added = reply.ok()
    assert set(added) == EXECUTOR_KEYS
    assert added["state"] == 0  # PENDING, whatever the client sent
    assert added["lastheardfromtime"] == ZERO_TIME  # the client's value: never heard from
    assert added["commissiontime"] != ZERO_TIME
    assert (
        peer.call(
            peer.colony_prvkey, "approveexecutormsg", colonyname=peer.colony, executorname="exec-a"
        ).ok()
        == {}
    )
    assert peer.get_executor("exec-a")["state"] == APPROVED
    listed = peer.call(peer.user_prvkey, "getexecutorsmsg", colonyname=peer.colony).ok()
    assert [e["executorname"] for e in listed] == ["exec-a"]
    peer.call(
        peer.user_prvkey, "getexecutormsg", colonyname=peer.colony, executorname="nobody"
    ).refused(500, "Failed to get executor, executor is nil")
    # The colony owner owns the colony but is not a member of it.
    peer.call(peer.colony_prvkey, "getprocessesmsg", colonyname=peer.colony, count=1).refused(
        403, f"Access denied, not a member of Colony with name <{peer.colony}>"
    )


def test_an_empty_colony_lists_null(peer: Peer) -> None:
    user = peer.user_prvkey
    assert peer.call(user, "getexecutorsmsg", colonyname=peer.colony).ok() is None
    got = peer.call(user, "getprocessesmsg", colonyname=peer.colony, count=10, state=WAITING)
    assert got.ok() is None
    assert peer.call(user, "getsnapshotsmsg", colonyname=peer.colony).ok() is None
    assert peer.call(user, "getfilelabelsmsg", colonyname=peer.colony, name="").ok() is None
    assert peer.call(user, "getfilesmsg", colonyname=peer.colony, label="/none").ok() == []
    assert peer.call(user, "getfunctionsmsg", colonyname=peer.colony).ok() is None


def test_reregistering_a_name_is_refused_and_removal_leaves_a_tombstone(peer: Peer) -> None:
    """Default server settings: a second executor of the same name is refused; removal marks
    the executor UNREGISTERED (listed, name still taken) instead of deleting it."""
    executor = peer.new_executor()
    again = peer.add_executor(executor.type, executor.name)
    again.refused(
        400, f"Executor with name <{executor.name}> in Colony <{peer.colony}> already exists"
    )
    assert peer.remove_executor(executor.name).ok() == {}
    record = peer.get_executor(executor.name)
    assert record["state"] == UNREGISTERED
    listed = peer.call(peer.user_prvkey, "getexecutorsmsg", colonyname=peer.colony).ok()
    assert [(e["executorname"], e["state"]) for e in listed] == [(executor.name, UNREGISTERED)]
    peer.add_executor(executor.type, executor.name).refused(
        400, f"Executor with name <{executor.name}> in Colony <{peer.colony}> already exists"
    )
    # The removed executor's key is no longer a member.
    peer.assign(executor).refused(
        403, f"Access denied, not a member of Colony with name <{peer.colony}>"
    )


def test_users_and_colonies_are_unique_by_name(peer: Peer) -> None:
    other_key = generate_private_key()
    user = {
        "colonyname": peer.colony,
        "userid": id_from_private_key(other_key),
        "name": peer.user_name,
        "email": "",
        "phone": "",
    }
    peer.call(peer.colony_prvkey, "addusermsg", user=user).refused(
        400,
        f"A user with name <{peer.user_name}> already exists in Colony with name <{peer.colony}>",
    )
    users = peer.call(peer.user_prvkey, "getusersmsg", colonyname=peer.colony).ok()
    assert [u["name"] for u in users] == [peer.user_name]
    colony = {"colonyid": id_from_private_key(other_key), "name": peer.colony}
    peer.call(peer.server_prvkey, "addcolonymsg", colony=colony).refused(
        400, f"A Colony with name <{peer.colony}> already exists"
    )
    # A second user with the same key but another name: the official server accepts it (and
    # then resolves the key to either record); the simulator refuses it. docs/simulator.md.
    twin = {**user, "userid": id_from_private_key(peer.user_prvkey), "name": "twin"}
    reply = peer.call(peer.colony_prvkey, "addusermsg", user=twin)
    if peer.simulated:
        reply.refused(400)
    else:
        reply.ok()


# --- submitting -------------------------------------------------------------------------------


def test_submit_returns_the_stored_process(peer: Peer) -> None:
    process = peer.submit(
        "diff-type",
        priority=3,
        maxwaittime=60,
        maxexectime=30,
        maxretries=2,
        label="/diff/label",
        env={"A": "1"},
        conditions={"cpu": "500m", "mem": "1Gi", "executornames": []},
    )
    assert set(process) == PROCESS_KEYS
    assert process["state"] == WAITING and process["initiatorname"] == peer.user_name
    assert process["starttime"] == process["endtime"] == process["execdeadline"] == ZERO_TIME
    wait = _ts(process["waitdeadline"]) - _ts(process["submissiontime"])
    assert 59 < wait < 61
    spec = process["spec"]
    assert spec["conditions"]["cpu"] == "500m"
    assert spec["conditions"]["mem"] == "1024Mi"
    assert spec["conditions"]["executornames"] == []
    assert spec["fs"]["snapshots"] is None and spec["fs"]["dirs"] is None
    assert spec["env"] == {"A": "1"}
    assert [(a["key"], a["value"], a["attributetype"]) for a in process["attributes"]] == [
        ("A", "1", 3)
    ]
    for key in ("in", "out", "errors", "parents", "children"):
        assert process[key] == [], key


def test_executor_names_null_empty_and_any(peer: Peer) -> None:
    """No names: null; [] and ["*"]: [] (any executor); names come back as sent."""
    given: list[Any] = [None, [], ["*"], ["x"]]
    stored = []
    for names in given:
        conditions = {} if names is None else {"executornames": names}
        stored.append(peer.submit("diff-type", conditions=conditions)["spec"]["conditions"])
    assert [c["executornames"] for c in stored] == [None, [], [], ["x"]]


@pytest.mark.parametrize("priority", [-50000, 50000])
def test_submit_accepts_priorities_up_to_the_limits(peer: Peer, priority: int) -> None:
    assert peer.submit("diff-type", priority=priority)["spec"]["priority"] == priority


@pytest.mark.parametrize("priority", [-50001, 50001])
def test_submit_refuses_priorities_beyond_the_limits(peer: Peer, priority: int) -> None:
    reply = peer.call(
        peer.user_prvkey, "submitfuncspecmsg", spec=peer.spec("diff-type", priority=priority)
    )
    reply.refused(400, "Failed to submit function spec, priority outside range [-50000, 50000]")


def test_no_maxwaittime_means_no_wait_deadline(peer: Peer) -> None:
    for maxwaittime in (-1, 0):
        process = peer.submit("diff-type", maxwaittime=maxwaittime)
        assert process["waitdeadline"] == ZERO_TIME


# --- assigning --------------------------------------------------------------------------------


def test_assign_timeouts(peer: Peer) -> None:
    executor = peer.new_executor()
    peer.assign(executor, timeout=0).refused(400, "Invalid timeout value, timeout cannot be zero")
    peer.assign(executor, timeout=-1).refused(404, "No process available for assignment")
    start = time.monotonic()
    peer.assign(executor, timeout=1).refused(404, "No process available for assignment")
    assert 0.9 < time.monotonic() - start < 3.0


def test_assign_respects_available_cpu_and_memory(peer: Peer) -> None:
    executor = peer.new_executor()
    pid = peer.submit(executor.type, conditions={"cpu": "1000m", "mem": "1Gi"})["processid"]
    peer.assign(executor, cpu="500m").refused(404, "No process available for assignment")
    peer.assign(executor, mem="512Mi").refused(404, "No process available for assignment")
    assert peer.assign(executor, cpu="1000m", mem="1Gi").ok()["processid"] == pid
    peer.assign(executor, cpu="x1m").refused(400, "Error converting CPU to int")


@pytest.mark.parametrize("field", ["nodes", "processes", "processespernode"])
def test_processes_needing_more_than_127_are_never_assigned(peer: Peer, field: str) -> None:
    executor = peer.new_executor()
    big = peer.submit(executor.type, conditions={field: 128})
    assert big["state"] == WAITING  # accepted at submit
    peer.assign(executor).refused(404, "No process available for assignment")
    fits = peer.submit(executor.type, conditions={field: 127})
    assert peer.assign(executor).ok()["processid"] == fits["processid"]


def test_assign_order_is_priority_then_submission(peer: Peer) -> None:
    executor = peer.new_executor()
    low = peer.submit(executor.type, priority=1)["processid"]
    high = peer.submit(executor.type, priority=9)["processid"]
    later_high = peer.submit(executor.type, priority=9)["processid"]
    order = [peer.assign(executor).ok()["processid"] for _ in range(3)]
    assert order == [high, later_high, low]


def test_a_long_poll_returns_a_process_submitted_meanwhile(peer: Peer) -> None:
    import threading

    executor = peer.new_executor()
    threading.Timer(0.5, lambda: peer.submit(executor.type)).start()
    start = time.monotonic()
    assigned = peer.assign(executor, timeout=10).ok()
    assert assigned["state"] == RUNNING and time.monotonic() - start < 5


def test_the_assign_reply_deadline_and_the_stored_one(any_peer: Peer) -> None:
    """In exclusive-assign mode (the official deployment; v1.8.7 has one mode, the same) the
    assign reply carries the execdeadline the process had BEFORE this assignment: the zero time
    on a first run, the old, passed one on a retry. A following getprocess has the real one. In
    distributed mode (the server's default) the reply has the real one."""
    peer = any_peer
    executor = peer.new_executor()
    pid = peer.submit(executor.type, maxexectime=2, maxretries=1)["processid"]
    first = peer.assign(executor).ok()
    stored = peer.process(pid)["execdeadline"]
    assert 1.5 < _ts(stored) - _ts(first["starttime"]) < 2.5
    exclusive = peer.exclusive_assign or peer.version.startswith("v1.8")
    assert first["execdeadline"] == (ZERO_TIME if exclusive else stored)
    # Past the deadline the server requeues it (retries 1); the retry's reply in exclusive mode
    # carries the first run's deadline, already passed.
    peer.wait_for("the requeue", lambda: peer.process(pid)["state"] == WAITING, timeout=10)
    retry = peer.assign(executor).ok()
    assert retry["retries"] == 1
    stored_again = peer.process(pid)["execdeadline"]
    assert _ts(stored_again) > _ts(stored)
    assert retry["execdeadline"] == (stored if exclusive else stored_again)


def test_assign_by_executor_name(any_peer: Peer) -> None:
    """Names pick executors; [] means any. ["*"] is stored and shown as [], but only the
    distributed assign (v1.9.12's default) treats it as "any": the exclusive scheduler (the
    official deployment's mode, and v1.8.7) never assigns it."""
    peer = any_peer
    mine = peer.new_executor()
    other = peer.new_executor(mine.type)
    named = peer.submit(mine.type, conditions={"executornames": [mine.name]})["processid"]
    peer.assign(other).refused(404)
    assert peer.assign(mine).ok()["processid"] == named
    anyone = peer.submit(mine.type, conditions={"executornames": []})["processid"]
    assert peer.assign(other).ok()["processid"] == anyone
    star = peer.submit(mine.type, conditions={"executornames": ["*"]})
    assert star["spec"]["conditions"]["executornames"] == []
    if peer.exclusive_assign or peer.version.startswith("v1.8"):
        peer.assign(other).refused(404)
    else:
        assert peer.assign(other).ok()["processid"] == star["processid"]


# --- logs -------------------------------------------------------------------------------------


def _running(peer: Peer, **fields: Any) -> tuple[Any, str]:
    executor = peer.new_executor()
    pid = peer.submit(executor.type, **fields)["processid"]
    assert peer.assign(executor).ok()["processid"] == pid
    return executor, pid


def _logs(peer: Peer, pid: str, **fields: Any) -> Any:
    body = {"colonyname": peer.colony, "processid": pid, "executorname": "", **fields}
    return peer.call(peer.user_prvkey, "getlogsmsg", **body)


def test_logs_since_count_latest(peer: Peer) -> None:
    executor, pid = _running(peer)
    assert _logs(peer, pid, count=10).ok() is None
    for i in range(6):
        peer.call(executor.prvkey, "addlogmsg", processid=pid, message=f"line {i}\n").ok()
    logs = _logs(peer, pid, count=100).ok()
    assert [log["message"] for log in logs] == [f"line {i}\n" for i in range(6)]
    assert set(logs[0]) == {"processid", "colonyname", "executorname", "message", "timestamp"}
    assert logs[0]["executorname"] == executor.name and logs[0]["colonyname"] == peer.colony
    stamps = [log["timestamp"] for log in logs]
    assert stamps == sorted(stamps)
    after = _logs(peer, pid, count=2, since=stamps[1]).ok()
    assert [log["message"] for log in after] == ["line 2\n", "line 3\n"]  # since is exclusive
    assert _logs(peer, pid, count=10, since=stamps[-1]).ok() is None
    newest = _logs(peer, pid, count=2, latest=True).ok()
    assert [log["message"] for log in newest] == ["line 4\n", "line 5\n"]
    newest_wins = _logs(peer, pid, count=2, latest=True, since=stamps[0]).ok()
    assert [log["message"] for log in newest_wins] == ["line 4\n", "line 5\n"]
    assert _logs(peer, pid, count=0).ok() is None
    by_executor = peer.call(
        peer.user_prvkey,
        "getlogsmsg",
        colonyname=peer.colony,
        executorname=executor.name,
        count=3,
    ).ok()
    assert [log["message"] for log in by_executor] == [f"line {i}\n" for i in range(3)]


def test_logs_count_limit_and_unknown_targets(peer: Peer) -> None:
    _, pid = _running(peer)
    _logs(peer, pid, count=501).refused(403, "Count exceeds max log count (500)")
    assert _logs(peer, pid, count=500).ok() is None
    _logs(peer, "0" * 64, count=1).refused(500, "Failed to get logs, process does not exist")
    peer.call(
        peer.user_prvkey, "getlogsmsg", colonyname=peer.colony, executorname="nobody", count=1
    ).refused(500, "Failed to get logs, executor does not exist")


def test_addlog_only_by_the_assigned_executor_while_running(peer: Peer) -> None:
    executor, pid = _running(peer)
    other = peer.new_executor(executor.type)
    peer.call(other.prvkey, "addlogmsg", processid=pid, message="x").refused(
        403, "Failed to add log, not allowed to add log, only the assigned Executor may att logs"
    )
    peer.call(executor.prvkey, "addlogmsg", processid="0" * 64, message="x").refused(
        500, "Failed to add log, process is nil"
    )
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=pid, out=[]).ok()
    peer.call(executor.prvkey, "addlogmsg", processid=pid, message="late").refused(
        403, "Failed to set output, process is not running"
    )


def test_a_nul_byte_in_a_log_line_is_refused_twice_in_one_reply(peer: Peer) -> None:
    """PostgreSQL text cannot hold 0x00: the whole line is refused, HTTP 400, and the handler
    writes two error envelopes into one body (400, then 500), which is not one JSON document."""
    executor, pid = _running(peer)
    reply = peer.call(executor.prvkey, "addlogmsg", processid=pid, message="before\x00after\n")
    message = 'pq: invalid byte sequence for encoding "UTF8": 0x00'
    reply.refused(400, message)
    assert reply.more == [{"status": 500, "message": message}]
    assert _logs(peer, pid, count=10).ok() is None  # nothing of the line was kept
    peer.call(executor.prvkey, "addlogmsg", processid=pid, message="before\\x00after\n").ok()


NUL = 'pq: invalid byte sequence for encoding "UTF8": 0x00'


def test_a_nul_byte_in_other_text_fields(peer: Peer) -> None:
    """Every text PostgreSQL stores refuses 0x00, each refusal with its own consequence."""
    executor, pid = _running(peer)
    # A spec field kept in a text column: refused, nothing stored.
    peer.call(
        peer.user_prvkey, "submitfuncspecmsg", spec=peer.spec(executor.type, label="a\x00b")
    ).refused(400, NUL)
    assert _list(peer, WAITING).ok() is None
    # args are stored as JSON (the NUL escaped): accepted.
    assert peer.submit(executor.type, args=["a\x00b"])["spec"]["args"] == ["a\x00b"]
    # env goes in after the process row: refused, yet the process is queued without its env.
    peer.call(
        peer.user_prvkey, "submitfuncspecmsg", spec=peer.spec("env-type", env={"A": "x\x00"})
    ).refused(400, NUL)
    queued = _list(peer, WAITING, executortype="env-type").ok()
    assert [p["spec"]["env"] for p in queued] == [{}]
    attribute = {"targetid": pid, "key": "K", "value": "a\x00", "attributetype": 1}
    peer.call(executor.prvkey, "addattributemsg", attribute=attribute).refused(400, NUL)
    # A file record: the failed insert is ignored and the reply is a success with null.
    record = {"colonyname": peer.colony, "label": "/nul", "name": "a\x00b"}
    assert peer.call(peer.user_prvkey, "addfilemsg", file=record).ok() is None
    assert _labels(peer, "/nul", exact=False) is None
    # Closing FAILED with such an error: refused, yet the process is FAILED, with no errors.
    peer.call(executor.prvkey, "closefailedmsg", processid=pid, errors=["a\x00b"]).refused(400, NUL)
    failed = peer.process(pid)
    assert (failed["state"], failed["errors"]) == (FAILED, [])


def test_negative_counts_reach_the_database(peer: Peer) -> None:
    _, pid = _running(peer)
    reply = _logs(peer, pid, count=-1)
    reply.refused(400, "pq: LIMIT must not be negative")
    assert reply.more == [{"status": 500, "message": "pq: LIMIT must not be negative"}]
    _list(peer, RUNNING, count=-1).refused(400, "pq: LIMIT must not be negative")
    assert _list(peer, RUNNING, count=0).ok() is None


# --- closing and cancelling -------------------------------------------------------------------


def test_close_successful_and_failed(peer: Peer) -> None:
    executor, pid = _running(peer)
    other = peer.new_executor(executor.type)
    peer.call(other.prvkey, "closesuccessfulmsg", processid=pid, out=[]).refused(
        403, "Failed to close process as successful, not allowed to close process as successful"
    )
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=pid, out=["r", 1]).ok()
    done = peer.process(pid)
    assert (done["state"], done["out"], done["errors"]) == (SUCCESS, ["r", 1], [])
    assert _ts(done["endtime"]) >= _ts(done["starttime"]) > 0
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=pid, out=[]).ok()  # again: OK
    peer.call(executor.prvkey, "closefailedmsg", processid=pid, errors=["late"]).refused(
        400, "Tried to set successful process as failed"
    )
    _, failing = _running(peer)
    waiting = peer.submit(executor.type)["processid"]
    peer.call(executor.prvkey, "closefailedmsg", processid=waiting, errors=["x"]).refused(
        403, "Failed to close process as failed, process is not assigned"
    )
    peer.call(executor.prvkey, "closefailedmsg", processid=failing, errors=["x"]).refused(
        403, "Failed to close process as failed, not allowed to close process as failed"
    )


def test_close_failed_keeps_the_errors_and_never_retries(peer: Peer) -> None:
    executor, pid = _running(peer, maxretries=3, maxexectime=60)
    peer.call(executor.prvkey, "closefailedmsg", processid=pid, errors=["boom", "twice"]).ok()
    failed = peer.process(pid)
    assert (failed["state"], failed["errors"], failed["retries"]) == (FAILED, ["boom", "twice"], 0)
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=pid, out=[]).refused(
        400, "Tried to set failed process as successful"
    )


def test_cancel_waiting_and_running(peer: Peer) -> None:
    executor, running = _running(peer)
    waiting = peer.submit(executor.type)["processid"]
    for pid in (waiting, running):
        assert peer.call(peer.user_prvkey, "cancelprocessmsg", processid=pid).ok() == {}
        assert peer.process(pid)["state"] == CANCELLED
    cancelled = peer.process(running)
    assert cancelled["assignedexecutorid"] == executor.id and cancelled["isassigned"]
    peer.call(peer.user_prvkey, "cancelprocessmsg", processid=running).refused(
        400, "Tried to cancel already cancelled process"
    )
    peer.call(executor.prvkey, "addlogmsg", processid=running, message="x").refused(
        403, "Failed to set output, process is not running"
    )
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=running, out=[]).refused(
        400, "Tried to set cancelled process as successful"
    )
    peer.call(peer.user_prvkey, "cancelprocessmsg", processid="0" * 64).refused(
        500, "Failed to cancel process, process is nil"
    )


# --- listing processes ------------------------------------------------------------------------


def _list(peer: Peer, state: int, **fields: Any) -> Any:
    body = {"colonyname": peer.colony, "count": 100, "state": state, **fields}
    return peer.call(peer.user_prvkey, "getprocessesmsg", **body)


def test_getprocesses_filters_and_limits(peer: Peer) -> None:
    a = peer.submit("type-a", label="/l/one")["processid"]
    b = peer.submit("type-b", label="/l/two", priority=5)["processid"]
    assert [p["processid"] for p in _list(peer, WAITING).ok()] == [b, a]  # by prioritytime
    assert [p["processid"] for p in _list(peer, WAITING, executortype="type-a").ok()] == [a]
    assert [p["processid"] for p in _list(peer, WAITING, label="/l/two").ok()] == [b]
    by_user = _list(peer, WAITING, initiator=peer.user_name).ok()
    assert {p["processid"] for p in by_user} == {a, b}
    # One filter only, in the order executortype > initiator > label.
    both = _list(peer, WAITING, executortype="type-a", label="/l/two").ok()
    assert [p["processid"] for p in both] == [a]
    assert _list(peer, RUNNING).ok() is None
    assert len(_list(peer, WAITING, count=1).ok()) == 1
    _list(peer, WAITING, count=101).refused(400, "Count is larger than MaxCount limit <100>")
    _list(peer, 7).refused(400, "Failed to get processes, invalid msg.State")
    _list(peer, WAITING, initiator="nobody").refused(400, "User <nobody> does not exist")


# --- attributes -------------------------------------------------------------------------------


def _attribute(pid: str, key: str, value: str, kind: int = 1) -> dict[str, Any]:
    return {"targetid": pid, "key": key, "value": value, "attributetype": kind}


def test_attribute_ids_are_deterministic_and_unique(peer: Peer) -> None:
    executor, pid = _running(peer)
    added = peer.call(
        executor.prvkey, "addattributemsg", attribute=_attribute(pid, "NODES", "4")
    ).ok()
    assert added["attributeid"] == sha3_hex(pid + "NODES" + "1")
    assert (added["key"], added["value"], added["targetid"]) == ("NODES", "4", pid)
    got = peer.call(peer.user_prvkey, "getattributemsg", attributeid=added["attributeid"]).ok()
    assert got["value"] == "4"
    duplicate = peer.call(
        executor.prvkey, "addattributemsg", attribute=_attribute(pid, "NODES", "5")
    )
    message = duplicate.refused(400)
    assert message.startswith("pq: duplicate key value violates unique constraint"), message
    # The same key with another type is another attribute.
    peer.call(executor.prvkey, "addattributemsg", attribute=_attribute(pid, "NODES", "5", 2)).ok()
    keys = [(a["key"], a["attributetype"]) for a in peer.process(pid)["attributes"]]
    assert sorted(keys) == [("NODES", 1), ("NODES", 2)]
    peer.call(peer.user_prvkey, "getattributemsg", attributeid="0" * 64).refused(
        400, "Attribute does not exists"
    )


# --- files, labels and snapshots ----------------------------------------------------------------


def _add_file(peer: Peer, label: str, name: str, content: str = "x") -> dict[str, Any]:
    record = {
        "colonyname": peer.colony,
        "label": label,
        "name": name,
        "size": len(content),
        "checksum": sha3_hex(content),
        "checksumalg": "SHA256",
        "ref": {"protocol": "s3", "s3object": {"bucket": "b", "object": sha3_hex(content)}},
    }
    return dict(peer.call(peer.user_prvkey, "addfilemsg", file=record).ok())


def _labels(peer: Peer, name: str, exact: bool) -> set[str] | None:
    """Label names as a set: the official server returns the exact matches in map order."""
    got = peer.call(
        peer.user_prvkey, "getfilelabelsmsg", colonyname=peer.colony, name=name, exact=exact
    ).ok()
    return None if got is None else {label["name"] for label in got}


def test_label_queries_are_sql_like_patterns(peer: Peer) -> None:
    """getfilelabelsmsg matches with LIKE: `_` is any one character and `%` any run, in the
    name asked for as in the stored labels."""
    for label in ("/p/a_b/src", "/p/a_b/src/sub", "/p/a-b/src/sub", "/p/aXb/src", "/p/50%/x"):
        _add_file(peer, label, "f.txt")
    assert _labels(peer, "/p/a_b/src", exact=True) == {
        "/p/a_b/src",
        "/p/a_b/src/sub",
        "/p/a-b/src/sub",
    }
    assert _labels(peer, "/p/a_b", exact=False) == {
        "/p/a_b/src",
        "/p/a_b/src/sub",
        "/p/a-b/src/sub",
        "/p/aXb/src",
    }
    assert _labels(peer, "/p/%/src", exact=True) is None  # exact: the label itself must exist
    assert _labels(peer, "/p/5", exact=False) == {"/p/50%/x"}
    assert _labels(peer, "/p/%/x", exact=False) == {"/p/50%/x"}
    # A label without files of its own: exact finds nothing even though sub-labels exist.
    assert _labels(peer, "/p/a-b/src", exact=True) is None
    assert len(_labels(peer, "", exact=False) or ()) == 5


def test_a_snapshot_of_a_label_with_an_underscore_takes_a_neighbours_files(peer: Peer) -> None:
    own = _add_file(peer, "/s/a_b/src", "main.py", "mine")["fileid"]
    neighbour = _add_file(peer, "/s/a-b/src/lib", "util.py", "theirs")["fileid"]
    _add_file(peer, "/s/aXb/src", "other.py", "not matched: no slash after src")
    snapshot = peer.call(
        peer.user_prvkey,
        "createsnapshotmsg",
        colonyname=peer.colony,
        label="/s/a_b/src/",
        name="s1",
    ).ok()
    assert set(snapshot) == {"snapshotid", "colonyname", "label", "name", "fileids", "added"}
    assert (snapshot["label"], snapshot["name"]) == ("/s/a_b/src", "s1")
    assert set(snapshot["fileids"]) == {own, neighbour}


def test_files_revisions_and_removal(peer: Peer) -> None:
    first = _add_file(peer, "/f/dir", "a.txt", "one")
    second = _add_file(peer, "/f/dir", "a.txt", "two")
    assert set(first) == {
        "fileid",
        "colonyname",
        "label",
        "name",
        "size",
        "sequencenr",
        "checksum",
        "checksumalg",
        "ref",
        "added",
    }
    assert second["sequencenr"] > first["sequencenr"]
    files = peer.call(peer.user_prvkey, "getfilesmsg", colonyname=peer.colony, label="/f/dir")
    assert [(f["name"], f["checksum"]) for f in files.ok()] == [("a.txt", sha3_hex("two"))]
    revisions = peer.call(
        peer.user_prvkey,
        "getfilemsg",
        colonyname=peer.colony,
        label="/f/dir",
        name="a.txt",
        latest=False,
    ).ok()
    assert {r["fileid"] for r in revisions} == {first["fileid"], second["fileid"]}
    latest = peer.call(
        peer.user_prvkey,
        "getfilemsg",
        colonyname=peer.colony,
        label="/f/dir",
        name="a.txt",
        latest=True,
    ).ok()
    assert [r["fileid"] for r in latest] == [second["fileid"]]
    peer.call(peer.user_prvkey, "getfilemsg", colonyname=peer.colony, fileid="0" * 64).refused(
        400, "Failed to get file"
    )
    peer.call(
        peer.user_prvkey, "getfilemsg", colonyname=peer.colony, label="/f/dir", name="no.txt"
    ).refused(404, "Failed to get file")
    peer.call(
        peer.user_prvkey, "removefilemsg", colonyname=peer.colony, label="/f/dir", name="a.txt"
    ).ok()
    gone = peer.call(peer.user_prvkey, "getfilesmsg", colonyname=peer.colony, label="/f/dir")
    assert gone.ok() == []


def test_snapshots(peer: Peer) -> None:
    user = peer.user_prvkey
    _add_file(peer, "/snap/src", "main.py")
    made = peer.call(
        user, "createsnapshotmsg", colonyname=peer.colony, label="/snap/src", name="one"
    ).ok()
    peer.call(
        user, "createsnapshotmsg", colonyname=peer.colony, label="/snap/src", name="one"
    ).refused(500, f"Snapshot with name <one> in Colony <{peer.colony}> already exists")
    by_name = peer.call(user, "getsnapshotmsg", colonyname=peer.colony, name="one").ok()
    assert by_name["snapshotid"] == made["snapshotid"] and by_name["name"] == "one"
    empty = peer.call(
        user, "createsnapshotmsg", colonyname=peer.colony, label="/snap/none", name="two"
    ).ok()
    assert empty["fileids"] is None
    listed = peer.call(user, "getsnapshotsmsg", colonyname=peer.colony).ok()
    assert {s["name"] for s in listed} == {"one", "two"}
    assert (
        peer.call(
            user, "removesnapshotmsg", colonyname=peer.colony, snapshotid=made["snapshotid"]
        ).ok()
        == {}
    )
    peer.call(
        user, "getsnapshotmsg", colonyname=peer.colony, snapshotid=made["snapshotid"]
    ).refused(
        500,
        f"Snapshot not found with Id <{made['snapshotid']}> in Colony <{peer.colony}> "
        "does not exists",
    )


# --- the timeout loop: maxexectime, retries, maxwaittime ------------------------------------------


def test_maxexectime_requeues_then_fails_after_the_retries(peer: Peer) -> None:
    executor, pid = _running(peer, maxexectime=1, maxretries=1)
    peer.wait_for("the requeue", lambda: peer.process(pid)["state"] == WAITING, timeout=10)
    requeued = peer.process(pid)
    assert (requeued["retries"], requeued["isassigned"], requeued["assignedexecutorid"]) == (
        1,
        False,
        "",
    )
    assert requeued["endtime"] != ZERO_TIME
    assert peer.assign(executor).ok()["processid"] == pid
    peer.wait_for("the failure", lambda: peer.process(pid)["state"] == FAILED, timeout=10)
    failed = peer.process(pid)
    assert (failed["errors"], failed["retries"]) == (["Maximum execution time limit exceeded"], 1)


def test_maxexectime_zero_counts_as_already_passed(peer: Peer) -> None:
    """maxexectime 0 (not -1) on a plain submit: the zero deadline is in the past at once."""
    _, pid = _running(peer, maxexectime=0, maxretries=0)
    peer.wait_for("the failure", lambda: peer.process(pid)["state"] == FAILED, timeout=10)
    assert peer.process(pid)["errors"] == ["Maximum execution time limit exceeded"]


def test_maxwaittime_fails_a_process_nobody_takes(peer: Peer) -> None:
    pid = peer.submit("nobody-runs-this", maxwaittime=1)["processid"]
    peer.wait_for("the failure", lambda: peer.process(pid)["state"] == FAILED, timeout=10)
    failed = peer.process(pid)
    assert failed["errors"] == ["Maximum waiting time limit exceeded"]
    assert failed["endtime"] != ZERO_TIME and failed["assignedexecutorid"] == ""


# --- executors that go away -------------------------------------------------------------------


def test_removing_an_executor_puts_its_running_process_back_to_waiting(peer: Peer) -> None:
    """Not a retry: the run is erased (start and end times zero, retries unchanged), but the
    old execdeadline stays in the record."""
    executor, pid = _running(peer, maxexectime=300, maxretries=2)
    deadline = peer.process(pid)["execdeadline"]
    assert peer.remove_executor(executor.name).ok() == {}
    back = peer.process(pid)
    assert (back["state"], back["isassigned"], back["assignedexecutorid"]) == (WAITING, False, "")
    assert back["starttime"] == back["endtime"] == ZERO_TIME
    assert (back["retries"], back["execdeadline"]) == (0, deadline)
    member = f"Access denied, not a member of Colony with name <{peer.colony}>"
    peer.call(executor.prvkey, "addlogmsg", processid=pid, message="x").refused(403, member)
    peer.call(executor.prvkey, "closesuccessfulmsg", processid=pid, out=[]).refused(403, member)
    successor = peer.new_executor(executor.type)
    assert peer.assign(successor).ok()["processid"] == pid


def test_a_silent_executor_is_removed_after_the_stale_window(peer: Peer) -> None:
    """The server marks an executor alive only when it calls assign. One that has never called
    it (zero lastheardfromtime) is kept; one that called and then fell silent is removed
    (UNREGISTERED) and its RUNNING process goes back to WAITING."""
    silent, pid = _running(peer)
    never = peer.new_executor(silent.type)
    heard = peer.get_executor(silent.name)["lastheardfromtime"]
    assert heard != ZERO_TIME
    assert peer.get_executor(never.name)["lastheardfromtime"] == ZERO_TIME
    window = peer.stale_seconds + peer.cleanup_seconds
    took = peer.wait_for(
        "the stale executor's removal",
        lambda: peer.get_executor(silent.name)["state"] == UNREGISTERED,
        timeout=window + 10,
        interval=0.5,
    )
    assert took > peer.stale_seconds - 2
    assert peer.process(pid)["state"] == WAITING
    assert peer.get_executor(never.name)["state"] == APPROVED


def test_an_assign_that_cannot_match_keeps_a_busy_executor_alive(any_peer: Peer) -> None:
    """The protocol-legal heartbeat: assign with timeout -1 and availablecpu "-1m" matches no
    process (CPU <= -1), answers 404, assigns nothing, and refreshes lastheardfromtime."""
    peer = any_peer
    busy, pid = _running(peer)
    waiting = peer.submit(busy.type)["processid"]
    before = _ts(peer.get_executor(busy.name)["lastheardfromtime"])
    time.sleep(1.1)
    peer.assign(busy, timeout=-1, cpu="-1m").refused(404)
    after = _ts(peer.get_executor(busy.name)["lastheardfromtime"])
    assert after > before + 1
    assert peer.process(waiting)["state"] == WAITING
    if not peer.stale_seconds:
        return  # v1.8.7 never removes executors
    # Heartbeats only, past two stale windows: still registered, still running its process.
    end = time.monotonic() + 2 * peer.stale_seconds + peer.cleanup_seconds
    while time.monotonic() < end:
        peer.assign(busy, timeout=-1, cpu="-1m").refused(404)
        time.sleep(peer.stale_seconds / 3)
    assert peer.get_executor(busy.name)["state"] == APPROVED
    assert peer.process(pid)["state"] == RUNNING
    assert peer.process(waiting)["state"] == WAITING
