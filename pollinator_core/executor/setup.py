"""Registering an executor with a colony, as the official executors do.

With the colony owner's key (COLONIES_COLONY_PRVKEY) an executor registers and approves itself,
replacing a stale record of the same name, and declares the ``execute`` function. Without it,
the executor's key (COLONIES_PRVKEY) must belong to an executor the colony owner registered.
"""

from __future__ import annotations

import socket

from pollinator_core.colonies.client import BadRequest, ColoniesClient
from pollinator_core.colonies.models import Executor, ExecutorState, Function, Location
from pollinator_core.executor.loop import EXECUTOR_TYPE
from pollinator_core.executor.translate import FUNCNAME


def register_executor(
    owner: ColoniesClient,
    executor: ColoniesClient,
    colony: str,
    name: str,
    location: str = "",
) -> Executor:
    """Register ``executor``'s key as ``name`` (replacing a record of that name), approve it
    and declare the ``execute`` function.

    ``owner`` signs as the colony owner.
    """
    record = Executor(
        executorid=executor.signer_id,
        executortype=EXECUTOR_TYPE,
        executorname=name,
        colonyname=colony,
        locationname=location or socket.gethostname(),
        location=Location(desc=location or socket.gethostname()),
    )
    try:
        existing = owner.add_executor(record)
    except BadRequest:
        # A previous incarnation holds the name (the official server replaces it itself).
        owner.remove_executor(colony, name)
        existing = owner.add_executor(record)
    if existing.state is not ExecutorState.APPROVED:
        owner.approve_executor(colony, name)
    if not any(f.funcname == FUNCNAME for f in executor.get_functions(colony, name)):
        executor.add_function(
            Function(
                executorname=name,
                executortype=EXECUTOR_TYPE,
                colonyname=colony,
                funcname=FUNCNAME,
            )
        )
    return existing
