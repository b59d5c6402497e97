"""One run's changes to its project, from the command line or the Python API: arguments for
the source file, extra environment variables, walltime, cpu, mem, GPUs, and a name.

Each value goes through the same checks as the project.yaml key it stands for
(:func:`pollinator_core.project.loader.override`), so ``--walltime 99x`` fails exactly as
``walltime: 99x`` does; the result is a modified :class:`Project`, from which the spec is built
as for any run.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from pollinator_core.errors import UsageError
from pollinator_core.project.loader import Project, override

#: the longest run name ps shows
MAX_NAME = 64


@attrs.frozen
class Overrides:
    """What one run changes; None (or empty) keeps project.yaml's value."""

    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict)
    walltime: str | int | None = None
    cpu: str | int | float | None = None
    mem: str | int | None = None
    gpus: int | str | None = None
    name: str | None = None


def check_run_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(
            f"--name {name!r}: a run's name is 1 to {MAX_NAME} printable characters on one line."
        )
    return name


def parse_env(items: tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` items (``--env``) as a mapping; the names are checked with the rest."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env {item!r}: write NAME=VALUE (--env DEBUG=1).")
        env[key] = value
    return env


def apply(project: Project, overrides: Overrides) -> Project:
    """``project`` as this run asks, or a UsageError naming the option at fault."""
    if overrides.name is not None:
        check_run_name(overrides.name)

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return override(
        project,
        args=tuple(str(a) for a in overrides.args),
        env=dict(overrides.env),
        walltime=text(overrides.walltime),
        cpu=text(overrides.cpu),
        mem=text(overrides.mem),
        gpus=text(overrides.gpus),
    )
