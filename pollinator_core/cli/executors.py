"""``pollinator executors``."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--backend", metavar="NAME", help="Whose executors: local, colonies ...")
@click.option("--json", "as_json", is_flag=True, help="Print the executors as JSON.")
@click.option(
    "--all", "show_all", is_flag=True, help="Include removed (unregistered) executors too."
)
@click.pass_context
def executors(ctx: click.Context, backend: str | None, as_json: bool, show_all: bool) -> None:
    """List the colony's executors: name, type, state, location, last heard from.

    Removed executors stay on the server as UNREGISTERED; they are left out unless --all, as
    the official CLI does."""
    from pollinator_core.cli.context import load
    from pollinator_core.colonies.models import ExecutorState
    from pollinator_core.colonies.timestamps import ago, parse_time
    from pollinator_core.runs.backends import default_backend, get_backend

    project = load(ctx)
    conn = get_backend(backend or default_backend(project)).connect(project)
    try:
        found = conn.client.get_executors(conn.colony)
    finally:
        conn.close()
    rows = [
        {
            "name": e.executorname,
            "type": e.executortype,
            "state": e.state.name,
            "location": e.locationname or e.location.desc,
            "last_heard_from": parse_time(e.lastheardfromtime),
        }
        for e in sorted(found, key=lambda e: e.executorname)
        if show_all or e.state is not ExecutorState.UNREGISTERED
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No executors in colony {conn.colony!r}.", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "TYPE", "STATE", "LOCATION", "LAST HEARD FROM"):
        table.add_column(column)
    for row in rows:
        last = row["last_heard_from"]
        table.add_row(
            str(row["name"]),
            str(row["type"]),
            str(row["state"]),
            str(row["location"] or "-"),
            ago(last if isinstance(last, float) else None),
        )
    Console().print(table)
