"""``pollinator cancel``."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_id", metavar="ID")
@click.pass_context
def cancel(ctx: click.Context, run_id: str) -> None:
    """Cancel a run (ID: a prefix of its process ID). Its executor stops the job."""
    from pollinator_core.cli.session import open_run

    with open_run(ctx, run_id) as (session, record):
        client = session.conn.client
        process = client.get_process(record.process_id)
        if process.state.finished:
            session.note(f"process {record.short_id} already ended ({process.state.name})")
            return
        client.cancel_process(record.process_id)
        session.note(f"cancelled process {record.process_id}")
