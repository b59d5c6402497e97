"""Every option of the commands a user runs a project with is in docs/running.md, and the
commands themselves are in the README: the reference cannot fall behind --help."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from pollinator_core.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = ["run", "logs", "status", "ps", "cancel", "results", "clean", "executors"]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_option_is_in_the_running_reference(name: str) -> None:
    reference = (ROOT / "docs" / "running.md").read_text()
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    missing = [
        option
        for param in command.params
        if isinstance(param, click.Option) and "--help" not in param.opts
        for option in param.opts
        if option.startswith("--") and option not in reference
    ]
    assert not missing, f"pollinator {name}: {missing} not in docs/running.md"


def test_each_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert not [
        name for name in COMMANDS if f"pollinator {name}" not in readme and f"`{name}" not in readme
    ]
