"""Plugins: everything in the ``pollinator`` entry-point group, built-ins included.

Plugins load on the first :func:`hooks` call, not at import, so commands that need none (and
``pollinator --help``) never import them. ``POLLINATOR_PLUGINS=a,b`` loads only the named entry
points of third parties (empty: none), while Pollinator's own always load;
``POLLINATOR_TRACE_HOOKS=1`` prints every hook call to stderr. What a plugin registers is checked
as it registers, so a mistake is one paragraph naming the plugin, not a traceback later.
:class:`Hooks` wraps pluggy's untyped calls so that callers are type-checked.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import pluggy

from pollinator_core.errors import InfraError, UsageError
from pollinator_core.plugins import hookspecs
from pollinator_core.storage.location import StorageLocation, storage_url_from_env

if TYPE_CHECKING:
    from pollinator_core.colonies.models import FunctionSpec
    from pollinator_core.plugins.backend import Backend
    from pollinator_core.plugins.executors import ExecutorType
    from pollinator_core.plugins.settings import SettingsSection
    from pollinator_core.project.loader import Project

ENTRY_POINT_GROUP = "pollinator"
PLUGINS_ENV = "POLLINATOR_PLUGINS"
TRACE_ENV = "POLLINATOR_TRACE_HOOKS"
#: the distribution whose plugins always load: Pollinator's own
BUILTIN_DISTRIBUTION = "pollinator"
T = TypeVar("T")


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str  # "" for a plugin registered in-process rather than installed
    version: str
    module: str
    hooks: tuple[str, ...]
    backends: tuple[str, ...] = ()
    executor_types: tuple[str, ...] = ()
    storage_schemes: tuple[str, ...] = ()
    #: section name -> (key, default, help) for each setting
    settings: dict[str, list[tuple[str, str, str]]] = attrs.Factory(dict)


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
        from pollinator_core.plugins.backend import Backend

        return self._collect("pollinator_register_backends", Backend, "backend")  # type: ignore[type-abstract]

    def executor_types(self) -> dict[str, ExecutorType]:
        """Every executor type (``docker``, ``slurm``, ``k8s`` ...), by name."""
        from pollinator_core.plugins.executors import ExecutorType

        return self._collect("pollinator_register_executors", ExecutorType, "executor type")

    def settings(self) -> dict[str, SettingsSection[Any]]:
        """Every plugin settings section (``local``, ``slurm`` ...), by name."""
        from pollinator_core.plugins.settings import SettingsSection

        return self._collect("pollinator_register_settings", SettingsSection, "settings section")

    def storage_schemes(self) -> dict[str, list[str]]:
        """The URL schemes each plugin's storage handles, by plugin."""
        found: dict[str, list[str]] = {}
        for impl in self.pm.hook.pollinator_storage_schemes.get_hookimpls():
            schemes = impl.function()
            if not isinstance(schemes, list | tuple) or not all(
                isinstance(s, str) for s in schemes
            ):
                raise InfraError(
                    f"The plugin {impl.plugin_name!r} "
                    f"({_origin(self._sources.get(impl.plugin_name))}) returned {schemes!r} "
                    "from pollinator_storage_schemes, which must be a list of scheme names. "
                    "Upgrade or uninstall that plugin."
                )
            found[impl.plugin_name] = list(schemes)
        return found

    def _collect(
        self, hook: str, kind: type[T], what: str, owners: dict[str, str] | None = None
    ) -> dict[str, T]:
        """Call ``hook`` on each plugin on its own, so that what it registers is checked at
        once and a mistake names the plugin (and its distribution) that made it. ``owners``
        collects which plugin registered each name."""
        found: dict[str, T] = {}
        owners = {} if owners is None else owners
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            plugin = impl.plugin_name

            def register(item: object, plugin: str = plugin) -> None:
                if not isinstance(item, kind):
                    raise InfraError(
                        f"The plugin {plugin!r} ({_origin(self._sources.get(plugin))}) "
                        f"registered {type(item).__name__} {item!r} through {hook}, which takes "
                        f"a {kind.__name__}. Upgrade or uninstall that plugin, or leave it out "
                        f"with {PLUGINS_ENV}."
                    )
                name = str(getattr(item, "name", ""))
                if name in found:
                    raise InfraError(
                        f"Two plugins register the {what} {name!r} ({owners[name]!r} and "
                        f"{plugin!r}). Uninstall one, or load only one of them with "
                        f"{PLUGINS_ENV} (see `pollinator plugins`)."
                    )
                found[name] = item
                owners[name] = plugin

            impl.function(register=register)
        return found

    def plugin_info(self) -> list[PluginInfo]:
        """What ``pollinator plugins`` shows: each plugin, where it comes from, what it does."""
        from pollinator_core.plugins.backend import Backend
        from pollinator_core.plugins.executors import ExecutorType
        from pollinator_core.plugins.settings import SettingsSection, describe

        by: dict[str, dict[str, str]] = {"backends": {}, "executors": {}, "settings": {}}
        self._collect("pollinator_register_backends", Backend, "backend", by["backends"])  # type: ignore[type-abstract]
        self._collect("pollinator_register_executors", ExecutorType, "executor", by["executors"])
        sections = self._collect(
            "pollinator_register_settings", SettingsSection, "settings", by["settings"]
        )
        schemes = self.storage_schemes()

        def of(kind: str, plugin: str) -> tuple[str, ...]:
            return tuple(sorted(n for n, owner in by[kind].items() if owner == plugin))

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
                    backends=of("backends", name),
                    executor_types=of("executors", name),
                    storage_schemes=tuple(schemes.get(name, ())),
                    settings={s: describe(sections[s]) for s in of("settings", name)},
                )
            )
        return infos


@functools.cache
def hooks() -> Hooks:
    """The plugins of this process, loaded on first use. ``hooks.cache_clear()`` reloads."""
    return load_plugins(_allowed(os.environ.get(PLUGINS_ENV)))


def load_plugins(allowed: frozenset[str] | None = None, *, builtins: bool = True) -> Hooks:
    """Load Pollinator's own plugins and the third-party entry points named in ``allowed``
    (None: all of them) into a new plugin manager. ``builtins=False`` leaves Pollinator's own
    out too: an empty manager, for testing one plugin alone."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    third_party = {ep.name for ep in entry_points if not _builtin(ep)}
    if allowed is not None and (missing := allowed - third_party):
        raise UsageError(
            f"{PLUGINS_ENV} names {', '.join(sorted(missing))}, but no installed third-party "
            f"plugin has that name. Installed: {', '.join(sorted(third_party)) or 'none'} "
            "(the built-in plugins always load)."
        )
    sources: dict[str, metadata.EntryPoint] = {}
    for ep in entry_points:
        chosen = builtins if _builtin(ep) else allowed is None or ep.name in allowed
        if not chosen or pm.has_plugin(ep.name):
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


def _builtin(ep: metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION


def _allowed(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def _origin(ep: metadata.EntryPoint | None) -> str:
    if ep is None:
        return "registered in-process"
    dist = f"distribution {ep.dist.name} {ep.dist.version}" if ep.dist else "distribution unknown"
    return f"module {ep.value}, {dist}"


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
