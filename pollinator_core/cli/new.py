"""``pollinator new``."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import click

from pollinator_core.cli.context import cli_context
from pollinator_core.project.scaffold import new_project


@click.command()
@click.option(
    "-n",
    "--executorname",
    "executor_names",
    multiple=True,
    metavar="EXECUTOR",
    help="Only let this executor run the jobs (repeatable). Without it the project uses the "
    "local backend and works offline.",
)
@click.option("--force", is_flag=True, help="Overwrite project files that already exist.")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def new(
    ctx: click.Context, executor_names: tuple[str, ...], force: bool, directory: Path | None
) -> None:
    """Create a project in DIRECTORY (default: the current directory).

    Writes project.yaml, .pollinatorignore, cfs/src/main.py, cfs/data/hello.txt and
    cfs/result/. Files that already exist are kept (and listed) unless --force is given.
    """
    base = cli_context(ctx).directory or Path.cwd()
    result = new_project(base / (directory or "."), executor_names=executor_names, force=force)
    for path in result.created:
        click.echo(f"created  {_show(path, result.root)}")
    for path in result.skipped:
        click.echo(f"kept     {_show(path, result.root)} (exists; --force overwrites)")
    if result.name is None:
        click.echo(f"Kept the existing project.yaml in {result.root}.")
        return
    click.echo(f"\nProject {result.name} is ready in {result.root}. Try it:")
    here = result.root == Path.cwd().resolve()
    cd = "" if here else f"  cd {shlex.quote(str(result.root))}\n"
    click.echo(f"{cd}  {shlex.quote(this_command())} run --follow")


def this_command() -> str:
    """How to run this very ``pollinator`` from anywhere: its name when PATH finds it (an
    activated venv, an installed tool), else its full path (``.venv/bin/pollinator``)."""
    found = shutil.which("pollinator")
    script = Path(sys.argv[0])
    if script.name != "pollinator" or not script.exists():
        # Not run as the console script (python -m, a test runner): the one beside Python.
        script = Path(sys.executable).with_name("pollinator")
    if found and Path(found).resolve() == script.resolve():
        return "pollinator"
    return str(script.absolute())


def _show(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() + ("/" if path.is_dir() else "")
