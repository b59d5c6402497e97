"""Blueprints: desired-state documents of a declared kind, reconciled by executors.

A blueprint definition (added by the colony owner) declares a kind, an optional schema for the
blueprints' ``spec``, and the handler (executor type and function) that reconciles them. A
blueprint is an instance of a kind: its ``spec`` is checked against the schema, every spec change
bumps its generation and is recorded in its history, and its ``status`` is what reconcilers
report. This module holds the store and the document rules; blueprint_handlers the RPCs.

Documents are kept in the shape the official server returns (Go's field names and omitempty
rules), normalised from whatever the client sent the way Go's decoder reads it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .store import Doc, State
from .wire import ApiError, Payload, fmt_time, now_ns

DEF_KIND, BP_KIND, HISTORY_KIND = "blueprintdefinition", "blueprint", "blueprinthistory"


def _key(*parts: str) -> str:
    return "\x1f".join(parts)


# --- reading documents as Go's decoder does ---------------------------------------------------


def _map(value: Any, invalid: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, invalid)
    return value


def _string_map(value: Any, invalid: str) -> dict[str, str] | None:
    found = _map(value, invalid)
    if found is not None and not all(isinstance(v, str) for v in found.values()):
        raise ApiError(400, invalid)
    return found


def metadata(meta: Payload | None) -> Doc:
    m = meta or Payload({}, "")
    doc: Doc = {"name": m.string("name"), "colonyname": m.string("colonyname")}
    if m.string("locationname"):
        doc["locationname"] = m.string("locationname")
    for key in ("labels", "annotations"):
        found = _string_map(m.raw(key), m.invalid)
        if found:
            doc[key] = found
    if m.integer("generation"):
        doc["generation"] = m.integer("generation")
    doc["createdAt"] = fmt_time(m.time("createdat"))
    doc["updatedAt"] = fmt_time(m.time("updatedat"))
    if m.string("lastreconciliationprocess"):
        doc["lastReconciliationProcess"] = m.string("lastreconciliationprocess")
    doc["lastReconciliationTime"] = fmt_time(m.time("lastreconciliationtime"))
    return doc


def blueprint(bp: Payload) -> Doc:
    doc: Doc = {
        "blueprintid": bp.string("blueprintid"),
        "kind": bp.string("kind"),
        "metadata": metadata(bp.object("metadata")),
        "spec": _map(bp.raw("spec"), bp.invalid) or {},
    }
    status = _map(bp.raw("status"), bp.invalid)
    if status:
        doc["status"] = status
    return doc


def set_generation(bp: Doc, generation: int) -> None:
    """Set metadata.generation where Go puts it (before the times), or drop it when 0."""
    items = [(k, v) for k, v in bp["metadata"].items() if k != "generation"]
    if generation:
        at = next(i for i, (k, _) in enumerate(items) if k == "createdAt")
        items.insert(at, ("generation", generation))
    bp["metadata"] = dict(items)


def _property(prop: Payload) -> Doc:
    doc: Doc = {}
    for key in ("type", "description"):
        if prop.string(key):
            doc[key] = prop.string(key)
    if prop.array("enum"):
        doc["enum"] = prop.array("enum")
    if prop.raw("default") is not None:
        doc["default"] = prop.raw("default")
    properties = _properties(prop.raw("properties"), prop.invalid)
    if properties:
        doc["properties"] = properties
    items = prop.object("items")
    if items is not None:
        doc["items"] = _property(items)
    return doc


def _properties(value: Any, invalid: str) -> dict[str, Doc]:
    """A map of property names (kept as written: they are the spec's keys) to properties."""
    found: dict[str, Doc] = {}
    for name, prop in (_map(value, invalid) or {}).items():
        found[name] = _property(Payload(_map(prop, invalid) or {}, invalid))
    return found


def definition(sd: Payload) -> Doc:
    spec = sd.object("spec") or Payload({}, sd.invalid)
    names = spec.object("names") or Payload({}, sd.invalid)
    handler = spec.object("handler") or Payload({}, sd.invalid)
    names_doc: Doc = {
        "kind": names.string("kind"),
        "listKind": names.string("listkind"),
        "singular": names.string("singular"),
        "plural": names.string("plural"),
    }
    if names.strings("shortnames"):
        names_doc["shortNames"] = names.strings("shortnames")
    spec_doc: Doc = {
        "group": spec.string("group"),
        "version": spec.string("version"),
        "names": names_doc,
        "scope": spec.string("scope"),
    }
    schema = spec.object("schema")
    if schema is not None:
        schema_doc: Doc = {}
        if schema.string("type"):
            schema_doc["type"] = schema.string("type")
        properties = _properties(schema.raw("properties"), schema.invalid)
        if properties:
            schema_doc["properties"] = properties
        if schema.strings("required"):
            schema_doc["required"] = schema.strings("required")
        spec_doc["schema"] = schema_doc
    handler_doc: Doc = {
        "executorType": handler.string("executortype"),
        "functionName": handler.string("functionname"),
    }
    if handler.integer("reconcileinterval"):
        handler_doc["reconcileInterval"] = handler.integer("reconcileinterval")
    spec_doc["handler"] = handler_doc
    return {
        "blueprintdefinitionid": sd.string("blueprintdefinitionid"),
        "kind": sd.string("kind"),
        "metadata": metadata(sd.object("metadata")),
        "spec": spec_doc,
    }


# --- checking a blueprint against its kind's schema --------------------------------------------


def _go_type(value: Any) -> str:
    """The name Go's %T prints for a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _go_value(value: Any) -> str:
    """A decoded JSON value as Go's %v prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e21 else repr(number)
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    """Go's == on two decoded JSON scalars: same type and value (never true for containers)."""
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return _go_type(a) == _go_type(b) and a == b


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_ARTICLE = {"string": "a", "number": "a", "boolean": "a", "object": "an", "array": "an"}


def _check_field(name: str, value: Any, prop: Doc) -> None:
    kind = prop.get("type", "")
    if kind in _TYPES and not _TYPES[kind](value):
        raise ValueError(f"field '{name}' must be {_ARTICLE[kind]} {kind}, got {_go_type(value)}")
    if kind == "array" and "items" in prop:
        for i, item in enumerate(value):
            _check_field(f"{name}[{i}]", item, prop["items"])
    enum = prop.get("enum") or []
    if enum and not any(_same(value, allowed) for allowed in enum):
        raise ValueError(f"field '{name}' must be one of {_go_value(enum)}, got {_go_value(value)}")
    if kind == "object" and prop.get("properties"):
        for nested, nested_value in value.items():
            if nested in prop["properties"]:
                _check_field(f"{name}.{nested}", nested_value, prop["properties"][nested])


def validate(bp: Doc, schema: Doc) -> None:
    """Raise ApiError(400) when the blueprint's spec breaks its kind's schema."""
    spec = bp["spec"]
    try:
        for required in schema.get("required", []):
            if required not in spec:
                raise ValueError(f"required field '{required}' is missing")
        for name, value in spec.items():
            if name in schema.get("properties", {}):
                _check_field(name, value, schema["properties"][name])
    except ValueError as err:
        raise ApiError(400, f"blueprint validation failed: {err}") from None


def _canonical(value: Any) -> str:
    """JSON text in which equal decoded values are equal (Go decodes every number as float64)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True)


def spec_changed(old: Doc, new: Doc) -> bool:
    return _canonical(old.get("spec") or {}) != _canonical(new.get("spec") or {})


# --- the store ---------------------------------------------------------------------------------


class Blueprints:
    """Definitions by (colony, name), blueprints by ID, and each blueprint's history. Like the
    official server, removing a colony leaves its blueprints and definitions in place."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.definitions: dict[str, Doc] = state.records[DEF_KIND]
        self.blueprints: dict[str, Doc] = state.records[BP_KIND]
        self._history: dict[str, list[Doc]] = {}
        for doc in sorted(state.records[HISTORY_KIND].values(), key=lambda d: d["seq"]):
            self._history.setdefault(doc["entry"]["blueprintid"], []).append(doc["entry"])
        self._seq = 1 + max((d["seq"] for d in state.records[HISTORY_KIND].values()), default=0)

    # definitions

    def definition(self, colony: str, name: str) -> Doc | None:
        return self.definitions.get(_key(colony, name))

    def definitions_of(self, colony: str) -> list[Doc]:
        found = [d for d in self.definitions.values() if d["metadata"]["colonyname"] == colony]
        return sorted(found, key=lambda d: d["metadata"]["name"])

    def definition_for(self, colony: str, kind: str) -> Doc | None:
        """The definition of a kind in a colony (the first by name)."""
        return next(
            (d for d in self.definitions_of(colony) if d["spec"]["names"]["kind"] == kind), None
        )

    def any_definition_for(self, kind: str) -> Doc | None:
        """The official server looks a kind up across all colonies when it reconciles."""
        return next(
            (d for d in self.definitions.values() if d["spec"]["names"]["kind"] == kind), None
        )

    def add_definition(self, doc: Doc) -> None:
        meta = doc["metadata"]
        if self.definition(meta["colonyname"], meta["name"]) is not None:
            raise ApiError(
                500,
                "pq: duplicate key value violates unique constraint "
                '"prod_blueprintdefinitions_colony_name_name_key"',
            )
        self.state.put_record(DEF_KIND, _key(meta["colonyname"], meta["name"]), doc)

    def remove_definition(self, colony: str, name: str) -> None:
        self.state.drop_record(DEF_KIND, _key(colony, name))

    # blueprints

    def by_name(self, colony: str, name: str) -> Doc | None:
        for doc in self.blueprints.values():
            if (doc["metadata"]["colonyname"], doc["metadata"]["name"]) == (colony, name):
                return doc
        return None

    def of_colony(self, colony: str, kind: str = "", location: str | None = None) -> list[Doc]:
        found = [
            d
            for d in self.blueprints.values()
            if d["metadata"]["colonyname"] == colony
            and (not kind or d["kind"] == kind)
            and (
                location is None
                or d["metadata"].get("locationname", "").lower() == location.lower()
            )
        ]
        return sorted(found, key=lambda d: d["metadata"]["name"])

    def save(self, doc: Doc) -> None:
        self.state.put_record(BP_KIND, doc["blueprintid"], doc)

    def remove(self, blueprint_id: str) -> None:
        self.state.drop_record(BP_KIND, blueprint_id)

    # history

    def record(self, bp: Doc, changed_by: str, change: str) -> None:
        entry: Doc = {
            "historyid": str(uuid.uuid4()),
            "blueprintid": bp["blueprintid"],
            "kind": bp["kind"],
            "namespace": bp["metadata"]["colonyname"],
            "name": bp["metadata"]["name"],
            "generation": bp["metadata"].get("generation", 0),
            "spec": json.loads(json.dumps(bp["spec"])),
        }
        if bp.get("status"):
            entry["status"] = json.loads(json.dumps(bp["status"]))
        entry["timestamp"] = fmt_time(now_ns())
        entry["changedby"] = changed_by
        entry["changetype"] = change
        self._history.setdefault(bp["blueprintid"], []).append(entry)
        self.state.put_record(HISTORY_KIND, entry["historyid"], {"seq": self._seq, "entry": entry})
        self._seq += 1

    def history(self, blueprint_id: str, limit: int) -> list[Doc]:
        newest_first = list(reversed(self._history.get(blueprint_id, [])))
        return newest_first[:limit] if limit > 0 else newest_first
