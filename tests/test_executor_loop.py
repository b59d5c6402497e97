"""The generic executor loop against the simulator over real HTTP, jobs as host processes."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pollinator_local_docker.process_runtime import ProcessRuntime
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import (
    Conditions,
    ConflictPolicy,
    Fs,
    FunctionSpec,
    OnConflicts,
    Process,
    ProcessState,
    SnapshotMount,
    SyncDir,
)
from pollinator_core.execution.termination import Reason, from_errors
from pollinator_core.executor.journal import Entry, Journal
from pollinator_core.executor.loop import Executor, ExecutorSettings, Stager
from pollinator_core.executor.staging import CfsStager
from pollinator_core.plugins.manager import open_storage
from pollinator_core.sync import Mode, sync_tree
from pollinator_core.testing import NoFiles


def spec(cmd: str, *args: Any, **fields: Any) -> FunctionSpec:
    conditions = fields.pop("conditions", {})
    return FunctionSpec(
        funcname=fields.pop("funcname", "execute"),
        kwargs={"cmd": cmd, "args": list(args), "docker-image": "unused", **fields.pop("kw", {})},
        maxexectime=fields.pop("maxexectime", 60),
        maxretries=0,
        conditions=Conditions(colonyname="test", executortype="container-executor", **conditions),
        **fields,
    )


def py(code: str) -> str:
    return f"python3 -c {shlex.quote(code)}"


@pytest.fixture
def user(sim_colony: SimColony) -> Iterator[ColoniesClient]:  # noqa: F811
    config = ClientConfig(
        host=sim_colony.host,
        port=sim_colony.port,
        colony_name="test",
        prvkey=sim_colony.keys.prvkey,
    )
    client = ColoniesClient(config)
    yield client
    client.close()


StartExecutor = Callable[..., Executor]


@pytest.fixture
def start_executor(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
) -> Iterator[StartExecutor]:
    started: list[tuple[Executor, threading.Thread, ColoniesClient]] = []

    def start(max_jobs: int = 1, stager: Stager | None = None) -> Executor:
        config = ClientConfig(
            host=sim_colony.host,
            port=sim_colony.port,
            colony_name="test",
            prvkey=sim_colony.executor_prvkey,
        )
        client = ColoniesClient(config)
        settings = ExecutorSettings(
            name=sim_colony.executor_name,
            colony="test",
            fs_dir=tmp_path / "fs",
            max_jobs=max_jobs,
            poll=1,
            monitor_interval=0.2,
        )
        backend = ProcessRuntime(kill_grace=0.5)
        executor = Executor(client, backend, stager or NoFiles(), settings)
        thread = threading.Thread(target=executor.serve, daemon=True)
        thread.start()
        started.append((executor, thread, client))
        return executor

    yield start
    for executor, thread, client in started:
        executor.shutdown(0)
        thread.join(5)
        client.close()


def wait_done(user: ColoniesClient, pid: str, timeout: float = 20) -> Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process = user.get_process(pid)
        if process.state.finished:
            return process
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still {user.get_process(pid).state.name}")


def log_messages(user: ColoniesClient, pid: str) -> list[str]:
    return [entry.message for entry in user.get_logs("test", pid, count=500)]


def submit_running(user: ColoniesClient, timeout: float = 20) -> str:
    """Submit a long job and return its id once its first line is in the log."""
    pid = user.submit(spec("echo started; sleep 60")).processid
    deadline = time.monotonic() + timeout
    while log_messages(user, pid) != ["started\n"]:
        assert time.monotonic() < deadline, f"process {pid} printed nothing in {timeout} s"
        time.sleep(0.05)
    return pid


def test_output_is_logged_in_whole_lines_and_success_closes(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor()
    code = (
        "import sys, time\n"
        "sys.stdout.write('grü'); sys.stdout.flush(); time.sleep(0.2)\n"
        "print('ße 🐝'); print('to stderr', file=sys.stderr); time.sleep(0.2); print('end')"
    )
    pid = user.submit(spec(py(code))).processid
    process = wait_done(user, pid)
    assert process.state is ProcessState.SUCCESS, process.errors
    messages = log_messages(user, pid)
    assert "".join(messages) == "grüße 🐝\nto stderr\nend\n"
    assert all(m.endswith("\n") for m in messages)  # never a line split across entries


def test_failure_closes_with_exit_code_and_log_tail(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor()
    code = "print('working'); raise SystemExit('it broke')"
    process = wait_done(user, user.submit(spec(py(code))).processid)
    assert process.state is ProcessState.FAILED
    assert process.errors[0] == "exit code 1"
    termination = from_errors(process.errors)
    assert termination is not None
    assert (termination.reason, termination.exit_code) == (Reason.EXIT, 1)
    assert process.errors[2] == "last 2 lines of output:\nworking\nit broke"


def test_non_string_args_become_json_text_and_stay_one_argument(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor()
    job = spec(py("import sys; print(sys.argv[1:])"), 3, True, {"a": 1}, "x y; echo injected")
    process = wait_done(user, user.submit(job).processid)
    assert process.state is ProcessState.SUCCESS, process.errors
    args = ["3", "true", '{"a": 1}', "x y; echo injected"]
    assert log_messages(user, process.processid) == [f"{args}\n"]


def test_a_spec_it_cannot_run_fails_cleanly_and_the_executor_goes_on(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor()
    bad = wait_done(user, user.submit(spec("echo", funcname="train")).processid)
    assert bad.state is ProcessState.FAILED
    assert bad.errors[0] == (
        "infrastructure failure (unsupported funcname 'train': this executor runs 'execute' "
        "and stages data for 'sync')"
    )
    no_cmd = wait_done(user, user.submit(spec("", kw={"cmd": ["not", "text"]})).processid)
    assert 'kwargs \'cmd\' must be a string, not ["not", "text"]' in no_cmd.errors[0]
    good = wait_done(user, user.submit(spec("echo fine")).processid)
    assert good.state is ProcessState.SUCCESS


def test_processid_in_args_is_substituted(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor()
    process = wait_done(user, user.submit(spec("echo", "id={processid}")).processid)
    assert log_messages(user, process.processid) == [f"id={process.processid}\n"]


def test_cancel_on_the_server_stops_the_job(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    executor = start_executor()
    pid = submit_running(user)
    user.cancel_process(pid)
    deadline = time.monotonic() + 5
    while executor.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executor.running == 0
    assert user.get_process(pid).state is ProcessState.CANCELLED


def test_walltime_and_maxexectime_stop_the_job(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    start_executor(max_jobs=3)
    by_walltime = user.submit(spec("sleep 60", conditions={"walltime": 1})).processid
    by_deadline = user.submit(spec("sleep 60", maxexectime=3)).processid
    # Pollinator's own specs: maxexectime == walltime, stopped by the deadline check first.
    as_pollinator = user.submit(spec("sleep 60", maxexectime=3, conditions={"walltime": 3}))
    walled = wait_done(user, by_walltime)
    assert walled.state is ProcessState.FAILED
    assert walled.errors[0] == "walltime exceeded (1 s); exit code 143, killed by SIGTERM"
    expired = wait_done(user, by_deadline)
    assert expired.state is ProcessState.FAILED
    # Closed by the executor just before the server's deadline, not requeued by the server.
    assert expired.errors[0].startswith(
        "walltime exceeded (maxexectime 3 s, the server's limit, runs out)"
    )
    assert expired.retries == 0
    ours = wait_done(user, as_pollinator.processid)
    assert ours.state is ProcessState.FAILED and ours.errors[0].startswith("walltime exceeded")
    assert ours.retries == 0


def test_jobs_run_concurrently_up_to_the_limit(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    executor = start_executor(max_jobs=2)
    pids = [user.submit(spec("sleep 1")).processid for _ in range(4)]
    peak = 0
    while not all(user.get_process(p).state.finished for p in pids):
        peak = max(peak, executor.running)
        time.sleep(0.02)
    assert peak == 2
    assert all(user.get_process(p).state is ProcessState.SUCCESS for p in pids)


def test_shutdown_fails_what_outlives_the_grace(
    user: ColoniesClient, start_executor: StartExecutor
) -> None:
    executor = start_executor()
    pid = submit_running(user)
    started = time.monotonic()
    executor.shutdown(0.5)
    assert time.monotonic() - started < 5
    process = user.get_process(pid)
    assert process.state is ProcessState.FAILED
    assert process.errors[0].startswith("infrastructure failure (the executor was shut down)")


def test_a_restarted_executor_takes_back_what_its_predecessor_left(
    sim_colony: SimColony,  # noqa: F811
    user: ColoniesClient,
    tmp_path: Path,
) -> None:
    """A process still RUNNING for this executor: one whose job was started (the journal says
    so) but cannot be found again is closed as lost; one never started is run now."""
    started = user.submit(spec("sleep 60")).processid
    never_started = user.submit(spec("echo ran after all")).processid
    config = ClientConfig(
        host=sim_colony.host, port=sim_colony.port, colony_name="test",
        prvkey=sim_colony.executor_prvkey,
    )  # fmt: skip
    dead = ColoniesClient(config)
    assert dead.assign("test", 1) is not None  # assigned, then "the executor died"
    assert dead.assign("test", 1) is not None
    fs_dir = tmp_path / "fs"
    Journal(fs_dir).put(Entry(started, str(fs_dir / started / "x"), submitted=True))
    settings = ExecutorSettings(name=sim_colony.executor_name, colony="test", fs_dir=fs_dir)
    executor = Executor(dead, ProcessRuntime(), NoFiles(), settings)
    assert executor.adopt() == 2
    lost = wait_done(user, started)
    termination = from_errors(lost.errors)
    assert lost.state is ProcessState.FAILED and termination is not None
    assert termination.reason is Reason.LOST
    ran = wait_done(user, never_started)
    assert ran.state is ProcessState.SUCCESS
    assert log_messages(user, never_started) == ["ran after all\n"]
    executor.shutdown(0)
    dead.close()


def test_errors_are_json_friendly(user: ColoniesClient, start_executor: StartExecutor) -> None:
    start_executor()
    process = wait_done(user, user.submit(spec("printf 'no newline'; exit 4")).processid)
    errors = json.loads(json.dumps(process.errors))
    assert errors[0] == "exit code 4" and errors[-1] == "last 1 lines of output:\nno newline"
    assert errors[1].startswith("termination {")


def test_a_job_sees_only_its_snapshots_label_and_its_results_go_up_after_failure(
    sim_colony: SimColony,  # noqa: F811
    user: ColoniesClient,
    start_executor: StartExecutor,
    tmp_path: Path,
) -> None:
    storage = open_storage(str(tmp_path / "store"))
    src = "/pollinator/p_1/src"
    trees = {
        src: {"main.py": "", "pkg/mod.py": ""},
        "/pollinator/p_1/src2": {"sibling.txt": ""},  # a sibling sharing src's prefix
        "/pollinator/pX1/src": {"lib/cousin.py": ""},  # matches src's LIKE pattern ('_')
    }
    for label, files in trees.items():
        tree = tmp_path / "up" / label.strip("/")
        for rel, text in files.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_text(text)
        sync_tree(user, "test", tree, label, storage, Mode.MIRROR)
    snapshot = user.create_snapshot("test", src, "run")
    # Label matching is the server's: the official one selects a snapshot's sub-labels with SQL
    # LIKE, where '_' matches any character; others may match a bare prefix. The simulator is
    # exact, so its snapshot is given the foreign records such a server would add.
    foreign = [
        fid
        for label in trees
        if label != src
        for fid in user.create_snapshot("test", label, label).fileids
    ]
    sim_colony.sim.call(
        lambda sim: sim.state.snapshots[snapshot.snapshotid]["fileids"].extend(foreign)
    )
    start_executor(stager=CfsStager(user, "test", storage))
    keeplocal = OnConflicts(onclose=ConflictPolicy(keeplocal=True))
    fs = Fs(
        mount="/cfs",
        snapshots=[SnapshotMount(snapshotid=snapshot.snapshotid, label=src, dir=src)],
        dirs=[
            SyncDir(
                label="/pollinator/p_1/result/{processid}",
                dir="/pollinator/p_1/result",
                onconflicts=keeplocal,
            )
        ],
    )
    code = (
        "import os, pathlib\n"
        "print(sorted(p.as_posix() for p in pathlib.Path().rglob('*') if p.is_file()))\n"
        "result = pathlib.Path(os.environ['PROJECT_DIR'], 'result')\n"
        "(result / 'out.txt').write_text('partial')\n"
        "(result / 'back\\\\slash.txt').write_text('a name no label can carry')\n"
        "raise SystemExit(3)"
    )
    job = spec(py(code), fs=fs, env={"PROJECT_DIR": "/cfs/pollinator/p_1"})
    process = wait_done(user, user.submit(job).processid)
    assert (process.state, process.errors[0]) == (ProcessState.FAILED, "exit code 3")
    listing, skipped = log_messages(user, process.processid)
    assert listing == "['main.py', 'pkg/mod.py']\n"
    # A result the CFS cannot carry is named in the log, not dropped without a word.
    assert skipped.startswith("pollinator: not uploaded: result/back\\slash.txt (")
    result = f"/pollinator/p_1/result/{process.processid}"
    assert [f.name for f in user.get_files("test", result)] == ["out.txt"]
