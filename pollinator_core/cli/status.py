"""``pollinator status``."""

from __future__ import annotations

import json

import attrs
import click


@click.command()
@click.argument("run_id", metavar="[ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, run_id: str | None, as_json: bool) -> None:
    """Show a run's state, times, executor and errors (default: the latest run)."""
    from pollinator_core.cli.session import open_run, process_row
    from pollinator_core.colonies.timestamps import duration, local_time
    from pollinator_core.execution.termination import RECORD_MARK

    with open_run(ctx, run_id) as (session, record):
        row = process_row(session, record, session.conn.client.get_process(record.process_id))
    if as_json:
        click.echo(json.dumps(attrs.asdict(row), indent=2))
        return
    fields = [
        ("process", row.id),
        *([("name", row.name)] if row.name else []),
        ("state", row.state),
        *([("exit code", str(row.exit_code))] if row.exit_code is not None else []),
        *([("reason", row.reason)] if row.reason else []),
        ("backend", row.backend),
        ("executor", row.executor or "-"),
        ("submitted", local_time(row.submitted)),
        ("started", local_time(row.started)),
        ("ended", local_time(row.ended)),
        ("duration", duration(row.duration)),
    ]
    for name, value in fields:
        click.echo(f"{name + ':':<11}{value}")
    for error in row.errors:
        if error.startswith(RECORD_MARK):
            continue  # the record for programs (--json), shown above in words
        click.echo(f"{'error:':<11}" + error.replace("\n", "\n" + " " * 11))
