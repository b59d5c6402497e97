"""``pollinator executor``: run an executor as a daemon, or stop a project's local agent."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pollinator_core.colonies.client import ColoniesClient


@click.group()
def executor() -> None:
    """Run Colonies executors (the machines' side of a run)."""


@executor.command()
@click.option(
    "--type",
    "executor_type",
    default="docker",
    show_default=True,
    help="The execution plugin: docker, slurm, k8s ...",
)
@click.option(
    "--name",
    envvar="COLONIES_EXECUTOR_NAME",
    help="The executor's name in the colony. Default: $COLONIES_EXECUTOR_NAME, else <host>-<type>.",
)
@click.option(
    "--max-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many processes may run at once.",
)
@click.option(
    "--fs-dir",
    envvar="EXECUTOR_FS_DIR",
    type=click.Path(path_type=Path),
    help="Where processes' files go (one subdirectory each). Default: "
    "$EXECUTOR_FS_DIR, else ~/.cache/pollinator/executor/<name>.",
)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "docker", "process"]),
    help="--type docker: short for -s runtime=...: containers, or host processes (auto: "
    "Docker when it answers).",
)
@click.option(
    "-s",
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A setting of the type's plugin (-s partition=debug); also from "
    "POLLINATOR_<SECTION>_<KEY>. `pollinator plugins` lists them. Repeatable.",
)
@click.option(
    "--storage",
    "storage_url",
    metavar="URL",
    help="Where CFS file bytes live (s3://bucket, file:///dir). Default: "
    "$POLLINATOR_STORAGE, else s3://$AWS_S3_BUCKET.",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, how long running jobs may go on before they are stopped and "
    "closed as failed.",
)
@click.option("--location", default="", help="Where this executor is, for `pollinator executors`.")
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=1.0),
    metavar="SECONDS",
    help="How often a busy executor tells the server it is alive; the server removes an "
    "executor it has not heard from for COLONIES_STALE_EXECUTOR_DURATION seconds. Default: a "
    "quarter of $COLONIES_STALE_EXECUTOR_DURATION when set, else 60 (the server's default "
    "window is 600).",
)
def start(
    executor_type: str,
    name: str | None,
    max_jobs: int,
    fs_dir: Path | None,
    runtime: str | None,
    settings: tuple[str, ...],
    storage_url: str | None,
    grace: float,
    location: str,
    heartbeat: float | None,
) -> None:
    """Serve a colony until SIGTERM, SIGHUP or Ctrl-C, from the COLONIES_* variables.

    \b
    With COLONIES_COLONY_PRVKEY the executor registers and approves itself under a key kept in
    its --fs-dir (the same identity after a restart, so it adopts its running jobs) and
    removes itself when it stops with nothing left running; otherwise COLONIES_PRVKEY must be
    the key of an executor the colony owner registered. On SIGTERM it takes no new work. Jobs
    of a scheduler (Slurm, Kubernetes) are left running for the next start to adopt; other jobs
    may finish for --grace seconds, then are stopped, their results uploaded, and closed as
    failed.
    """
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig, ConfigError
    from pollinator_core.errors import InfraError, UsageError
    from pollinator_core.executor.loop import Executor, ExecutorSettings
    from pollinator_core.executor.setup import executor_client, register_executor
    from pollinator_core.executor.staging import CfsStager
    from pollinator_core.plugins.manager import hooks, open_storage
    from pollinator_core.sync.objects import OBJECTS, ObjectCache

    # A daemon's log is read long after the fact: every line says when.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    config = ClientConfig.from_env()
    if not config.colony_name:
        raise ConfigError("COLONIES_COLONY_NAME is not set: which colony should it serve?")
    from pollinator_core.plugins.settings import parse_options

    kinds = hooks().executor_types()
    if executor_type not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise UsageError(f"no plugin runs executor type {executor_type!r} (installed: {known})")
    kind = kinds[executor_type]
    values = parse_options(settings, section=kind.settings or executor_type).get(
        kind.settings or executor_type, {}
    )
    if runtime:
        values["runtime"] = runtime
    if not kind.settings and values:
        raise UsageError(f"executor type {executor_type!r} has no settings (-s {settings[0]}).")
    loaded = hooks().settings()[kind.settings].load(None, values) if kind.settings else None
    name = name or f"{socket.gethostname()}-{executor_type}"
    # Everything that can be checked locally is, before the executor registers: a bad setting
    # must not leave a registered executor behind that never takes a job.
    fs_root = _usable_dir(fs_dir or Path.home() / ".cache" / "pollinator" / "executor" / name)
    beat = heartbeat or _default_heartbeat()
    storage = open_storage(storage_url or None)
    backend = kind.factory(loaded)
    base = ColoniesClient(config)
    owner = base.with_key(config.colony_prvkey) if config.colony_prvkey else None
    client = executor_client(base, fs_root, config.colony_name, name) if owner else base
    if owner is not None:
        register_executor(owner, client, config.colony_name, name, location)
    executor_settings = ExecutorSettings(
        name=name,
        colony=config.colony_name,
        fs_dir=fs_root,
        max_jobs=max_jobs,
        heartbeat=beat,
    )
    stager = CfsStager(client, config.colony_name, storage, ObjectCache(fs_root / OBJECTS))
    daemon = Executor(client, backend, stager, executor_settings)
    adopted = daemon.adopt()
    if adopted:
        click.echo(f"pollinator: took back {adopted} running process(es)", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=daemon.serve, name="executor", daemon=True)
    serving.start()
    used = backend.describe()
    click.echo(
        f"pollinator: executor {name} ({used}) serving colony {config.colony_name} at "
        f"{config.address}, up to {max_jobs} job{'s' if max_jobs > 1 else ''} at once, "
        f"heartbeat every {beat:g} s",
        err=True,
    )
    while not stop.wait(0.5) and daemon.fatal is None:
        pass
    click.echo(f"pollinator: stopping; running jobs get {grace:g} s to finish", err=True)
    daemon.shutdown(grace)
    serving.join(config.timeout)
    backend.close()
    if daemon.left_running:
        # Removing the record would make the server requeue the jobs still running.
        click.echo(
            f"pollinator: {daemon.left_running} job(s) left running; start the executor again "
            "with the same --name and --fs-dir to take them back",
            err=True,
        )
    elif owner is not None:
        _unregister(owner, client, config.colony_name, name)
    base.close()
    if daemon.fatal is not None:
        raise InfraError(f"Executor {name} stopped: {daemon.fatal}")
    click.echo("pollinator: executor stopped", err=True)


def _default_heartbeat() -> float:
    """A quarter of the server's stale-executor window when the environment names it (the
    official server's variable), else 60 s, a tenth of the server's default window."""
    from pollinator_core.errors import UsageError

    text = os.environ.get("COLONIES_STALE_EXECUTOR_DURATION", "").strip()
    if not text:
        return 60.0
    if not text.isdigit() or int(text) < 4:
        raise UsageError(
            f"COLONIES_STALE_EXECUTOR_DURATION is {text!r}; it must be the server's "
            "stale-executor window in whole seconds, 4 or more (the server's default is 600)."
        )
    return min(int(text) / 4, 60.0)


def _unregister(owner: ColoniesClient, me: ColoniesClient, colony: str, name: str) -> None:
    """Remove this executor's record, unless another executor registered under the name
    since: removing that one would silently stop it from getting work."""
    from pollinator_core.colonies.client import AccessDenied, ColoniesError

    try:
        # Only a member may read it: a refusal means the record is no longer ours.
        if me.get_executor(colony, name).executorid != me.signer_id:
            return
    except AccessDenied:
        return
    except ColoniesError as exc:
        click.echo(f"pollinator: could not check executor {name}: {exc}", err=True)
        return
    try:
        owner.remove_executor(colony, name)
    except ColoniesError as exc:
        click.echo(f"pollinator: could not remove executor {name}: {exc}", err=True)


def _usable_dir(path: Path) -> Path:
    """``path`` (absolute), created if missing; a UsageError if it cannot hold job files."""
    from pollinator_core.errors import UsageError

    path = path.absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"--fs-dir {path} is not a directory. Name a directory this executor may write to "
            "(--fs-dir or EXECUTOR_FS_DIR)."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--fs-dir {path} cannot be used: {exc.strerror or exc}. Name a directory this "
            "executor may write to (--fs-dir or EXECUTOR_FS_DIR)."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(
            f"--fs-dir {path} is not writable. Name a directory this executor may write to "
            "(--fs-dir or EXECUTOR_FS_DIR)."
        )
    return path


@executor.command()
@click.option(
    "--backend",
    default="local",
    show_default=True,
    metavar="NAME",
    help="Which local backend's agent.",
)
@click.pass_context
def stop(ctx: click.Context, backend: str) -> None:
    """Stop this project's local agent (the simulator and executor behind --backend local).

    Running jobs get a few seconds to finish, then are stopped and closed as failed. The agent
    also stops by itself after 10 idle minutes ($POLLINATOR_LOCAL_IDLE seconds); the next
    command that needs it starts it again.
    """
    from pollinator_core.cli.context import load
    from pollinator_core.runs.agent import agent_dir, stop_agent

    project = load(ctx)
    stopped = stop_agent(agent_dir(project, backend))
    click.echo(f"pollinator: {'stopped' if stopped else 'no'} {backend} agent", err=True)
