"""With --db, nothing acknowledged is lost: not on a graceful stop, not on SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pollinator_simulator.bootstrap import DevKeys
from pollinator_simulator.embedded import EmbeddedSimulator
from sim_fixtures import RawRpc, RpcError

from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key

pytestmark = pytest.mark.timeout(90)


def _spec(colony: str) -> dict[str, Any]:
    return {
        "funcname": "f",
        "maxexectime": -1,
        "conditions": {"colonyname": colony, "executortype": "container-executor"},
    }


def _file(colony: str, n: int) -> dict[str, Any]:
    return {
        "colonyname": colony,
        "label": "/data",
        "name": f"f{n % 3}",
        "size": n,
        "checksum": f"{n:064x}",
        "checksumalg": "SHA256",
        "ref": {"protocol": "s3", "s3object": {"object": f"obj{n}", "bucket": "b"}},
    }


def test_graceful_restart_keeps_everything(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    server = generate_private_key()
    exe = generate_private_key()
    with EmbeddedSimulator(server, db_path=db) as sim:
        keys = sim.bootstrap("dev")
        sim.register_executor("dev", exe, "e1", "container-executor")
        raw = RawRpc(sim.url)
        waiting = [raw.call(keys.prvkey, "submitfuncspecmsg", spec=_spec("dev")) for _ in range(3)]
        running = raw.call(exe, "assignprocessmsg", colonyname="dev", timeout=1)
        raw.call(exe, "addlogmsg", processid=running["processid"], message="before restart")
        files = [raw.call(keys.prvkey, "addfilemsg", file=_file("dev", n)) for n in range(4)]
        snapshot = raw.call(
            keys.prvkey, "createsnapshotmsg", colonyname="dev", label="/data", name="s1"
        )
        raw.call(keys.colony_prvkey, "pauseassignmentsmsg", colonyname="dev")

    with EmbeddedSimulator(server, db_path=db) as sim:
        raw = RawRpc(sim.url)
        user = keys.prvkey
        got = raw.call(user, "getprocessmsg", processid=running["processid"])
        assert got["state"] == 1 and got["assignedexecutorid"] == running["assignedexecutorid"]
        logs = raw.call(user, "getlogsmsg", colonyname="dev", processid=got["processid"], count=9)
        assert [log["message"] for log in logs] == ["before restart"]
        assert raw.call(user, "getsnapshotmsg", colonyname="dev", name="s1") == snapshot
        latest = raw.call(
            user, "getfilemsg", colonyname="dev", label="/data", name="f0", latest=True
        )
        assert latest == [files[3]]
        new = raw.call(user, "addfilemsg", file=_file("dev", 9))
        assert new["sequencenr"] == 5  # the global counter carries on
        with pytest.raises(RpcError, match="paused"):
            raw.call(exe, "assignprocessmsg", colonyname="dev", timeout=-1)
        raw.call(keys.colony_prvkey, "resumeassignmentsmsg", colonyname="dev")
        # Waiting processes are assignable again, in their original order.
        assigned = [
            raw.call(exe, "assignprocessmsg", colonyname="dev", timeout=1)["processid"]
            for _ in range(2)
        ]
        assert assigned == [p["processid"] for p in waiting[1:]]
        raw.call(exe, "closesuccessfulmsg", processid=running["processid"], out=[])


# --- a separate server process, killed ----------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    stderr: list[str] = field(default_factory=list)


@contextmanager
def served(db: Path, keys: DevKeys) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    env.update(
        {
            "COLONIES_SERVER_PRVKEY": keys.server_prvkey,
            "COLONIES_COLONY_NAME": keys.colony_name,
            "COLONIES_COLONY_PRVKEY": keys.colony_prvkey,
            "COLONIES_PRVKEY": keys.prvkey,
            "COLONIES_ALLOW_EXECUTOR_REREGISTER": "true",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pollinator_simulator", "--port", "0", "--db", str(db)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError("the simulator exited: " + "".join(lines))
        lines.append(line)
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            break
    served = Served(proc, found.group(1), lines)
    drain = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    drain.start()
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        drain.join(5)


@dataclass
class Acknowledged:
    submitted: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _workload(url: str, keys: DevKeys, exe: str, ack: Acknowledged, stop: threading.Event) -> None:
    """Record only what the server acknowledged; a request cut off by the kill is not."""
    raw = RawRpc(url)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            ack.submitted.append(
                raw.call(keys.prvkey, "submitfuncspecmsg", spec=_spec("dev"))["processid"]
            )
            pid = raw.call(exe, "assignprocessmsg", colonyname="dev", timeout=1)["processid"]
            raw.call(exe, "addlogmsg", processid=pid, message=f"log {n}")
            ack.logs.append((pid, f"log {n}"))
            ack.files.append(raw.call(keys.prvkey, "addfilemsg", file=_file("dev", n))["fileid"])
            raw.call(exe, "closesuccessfulmsg", processid=pid, out=[n])
            ack.closed.append(pid)
    except Exception:
        return  # the server went away mid-request


def _check(url: str, keys: DevKeys, ack: Acknowledged) -> None:
    raw, user = RawRpc(url), keys.prvkey
    assert len(ack.submitted) > 20 and len(ack.files) > 20  # a real workload was cut
    for pid in ack.submitted:
        raw.call(user, "getprocessmsg", processid=pid)
    for pid in ack.closed:
        assert raw.call(user, "getprocessmsg", processid=pid)["state"] == 2
    for pid, message in ack.logs:
        logs = raw.call(user, "getlogsmsg", colonyname="dev", processid=pid, count=10)
        assert message in [log["message"] for log in logs]
    for fid in ack.files:
        assert raw.call(user, "getfilemsg", colonyname="dev", fileid=fid)[0]["fileid"] == fid


def _run_and_stop(db: Path, keys: DevKeys, exe: str, how: signal.Signals) -> Acknowledged:
    ack = Acknowledged()
    with served(db, keys) as server:
        # Registering again is allowed (COLONIES_ALLOW_EXECUTOR_REREGISTER=true, as in the
        # official docker-compose settings), and leaves the executor pending until approved.
        owner, boot = keys.colony_prvkey, RawRpc(server.url)
        executor = {
            "executorid": id_from_private_key(exe),
            "executortype": "container-executor",
            "executorname": "sim-executor",
            "colonyname": "dev",
        }
        boot.call(owner, "addexecutormsg", executor=executor)
        boot.call(owner, "approveexecutormsg", colonyname="dev", executorname="sim-executor")
        stop = threading.Event()
        worker = threading.Thread(target=_workload, args=(server.url, keys, exe, ack, stop))
        worker.start()
        time.sleep(1.5)
        server.proc.send_signal(how)
        if how == signal.SIGTERM:
            assert server.proc.wait(10) == 0  # graceful
        stop.set()
        worker.join(10)
    return ack


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stop_mid_workload_and_restart(tmp_path: Path, how: signal.Signals) -> None:
    keys = DevKeys.generate("dev")
    exe = generate_private_key()
    db = tmp_path / "sim.db"
    first = _run_and_stop(db, keys, exe, how)
    with served(db, keys) as server:
        _check(server.url, keys, first)
        stats = RawRpc(server.url).call(keys.prvkey, "getcolonystatsmsg", colonyname="dev")
        assert stats["successfulprocesses"] >= len(first.closed)
    # Killed twice in a row, still consistent: the bootstrap is idempotent too.
    second = _run_and_stop(db, keys, exe, signal.SIGKILL)
    with served(db, keys) as server:
        _check(server.url, keys, first)
        _check(server.url, keys, second)
