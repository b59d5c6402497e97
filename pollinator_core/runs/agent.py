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
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pollinator_core.colonies import crypto
from pollinator_core.errors import InfraError, PollinatorError, UsageError
from pollinator_core.plugins.backend import Connection
from pollinator_core.project.loader import Project
from pollinator_core.runs.hostenv import hand_over, take_over

if TYPE_CHECKING:
    from pollinator_simulator.embedded import EmbeddedSimulator

    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.execution.runtime import Runtime

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
    #: the executor type's settings it runs with (JSON values)
    settings: dict[str, Any]
    #: what runs the jobs, in words (the runtime's describe())
    runs_on: str


class AgentDir:
    """The files of one local backend in a project's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "colonies.db"
        self.storage = path / "storage"
        self.fs_dir = path / "executor"
        self.info_file = path / "agent.json"
        self.settings_file = path / "settings.json"
        self.log_file = path / "agent.log"
        #: environments handed over by submitting commands (see runs.hostenv)
        self.env_dir = path / "submit-env"
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
    project: Project,
    backend: str,
    executor_type: str,
    options: Mapping[str, Mapping[str, str]] | None,
) -> Connection:
    """Connect to the project's agent for ``backend``, starting it when it is not running.

    The agent runs ``executor_type`` with the settings from project.yaml, the environment and
    ``options``. ``options`` None means "any agent will do" (lifecycle commands); a run passes
    its options, and an idle agent running other settings is restarted with them.
    """
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.plugins.manager import open_storage

    where = agent_dir(project, backend)
    keys = where.keys()
    settings = resolve_settings(project, executor_type, options or {})
    info = ensure_agent(where, executor_type, settings, strict=options is not None)
    config = ClientConfig(
        host="127.0.0.1", port=info.port, colony_name=COLONY, prvkey=keys.user, retries=1
    )
    where.storage.mkdir(parents=True, exist_ok=True)
    return Connection(
        backend,
        ColoniesClient(config),
        COLONY,
        open_storage(str(where.storage)),
        f"jobs run as {info.runs_on}",
        prepare_spec=lambda spec: hand_over(where.env_dir, spec, os.environ),
    )


def resolve_settings(
    project: Project, executor_type: str, options: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """The settings ``executor_type`` gets (as JSON values): defaults, project.yaml, the
    environment, then ``options``."""
    import cattrs

    from pollinator_core.plugins.manager import hooks

    kind = hooks().executor_types()[executor_type]
    if not kind.settings:
        return {}
    section = hooks().settings()[kind.settings]
    loaded = section.load(project.sections.get(section.name), options.get(section.name))
    values: dict[str, Any] = cattrs.unstructure(loaded)
    return values


def ensure_agent(
    where: AgentDir, executor_type: str, settings: dict[str, Any], *, strict: bool = True
) -> AgentInfo:
    """The running agent, started with ``settings`` if need be; with ``strict``, one running
    other settings is restarted when idle."""
    with where.starting():
        info = where.info()
        if info is not None and where.alive():
            if not strict or info.settings == settings:
                return info
            _restart_idle_agent(where, info, settings)
        return _spawn(where, executor_type, settings)


def _restart_idle_agent(where: AgentDir, info: AgentInfo, settings: dict[str, Any]) -> None:
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
        differ = ", ".join(
            f"{k}={info.settings.get(k)!r}"
            for k in sorted(settings)
            if info.settings.get(k) != settings[k]
        )
        raise UsageError(
            f"The local agent runs jobs as {info.runs_on} with other settings ({differ}) and "
            "has work in progress; wait for it (pollinator ps) or run with the same settings."
        )
    stop_agent(where)


def _spawn(where: AgentDir, executor_type: str, settings: dict[str, Any]) -> AgentInfo:
    where.path.mkdir(parents=True, exist_ok=True)
    where.settings_file.write_text(json.dumps(settings))
    with open(where.log_file, "ab") as log_out:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(where.path), executor_type],
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


def run_agent(path: Path, executor_type: str) -> int:
    """The agent process: serve until told to stop or idle for too long."""
    from pollinator_simulator.embedded import EmbeddedSimulator

    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.colonies.models import ProcessState
    from pollinator_core.executor.loop import Executor, ExecutorSettings
    from pollinator_core.executor.staging import CfsStager
    from pollinator_core.plugins.manager import open_storage
    from pollinator_core.sync.objects import OBJECTS, ObjectCache

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
        settings = json.loads(where.settings_file.read_text())
        runtime = _make_runtime(executor_type, settings)
        where.storage.mkdir(parents=True, exist_ok=True)
        cache = ObjectCache(where.fs_dir / OBJECTS)
        stager = CfsStager(executor_client, COLONY, open_storage(str(where.storage)), cache)
        # Short long-polls: the agent stops within a second when asked.
        executor_settings = ExecutorSettings(
            name=name,
            colony=COLONY,
            fs_dir=where.fs_dir,
            max_jobs=4,
            poll=1.0,
            prepare=functools.partial(take_over, where.env_dir),
        )
        executor = Executor(executor_client, runtime, stager, executor_settings)
        executor.adopt()
        serving = threading.Thread(target=executor.serve, name="executor", daemon=True)
        serving.start()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        info = AgentInfo(os.getpid(), server.port, executor_type, settings, runtime.describe())
        where.info_file.write_text(json.dumps(attrs.asdict(info)))
        log.info("agent ready on port %d (jobs run as %s)", server.port, info.runs_on)
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
        runtime.close()
        base.close()
        server.stop()
        log.info("agent stopped")
    return 0


def _make_runtime(executor_type: str, values: dict[str, Any]) -> Runtime:
    import cattrs

    from pollinator_core.plugins.manager import hooks

    kind = hooks().executor_types()[executor_type]
    if not kind.settings:
        return kind.factory(None)
    section = hooks().settings()[kind.settings]
    return kind.factory(cattrs.structure(values, section.schema))


def main(argv: list[str]) -> int:
    try:
        return run_agent(Path(argv[0]), argv[1])
    except PollinatorError as exc:  # one line the starting command shows to the user
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
