"""Blueprints on the simulator: definitions, instances, schema checks, generations and history,
status, the reconciliation they set in motion, restarts; through the official SDK and through
Pollinator's client."""

from __future__ import annotations

from typing import Any

import pytest
from family_support import COLONY, EXECUTOR_TYPE, RpcRefused, Stack, stack
from pycolonies import ColoniesConnectionError

pytestmark = pytest.mark.timeout(60)
__all__ = ["stack"]  # the fixture, used by name


def _definition(kind: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": f"{kind.lower()}-def", "colonyname": COLONY},
        "spec": {"names": {"kind": kind}, **spec},
    }


def _blueprint(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "colonyname": COLONY, **meta}, "spec": spec}


def _waiting(stack: Stack) -> list[dict[str, Any]]:
    found = stack.rpc(stack.user, "getprocessesmsg", colonyname=COLONY, state=0, count=100)
    return list(found or [])


def test_definitions_and_blueprints_through_the_sdk_and_a_restart(stack: Stack) -> None:
    sdk, owner, user = stack.sdk, stack.owner, stack.user
    with pytest.raises(ColoniesConnectionError, match="not colony owner"):
        sdk.add_blueprint_definition(_definition("Lamp"), user)
    added = sdk.add_blueprint_definition(_definition("Lamp"), owner)
    assert len(added["blueprintdefinitionid"]) == 64
    assert added["spec"]["names"]["kind"] == "Lamp" and added["spec"]["handler"] == {
        "executorType": "",
        "functionName": "",
    }
    with pytest.raises(ColoniesConnectionError, match="duplicate key"):
        sdk.add_blueprint_definition(_definition("Lamp"), owner)
    assert sdk.get_blueprint_definitions(COLONY, user) == [added]
    assert sdk.get_blueprints(COLONY, user) is None  # null for none, as officially

    lamp = sdk.add_blueprint(_blueprint("Lamp", "hall", {"power": False, "level": 0}), user)
    history = sdk.get_blueprint_history(lamp["blueprintid"], user)
    assert [(h["changetype"], h["generation"]) for h in history] == [("create", 0)]
    with pytest.raises(ColoniesConnectionError, match="already exists"):
        sdk.add_blueprint(_blueprint("Lamp", "hall", {}), user)
    with pytest.raises(
        ColoniesConnectionError, match="BlueprintDefinition for kind 'Fan' not found"
    ):
        sdk.add_blueprint(_blueprint("Fan", "fan", {}), user)

    # A spec change bumps the generation and is recorded; the same spec again is not.
    changed = _blueprint("Lamp", "hall", {"power": True, "level": 100})
    assert sdk.update_blueprint(changed, user)["metadata"]["generation"] == 1
    assert sdk.update_blueprint(changed, user)["metadata"]["generation"] == 1
    assert sdk.update_blueprint(changed, user, force_generation=True)["metadata"]["generation"] == 2
    sdk.update_blueprint_status(COLONY, "hall", {"power": True, "seen": "now"}, stack.executor)

    stack.restart()
    got = sdk.get_blueprint(COLONY, "hall", user)
    assert got["spec"] == {"power": True, "level": 100} and got["metadata"]["generation"] == 2
    assert got["status"] == {"power": True, "seen": "now"}
    history = sdk.get_blueprint_history(lamp["blueprintid"], user)
    assert [(h["changetype"], h["generation"]) for h in history] == [
        ("update", 2),
        ("update", 1),
        ("create", 0),
    ]  # newest first
    assert sdk.get_blueprint_history(lamp["blueprintid"], user, limit=1)[0]["generation"] == 2
    assert [b["metadata"]["name"] for b in sdk.get_blueprints(COLONY, user, kind="Lamp")] == [
        "hall"
    ]
    assert sdk.get_blueprints(COLONY, user, kind="Fan") is None

    with pytest.raises(
        ColoniesConnectionError, match="1 blueprint\\(s\\) of kind 'Lamp' still exist"
    ):
        sdk.remove_blueprint_definition(COLONY, "lamp-def", owner)
    sdk.remove_blueprint(COLONY, "hall", user)
    with pytest.raises(ColoniesConnectionError, match="Blueprint not found"):
        sdk.get_blueprint(COLONY, "hall", user)
    sdk.remove_blueprint_definition(COLONY, "lamp-def", owner)
    assert sdk.get_blueprint_definitions(COLONY, owner) == []


def test_specs_are_checked_against_the_schema(stack: Stack) -> None:
    schema = {
        "type": "object",
        "required": ["power"],
        "properties": {
            "power": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["eco", "max"]},
            "levels": {"type": "array", "items": {"type": "number"}},
            "where": {"type": "object", "properties": {"floor": {"type": "number"}}},
        },
    }
    stack.sdk.add_blueprint_definition(_definition("Heater", schema=schema), stack.owner)

    def refused(spec: dict[str, Any]) -> tuple[int, str]:
        with pytest.raises(RpcRefused) as err:
            stack.rpc(stack.user, "addblueprintmsg", blueprint=_blueprint("Heater", "h", spec))
        return err.value.status, err.value.server_message

    prefix = "blueprint validation failed: "
    assert refused({}) == (400, prefix + "required field 'power' is missing")
    assert refused({"power": 1}) == (400, prefix + "field 'power' must be a boolean, got float64")
    assert refused({"power": True, "mode": "hot"}) == (
        400,
        prefix + "field 'mode' must be one of [eco max], got hot",
    )
    assert refused({"power": True, "levels": [1, "x"]}) == (
        400,
        prefix + "field 'levels[1]' must be a number, got string",
    )
    assert refused({"power": True, "where": {"floor": "2"}}) == (
        400,
        prefix + "field 'where.floor' must be a number, got string",
    )
    ok = {"power": True, "mode": "eco", "levels": [1, 2.5], "where": {"floor": 2}, "extra": "x"}
    assert (
        stack.rpc(stack.user, "addblueprintmsg", blueprint=_blueprint("Heater", "h", ok))["spec"]
        == ok
    )


def test_a_handler_gets_a_cron_and_processes_for_each_change(stack: Stack) -> None:
    handler = {"executorType": EXECUTOR_TYPE, "functionName": "reconcile"}
    stack.sdk.add_blueprint_definition(_definition("Door", handler=handler), stack.owner)
    door = _blueprint("Door", "front", {"open": False}, locationname="lab")
    stack.rpc(stack.user, "addblueprintmsg", blueprint=door)

    # The location is created, a reconciliation cron exists, and one process reconciles now.
    location = stack.rpc(stack.user, "getlocationmsg", colonyname=COLONY, name="lab")
    assert location["description"] == "Auto-created from blueprint front"
    crons = stack.rpc(stack.user, "getcronsmsg", colonyname=COLONY, count=10)
    assert [(c["name"], c["interval"], c["waitforprevprocessgraph"]) for c in crons] == [
        ("reconcile-Door-lab", 60, True)
    ]
    [process] = _waiting(stack)
    assert process["spec"]["funcname"] == "reconcile"
    assert process["spec"]["kwargs"] == {"kind": "Door", "blueprintName": "front"}
    assert process["spec"]["conditions"]["locationname"] == "lab"
    assert process["spec"]["maxexectime"] == -1 and process["initiatorname"] == "pollinator"

    stack.restart()
    stack.rpc(stack.user, "updateblueprintmsg", blueprint={**door, "spec": {"open": True}})
    assert len(_waiting(stack)) == 2
    forced = stack.rpc(
        stack.user, "reconcileblueprintmsg", namespace=COLONY, name="front", force=True
    )
    assert forced["spec"]["kwargs"] == {"kind": "Door", "blueprintName": "front", "force": True}
    bp = stack.rpc(stack.user, "getblueprintmsg", namespace=COLONY, name="front")
    assert bp["metadata"]["generation"] == 2 and bp["metadata"]["locationname"] == "lab"

    # Removing the last door there removes the cron and asks the handler to clean up.
    stack.rpc(stack.user, "removeblueprintmsg", namespace=COLONY, name="front")
    assert stack.rpc(stack.user, "getcronsmsg", colonyname=COLONY, count=10) == []
    cleanup = [p for p in _waiting(stack) if p["spec"]["funcname"] == "cleanup"]
    assert [p["spec"]["kwargs"] for p in cleanup] == [{"blueprintName": "front", "kind": "Door"}]
    with pytest.raises(RpcRefused) as err:
        stack.rpc(stack.user, "reconcileblueprintmsg", namespace=COLONY, name="front")
    assert (err.value.status, err.value.server_message) == (404, "Blueprint not found")
