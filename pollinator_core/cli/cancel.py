"""``pollinator cancel``."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_ids", metavar="ID...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every run of this project still going.")
@click.pass_context
def cancel(ctx: click.Context, run_ids: tuple[str, ...], every: bool) -> None:
    """Cancel runs (ID: a prefix of a process ID). Their executors stop the jobs and upload
    what they wrote (`pollinator results ID` fetches it).

    Exit status: 0 when every run named is cancelled or had ended already; 2 an unknown ID; 3
    a backend could not be reached (the other runs are still cancelled).
    """
    from pollinator_core.cli.context import load
    from pollinator_core.cli.session import Session, elsewhere
    from pollinator_core.colonies.client import NotFound
    from pollinator_core.errors import PollinatorError, UsageError
    from pollinator_core.runs.submit import RunBook, connect_for

    if every == bool(run_ids):
        raise UsageError("Name the runs to cancel (pollinator cancel ID...), or give --all.")
    project = load(ctx)
    book = RunBook(project)
    records = book.all() if every else [book.find(run_id) for run_id in run_ids]
    sessions: dict[str, Session] = {}
    failed: PollinatorError | None = None
    try:
        for record in {r.process_id: r for r in records}.values():
            try:
                if record.backend not in sessions:
                    sessions[record.backend] = Session(project, connect_for(project, record))
                session = sessions[record.backend]
                client = session.conn.client
                try:
                    process = client.get_process(record.process_id)
                except NotFound as exc:
                    if every:
                        continue  # an old run on a server that no longer has it: not going
                    raise elsewhere(record, session.conn, exc) from None
                if process.state.finished:
                    if not every:
                        session.note(
                            f"process {record.short_id} already ended ({process.state.name})"
                        )
                    continue
                client.cancel_process(record.process_id)
                session.note(
                    f"cancelled process {record.process_id}; its executor stops the job and "
                    f"uploads what it wrote (`pollinator results {record.short_id}`)"
                )
            except PollinatorError as exc:  # one unreachable backend stops none of the others
                click.echo(f"Error: {exc}", err=True)
                failed = exc
    finally:
        for session in sessions.values():
            session.conn.close()
    if failed is not None:
        ctx.exit(failed.exit_code)
