"""Registering an executor with a colony, as the official executors do.

With the colony owner's key (COLONIES_COLONY_PRVKEY) an executor registers and approves itself
and declares the ``execute`` function. Its own key is kept in its fs dir, so a restarted
executor is the same executor to the server: its record stays (removing it would requeue its
running processes) and it adopts the jobs it left. Without the owner's key, the executor's key
(COLONIES_PRVKEY) must belong to an executor the colony owner registered.

Two shapes of the executor record exist (``capabilities`` objects up to colonies v1.9.4, lists
from v1.9.6): the record sent here carries no capabilities and no location object, so every
server version takes it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pollinator_core.colonies import crypto
from pollinator_core.colonies.client import BadRequest, ColoniesClient, ColoniesError
from pollinator_core.colonies.config import ConfigError, check_private_key
from pollinator_core.colonies.models import Executor, ExecutorState, Function
from pollinator_core.project.funcspec import EXECUTOR_TYPE, FUNCNAME


def register_executor(
    owner: ColoniesClient,
    executor: ColoniesClient,
    colony: str,
    name: str,
    location: str = "",
) -> Executor:
    """Register ``executor``'s key as ``name``, approve it and declare the ``execute``
    function. A record of that name with the same key is kept as it is; one with another key
    (an earlier executor's) is replaced.

    ``owner`` signs as the colony owner.
    """
    try:
        # Asked as the executor itself: the colony owner is no member and may not read it. A
        # refusal means this key is not registered (yet), whatever holds the name.
        current = executor.get_executor(colony, name)
    except ColoniesError:
        current = None
    if current is not None and current.executorid == executor.signer_id:
        if current.state is not ExecutorState.APPROVED:
            owner.approve_executor(colony, name)
        _declare(executor, colony, name)
        return current
    record = Executor(
        executorid=executor.signer_id,
        executortype=EXECUTOR_TYPE,
        executorname=name,
        colonyname=colony,
        locationname=location or socket.gethostname(),
    )
    try:
        existing = owner.add_executor(record)
    except BadRequest:
        # A previous incarnation holds the name (the official server replaces it itself).
        owner.remove_executor(colony, name)
        existing = owner.add_executor(record)
    if existing.state is not ExecutorState.APPROVED:
        owner.approve_executor(colony, name)
    _declare(executor, colony, name)
    return existing


def _declare(executor: ColoniesClient, colony: str, name: str) -> None:
    if not any(f.funcname == FUNCNAME for f in executor.get_functions(colony, name)):
        executor.add_function(
            Function(
                executorname=name,
                executortype=EXECUTOR_TYPE,
                colonyname=colony,
                funcname=FUNCNAME,
            )
        )


def executor_key(fs_dir: Path) -> str:
    """This executor's private key, kept in ``fs_dir/.executor-key`` (mode 0600), created on
    first use: the same identity across restarts."""
    path = fs_dir / ".executor-key"
    try:
        key = path.read_text().strip()
        check_private_key(key, str(path))
        return key
    except (OSError, ConfigError):
        pass
    key = crypto.generate_private_key()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    os.replace(tmp, path)
    return key
