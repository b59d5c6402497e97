"""The Colonies data model as attrs classes, with one cattrs converter for the wire.

Field names are the exact JSON keys of the Colonies protocol. Decoding is Go-style, as the
official server and SDK rely on: keys match case-insensitively, unknown keys are ignored and
``null`` becomes the zero value (Go's ``encoding/json`` semantics). Every field therefore has a
zero default. Times stay RFC 3339 strings so they round-trip to the nanosecond.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

ZERO_TIME = "0001-01-01T00:00:00Z"
T = TypeVar("T")


class ProcessState(enum.IntEnum):
    WAITING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3
    CANCELLED = 4

    @property
    def finished(self) -> bool:
        return self >= ProcessState.SUCCESS


class ExecutorState(enum.IntEnum):
    PENDING = 0
    APPROVED = 1
    REJECTED = 2
    UNREGISTERED = 3


class AttributeType(enum.IntEnum):
    IN = 0
    OUT = 1
    ERR = 2
    ENV = 3


# --- function specs ------------------------------------------------------------------------


@attrs.define
class Gpu:
    name: str = ""
    mem: str = ""
    count: int = 0
    nodecount: int = 0


@attrs.define
class Conditions:
    colonyname: str = ""
    executornames: list[str] = attrs.Factory(list)
    executortype: str = ""
    dependencies: list[str] = attrs.Factory(list)
    nodes: int = 0
    cpu: str = ""
    processes: int = 0
    processespernode: int = 0
    mem: str = ""
    storage: str = ""
    gpu: Gpu = attrs.Factory(Gpu)
    walltime: int = 0


@attrs.define
class SnapshotMount:
    snapshotid: str = ""
    label: str = ""
    dir: str = ""
    keepfiles: bool = False
    keepsnapshot: bool = False


@attrs.define
class ConflictPolicy:
    keeplocal: bool = False


@attrs.define
class OnConflicts:
    onstart: ConflictPolicy = attrs.Factory(ConflictPolicy)
    onclose: ConflictPolicy = attrs.Factory(ConflictPolicy)


@attrs.define
class SyncDir:
    label: str = ""
    dir: str = ""
    keepfiles: bool = False
    onconflicts: OnConflicts = attrs.Factory(OnConflicts)


@attrs.define
class Fs:
    mount: str = ""
    snapshots: list[SnapshotMount] = attrs.Factory(list)
    dirs: list[SyncDir] = attrs.Factory(list)


@attrs.define
class FunctionSpec:
    nodename: str = ""
    funcname: str = ""
    args: list[Any] = attrs.Factory(list)
    kwargs: dict[str, Any] = attrs.Factory(dict)
    priority: int = 0
    maxwaittime: int = 0
    maxexectime: int = 0
    maxretries: int = 0
    conditions: Conditions = attrs.Factory(Conditions)
    label: str = ""
    fs: Fs = attrs.Factory(Fs)
    env: dict[str, str] = attrs.Factory(dict)


@attrs.define
class WorkflowSpec:
    colonyname: str = ""
    functionspecs: list[FunctionSpec] = attrs.Factory(list)


# --- processes -----------------------------------------------------------------------------


@attrs.define
class Attribute:
    attributeid: str = ""
    targetid: str = ""
    targetcolonyname: str = ""
    targetprocessgraphid: str = ""
    attributetype: AttributeType = AttributeType.IN
    key: str = ""
    value: str = ""


@attrs.define
class Process:
    processid: str = ""
    initiatorid: str = ""
    initiatorname: str = ""
    assignedexecutorid: str = ""
    isassigned: bool = False
    state: ProcessState = ProcessState.WAITING
    prioritytime: int = 0
    submissiontime: str = ZERO_TIME
    starttime: str = ZERO_TIME
    endtime: str = ZERO_TIME
    waitdeadline: str = ZERO_TIME
    execdeadline: str = ZERO_TIME
    retries: int = 0
    attributes: list[Attribute] = attrs.Factory(list)
    spec: FunctionSpec = attrs.Factory(FunctionSpec)
    waitforparents: bool = False
    parents: list[str] = attrs.Factory(list)
    children: list[str] = attrs.Factory(list)
    processgraphid: str = ""
    # "in" is a Python keyword: metadata["json"] names the wire key
    in_: list[Any] = attrs.field(factory=list, metadata={"json": "in"})
    out: list[Any] = attrs.field(factory=list)
    errors: list[str] = attrs.Factory(list)


@attrs.define
class ProcessGraph:
    processgraphid: str = ""
    initiatorid: str = ""
    initiatorname: str = ""
    colonyname: str = ""
    rootprocessids: list[str] = attrs.Factory(list)
    state: ProcessState = ProcessState.WAITING
    submissiontime: str = ZERO_TIME
    starttime: str = ZERO_TIME
    endtime: str = ZERO_TIME
    processids: list[str] = attrs.Factory(list)
    nodes: list[dict[str, Any]] = attrs.Factory(list)
    edges: list[dict[str, Any]] = attrs.Factory(list)


@attrs.define
class Log:
    processid: str = ""
    colonyname: str = ""
    executorname: str = ""
    message: str = ""
    timestamp: int = 0  # UTC nanoseconds since the epoch, stamped by the server


# --- colonies, users, executors, functions -------------------------------------------------


@attrs.define
class Colony:
    colonyid: str = ""
    name: str = ""


@attrs.define
class User:
    colonyname: str = ""
    userid: str = ""
    name: str = ""
    email: str = ""
    phone: str = ""


@attrs.define
class Location:
    long: float = 0.0
    lat: float = 0.0
    desc: str = ""


def _entries(value: Any) -> list[dict[str, Any]]:
    """``capabilities.hardware``/``software``: one object up to colonies v1.9.4, a list of them
    from v1.9.6; read either as a list."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise TypeError(f"expected an object or a list of objects, got {type(value).__name__}")


@attrs.define
class Capabilities:
    hardware: list[dict[str, Any]] = attrs.Factory(list)
    software: list[dict[str, Any]] = attrs.Factory(list)


@attrs.define
class Executor:
    executorid: str = ""
    executortype: str = ""
    executorname: str = ""
    colonyname: str = ""
    state: ExecutorState = ExecutorState.PENDING
    requirefuncreg: bool = False
    commissiontime: str = ZERO_TIME
    lastheardfromtime: str = ZERO_TIME
    locationname: str = ""
    location: Location = attrs.Factory(Location)
    capabilities: Capabilities = attrs.Factory(Capabilities)


@attrs.define
class Function:
    functionid: str = ""
    executorname: str = ""
    executortype: str = ""
    colonyname: str = ""
    funcname: str = ""
    counter: int = 0
    minwaittime: float = 0.0
    maxwaittime: float = 0.0
    minexectime: float = 0.0
    maxexectime: float = 0.0
    avgwaittime: float = 0.0
    avgexectime: float = 0.0


# --- CFS: file records and snapshots -------------------------------------------------------


@attrs.define
class S3Object:
    server: str = ""
    port: int = 0
    tls: bool = False
    accesskey: str = ""
    secretkey: str = ""
    region: str = ""
    encryptionkey: str = ""
    encryptionalg: str = ""
    object: str = ""
    bucket: str = ""


@attrs.define
class Reference:
    protocol: str = ""
    s3object: S3Object = attrs.Factory(S3Object)


@attrs.define
class File:
    fileid: str = ""
    colonyname: str = ""
    label: str = ""
    name: str = ""
    size: int = 0
    sequencenr: int = 0
    checksum: str = ""
    checksumalg: str = ""
    ref: Reference = attrs.Factory(Reference)
    added: str = ZERO_TIME


@attrs.define
class FileData:
    """One row of ``getfilesmsg``: the latest revision of each name under a label."""

    name: str = ""
    checksum: str = ""
    size: int = 0
    s3filename: str = ""


@attrs.define
class Label:
    name: str = ""
    files: int = 0


@attrs.define
class Snapshot:
    snapshotid: str = ""
    colonyname: str = ""
    label: str = ""
    name: str = ""
    fileids: list[str] = attrs.Factory(list)
    added: str = ZERO_TIME


# --- the converter -------------------------------------------------------------------------

converter = cattrs.Converter()


def _json_name(a: attrs.Attribute[Any]) -> str:
    return str(a.metadata.get("json", a.name))


def _structure_factory(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
    fields = attrs.fields(cls)
    renames = {a.name: override(rename=_json_name(a)) for a in fields if "json" in a.metadata}
    build = make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]
    by_lower = {_json_name(a).lower(): _json_name(a) for a in fields}

    def structure(data: Any, _: type[Any]) -> Any:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        clean = {}
        for key, value in data.items():
            name = by_lower.get(str(key).lower())
            if name is not None and value is not None:
                clean[name] = value
        return build(clean, cls)

    return structure


def _unstructure_factory(cls: type[Any]) -> Callable[[Any], Any]:
    renames = {
        a.name: override(rename=_json_name(a)) for a in attrs.fields(cls) if "json" in a.metadata
    }
    return make_dict_unstructure_fn(cls, converter, **renames)  # type: ignore[arg-type]


converter.register_structure_hook_factory(attrs.has, _structure_factory)
converter.register_unstructure_hook_factory(attrs.has, _unstructure_factory)


def _loose_str(value: Any, _: type[Any]) -> str:
    # Go decodes a JSON number into a string field as an error; we accept the common
    # "number where a string was expected" from hand-written specs but refuse containers.
    if isinstance(value, dict | list):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


converter.register_structure_hook(str, _loose_str)


def _capabilities(data: Any, _: type[Any]) -> Capabilities:
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object for Capabilities, got {type(data).__name__}")
    values = {str(k).lower(): v for k, v in data.items() if v is not None}
    return Capabilities(
        hardware=_entries(values.get("hardware", [])), software=_entries(values.get("software", []))
    )


converter.register_structure_hook(Capabilities, _capabilities)


def to_dict(obj: Any) -> Any:
    """An attrs model (or a list of them) as JSON-ready plain data."""
    return converter.unstructure(obj)


class ModelError(ValueError):
    """JSON that does not fit the model; the message names each offending path."""


def _structure(data: Any, cl: Any) -> Any:
    try:
        return converter.structure(data, cl)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            detail = "; ".join(cattrs.transform_error(exc))
        else:
            detail = str(exc)
        raise ModelError(detail) from None


def from_dict(cls: type[T], data: Any) -> T:
    """Decode plain JSON data into ``cls`` Go-style (see the module docstring)."""
    return _structure(data, cls)  # type: ignore[no-any-return]


def from_list(cls: type[T], data: Any) -> list[T]:
    """Decode a JSON list of ``cls``; ``null`` is an empty list, as the server often sends."""
    return [] if data is None else _structure(data, list[cls])  # type: ignore[valid-type]


def dumps(obj: Any, *, indent: int | None = None) -> str:
    return json.dumps(to_dict(obj), indent=indent, sort_keys=indent is not None)
