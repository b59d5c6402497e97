"""Plugins: everything in the ``pollinator`` entry-point group, built-ins included.

Plugins load on the first :func:`hooks` call, not at import, so commands that need none (and
``pollinator --help``) never import them. ``POLLINATOR_PLUGINS=a,b`` loads only the named entry
points (empty: none); ``POLLINATOR_TRACE_HOOKS=1`` prints every hook call to stderr.
:class:`Hooks` wraps pluggy's untyped calls so that callers are type-checked.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from pollinator_core.errors import InfraError, UsageError
from pollinator_core.plugins import hookspecs
from pollinator_core.storage.location import StorageLocation, storage_url_from_env

if TYPE_CHECKING:
    from pollinator_core.colonies.models import FunctionSpec
    from pollinator_core.execution.runtime import ExecutionBackend
    from pollinator_core.plugins.backend import Backend
    from pollinator_core.project.loader import Project

ENTRY_POINT_GROUP = "pollinator"
PLUGINS_ENV = "POLLINATOR_PLUGINS"
TRACE_ENV = "POLLINATOR_TRACE_HOOKS"


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str  # "" for a plugin registered in-process rather than installed
    version: str
    module: str
    hooks: tuple[str, ...]


class Hooks:
    """Typed calls into the loaded plugins."""

    def __init__(self, pm: pluggy.PluginManager, sources: Mapping[str, metadata.EntryPoint]):
        self.pm = pm
        self._sources = sources

    def storage(self, url: str) -> StorageLocation | None:
        """Where the bytes for ``url`` live; None when no plugin handles the scheme."""
        return cast("StorageLocation | None", self.pm.hook.pollinator_storage(url=url))

    def adjust_spec(self, project: Project, spec: FunctionSpec) -> None:
        """Let every plugin adjust or refuse ``spec`` (in place) before it is submitted."""
        self.pm.hook.pollinator_function_spec(project=project, spec=spec)

    def backends(self) -> dict[str, Backend]:
        """Every ``--backend`` choice, by name."""
        found: dict[str, Backend] = {}

        def register(backend: Backend) -> None:
            _add(found, backend.name, backend, "backend")

        self.pm.hook.pollinator_register_backends(register=register)
        return found

    def executor_factories(self) -> dict[str, Callable[[], ExecutionBackend]]:
        """A factory per executor type (``docker``, ``slurm``, ``k8s`` ...)."""
        found: dict[str, Callable[[], ExecutionBackend]] = {}

        def register(executor_type: str, factory: Callable[[], ExecutionBackend]) -> None:
            _add(found, executor_type, factory, "executor type")

        self.pm.hook.pollinator_register_executors(register=register)
        return found

    def plugin_info(self) -> list[PluginInfo]:
        """What ``pollinator plugins`` shows: each plugin, where it comes from, what it does."""
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            ep = self._sources.get(name)
            dist = ep.dist if ep else None
            callers = self.pm.get_hookcallers(plugin) or []
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist.name if dist else "",
                    version=dist.version if dist else "",
                    module=getattr(plugin, "__name__", type(plugin).__name__),
                    hooks=tuple(sorted(caller.name for caller in callers)),
                )
            )
        return infos


@functools.cache
def hooks() -> Hooks:
    """The plugins of this process, loaded on first use. ``hooks.cache_clear()`` reloads."""
    return load_plugins(_allowed(os.environ.get(PLUGINS_ENV)))


def load_plugins(allowed: frozenset[str] | None = None) -> Hooks:
    """Load the entry points named in ``allowed`` (None: all) into a new plugin manager."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    if allowed is not None and (missing := allowed - set(entry_points.names)):
        raise UsageError(
            f"{PLUGINS_ENV} names {', '.join(sorted(missing))}, but no installed plugin has "
            f"that name. Installed: {', '.join(sorted(entry_points.names)) or 'none'}."
        )
    sources: dict[str, metadata.EntryPoint] = {}
    for ep in entry_points:
        if (allowed is not None and ep.name not in allowed) or pm.has_plugin(ep.name):
            continue  # a name installed twice (say editable and regular): the first one wins
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as e:  # any error in a plugin's module is that plugin's fault
            raise InfraError(
                f"The plugin {ep.name!r} ({_origin(ep)}) failed to load: "
                f"{type(e).__name__}: {e}. Reinstall or upgrade that distribution, uninstall "
                f"it, or leave it out by listing the plugins to load in {PLUGINS_ENV}."
            ) from e
        sources[ep.name] = ep
    try:
        pm.check_pending()  # a misspelt hook name would otherwise be ignored silently
    except pluggy.PluginValidationError as e:
        name = pm.get_name(e.plugin) or "?"
        raise InfraError(
            f"The plugin {name!r} ({_origin(sources.get(name))}) is invalid: {e}. Check its hook "
            "names and signatures against docs/plugins.md."
        ) from e
    if os.environ.get(TRACE_ENV):
        pm.add_hookcall_monitoring(_trace_before, _trace_after)
    return Hooks(pm, sources)


def _allowed(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def _origin(ep: metadata.EntryPoint | None) -> str:
    if ep is None:
        return "registered in-process"
    dist = f"distribution {ep.dist.name} {ep.dist.version}" if ep.dist else "distribution unknown"
    return f"module {ep.value}, {dist}"


def _add(found: dict[str, Any], name: str, value: object, what: str) -> None:
    if name in found:
        raise InfraError(
            f"Two plugins register the {what} {name!r}. Uninstall one, or load only one of "
            f"them with {PLUGINS_ENV} (see `pollinator plugins`)."
        )
    found[name] = value


def _trace_before(
    hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    plugins = ", ".join(impl.plugin_name for impl in hook_impls)
    print(f"[hook] {hook_name}({', '.join(kwargs)}) -> {plugins}", file=sys.stderr)


def _trace_after(
    outcome: pluggy.Result[Any],
    hook_name: str,
    hook_impls: Sequence[pluggy.HookImpl],
    kwargs: Mapping[str, Any],
) -> None:
    result = outcome.exception or outcome.get_result()
    print(f"[hook] {hook_name} returned {result!r}", file=sys.stderr)


def open_storage(url: str | os.PathLike[str] | None = None) -> StorageLocation:
    """Resolve a storage URL (a path, ``file://``, ``s3://``, ``memory://`` or a plugin's
    scheme; None: the AWS_S3_* environment) through the plugins' ``pollinator_storage`` hook."""
    if url is None:
        url = storage_url_from_env()
        if url is None:
            raise InfraError(
                "No file storage is configured: set AWS_S3_ENDPOINT, AWS_S3_BUCKET, "
                "AWS_S3_ACCESSKEY and AWS_S3_SECRETKEY as for the official tools, or "
                "POLLINATOR_STORAGE (`pollinator run --backend local` needs none)."
            )
    location = hooks().storage(os.fspath(url))
    if location is None:
        raise UsageError(f"no storage plugin handles {url!s} (built in: s3://, file://, memory://)")
    return location
