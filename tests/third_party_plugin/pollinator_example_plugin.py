"""An example third-party plugin: it tags every function spec with an environment variable."""

from __future__ import annotations

from pollinator_core.api import FunctionSpec, Project, hookimpl

ENV_NAME = "EXAMPLE_PLUGIN"


@hookimpl
def pollinator_function_spec(project: Project, spec: FunctionSpec) -> None:
    spec.env[ENV_NAME] = f"seen {project.name}"
