"""Locations of a colony (named places with coordinates), their store and their RPCs.

The colony owner adds and removes them; members, approved or not, read them. The ID is the one
the client sends (the official server does not make one). They go with their colony.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .rpc import EMPTY, rpc
from .store import Doc, State
from .wire import ApiError, Payload, or_null

if TYPE_CHECKING:
    from .server import Simulator

KIND = "location"  # record kind in the store


def _key(colony: str, name: str) -> str:
    return f"{colony}\x1f{name}"


def number(value: Any, invalid: str) -> float | int:
    """A JSON number as Go prints a float64 (whole numbers without a fraction)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, invalid)
    return int(value) if float(value).is_integer() and abs(value) < 1e21 else value


class Locations:
    def __init__(self, state: State) -> None:
        self.state = state
        state.colony_listeners.append(self._colony_removed)

    def get(self, colony: str, name: str) -> Doc | None:
        doc: Doc | None = self.state.records[KIND].get(_key(colony, name))
        return doc

    def of_colony(self, colony: str) -> list[Doc]:
        return [d for d in self.state.records[KIND].values() if d["colonyname"] == colony]

    def add(self, doc: Doc) -> None:
        self.state.put_record(KIND, _key(doc["colonyname"], doc["name"]), doc)

    def remove(self, colony: str, name: str) -> None:
        self.state.drop_record(KIND, _key(colony, name))

    def _colony_removed(self, colony: str) -> None:
        for doc in self.of_colony(colony):
            self.remove(colony, doc["name"])


def location_doc(
    location_id: str, name: str, colony: str, description: str, long: float, lat: float
) -> Doc:
    return {
        "locationid": location_id,
        "name": name,
        "colonyname": colony,
        "description": description,
        "long": long,
        "lat": lat,
    }


def _colony(sim: Simulator, name: str) -> None:
    if name not in sim.state.colonies:
        raise ApiError(400, f"Colony with name <{name}> does not exists")


@rpc("addlocationmsg", "add location")
async def add_location(sim: Simulator, signer: str, msg: Payload) -> Any:
    location = msg.object("location")
    if location is None:
        raise ApiError(400, "Failed to add location, location is nil")
    doc = location_doc(
        location.string("locationid"),
        location.string("name"),
        location.string("colonyname"),
        location.string("description"),
        number(location.raw("long"), msg.invalid),
        number(location.raw("lat"), msg.invalid),
    )
    colony, name = doc["colonyname"], doc["name"]
    _colony(sim, colony)
    sim.authz.require_colony_owner(signer, colony)
    if sim.locations.get(colony, name) is not None:
        raise ApiError(
            400, f"A location with name <{name}> already exists in Colony with name <{colony}>"
        )
    sim.locations.add(doc)
    return doc


@rpc("getlocationsmsg", "get locations")
async def get_locations(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _colony(sim, colony)
    sim.authz.require_member(signer, colony, approved=False)
    return or_null(sim.locations.of_colony(colony))


@rpc("getlocationmsg", "get location")
async def get_location(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    _colony(sim, colony)
    sim.authz.require_member(signer, colony, approved=False)
    doc = sim.locations.get(colony, msg.string("name"))
    if doc is None:
        raise ApiError(404, "Failed to get location, location is nil")
    return doc


@rpc("removelocationmsg", "remove location")
async def remove_location(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, name = msg.string("colonyname"), msg.string("name")
    _colony(sim, colony)
    sim.authz.require_colony_owner(signer, colony)
    if sim.locations.get(colony, name) is None:
        raise ApiError(400, f"Location with name <{name}> not found")
    sim.locations.remove(colony, name)
    return EMPTY
