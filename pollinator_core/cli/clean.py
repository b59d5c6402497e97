"""``pollinator clean``."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--keep",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the newest runs to keep (runs still waiting or running are always kept).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--objects",
    is_flag=True,
    help="Also remove unreferenced objects from a shared store (S3): only when no other "
    "colony uses its bucket and prefix, and only objects older than an hour. The local "
    "backend's store is always swept.",
)
@click.option("--backend", metavar="NAME", help="Whose runs (default: as for run).")
@click.pass_context
def clean(ctx: click.Context, keep: int, dry_run: bool, objects: bool, backend: str | None) -> None:
    """Remove old runs' results (here and on the server), snapshots no run uses, and the
    stored objects nothing refers to any more.

    The newest --keep runs of the backend and every run still waiting or running stay, with
    their results; `ps` no longer lists the others. On the local backend the store and the
    executor's copies of staged files are swept too.
    """
    from pollinator_core.cli.context import load
    from pollinator_core.cli.session import Session
    from pollinator_core.runs.agent import agent_dir
    from pollinator_core.runs.backends import LocalBackend, default_backend, get_backend
    from pollinator_core.runs.clean import carry_out, plan
    from pollinator_core.runs.submit import project_lock

    project = load(ctx)
    chosen = get_backend(backend or default_backend(project))
    where = agent_dir(project, chosen.name) if isinstance(chosen, LocalBackend) else None
    conn = chosen.connect(project)
    session = Session(project, conn)
    try:
        with project_lock(project):  # no upload of this project while garbage is decided
            executor_dir = where.fs_dir if where is not None else None
            env_dir = where.env_dir if where is not None else None
            cleanup = plan(
                project,
                conn,
                keep=keep,
                objects=objects,
                executor_dir=executor_dir,
                env_dir=env_dir,
            )
            if not dry_run:
                carry_out(project, conn, cleanup, executor_dir)
        for line in cleanup.lines(dry_run):
            session.note(line)
    finally:
        conn.close()
