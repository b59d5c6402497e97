"""``pollinator logs``."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("run_id", metavar="[ID]", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
@click.option(
    "-n",
    "--tail",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only the last N lines of what is there (then, with -f, what comes).",
)
@click.pass_context
def logs(ctx: click.Context, run_id: str | None, follow: bool, tail: int | None) -> None:
    """Print a run's output (ID: a prefix of its process ID; default: the latest run).

    With -f the exit status tells how the run ended, as for `pollinator run -f`; Ctrl-C
    detaches again.
    """
    from pollinator_core.cli.session import open_run, watch
    from pollinator_core.errors import JobFailed
    from pollinator_core.runs.follow import print_log

    with open_run(ctx, run_id) as (session, record):
        if not follow:
            client, colony = session.conn.client, session.conn.colony
            print_log(client, colony, record.process_id, sys.stdout, tail)
            return
        code = watch(session, record, cancel_on_interrupt=False, fetch=False, tail=tail)
        if code in (0, JobFailed.exit_code):  # it ended (not interrupted)
            session.note(f"fetch its results with `pollinator results {record.short_id}`")
    ctx.exit(code)
