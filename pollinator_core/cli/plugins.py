"""``pollinator plugins``."""

from __future__ import annotations

import json

import attrs
import click

from pollinator_core.plugins.manager import PLUGINS_ENV, hooks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List the installed plugins: version, hooks, backends, executor types, storage schemes
    and settings (with their defaults).

    Built-in backends are plugins too and always load; POLLINATOR_PLUGINS=a,b loads only those
    third-party plugins (empty: none).
    """
    infos = hooks().plugin_info()
    if as_json:
        click.echo(json.dumps([attrs.asdict(info) for info in infos], indent=2))
        return
    if not infos:
        click.echo(f"No plugins loaded ({PLUGINS_ENV} may exclude them).")
        return
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else "in-process"
        click.echo(f"{info.name} ({origin}, module {info.module})")
        click.echo(f"  hooks: {', '.join(info.hooks) or 'none'}")
        for label, names in (
            ("backends", info.backends),
            ("executor types", info.executor_types),
            ("storage schemes", info.storage_schemes),
        ):
            if names:
                click.echo(f"  {label}: {', '.join(names)}")
        for section, rows in info.settings.items():
            click.echo(f"  settings ({section}: in project.yaml, -s {section}.KEY=VALUE):")
            for key, default, help in rows:
                click.echo(f"    {key} = {default}  {help}")
