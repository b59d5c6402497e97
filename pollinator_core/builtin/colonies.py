"""Built-in plugin: ``--backend colonies``, a real Colonies server from the environment."""

from __future__ import annotations

from collections.abc import Callable

from pollinator_core.api import Backend, ColoniesBackend, hookimpl


@hookimpl
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    register(ColoniesBackend())
