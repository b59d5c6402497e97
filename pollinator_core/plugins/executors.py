"""What an execution plugin registers: an executor type, the factory of its runtime, and the
settings section the factory takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from pollinator_core.execution.job import Job
from pollinator_core.execution.runtime import Runtime


@attrs.frozen
class ExecutorType:
    """``pollinator executor start --type NAME`` runs :attr:`factory`'s runtime.

    ``factory(settings)`` gets the settings of the section named ``settings`` (None when the
    type declares none), already checked; it builds the runtime when an executor starts, so
    importing the plugin stays cheap. It may raise InfraError (the engine or scheduler is not
    there) or UsageError (a setting the site refuses), with one paragraph saying what to do.
    """

    name: str
    factory: Callable[[Any], Runtime]
    settings: str = ""
    help: str = ""
    #: ``render(settings, job)``: what a dry run shows (file name -> text), computed without
    #: connecting to anything; None when the type has nothing to show
    render: Callable[[Any, Job], dict[str, str]] | None = None
