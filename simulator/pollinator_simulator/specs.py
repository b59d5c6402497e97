"""What the function-spec model does not carry (channel names), and workflow specs kept as JSON
text by crons and generators: reading them as the official server does, checking them, and
starting them as process graphs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models

from .store import Doc
from .wire import ApiError

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

BAD_DEPENDENCIES = (
    "Failed to submit workflow, invalid dependencies, are you depending on a nodename that does "
    "not exits?"
)


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """A field of a JSON object matched case-insensitively, as Go's decoder matches it."""
    for key, value in obj.items():
        if str(key).lower() == name:
            return value
    return None


def spec_channels(spec: Any) -> list[str]:
    """The channel names of a function spec as sent; ValueError when they are not strings."""
    if not isinstance(spec, Mapping):
        return []
    names = _field(spec, "channels")
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("channels must be a list of names")
    return names


def workflow_channels(workflow: Any) -> list[list[str]]:
    """The channel names of each function spec of a workflow spec as sent."""
    if not isinstance(workflow, Mapping):
        return []
    specs = _field(workflow, "functionspecs")
    return [spec_channels(s) for s in specs] if isinstance(specs, list) else []


def parse_workflow(text: str) -> tuple[models.WorkflowSpec, list[list[str]]]:
    """A workflow spec from JSON text; ValueError (worded like Go's decoder where it matters)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):
            raise ValueError("unexpected end of JSON input") from None
        where = "looking for beginning of value" if err.msg == "Expecting value" else "in JSON"
        raise ValueError(f"invalid character {text[err.pos]!r} {where}") from None
    if not isinstance(data, dict):
        raise ValueError("json: cannot unmarshal the workflow spec: not a JSON object")
    try:
        return models.from_dict(models.WorkflowSpec, data), workflow_channels(data)
    except ValueError as err:
        raise ValueError(f"json: cannot unmarshal the workflow spec: {err}") from None


def check_dependencies(workflow: models.WorkflowSpec) -> None:
    """Every dependency names a node of the workflow (400 otherwise)."""
    nodes = {spec.nodename for spec in workflow.functionspecs}
    for spec in workflow.functionspecs:
        if any(dep not in nodes for dep in spec.conditions.dependencies):
            raise ApiError(400, BAD_DEPENDENCIES)


def initiator_name(sim: Simulator, colony: str, signer: str) -> str | None:
    """The name of the executor (any colony) or user (this colony) with the signer's ID."""
    executor = sim.state.executor_by_id.get(signer)
    if executor is not None:
        return str(executor["executorname"])
    user = sim.state.user_by_id(colony, signer)
    return None if user is None else str(user["name"])


def launch(
    sim: Simulator,
    workflow: models.WorkflowSpec,
    channels: Sequence[Sequence[str]],
    initiator_id: str,
    *,
    args: Sequence[Any] = (),
    root_input: Sequence[Any] = (),
) -> Doc:
    """Start a workflow as a process graph on behalf of ``initiator_id`` (who must still resolve
    to a name). Root processes take ``args`` instead of their own args and kwargs when there are
    any (the packed arguments of a generator), and ``root_input`` as their input (the leaves'
    output of a cron's previous run). Raises ApiError."""
    name = initiator_name(sim, workflow.colonyname, initiator_id)
    if name is None:
        raise ApiError(500, "Could not derive InitiatorName")
    roots = [spec for spec in workflow.functionspecs if not spec.conditions.dependencies]
    if args:
        for spec in roots:
            spec.args = list(args)
            spec.kwargs = {}
    graph = sim.engine.submit_workflow(workflow, initiator_id, name, channels)
    if root_input:
        for pid in graph["rootprocessids"]:
            rec = sim.state.processes[pid]
            rec.doc["in"] = list(root_input)
            sim.state.save_process(rec)
    return graph
