"""``getprocesshistmsg``: a colony's processes in one state submitted in the last N seconds,
optionally only those assigned to one executor, oldest first.

The official handler sends no reply at all to a non-member; this answers 403 as elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rpc import rpc
from .wire import Payload, now_ns, or_null

if TYPE_CHECKING:
    from .server import Simulator

_SECOND = 1_000_000_000


@rpc(
    "getprocesshistmsg",
    "get process history",
    invalid="Failed to get process hist, invalid JSON",
)
async def get_process_hist(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, executor_id = msg.string("colonyname"), msg.string("executorid")
    seconds, state = msg.integer("seconds"), msg.integer("state")
    sim.authz.require_member(signer, colony)
    now = now_ns()
    since = now - seconds * _SECOND
    found = [
        r
        for r in sim.state.processes.values()
        if r.colony == colony
        and r.state == state
        and since <= r.submitted <= now
        and (not executor_id or r.doc["assignedexecutorid"] == executor_id)
    ]
    found.sort(key=lambda r: r.submitted)
    return or_null([r.doc for r in found])
