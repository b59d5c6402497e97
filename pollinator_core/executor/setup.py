"""Registering an executor with a colony, as the official executors do.

With the colony owner's key (COLONIES_COLONY_PRVKEY) an executor registers and approves itself
and declares the ``execute`` function. Its own key is kept in its fs dir, so a restarted
executor is the same executor to the server: its record stays (removing it would requeue its
running processes) and it adopts the jobs it left. A key whose executor the server removed is
replaced: the official server never takes it back. Without the owner's key, the executor's key
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
from pollinator_core.colonies.client import (
    AccessDenied,
    BadRequest,
    ColoniesClient,
    ColoniesError,
)
from pollinator_core.colonies.config import ConfigError, check_private_key
from pollinator_core.colonies.models import Executor, ExecutorState, Function
from pollinator_core.project.funcspec import EXECUTOR_TYPE, FUNCNAME

KEY_FILE = ".executor-key"


def register_executor(
    owner: ColoniesClient,
    executor: ColoniesClient,
    colony: str,
    name: str,
    location: str = "",
) -> Executor:
    """Register ``executor``'s key as ``name``, approve it and declare the ``execute``
    function. A record of that name with the same key is kept as it is; one with another key
    (an earlier executor's) is replaced where the server allows it (v1.8.x; later versions
    replace it themselves when they allow re-registration, and refuse the name otherwise).

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
    except BadRequest as exc:
        # The name is taken. Servers up to v1.8.x delete a removed record, so removing the old
        # one frees the name; later ones keep it (UNREGISTERED) and refuse the name for good
        # unless they allow re-registration, which replaces the record by itself. There, a
        # removal would only unregister a live executor of that name (requeuing its work).
        if not owner.version().startswith("v1.8."):
            raise ConfigError(
                f"Executor {name!r} cannot register in colony {colony}: the server refused "
                f"it ({exc.server_message}). The name belongs to another executor, or to one "
                "the server removed: it keeps the name (and the key) of every executor removed, "
                "including one it dropped after not hearing from it for its stale-executor "
                "window (COLONIES_STALE_EXECUTOR_DURATION), unless it runs with "
                "COLONIES_ALLOW_EXECUTOR_REREGISTER=true. Start this executor with a new "
                "--name."
            ) from None
        owner.remove_executor(colony, name)
        existing = owner.add_executor(record)
    if existing.executorname != name or existing.state is ExecutorState.UNREGISTERED:
        # The server answered with the record its key already has: the official server keeps
        # a removed executor's key too, and a key can belong to one executor only.
        raise ConfigError(
            f"Executor {name!r} cannot register in colony {colony}: its key already belongs "
            f"to executor {existing.executorname!r} ({existing.state.name}); the official "
            "server keeps the key of a removed executor too. Start it with a new --fs-dir (the "
            "key is kept there, in .executor-key), or remove that file."
        )
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


def executor_client(base: ColoniesClient, fs_dir: Path, colony: str, name: str) -> ColoniesClient:
    """A sibling of ``base`` signing with executor ``name``'s own key (:func:`executor_key`).

    A kept key that no usable record holds (approved, or pending under ``name``: a
    registration cut short) is replaced by a new one. Its executor was removed, by hand or
    after the stale-executor window; the server requeued that executor's processes, so nothing
    is left to adopt, and the official server never makes the key a member again (a second
    record with it, under another name, is a member or not depending on which of the two
    records the server finds first)."""
    kept = (fs_dir / KEY_FILE).exists()
    client = base.with_key(executor_key(fs_dir))
    if not kept:
        return client
    try:
        # Any record of the key, even a removed one, may list the colony's executors.
        records = [e for e in client.get_executors(colony) if e.executorid == client.signer_id]
    except AccessDenied:
        return client  # the key has no record at all here: it registers as new
    usable = [
        e
        for e in records
        if e.state is ExecutorState.APPROVED
        or (e.state is ExecutorState.PENDING and e.executorname == name)
    ]
    if records and not usable:
        return base.with_key(executor_key(fs_dir, renew=True))
    return client


def executor_key(fs_dir: Path, *, renew: bool = False) -> str:
    """This executor's private key, kept in ``fs_dir/.executor-key`` (mode 0600), created on
    first use (or when ``renew``): the same identity across restarts."""
    path = fs_dir / KEY_FILE
    try:
        key = path.read_text().strip()
        check_private_key(key, str(path))
        if not renew:
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
