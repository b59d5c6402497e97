"""The hooks a Pollinator plugin can implement.

A plugin is a module named in the ``pollinator`` entry-point group that defines functions
decorated with :data:`hookimpl` and named as below. Built-in backends are plugins like any other.

Example (a storage plugin)::

    from pollinator_core.api import StorageLocation, hookimpl

    @hookimpl
    def pollinator_storage(url):
        if url.startswith("gcs://"):
            import gcsfs
            return StorageLocation(gcsfs.GCSFileSystem(), url.removeprefix("gcs://"))
        return None
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pollinator_core.colonies.models import FunctionSpec
    from pollinator_core.plugins.backend import Backend
    from pollinator_core.plugins.executors import ExecutorType
    from pollinator_core.plugins.settings import SettingsSection
    from pollinator_core.project.loader import Project
    from pollinator_core.storage.location import StorageLocation

PROJECT_NAME = "pollinator"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- storage -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def pollinator_storage(url: str) -> StorageLocation | None:
    """Return where file bytes for ``url`` live, or None if this plugin does not handle it.

    ``url`` is the configured storage URL (``s3://bucket``, ``file:///path``, ``memory://x``,
    or a scheme of your own). The first plugin that returns a location wins. Import heavy
    libraries inside the function, not at module level. Credentials come from the environment;
    never put them in the returned location's ``root``.
    """


@hookspec
def pollinator_storage_schemes() -> list[str]:
    """Return the URL schemes your ``pollinator_storage`` handles (``["gcs"]``).

    Only for ``pollinator plugins``, which lists them per plugin; resolving a URL always goes
    through ``pollinator_storage`` itself.
    """
    return []


# --- submission ----------------------------------------------------------------------------


@hookspec
def pollinator_function_spec(project: Project, spec: FunctionSpec) -> None:
    """Adjust or validate the function spec built for ``project`` before it is submitted.

    Modify ``spec`` in place (add env, conditions, kwargs your executor understands). Raise
    ``pollinator_core.errors.ProjectError`` with a one-paragraph message to refuse the project.
    Called for ``run`` and ``run --dry-run`` alike, so it must not touch the network.
    """


@hookspec
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    """Call ``register(backend)`` for each ``--backend`` choice this plugin provides.

    A backend says where processes go (a Colonies server, or an embedded simulator with an
    in-process executor); see ``pollinator_core.runs.backends.Backend``.
    """


# --- execution -----------------------------------------------------------------------------


@hookspec
def pollinator_register_executors(register: Callable[[ExecutorType], None]) -> None:
    """Call ``register(ExecutorType(name, factory, settings))`` for each runtime you provide.

    ``name`` is what ``pollinator executor start --type`` takes (``docker``, ``slurm``,
    ``k8s``); ``factory(settings)`` builds the runtime when an executor starts, from the checked
    settings of the section named ``settings``. See ``pollinator_core.api.Runtime`` for what a
    runtime does and ``pollinator_core.api.BatchRuntime`` for batch schedulers.
    """


# --- settings ------------------------------------------------------------------------------


@hookspec
def pollinator_register_settings(register: Callable[[SettingsSection[Any]], None]) -> None:
    """Call ``register(SettingsSection(name, schema, help))`` for each settings section.

    ``schema`` is an attrs class whose fields are made with ``setting(default, help)``. Values
    come from project.yaml's section ``name:``, from ``POLLINATOR_<NAME>_<KEY>`` environment
    variables and from ``-s KEY=VALUE`` options, checked strictly (an unknown key is an error
    with a did-you-mean). ``pollinator plugins`` lists them with their defaults and help.
    """
