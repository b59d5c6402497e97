"""An example third-party plugin: it tags every function spec with an environment variable."""

from __future__ import annotations

from pollinator_core.colonies.models import FunctionSpec
from pollinator_core.plugins.hookspecs import hookimpl
from pollinator_core.project.loader import Project

ENV_NAME = "EXAMPLE_PLUGIN"


@hookimpl
def pollinator_function_spec(project: Project, spec: FunctionSpec) -> None:
    spec.env[ENV_NAME] = f"seen {project.name}"
