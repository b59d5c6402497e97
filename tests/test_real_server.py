"""The whole user flow against the official Colonies server, as a production user runs it.

The server is the official one (v1.9.12 with exclusive assign, as deployed, and v1.8.7 where it
matters), started by tests/infra/colonies_up.sh with a stale-executor window of 10 s; file bytes
go to the Ceph S3 server of tests/infra/s3_up.sh. Each test works in a colony of its own, made
through the protocol with the server key, and submits with a *user* key only, as a production
user does. Our executor runs as the separate daemon a site runs (`pollinator executor start
--type docker --runtime process`), registering itself with the colony owner's key and told the
server's stale window through the server's own variable, COLONIES_STALE_EXECUTOR_DURATION.

What is checked here is what the real server exposed and the simulator hid: a job outliving the
stale window, an executor killed mid-job and the retry on another one, many results written at
the walltime, NUL bytes in the output, a removed executor starting again, cancel on v1.8.x, and
the spec shape of the original Go Pollinator (funcname ``execute`` and ``sync``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
from infra.components import ColoniesServer, S3Server
from peers import Peer, official_peer
from test_run_local import POLLINATOR, LocalProject, Output, submitted_id

from pollinator_core.colonies.client import BadRequest, ColoniesClient
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import parse_project

pytestmark = pytest.mark.colonies_server

SUCCESS, FAILED, CANCELLED = 2, 3, 4
APPROVED = 1
NUL_STAND_IN = "\u2400"  # what the executor sends for a NUL byte (PostgreSQL refuses 0x00)


class Site:
    """A colony of the test's own on an official server, our executors serving it, and projects
    submitting to it with a user key."""

    def __init__(self, server: ColoniesServer, s3: S3Server, tmp: Path) -> None:
        self.server = server
        self.s3 = s3
        self.tmp = tmp
        self.peer: Peer = official_peer(server.name, server)
        self.peer.new_colony()
        self.daemons: dict[str, Output] = {}

    @property
    def colony(self) -> str:
        return self.peer.colony

    def _base_env(self) -> dict[str, str]:
        drop = ("COLONIES_", "AWS_S3_", "POLLINATOR_STORAGE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(self.s3.env())
        env.update(
            COLONIES_SERVER_HOST=self.server.host,
            COLONIES_SERVER_PORT=str(self.server.port),
            COLONIES_SERVER_TLS="false",
            COLONIES_COLONY_NAME=self.colony,
        )
        return env

    def user_env(self) -> dict[str, str]:
        """What a submitting user has: the server, the colony, a user key, the S3 store."""
        return {**self._base_env(), "COLONIES_PRVKEY": self.peer.user_prvkey}

    def executor_env(self) -> dict[str, str]:
        """What a site's executor has: the colony owner's key to register itself, and the
        server's stale-executor window (the server's own variable) to pace its heartbeat."""
        env = {**self._base_env(), "COLONIES_COLONY_PRVKEY": self.peer.colony_prvkey}
        if self.server.stale_seconds:
            env["COLONIES_STALE_EXECUTOR_DURATION"] = str(self.server.stale_seconds)
        return env

    def start_executor(self, name: str, *options: str, fs_dir: Path | None = None) -> Output:
        proc = subprocess.Popen(
            [POLLINATOR, "executor", "start", "--type", "docker", "--runtime", "process",
             "--name", name, "--fs-dir", str(fs_dir or self.tmp / f"fs-{name}"), *options],
            env=self.executor_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        daemon = Output(proc)
        daemon.wait_for(f"executor {name} .* serving colony {self.colony}", stderr=True)
        self.daemons[name] = daemon
        return daemon

    def project(self, name: str = "demo") -> LocalProject:
        made = LocalProject(self.tmp / name, "process", "")
        made.env = self.user_env()  # no backend in project.yaml: COLONIES_SERVER_HOST decides
        return made

    def user_client(self) -> ColoniesClient:
        return self.peer.client(self.peer.user_prvkey)

    def close(self) -> None:
        for daemon in self.daemons.values():
            if daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGTERM)
            try:
                daemon.finish(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.finish()
        self.peer.close()  # removes the colony and everything in it


@pytest.fixture
def site(colonies_server: ColoniesServer, s3_server: S3Server, tmp_path: Path) -> Iterator[Site]:
    made = Site(colonies_server, s3_server, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=["v1.9.12", "v1.8.7"])
def any_site(request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path) -> Iterator[Site]:
    fixture = "colonies_server" if request.param == "v1.9.12" else "colonies_server_v187"
    made = Site(request.getfixturevalue(fixture), s3_server, tmp_path)
    yield made
    made.close()


def set_yaml(project: LocalProject, **values: object) -> None:
    """Set top-level keys (appended) and conditions keys (replaced) of the project.yaml that
    `pollinator new` wrote."""
    path = project.root / "project.yaml"
    text = path.read_text()
    for key, value in values.items():
        line = re.compile(rf"^  {key}: .*$", re.MULTILINE)
        if line.search(text):
            text = line.sub(f"  {key}: {value}", text, count=1)
        else:
            text += f"{key}: {value}\n"
    path.write_text(text)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first-level first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(interval)


def executor_warnings(daemon: Output) -> list[str]:
    return [line for line in daemon.err if "WARNING" in line or "ERROR" in line]


# --- the everyday flow ------------------------------------------------------------------------


def test_the_user_flow(any_site: Site) -> None:
    """run --follow, logs, logs -f, status, ps, executors, results, sync, cancel; on v1.8.7 as
    on v1.9.12, except that v1.8.x cannot cancel (it has no cancelprocessmsg) and says so."""
    site = any_site
    daemon = site.start_executor("site-a", "--location", "lab")
    project = site.project()
    done = project.cli("run", "--backend", "colonies", "--follow")
    assert done.returncode == 0, done.stderr
    pid = submitted_id(done.stderr)
    assert "data/hello.txt says: Hello world!" in done.stdout
    result = project.root / "cfs" / "result" / pid / "result.txt"
    assert result.read_text().startswith("Hello world!")

    # The server's own record and log, read with the user key.
    client = site.user_client()
    process = client.get_process(pid)
    assert (int(process.state), process.retries, process.errors) == (SUCCESS, 0, [])
    logged = "".join(entry.message for entry in client.get_logs(site.colony, pid, count=100))
    assert logged == done.stdout

    assert project.cli("logs", pid[:12]).stdout == done.stdout
    followed = project.cli("logs", "-f", pid[:12])
    assert (followed.returncode, followed.stdout) == (0, done.stdout), followed.stderr
    status = json.loads(project.cli("status", "--json").stdout)
    assert (status["id"], status["state"], status["backend"], status["executor"]) == (
        pid,
        "SUCCESS",
        "colonies",
        "site-a",
    )
    assert [row["id"] for row in json.loads(project.cli("ps", "--json").stdout)] == [pid]
    executors = json.loads(project.cli("executors", "--json").stdout)
    # v1.8.x keeps a location object of its own shape, which a record for every version omits.
    location = "" if site.server.version.startswith("v1.8.") else "lab"
    assert [(e["name"], e["state"], e["location"]) for e in executors] == [
        ("site-a", "APPROVED", location)
    ]

    # Results again into a clean directory, then a sync with nothing to do.
    result.unlink()
    fetched = project.cli("results", pid[:12])
    assert fetched.returncode == 0, fetched.stderr
    assert result.read_text().startswith("Hello world!")
    synced = project.cli("sync")
    assert synced.returncode == 0, synced.stderr
    assert "cfs/src: up to date" in synced.stderr

    # Cancel a run that is running.
    # Output all along, so that some of it races the cancel.
    project.write_main(
        "import time\nprint('started', flush=True)\n"
        "for i in range(120):\n    print(i, flush=True)\n    time.sleep(0.05)\n"
        "print('finished', flush=True)\n"
    )
    running = project.start("run", "--follow")
    running.wait_for("started")
    slow = submitted_id("".join(running.err))
    cancelled = project.cli("cancel", slow[:12])
    code, out, err = running.finish()
    if site.server.version.startswith("v1.8."):
        assert cancelled.returncode == 3
        assert "cannot cancel processes: cancelprocessmsg came with colonies v1.9" in (
            cancelled.stderr
        )
        assert "v1.8.7" in cancelled.stderr and "Traceback" not in cancelled.stderr
        assert code == 0, err
        assert out == "started\n" + "".join(f"{i}\n" for i in range(120)) + "finished\n"
    else:
        assert cancelled.returncode == 0, cancelled.stderr
        assert code == 1 and "CANCELLED" in err
        assert int(client.get_process(slow).state) == CANCELLED
    # Output racing the cancel is refused as the process's, never blamed on the key.
    assert not [line for line in daemon.err if "key in use" in line]
    # No run leaves its source snapshot behind, followed to its end, cancelled or not.
    wait_until(
        "the snapshots' removal",
        lambda: (
            not site.peer.call(
                site.peer.user_prvkey, "getsnapshotsmsg", colonyname=site.colony
            ).ok()
        ),
        timeout=15,
    )


# --- what the stale-executor window does to long jobs ------------------------------------------


TICKS = """\
import os, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["TICKS"])
print("start", flush=True)
for i in range(n):
    print("tick", i, flush=True)
    time.sleep(1)
out = os.path.join(os.environ["PROJECT_DIR"], "result", "done.txt")
open(out, "w").write(os.environ["PROJECT_DIR"] + "\\n")
print("end", flush=True)
"""


def ticks(n: int) -> str:
    return "start\n" + "".join(f"tick {i}\n" for i in range(n)) + "end\n"


def test_a_job_outlives_the_stale_executor_window(site: Site) -> None:
    """A 30 s job on a server that drops an executor silent for 10 s: the busy executor's
    heartbeats keep it registered, so every line, the result and the close get through."""
    window = site.server.stale_seconds
    assert window and window * 2 < 30
    daemon = site.start_executor("long")
    project = site.project()
    project.write_main(TICKS)
    set_yaml(project, env='{TICKS: "30"}')
    started = time.monotonic()
    done = project.cli("run", "--follow", timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started > 30
    assert done.stdout == ticks(30)
    pid = submitted_id(done.stderr)
    assert (project.root / "cfs" / "result" / pid / "done.txt").is_file()
    process = site.user_client().get_process(pid)
    assert (int(process.state), process.retries) == (SUCCESS, 0)
    assert site.peer.get_executor("long")["state"] == APPROVED
    assert executor_warnings(daemon) == []


def test_a_killed_executors_job_runs_in_full_on_another(site: Site) -> None:
    """SIGKILL an executor (and its job) mid-run: the server drops it after its stale window and
    requeues the process; a second executor takes it and runs it for its full time. The retry is
    not stopped by the first assignment's deadline, which passes while it runs."""
    first = site.start_executor("doomed")
    project = site.project()
    project.write_main(TICKS)
    # The server's deadline is walltime + maxqueuetime = 20 s from an assignment: the first
    # one's passes while the retry (12 s, starting some 12 s after the kill) still runs.
    set_yaml(project, walltime=15, maxqueuetime=5, env='{TICKS: "12"}')
    running = project.start("run", "--follow")
    running.wait_for("tick 2")
    pid = submitted_id("".join(running.err))
    doomed = [first.proc.pid, *descendants(first.proc.pid)]
    for each in doomed:  # the machine dies: the executor and its job
        os.kill(each, signal.SIGKILL)
    first.finish()
    second = site.start_executor("heir")
    code, out, err = running.finish(timeout=120)
    assert code == 0, err
    # The first attempt's lines, then the whole retry.
    assert out.startswith("start\ntick 0\ntick 1\ntick 2\n")
    assert out.endswith(ticks(12)), out
    process = site.user_client().get_process(pid)
    assert int(process.state) == SUCCESS
    assert process.assignedexecutorid == id_from_private_key(
        (site.tmp / "fs-heir" / ".executor-key").read_text().strip()
    )
    done = (project.root / "cfs" / "result" / pid / "done.txt").read_text()
    assert str(site.tmp / "fs-heir") in done
    assert executor_warnings(second) == []


def test_many_results_written_at_the_walltime(site: Site) -> None:
    """A job still writing result files when its walltime kills it: hundreds of them, each
    uploaded once (one record per file in the run's label, revisions included), the process
    closed FAILED once, by its executor, and not requeued."""
    daemon = site.start_executor("writer")
    project = site.project()
    project.write_main(
        "import os, time\n"
        "out = os.path.join(os.environ['PROJECT_DIR'], 'result')\n"
        "time.sleep(2)\n"
        "print('writing', flush=True)\n"
        "for i in range(100000):\n"
        "    open(os.path.join(out, f'r{i:05d}.txt'), 'w').write(f'result {i}\\n')\n"
        "    time.sleep(0.004)\n"
    )
    set_yaml(project, walltime=5, maxqueuetime=20)
    done = project.cli("run", "--follow", timeout=120)
    assert done.returncode == 1, done.stderr
    assert "walltime exceeded (5 s)" in done.stderr
    pid = submitted_id(done.stderr)
    local = sorted(p.name for p in (project.root / "cfs" / "result" / pid).iterdir())
    assert len(local) >= 100, len(local)  # hundreds, unless the machine is very slow
    client = site.user_client()
    label = f"/pollinator/{project_name(project)}/result/{pid}"
    assert sorted(f.name for f in client.get_files(site.colony, label)) == local
    labels = {lb.name: lb.files for lb in client.get_file_labels(site.colony, label, exact=True)}
    assert labels == {label: len(local)}
    process = client.get_process(pid)
    assert (int(process.state), process.retries) == (FAILED, 0)
    assert process.errors[0] == "walltime exceeded (5 s); exit code 143, killed by SIGTERM"
    assert executor_warnings(daemon) == []


def project_name(project: LocalProject) -> str:
    found = re.search(r"^projectname: (\S+)", (project.root / "project.yaml").read_text(), re.M)
    assert found
    return found.group(1)


# --- NUL bytes ----------------------------------------------------------------------------------


NUL_MAIN = """\
import os, sys
sys.stdout.write("plain 1\\nwith\\x00nul\\nplain 2\\n\\x00\\x00\\x00\\nend\\n")
sys.stdout.flush()
sys.exit(int(os.environ["EXIT"]))
"""


@pytest.mark.parametrize("exit_code", [0, 3])
def test_output_with_nul_bytes(site: Site, exit_code: int) -> None:
    """PostgreSQL refuses 0x00 in text, and with it a whole addlog: no line may be lost, and
    the exit status still tells how the job ended."""
    site.start_executor("nul")
    project = site.project()
    project.write_main(NUL_MAIN)
    set_yaml(project, env=f'{{EXIT: "{exit_code}"}}')
    done = project.cli("run", "--follow")
    assert done.returncode == (0 if exit_code == 0 else 1), done.stderr
    n = NUL_STAND_IN
    assert done.stdout == f"plain 1\nwith{n}nul\nplain 2\n{n * 3}\nend\n"


def test_the_servers_double_error_reply_decodes(site: Site) -> None:
    """The client reads the server's two error envelopes in one body (a NUL in addlogmsg) as
    the refusal they are, so the executor's line-by-line retry can run."""
    executor = site.peer.new_executor()
    pid = site.peer.submit(executor.type)["processid"]
    assert site.peer.assign(executor).ok()["processid"] == pid
    client = site.peer.client(executor.prvkey)
    with pytest.raises(BadRequest) as info:
        client.add_log(pid, "a\x00b\n")
    assert info.value.server_message == 'pq: invalid byte sequence for encoding "UTF8": 0x00'


# --- executors the server removed ---------------------------------------------------------------


def test_a_removed_executor_starts_again_under_a_new_name(site: Site) -> None:
    """The server keeps a removed executor's name and key for good (v1.9.x without
    re-registration). Started again under the same name, it says why it cannot; under a new
    name, with the same --fs-dir, it gets a new key and serves."""
    fs_dir = site.tmp / "fs-shared"
    daemon = site.start_executor("gone", fs_dir=fs_dir)
    old_key = (fs_dir / ".executor-key").read_text()
    site.peer.remove_executor("gone").ok()  # as the server does to a silent executor
    code, _, err = daemon.finish(timeout=60)
    assert code == 3
    # A daemon's log lines carry their time.
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.search(rf"^{when} ERROR pollinator.executor: the server no longer accepts", err, re.M)
    del site.daemons["gone"]

    again = subprocess.run(
        [POLLINATOR, "executor", "start", "--runtime", "process", "--name", "gone",
         "--fs-dir", str(fs_dir)],
        env=site.executor_env(), text=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 3
    assert "Executor 'gone' cannot register" in again.stderr
    assert "Start this executor with a new --name." in again.stderr
    assert "Traceback" not in again.stderr

    site.start_executor("back", fs_dir=fs_dir)
    assert (fs_dir / ".executor-key").read_text() != old_key
    project = site.project()
    done = project.cli("run", "--follow")
    assert done.returncode == 0, done.stderr
    assert json.loads(project.cli("status", "--json").stdout)["executor"] == "back"


# --- what project.yaml accepts is what the server takes -------------------------------------------


def test_the_largest_values_project_yaml_accepts_are_stored_as_sent(site: Site) -> None:
    """The loader's bounds are the server's: a spec with every value at its bound is stored
    unchanged, and one step beyond (which the loader refuses) the server refuses the value or,
    for memory, silently wraps it."""
    project = parse_project(
        "projectname: bounds\npriority: 50000\nmaxretries: 2147483647\n"
        "maxwaittime: 2147483647\nmaxqueuetime: 1\nconditions:\n  nodes: 127\n"
        "  processesPerNode: 127\n  cpu: 9223372036854775807m\n  mem: 8796093022207Mi\n"
        "  walltime: 2147483646\n",
        site.tmp / "project.yaml",
    )
    spec = build_function_spec(project, "snap", site.colony)
    client = site.user_client()
    stored = client.submit(spec).spec
    assert (stored.priority, stored.maxretries, stored.maxwaittime, stored.maxexectime) == (
        50000,
        2**31 - 1,
        2**31 - 1,
        2**31 - 1,
    )
    c = stored.conditions
    assert (c.nodes, c.processespernode, c.cpu, c.mem, c.walltime) == (
        127,
        127,
        f"{2**63 - 1}m",
        "8796093022207Mi",
        2**31 - 1,
    )
    for beyond in (
        {"maxretries": 2**31},
        {"maxwaittime": 2**31},
        {"maxexectime": 2**31},
        {"priority": 50001},
    ):
        with pytest.raises(BadRequest):
            client.submit(attrs.evolve(spec, **beyond))
    with pytest.raises(BadRequest):
        client.submit(attrs.evolve(spec, conditions=attrs.evolve(c, cpu=f"{2**63}m")))
    wrapped = client.submit(attrs.evolve(spec, conditions=attrs.evolve(c, mem="8796093022208Mi")))
    assert wrapped.spec.conditions.mem == "-8796093022208Mi"


def test_rebuild_image_warns_that_official_executors_mishandle_it(site: Site) -> None:
    project = site.project()
    project.edit_yaml("rebuildImage: false", "rebuildImage: true")
    done = project.cli("run")
    assert done.returncode == 0, done.stderr
    assert "warning: rebuildImage is true; the official Colonies HPC executor drops" in (
        done.stderr
    )
    project.edit_yaml("rebuildImage: true", "rebuildImage: false")
    assert "rebuildImage" not in project.cli("run").stderr


# --- the original Go Pollinator's specs ---------------------------------------------------------


ORIGINAL_MAIN = """\
import os
project = os.environ["PROJECT_DIR"]
print("hello:", open(os.path.join(project, "data", "hello.txt")).read().strip())
print("previous results:", sorted(os.listdir(os.path.join(project, "result"))))
pid = os.environ["COLONIES_PROCESS_ID"]
open(os.path.join(project, "result", "out-" + pid + ".txt"), "w").write("out\\n")
open(os.path.join(project, "data", "new-from-job.txt"), "w").write("new\\n")
"""


def go_upload(site: Site, label: str, name: str, content: bytes) -> None:
    """A file as the original's Go fs client leaves it: a random object key, no object for an
    empty file, the S3 server as host:port with port -1."""
    key = uuid.uuid4().hex
    if content:
        s3 = boto3.client(
            "s3",
            endpoint_url=site.s3.url,
            aws_access_key_id=site.s3.access_key,
            aws_secret_access_key=site.s3.secret_key,
            region_name=site.s3.region,
        )
        s3.put_object(Bucket=site.s3.bucket, Key=key, Body=content)
    record = {
        "colonyname": site.colony,
        "label": label,
        "name": name,
        "size": len(content),
        "checksum": hashlib.sha256(content).hexdigest(),
        "checksumalg": "SHA256",
        "ref": {
            "protocol": "s3",
            "s3object": {
                "server": site.s3.endpoint,
                "port": -1,
                "tls": False,
                "region": site.s3.region,
                "bucket": site.s3.bucket,
                "object": key,
            },
        },
    }
    site.peer.call(site.peer.user_prvkey, "addfilemsg", file=record).ok()


def original_spec(site: Site, funcname: str, project: str, snapshot_id: str) -> dict[str, Any]:
    """The function spec the original Go Pollinator submits (its CreateFuncSpec), verbatim but
    for the placeholders: the colony, the executor, the project and the snapshot."""
    prefix = f"/pollinator/{project}"
    return {
        "nodename": "",
        "funcname": funcname,
        "args": [],
        "kwargs": {
            "args": [f"/cfs{prefix}/{snapshot_id}/src/main.py"],
            "cmd": "python3",
            "docker-image": "python:3.12-rc-bookworm",
            "init-cmd": "pip3 install numpy",
            "rebuild-image": False,
        },
        "priority": 5,
        "maxwaittime": -1,
        "maxexectime": 599,
        "maxretries": 3,
        "conditions": {
            "colonyname": site.colony,
            "executornames": ["original"],
            "executortype": "container-executor",
            "dependencies": [],
            "nodes": 1,
            "cpu": "1000m",
            "processes": 0,
            "processespernode": 1,
            "mem": "1000Mi",
            "storage": "",
            "gpu": {"name": "", "mem": "", "count": 0, "nodecount": 0},
            "walltime": 600,
        },
        "label": "test_label",
        "fs": {
            "mount": "/cfs",
            "snapshots": [
                {
                    "snapshotid": snapshot_id,
                    "label": f"{prefix}/src",
                    "dir": f"{prefix}/{snapshot_id}/src",
                    "keepfiles": True,
                    "keepsnapshot": True,
                }
            ],
            "dirs": [
                {
                    "label": f"{prefix}/result",
                    "dir": f"{prefix}/result",
                    "keepfiles": False,
                    "onconflicts": {
                        "onstart": {"keeplocal": False},
                        "onclose": {"keeplocal": True},
                    },
                },
                {
                    "label": f"{prefix}/data",
                    "dir": f"{prefix}/data",
                    "keepfiles": True,
                    "onconflicts": {
                        "onstart": {"keeplocal": False},
                        "onclose": {"keeplocal": False},
                    },
                },
            ],
        },
        "env": {"PROJECT_DIR": f"/cfs{prefix}"},
    }


@pytest.mark.parametrize("funcname", ["execute", "sync"])
def test_the_original_go_pollinators_spec_runs_on_our_executor(site: Site, funcname: str) -> None:
    """What the original leaves on the server (files under /pollinator/<p>/src, data and an
    earlier result, a src snapshot) and the spec it submits: ``execute`` runs the job with every
    earlier result at hand and pushes the new ones; ``sync`` stages the files and closes."""
    site.start_executor("original")
    project = f"orig-{uuid.uuid4().hex[:8]}"
    prefix = f"/pollinator/{project}"
    go_upload(site, f"{prefix}/src", "main.py", ORIGINAL_MAIN.encode())
    go_upload(site, f"{prefix}/src", "__init__.py", b"")  # no S3 object, as Go leaves it
    go_upload(site, f"{prefix}/data", "hello.txt", b"Hello world!\n")
    go_upload(site, f"{prefix}/result", "old-run.txt", b"from an earlier run\n")
    snapshot = site.peer.call(
        site.peer.user_prvkey,
        "createsnapshotmsg",
        colonyname=site.colony,
        label=f"{prefix}/src",
        name=uuid.uuid4().hex,
    ).ok()
    spec = original_spec(site, funcname, project, snapshot["snapshotid"])
    pid = site.peer.call(site.peer.user_prvkey, "submitfuncspecmsg", spec=spec).ok()["processid"]
    client = site.user_client()
    process = wait_until(
        "the process to end",
        lambda: (p := client.get_process(pid)).state.finished and p,
        timeout=60,
    )
    assert (int(process.state), process.errors) == (SUCCESS, [])
    logged = "".join(e.message for e in client.get_logs(site.colony, pid, count=100))
    results = {f.name for f in client.get_files(site.colony, f"{prefix}/result")}
    data = {f.name for f in client.get_files(site.colony, f"{prefix}/data")}
    if funcname == "execute":
        assert "hello: Hello world!\n" in logged
        assert "previous results: ['old-run.txt']\n" in logged
        assert results == {"old-run.txt", f"out-{pid}.txt"}
        assert data == {"hello.txt", "new-from-job.txt"}
    else:
        assert "hello:" not in logged  # nothing ran
        assert (results, data) == ({"old-run.txt"}, {"hello.txt"})
    # keepsnapshot true: the original's snapshot stays for its next run.
    snapshots = site.peer.call(site.peer.user_prvkey, "getsnapshotsmsg", colonyname=site.colony)
    assert [s["snapshotid"] for s in snapshots.ok()] == [snapshot["snapshotid"]]


def test_clients_of_other_keys_never_see_the_colony(site: Site) -> None:
    """The submitter needs a user of the colony: any other key is refused (403), which
    `pollinator run` reports as a misconfigured key (exit 3) before it uploads anything."""
    project = site.project()
    stranger = generate_private_key()
    project.env["COLONIES_PRVKEY"] = stranger
    done = project.cli("run")
    assert done.returncode == 3
    assert id_from_private_key(stranger) in done.stderr and stranger not in done.stderr
