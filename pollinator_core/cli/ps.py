"""``pollinator ps``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs
import click

if TYPE_CHECKING:
    from pollinator_core.cli.session import RunRow

STATES = ("WAITING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "UNKNOWN")


@click.command()
@click.option("-n", "--last", default=20, show_default=True, help="How many runs to show.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES, case_sensitive=False),
    help="Only runs in this state (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def ps(ctx: click.Context, last: int, states: tuple[str, ...], as_json: bool) -> None:
    """List this project's runs, newest first: id, name, state, exit code and why it ended,
    submitted, duration, executor.

    A backend that cannot be asked (unreachable, misconfigured) shows its runs as UNKNOWN and
    says why on stderr; the exit status is then that error's (2 or 3).
    """
    from pollinator_core.cli.context import load
    from pollinator_core.cli.session import RunRow, Session, process_row
    from pollinator_core.colonies.client import NotFound
    from pollinator_core.errors import PollinatorError
    from pollinator_core.runs.submit import RunBook, connect_for

    project = load(ctx)
    sessions: dict[str, Session | PollinatorError] = {}
    rows: list[RunRow] = []
    wanted = {s.upper() for s in states}
    for record in RunBook(project).all():
        if len(rows) >= last:
            break
        if record.backend not in sessions:
            try:
                sessions[record.backend] = Session(project, connect_for(project, record))
            except PollinatorError as exc:
                sessions[record.backend] = exc
        session = sessions[record.backend]
        row = None
        reason = ""
        if isinstance(session, PollinatorError):
            reason = "see below"
        else:
            try:
                row = process_row(
                    session, record, session.conn.client.get_process(record.process_id)
                )
            except NotFound:  # another server now, or one that was reset: list the rest
                reason = "not on the server"
            except PollinatorError as exc:  # gone mid-listing: do not wait on it again
                reason = "see below"
                session.conn.close()
                sessions[record.backend] = exc
        if row is None:
            row = RunRow(
                record.process_id, "UNKNOWN", record.backend, record.submitted,
                None, None, None, "", [], record.name, None, reason,
            )  # fmt: skip
        if not wanted or row.state in wanted:
            rows.append(row)
    errors = {b: s for b, s in sessions.items() if isinstance(s, PollinatorError)}
    for session in sessions.values():
        if isinstance(session, Session):
            session.conn.close()
    if as_json:
        click.echo(json.dumps([attrs.asdict(r) for r in rows], indent=2))
    elif rows:
        _table(rows)
    elif not errors:
        what = f"No {'/'.join(sorted(wanted))} runs" if wanted else "No runs yet"
        click.echo(f"{what}: start one with `pollinator run`.", err=True)
    for backend, error in errors.items():
        click.echo(f"Error: runs on the {backend} backend: {error}", err=True)
    if errors:
        ctx.exit(max(error.exit_code for error in errors.values()))


def _table(rows: list[RunRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    from pollinator_core.colonies.timestamps import duration, local_time

    table = Table(box=None, pad_edge=False)
    for column in ("ID", "NAME", "STATE", "EXIT", "REASON", "SUBMITTED", "DURATION", "EXECUTOR"):
        # Names, reasons and executors may wrap; ids, states and times stay whole.
        wraps = column in ("NAME", "REASON", "EXECUTOR")
        table.add_column(column, no_wrap=not wraps, min_width=len(column))
    for row in rows:
        table.add_row(
            row.id[:12],
            row.name or "-",
            row.state,
            "-" if row.exit_code is None else str(row.exit_code),
            row.reason or "-",
            local_time(row.submitted),
            duration(row.duration),
            row.executor or "-",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # into a pipe or a file: one line per run, unwrapped
    console.print(table)
