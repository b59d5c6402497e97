"""The CLI's commands, one module each, imported only when their command runs (see cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

if TYPE_CHECKING:
    from pollinator_core.project.loader import Project


@attrs.define
class CliContext:
    """What the top-level options give every command (``ctx.obj``)."""

    directory: Path | None = None  # -C DIR: the project directory, else search from the cwd
    verbose: int = 0  # -v count


def cli_context(ctx: click.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    return obj if obj is not None else CliContext()


def load(ctx: click.Context) -> Project:
    """The project the command line points at (-C DIR, else found upward from the cwd), with
    its plugin sections (``local:``, ``slurm:``) checked against the plugins' settings."""
    from pollinator_core.runs.submit import open_project

    return open_project(cli_context(ctx).directory)
