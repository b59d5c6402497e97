"""``pollinator plugins``."""

from __future__ import annotations

import json

import attrs
import click

from pollinator_core.plugins.manager import PLUGINS_ENV, hooks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List the installed plugins, their versions and the hooks each implements.

    Built-in backends are plugins too. Set POLLINATOR_PLUGINS=a,b to load only some.
    """
    infos = hooks().plugin_info()
    if as_json:
        click.echo(json.dumps([attrs.asdict(info) for info in infos], indent=2))
        return
    if not infos:
        click.echo(f"No plugins loaded ({PLUGINS_ENV} may exclude them).")
        return
    rows = [("NAME", "DISTRIBUTION", "VERSION", "HOOKS")]
    rows += [(i.name, i.distribution, i.version, ", ".join(i.hooks)) for i in infos]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    for row in rows:
        cells = [row[col].ljust(widths[col]) for col in range(3)]
        click.echo("  ".join([*cells, row[3]]).rstrip())
