"""A plugin manager with only the plugins a test names: to call one plugin's hooks alone.

::

    hooks = only_plugins(mine=my_plugin)
    hooks.adjust_spec(project, spec)          # pollinator_function_spec
    hooks.executor_types()["spool"]           # pollinator_register_executors, checked
"""

from __future__ import annotations

from types import ModuleType

from pollinator_core.plugins.manager import Hooks, load_plugins


def only_plugins(*, builtins: bool = False, **plugins: ModuleType | object) -> Hooks:
    """Hooks of ``plugins`` (name=module), registered as an entry point would register them,
    and nothing installed (with ``builtins``, Pollinator's own plugins too)."""
    hooks = load_plugins(frozenset(), builtins=builtins)
    for name, plugin in plugins.items():
        hooks.pm.register(plugin, name=name)
    hooks.pm.check_pending()
    return hooks
