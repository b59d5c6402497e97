"""``pollinator run``."""

from __future__ import annotations

import os

import click

from pollinator_core.cli.context import load
from pollinator_core.colonies.models import dumps
from pollinator_core.errors import ProjectError, UsageError
from pollinator_core.project.loader import Project
from pollinator_core.runs.submit import final_function_spec

SNAPSHOT_PLACEHOLDER = "<snapshot-id>"
COLONY_PLACEHOLDER = "<colony-name>"


@click.command()
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
    help="With --follow: Ctrl-C cancels the job instead of detaching from it.",
)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "docker", "process"]),
    help="Local backends: run jobs in Docker or as host processes. Default: project.yaml's "
    "local.runtime (auto: Docker when an engine answers).",
)
@click.pass_context
def run(
    ctx: click.Context,
    dry_run: bool,
    backend: str | None,
    follow: bool,
    cancel_on_interrupt: bool,
    runtime: str | None,
) -> None:
    """Sync the project, submit it, follow its output and fetch its results.

    \b
    Exit status: 0 the job succeeded; 1 it failed or was cancelled (its errors and the end of
    its output are shown); 2 bad usage or project; 3 server, storage or engine unreachable or
    misconfigured; 130 interrupted. Ctrl-C while following detaches: the job goes on, and the
    command says how to re-attach or cancel it.
    """
    project = load(ctx)
    if dry_run:
        colony = os.environ.get("COLONIES_COLONY_NAME") or COLONY_PLACEHOLDER
        click.echo(dumps(final_function_spec(project, SNAPSHOT_PLACEHOLDER, colony), indent=2))
        return
    if cancel_on_interrupt and not follow:
        raise UsageError("--cancel-on-interrupt only applies with --follow.")
    from pollinator_core.cli.session import Session, watch
    from pollinator_core.runs.backends import default_backend, get_backend
    from pollinator_core.runs.submit import submit_run

    chosen = get_backend(backend or default_backend(project))
    check_sources(project)
    conn = chosen.connect(project, runtime=runtime or project.local.runtime)
    session = Session(project, conn)
    try:
        conn.storage  # noqa: B018 -- misconfigured storage stops the run before it starts
        where = conn.notice or f"{conn.server}, colony {conn.colony}"
        session.note(f"{conn.backend} backend: {where}")
        record = submit_run(project, conn, quiet=not follow)
        session.note(f"submitted process {record.process_id}")
        if not follow:
            session.note(
                f"follow it with `pollinator logs -f {record.short_id}`; "
                f"fetch its results with `pollinator results {record.short_id}`"
            )
            return
        ctx.exit(watch(session, record, cancel_on_interrupt=cancel_on_interrupt))
    finally:
        conn.close()


def check_sources(project: Project) -> None:
    """Refuse, before anything touches the network, a run whose files cannot work: no
    cfs/src, or an ``environment.source`` that is not a file in it (the job would only fail)."""
    if not project.src_dir.is_dir():
        raise ProjectError(
            f"{project.src_dir} does not exist: create it (it may stay empty); "
            "the job runs a snapshot of it."
        )
    source = project.environment.source
    if source and not (project.src_dir / source).is_file():
        raise ProjectError(
            f"{project.path}: environment.source is {source!r}, but cfs/src/{source} is not a "
            'file. Create it, or name the file to run (or "" to run cmd alone).'
        )
