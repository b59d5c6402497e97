"""The local agent behind ``--backend local``: the simulator plus an executor, in one background
process per project, with all state in ``.pollinator/<backend>/``.

Why a background process and not threads inside ``pollinator run``: a run must outlive the
command that started it (Ctrl-C detaches, ``run`` without ``--follow`` returns at once), several
runs of one project may go at once from several shells, and ``logs``/``cancel`` from a second
shell must reach the same server. So the first command that needs it starts the agent
(detached, its log in ``agent.log``); later commands find it through ``agent.json`` and talk to
it over loopback HTTP, exactly as to a real Colonies server.

Nothing is left RUNNING forever: the agent exits only when idle (no waiting or running process
for ``POLLINATOR_LOCAL_IDLE`` seconds, default 600) or when stopped (SIGTERM: running jobs get
a grace period, then are stopped and closed FAILED). If it dies anyway (SIGKILL, a crash, a
reboot), the next agent closes the processes the old one had been running as FAILED ("the
executor running this process stopped while it ran") before it takes new work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pollinator_core.colonies import crypto
from pollinator_core.errors import InfraError, PollinatorError, UsageError
from pollinator_core.plugins.backend import Connection
from pollinator_core.project.loader import Project

if TYPE_CHECKING:
    from pollinator_simulator.embedded import EmbeddedSimulator

    from pollinator_core.colonies.client import ColoniesClient

log = logging.getLogger("pollinator.local")

COLONY = "local"
IDLE_ENV = "POLLINATOR_LOCAL_IDLE"
DEFAULT_IDLE = 600.0
START_TIMEOUT = 30.0
#: seconds running jobs get to finish when the agent is told to stop
STOP_GRACE = 10.0
#: how the agent reports a startup error in its log, for the command that started it
ERROR_PREFIX = "agent error: "


@attrs.frozen
class Keys:
    """The local colony's keys: generated once per project, kept in keys.json (mode 0600)."""

    server: str = attrs.field(repr=False)
    colony: str = attrs.field(repr=False)
    user: str = attrs.field(repr=False)
    executor: str = attrs.field(repr=False)


@attrs.frozen
class AgentInfo:
    """What a running agent publishes in agent.json."""

    pid: int
    port: int
    executor_type: str
    runtime: str  # what was asked: auto, docker, process
    runtime_used: str  # what runs the jobs: docker or process


class AgentDir:
    """The files of one local backend in a project's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "colonies.db"
        self.storage = path / "storage"
        self.fs_dir = path / "executor"
        self.info_file = path / "agent.json"
        self.log_file = path / "agent.log"
        self._keys_file = path / "keys.json"
        self._alive_lock = path / "agent.lock"
        self._start_lock = path / "start.lock"
        self._keys_lock = path / "keys.lock"

    def keys(self) -> Keys:
        """The keys, created on first use."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked(self._keys_lock, blocking=True):
            if not self._keys_file.exists():
                fresh = {k: crypto.generate_private_key() for k in attrs.fields_dict(Keys)}
                fd = os.open(self._keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump(fresh, f)
            return Keys(**json.loads(self._keys_file.read_text()))

    def info(self) -> AgentInfo | None:
        try:
            return AgentInfo(**json.loads(self.info_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def alive(self) -> bool:
        """True while an agent holds agent.lock (the kernel drops the lock when it dies)."""
        if not self._alive_lock.exists():
            return False
        with open(self._alive_lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    @contextlib.contextmanager
    def _locked(self, path: Path, *, blocking: bool) -> Iterator[bool]:
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def starting(self) -> contextlib.AbstractContextManager[bool]:
        """Held while a command checks for, and maybe starts, the agent."""
        return self._locked(self._start_lock, blocking=True)

    def alive_lock(self) -> contextlib.AbstractContextManager[bool]:
        """Held by the agent for its whole life; False when another agent holds it."""
        return self._locked(self._alive_lock, blocking=False)


# --- the command side ------------------------------------------------------------------------


def agent_dir(project: Project, backend: str) -> AgentDir:
    return AgentDir(project.state_dir / backend)


def connect_agent(
    project: Project, backend: str, executor_type: str, runtime: str | None
) -> Connection:
    """Connect to the project's agent for ``backend``, starting it when it is not running.

    ``runtime`` None means "any" (lifecycle commands); a run passes its choice, and an idle
    agent running another choice is restarted with it.
    """
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.plugins.manager import open_storage

    where = agent_dir(project, backend)
    keys = where.keys()
    info = ensure_agent(where, executor_type, runtime, project.local.runtime)
    config = ClientConfig(
        host="127.0.0.1", port=info.port, colony_name=COLONY, prvkey=keys.user, retries=1
    )
    notice = f"jobs run on {info.runtime_used}"
    if info.runtime_used == "process":
        why = "no Docker engine reachable" if info.runtime == "auto" else "--runtime process"
        notice = f"jobs run as host processes ({why})"
    elif info.runtime_used == "docker":
        notice = "jobs run in Docker containers"
        if info.runtime == "auto":
            notice += " (as host processes when the engine cannot have a job's image)"
    where.storage.mkdir(parents=True, exist_ok=True)
    return Connection(
        backend, ColoniesClient(config), COLONY, open_storage(str(where.storage)), notice
    )


def ensure_agent(
    where: AgentDir, executor_type: str, runtime: str | None, default_runtime: str = "auto"
) -> AgentInfo:
    """The running agent, started (with ``runtime``, else ``default_runtime``) if need be."""
    with where.starting():
        info = where.info()
        if info is not None and where.alive():
            if runtime is None or runtime == info.runtime:
                return info
            _restart_idle_agent(where, info, runtime)
        return _spawn(where, executor_type, runtime or default_runtime)


def _restart_idle_agent(where: AgentDir, info: AgentInfo, runtime: str) -> None:
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.colonies.models import ProcessState

    config = ClientConfig(host="127.0.0.1", port=info.port, prvkey=where.keys().user)
    client = ColoniesClient(config)
    try:
        busy = any(
            client.get_processes(COLONY, state, count=1)
            for state in (ProcessState.WAITING, ProcessState.RUNNING)
        )
    finally:
        client.close()
    if busy:
        raise UsageError(
            f"The local agent runs jobs with runtime {info.runtime_used!r} and has work in "
            f"progress; wait for it (pollinator ps) or run with --runtime {info.runtime}."
        )
    stop_agent(where)


def _spawn(where: AgentDir, executor_type: str, runtime: str) -> AgentInfo:
    where.path.mkdir(parents=True, exist_ok=True)
    with open(where.log_file, "ab") as log_out:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(where.path), executor_type, runtime],
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C spares it
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = where.info()
        if info is not None and info.pid == child.pid:
            return info
        if child.poll() is not None:
            break
        time.sleep(0.02)
    else:
        child.kill()
    tail = _tail(where.log_file)
    if ERROR_PREFIX in tail:  # the agent said why: pass it on as it is
        message = tail[tail.rindex(ERROR_PREFIX) + len(ERROR_PREFIX) :]
        raise (UsageError if child.poll() == UsageError.exit_code else InfraError)(message)
    raise InfraError(
        f"The local agent did not start (exit {child.poll()}). Its log, {where.log_file}, "
        f"ends with:\n{tail}"
    )


def stop_agent(where: AgentDir, timeout: float = STOP_GRACE + 20) -> bool:
    """Stop the agent (SIGTERM; it closes what it runs); False if none was running."""
    info = where.info()
    if info is None or not where.alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while where.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:]).rstrip()
    except OSError:
        return "(no log)"


# --- the agent side --------------------------------------------------------------------------


def _bootstrap(sim: EmbeddedSimulator, base: ColoniesClient, keys: Keys, executor_type: str) -> str:
    """Create the colony, its user and this agent's executor (idempotent); the executor name."""
    from pollinator_simulator.bootstrap import DevKeys

    from pollinator_core.executor.setup import register_executor

    sim.bootstrap(COLONY, DevKeys(keys.server, COLONY, keys.colony, keys.user))
    name = f"local-{executor_type}"
    register_executor(base.with_key(keys.colony), base.with_key(keys.executor), COLONY, name)
    return name


def _retire(where: AgentDir, user: ColoniesClient) -> bool:
    """Unpublish the agent if it is still idle, with the start lock held so that no command
    connects in between; False when work arrived meanwhile."""
    from pollinator_core.colonies.models import ProcessState

    with where.starting():
        if any(
            user.get_processes(COLONY, s, count=1)
            for s in (ProcessState.WAITING, ProcessState.RUNNING)
        ):
            return False
        where.info_file.unlink(missing_ok=True)
        return True


def _idle_seconds() -> float:
    try:
        return float(os.environ.get(IDLE_ENV, DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


def run_agent(path: Path, executor_type: str, runtime: str) -> int:
    """The agent process: serve until told to stop or idle for too long."""
    from pollinator_simulator.embedded import EmbeddedSimulator

    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.colonies.models import ProcessState
    from pollinator_core.executor.loop import RUNTIME_ENV, Executor, ExecutorSettings
    from pollinator_core.executor.staging import CfsStager
    from pollinator_core.plugins.manager import hooks, open_storage

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level="INFO")
    where = AgentDir(path)
    with where.alive_lock() as mine:
        if not mine:
            log.info("another agent is already running here")
            return 0
        keys = where.keys()
        server = EmbeddedSimulator(keys.server, db_path=where.db).start()
        base = ColoniesClient(ClientConfig(host="127.0.0.1", port=server.port, colony_name=COLONY))
        executor_client = base.with_key(keys.executor)
        name = _bootstrap(server, base, keys, executor_type)
        os.environ[RUNTIME_ENV] = runtime  # read by the docker executor's factory
        backend = hooks().executor_factories()[executor_type]()
        where.storage.mkdir(parents=True, exist_ok=True)
        stager = CfsStager(executor_client, COLONY, open_storage(str(where.storage)))
        # Short long-polls: the agent stops within a second when asked.
        settings = ExecutorSettings(
            name=name, colony=COLONY, fs_dir=where.fs_dir, max_jobs=4, poll=1.0
        )
        executor = Executor(executor_client, backend, stager, settings)
        executor.close_orphans()
        serving = threading.Thread(target=executor.serve, name="executor", daemon=True)
        serving.start()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        used = str(getattr(backend, "runtime", executor_type))
        info = AgentInfo(os.getpid(), server.port, executor_type, runtime, used)
        where.info_file.write_text(json.dumps(attrs.asdict(info)))
        log.info("agent ready on port %d (%s runtime)", server.port, used)
        idle_limit, idle_since = _idle_seconds(), time.monotonic()
        user = base.with_key(keys.user)
        while not stop.wait(1.0):
            busy = executor.running or any(
                user.get_processes(COLONY, s, count=1)
                for s in (ProcessState.WAITING, ProcessState.RUNNING)
            )
            if busy:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > idle_limit and _retire(where, user):
                log.info("idle for %.0f s: stopping", idle_limit)
                break
        with contextlib.suppress(FileNotFoundError):
            where.info_file.unlink()  # new commands start a new agent from here on
        executor.shutdown(STOP_GRACE)
        serving.join(10)
        backend.close()
        base.close()
        server.stop()
        log.info("agent stopped")
    return 0


def main(argv: list[str]) -> int:
    try:
        return run_agent(Path(argv[0]), argv[1], argv[2])
    except PollinatorError as exc:  # one line the starting command shows to the user
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
