"""The hooks a Pollinator plugin can implement.

A plugin is a module named in the ``pollinator`` entry-point group that defines functions
decorated with :data:`hookimpl` and named as below. Built-in backends are plugins like any other.

Example (a storage plugin)::

    from pollinator_core.plugins.hookspecs import hookimpl
    from pollinator_core.storage.location import StorageLocation

    @hookimpl
    def pollinator_storage(url):
        if url.startswith("gcs://"):
            import gcsfs
            return StorageLocation(gcsfs.GCSFileSystem(), url.removeprefix("gcs://"))
        return None
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pollinator_core.colonies.models import FunctionSpec
    from pollinator_core.execution.runtime import ExecutionBackend
    from pollinator_core.plugins.backend import Backend
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
def pollinator_register_executors(
    register: Callable[[str, Callable[[], ExecutionBackend]], None],
) -> None:
    """Call ``register(executor_type, factory)`` for each execution backend this plugin has.

    ``executor_type`` is what ``pollinator executor start --type`` takes (``docker``, ``slurm``,
    ``k8s``). ``factory()`` builds the backend when an executor starts, so importing the plugin
    stays cheap. See ``pollinator_core.execution.runtime.ExecutionBackend`` for what a backend does.
    """
