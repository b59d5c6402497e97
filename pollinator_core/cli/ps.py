"""``pollinator ps``."""

from __future__ import annotations

import json

import attrs
import click


@click.command()
@click.option("-n", "--last", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def ps(ctx: click.Context, last: int, as_json: bool) -> None:
    """List this project's runs, newest first: id, state, submitted, duration, executor."""
    from pollinator_core.cli.context import load
    from pollinator_core.cli.session import RunRow, Session, process_row
    from pollinator_core.colonies.client import NotFound
    from pollinator_core.colonies.timestamps import duration, local_time
    from pollinator_core.errors import PollinatorError
    from pollinator_core.runs.submit import RunBook, connect_for

    project = load(ctx)
    sessions: dict[str, Session | PollinatorError] = {}
    rows: list[RunRow] = []
    for record in RunBook(project).all()[:last]:
        if record.backend not in sessions:
            try:
                sessions[record.backend] = Session(project, connect_for(project, record))
            except PollinatorError as exc:
                sessions[record.backend] = exc
        session = sessions[record.backend]
        process = None
        if isinstance(session, PollinatorError):
            state = f"UNKNOWN ({record.backend} unreachable)"
        else:
            try:
                process = session.conn.client.get_process(record.process_id)
            except NotFound:  # another server now, or one that was reset: list the rest
                state = "UNKNOWN (not on the server)"
            except PollinatorError as exc:  # gone mid-listing: do not wait on it again
                state = f"UNKNOWN ({record.backend} unreachable)"
                session.conn.close()
                sessions[record.backend] = exc
        if process is None or isinstance(session, PollinatorError):
            rows.append(
                RunRow(
                    record.process_id,
                    state,
                    record.backend,
                    record.submitted,
                    None,
                    None,
                    None,
                    "",
                    [],
                )
            )
            continue
        rows.append(process_row(session, record, process))
    for session in sessions.values():
        if isinstance(session, Session):
            session.conn.close()
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("No runs yet: start one with `pollinator run`.", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("ID", "STATE", "SUBMITTED", "DURATION", "EXECUTOR"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.id[:12],
            row.state,
            local_time(row.submitted),
            duration(row.duration),
            row.executor or "-",
        )
    Console().print(table)
