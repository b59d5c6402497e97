"""``pollinator run``."""

from __future__ import annotations

import json
import os
import sys

import attrs
import click

from pollinator_core.cli.context import load
from pollinator_core.colonies.models import FunctionSpec, dumps, to_dict
from pollinator_core.errors import UsageError
from pollinator_core.plugins.backend import Backend
from pollinator_core.project.loader import Project
from pollinator_core.runs.backends import COLONIES
from pollinator_core.runs.submit import check_options, final_function_spec

SNAPSHOT_PLACEHOLDER = "<snapshot-id>"
PROCESS_PLACEHOLDER = "<process-id>"
COLONY_PLACEHOLDER = "<colony-name>"
#: an official executor may take the job (docs/running.md, "On official executors")
REBUILD_WARNING = (
    "warning: rebuildImage is true; the official Colonies HPC executor drops such a job "
    "without running or closing it (it waits out maxexectime and every retry, then fails), and "
    "the official Docker and Kubernetes executors ignore it. If the colony has official "
    "executors, name Pollinator's in conditions.executorNames."
)


class RunCommand(click.Command):
    """``run``, whose arguments after ``--`` go to the job: ``pollinator run -f -- --lr 0.1``.

    Anything else that is not an option stays an error, so a stray word is never passed on."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["job_args"] = tuple(args[cut + 1 :])
            args = args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- ARGS...]"]


@click.command(cls=RunCommand)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the function spec that would be submitted (snapshot id left as a placeholder) "
    "and stop. Touches no network.",
)
@click.option(
    "--backend",
    metavar="NAME",
    help="Where the job runs: local, colonies, or a plugin's backend. Default: project.yaml's "
    "backend, else colonies when COLONIES_SERVER_HOST is set, else local.",
)
@click.option(
    "-f", "--follow", is_flag=True, help="Stream the job's output, wait for it, fetch results."
)
@click.option(
    "--cancel-on-interrupt",
    is_flag=True,
    help="With --follow: Ctrl-C (or SIGTERM, SIGHUP) cancels the job instead of detaching from it.",
)
@click.option("--name", metavar="NAME", help="A name for this run, shown by `pollinator ps`.")
@click.option(
    "-e",
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    help="An environment variable for this run, on top of project.yaml's env. Repeatable.",
)
@click.option(
    "--walltime", metavar="DURATION", help="This run's conditions.walltime (600, 90m, 2h)."
)
@click.option("--cpu", metavar="CPU", help="This run's conditions.cpu (2, 0.5, 500m).")
@click.option("--mem", metavar="MEM", help="This run's conditions.mem (512Mi, 4Gi).")
@click.option("--gpus", metavar="N", help="This run's conditions.gpu.count.")
@click.option(
    "--runtime",
    type=click.Choice(["auto", "docker", "process"]),
    help="Short for -s local.runtime=...: the local backend runs jobs in Docker or as host "
    "processes (auto: Docker when an engine answers).",
)
@click.option(
    "-s",
    "--set",
    "settings",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="A plugin setting for this run, as in project.yaml's section (-s slurm.qos=long). "
    "Repeatable. `pollinator plugins` lists them.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object on stdout: the run (id, name, backend...); with --follow how "
    "it ended (the job's output then goes to stderr); with --dry-run {spec, rendered}.",
)
@click.pass_context
def run(
    ctx: click.Context,
    dry_run: bool,
    backend: str | None,
    follow: bool,
    cancel_on_interrupt: bool,
    name: str | None,
    env: tuple[str, ...],
    walltime: str | None,
    cpu: str | None,
    mem: str | None,
    gpus: str | None,
    runtime: str | None,
    settings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Sync the project, submit it, follow its output and fetch its results.

    Prints the process ID on stdout (`ID=$(pollinator run)`); messages go to stderr. With
    --follow, stdout is the job's output. The options from --name to --gpus, and ARGS after
    `--` (given to the source file: `python3 main.py ARGS`), apply to this run only, checked
    as project.yaml's keys are.

    \b
    Exit status: 0 the job succeeded (or, without --follow, was submitted); 1 it failed or was
    cancelled (its errors and the end of its output are shown); 2 bad usage or project; 3
    server, storage or engine unreachable or misconfigured; 130 interrupted (143 SIGTERM, 129
    SIGHUP). Ctrl-C, SIGTERM or SIGHUP while following detaches: the job goes on, and the
    command says how to re-attach or cancel it.
    """
    from pollinator_core.plugins.settings import parse_options
    from pollinator_core.runs.backends import default_backend, get_backend
    from pollinator_core.runs.overrides import Overrides, apply, parse_env

    overrides = Overrides(
        ctx.meta.get("job_args", ()), parse_env(env), walltime, cpu, mem, gpus, name
    )
    project = apply(load(ctx), overrides)
    options = parse_options(settings)
    if runtime:
        options.setdefault("local", {})["runtime"] = runtime
    check_options(options)
    chosen = get_backend(backend or default_backend(project))
    if dry_run:
        colony = os.environ.get("COLONIES_COLONY_NAME") or COLONY_PLACEHOLDER
        spec = final_function_spec(project, SNAPSHOT_PLACEHOLDER, colony)
        artefacts = rendered(project, chosen, spec, options)
        if as_json:
            click.echo(json.dumps({"spec": to_dict(spec), "rendered": artefacts}, indent=2))
            return
        click.echo(dumps(spec, indent=2))
        for artefact, text in artefacts.items():
            click.echo(
                f"\n# --- {artefact}: what the {chosen.name} backend's executor would run ---"
            )
            click.echo(text, nl=not text.endswith("\n"))
        return
    if cancel_on_interrupt and not follow:
        raise UsageError("--cancel-on-interrupt only applies with --follow.")
    from pollinator_core.cli.session import Session, process_row, watch
    from pollinator_core.runs.submit import check_sources, check_state_dir, submit_run

    check_sources(project)
    check_state_dir(project)
    conn = chosen.connect(project, options)
    session = Session(project, conn)
    try:
        conn.storage  # noqa: B018 -- misconfigured storage stops the run before it starts
        where = conn.notice or f"{conn.server}, colony {conn.colony}"
        session.note(f"{conn.backend} backend: {where}")
        if project.environment.rebuild_image and conn.backend == COLONIES:
            session.note(REBUILD_WARNING)
        record = submit_run(project, conn, quiet=not follow, name=name or "")
        session.note(f"submitted process {record.process_id}")
        if not follow:
            if as_json:
                click.echo(json.dumps(attrs.asdict(record), indent=2))
            else:
                click.echo(record.process_id)
            session.note(
                f"follow it with `pollinator logs -f {record.short_id}`; "
                f"fetch its results with `pollinator results {record.short_id}`"
            )
            return
        code = watch(
            session,
            record,
            cancel_on_interrupt=cancel_on_interrupt,
            out=sys.stderr if as_json else sys.stdout,
        )
        if as_json:
            row = process_row(session, record, conn.client.get_process(record.process_id))
            report = attrs.asdict(row)
            if session.pulled is not None:
                report["results"] = str(session.pulled.directory)
            click.echo(json.dumps(report, indent=2))
        ctx.exit(code)
    finally:
        conn.close()


def rendered(
    project: Project, backend: Backend, spec: FunctionSpec, options: dict[str, dict[str, str]]
) -> dict[str, str]:
    """What the executor of a local-type backend would run (script, manifest, command), for
    the dry run: nothing is connected to or written."""
    from pathlib import Path

    from pollinator_core.colonies.models import Process
    from pollinator_core.executor.translate import job_from_process
    from pollinator_core.plugins.manager import hooks
    from pollinator_core.runs.backends import LocalBackend

    if not isinstance(backend, LocalBackend):
        return {}
    kind = hooks().executor_types()[backend.executor_type]
    if kind.render is None:
        return {}
    settings = None
    if kind.settings:
        section = hooks().settings()[kind.settings]
        settings = section.load(project.sections.get(kind.settings), options.get(kind.settings))
    process = Process(processid=PROCESS_PLACEHOLDER, spec=spec)
    job = job_from_process(process, Path("<executor-fs-dir>") / PROCESS_PLACEHOLDER)
    return kind.render(settings, job)
