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
        pulled = pull_results(session.project, session.conn, process)
        lines = pulled.describe(session.project.root)
        session.note(f"{lines[0]}, process {record.short_id} {process.state.name}")
        for line in lines[1:]:
            session.note(line)
