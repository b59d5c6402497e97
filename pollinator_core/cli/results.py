"""``pollinator results``."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_id", metavar="[ID]", required=False)
@click.pass_context
def results(ctx: click.Context, run_id: str | None) -> None:
    """Fetch a run's results into cfs/result/<process id>/ (default: the latest run).

    cfs/result/latest then points there. A file you changed there is never overwritten: the
    remote version is saved beside it.
    """
    from pollinator_core.cli.session import open_run
    from pollinator_core.runs.submit import pull_results

    with open_run(ctx, run_id) as (session, record):
        process = session.conn.client.get_process(record.process_id)
        target, count = pull_results(session.project, session.conn, process)
        where = target.relative_to(session.project.root)
        state = process.state.name
        session.note(f"{where}/: {count} new file{'s' if count != 1 else ''} (process {state})")
