"""RPC handlers for CFS metadata: file records (with revisions), labels and snapshots.

The server never touches file bytes; clients move them to and from S3 themselves. Label queries
reproduce the official SQL (``LIKE name%`` / ``LIKE name/%``, wildcards included), and one
quirk: an exact label query returns nothing when the label itself holds no file, even if
sub-labels do, so a snapshot of such a label is empty on the official server and here alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pollinator_core.colonies import models

from .rpc import EMPTY, rpc
from .store import Doc
from .wire import (
    ApiError,
    Payload,
    fmt_time,
    has_nul,
    like,
    now_ns,
    or_null,
    parse_time,
    random_id,
)

if TYPE_CHECKING:
    from .server import Simulator


def _latest(sim: Simulator, colony: str, label: str, name: str) -> Doc | None:
    ids = sim.state.labels.get((colony, label), {}).get(name)
    return sim.state.files[ids[-1]] if ids else None


def _label_doc(sim: Simulator, colony: str, label: str) -> Doc:
    revisions = sum(len(ids) for ids in sim.state.labels[(colony, label)].values())
    return {"name": label, "files": revisions}


def _labels(sim: Simulator, colony: str, name: str, exact: bool) -> list[Doc] | None:
    """getfilelabelsmsg's answer: all labels, ``LIKE name%``, or the label itself plus
    ``LIKE name/%``. These are SQL LIKE patterns there, so ``_`` and ``%`` in ``name`` match
    any character(s): ``/p/a_b/src`` also lists ``/p/a-b/src/sub``. (The official server
    returns exact matches in Go map order; here they are sorted.)"""
    names = sorted(label for c, label in sim.state.labels if c == colony)
    if name == "":
        chosen = names
    elif not exact:
        chosen = [label for label in names if like(name + "%", label)]
    else:
        if (colony, name) not in sim.state.labels:
            return None
        chosen = [label for label in names if label == name or like(name + "/%", label)]
    return or_null([_label_doc(sim, colony, label) for label in chosen])


# --- files ------------------------------------------------------------------------------------


@rpc("addfilemsg", "add file", invalid="Failed to add log, invalid JSON")
async def add_file(sim: Simulator, signer: str, msg: Payload) -> Any:
    file = msg.model("file", models.File)
    if file is None:
        raise ApiError(400, "Failed to add file, msg.File is nil")
    sim.authz.require_member(signer, file.colonyname)
    if has_nul(file.colonyname, file.label, file.name, file.checksum, file.checksumalg):
        # The official handler ignores the failed insert and replies with the nil it then
        # reads back: success, payload null, nothing stored.
        return None
    doc = models.to_dict(file)
    # Unlike the official server, S3 credentials are not kept: readers use their own.
    doc["ref"]["s3object"]["accesskey"] = ""
    doc["ref"]["s3object"]["secretkey"] = ""
    doc.update(fileid=random_id(), sequencenr=sim.state.next_file_seq(), added=fmt_time(now_ns()))
    sim.state.add_file(doc)
    return doc


@rpc("getfilemsg", "get file", invalid="Failed to add log, invalid JSON")
async def get_file(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    file_id, label, name = msg.string("fileid"), msg.string("label"), msg.string("name")
    if file_id:
        doc = sim.state.files.get(file_id)
        if doc is None or doc["colonyname"] != colony:
            raise ApiError(400, "Failed to get file")
        files = [doc]
    elif label and name:
        if msg.boolean("latest"):
            latest = _latest(sim, colony, label, name)
            files = [latest] if latest else []
        else:
            ids = sim.state.labels.get((colony, label), {}).get(name, [])
            files = [sim.state.files[i] for i in reversed(ids)]
    else:
        raise ApiError(500, "malformatted get file msg")
    if not files:
        raise ApiError(404, "Failed to get file")
    return files


@rpc("getfilesmsg", "get files")
async def get_files(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    names = sim.state.labels.get((colony, msg.string("label")), {})
    out = []
    for ids in names.values():
        doc = sim.state.files[ids[-1]]
        out.append(
            {
                "name": doc["name"],
                "checksum": doc["checksum"],
                "size": doc["size"],
                "s3filename": doc["ref"]["s3object"]["object"],
            }
        )
    return out  # an empty list here is [], not null, as in the official server


@rpc("getfilelabelsmsg", "get files")
async def get_file_labels(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    return _labels(sim, colony, msg.string("name"), msg.boolean("exact"))


@rpc("removefilemsg", "remove file")
async def remove_file(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    file_id, label, name = msg.string("fileid"), msg.string("label"), msg.string("name")
    if file_id:
        doc = sim.state.files.get(file_id)
        if doc is not None and doc["colonyname"] == colony:
            sim.state.remove_file(file_id)
    elif label and name:
        for fid in list(sim.state.labels.get((colony, label), {}).get(name, [])):
            sim.state.remove_file(fid)
    else:
        raise ApiError(400, "malformatted remove file msg")
    return EMPTY


# --- snapshots --------------------------------------------------------------------------------


def _snapshot_by_name(sim: Simulator, colony: str, name: str) -> Doc | None:
    for doc in sim.state.snapshots.values():
        if doc["colonyname"] == colony and doc["name"] == name:
            return doc
    return None


@rpc("createsnapshotmsg", "create snapshot")
async def create_snapshot(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony, name = msg.string("colonyname"), msg.string("name")
    sim.authz.require_member(signer, colony)
    if _snapshot_by_name(sim, colony, name) is not None:
        raise ApiError(500, f"Snapshot with name <{name}> in Colony <{colony}> already exists")
    label = msg.string("label").removesuffix("/")
    file_ids = []
    for entry in _labels(sim, colony, label, True) or []:
        for ids in sim.state.labels[(colony, entry["name"])].values():
            file_ids.append(ids[-1])
    doc = {
        "snapshotid": random_id(),
        "colonyname": colony,
        "label": label,
        "name": name,
        "fileids": file_ids or None,
        "added": fmt_time(now_ns()),
    }
    sim.state.save_snapshot(doc)
    return doc


@rpc("getsnapshotmsg", "get snapshot")
async def get_snapshot(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    snapshot_id, name = msg.string("snapshotid"), msg.string("name")
    if snapshot_id:
        doc = sim.state.snapshots.get(snapshot_id)
        if doc is None or doc["colonyname"] != colony:
            raise ApiError(
                500,
                f"Snapshot not found with Id <{snapshot_id}> in Colony <{colony}> does not exists",
            )
        return doc
    if name:
        found = _snapshot_by_name(sim, colony, name)
        if found is None:
            raise ApiError(
                500, f"Snapshot not found with name <{name}> in Colony <{colony}> does not exists"
            )
        return found
    raise ApiError(500, "Failed to get snapshot, malformatted msg")


@rpc("getsnapshotsmsg", "get snapshots")
async def get_snapshots(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    docs = [d for d in sim.state.snapshots.values() if d["colonyname"] == colony]
    docs.sort(key=lambda d: parse_time(d["added"]), reverse=True)
    return or_null(docs)


@rpc("removesnapshotmsg", "remove snapshot")
async def remove_snapshot(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    snapshot_id, name = msg.string("snapshotid"), msg.string("name")
    if snapshot_id:
        doc = sim.state.snapshots.get(snapshot_id)
    elif name:
        doc = _snapshot_by_name(sim, colony, name)
    else:
        raise ApiError(500, "Failed to remove snapsnot, malformatted msg")
    if doc is not None and doc["colonyname"] == colony:
        sim.state.remove_snapshot(doc["snapshotid"])
    return EMPTY


@rpc("removeallsnapshotmsg", "remove snapshot")
async def remove_all_snapshots(sim: Simulator, signer: str, msg: Payload) -> Any:
    colony = msg.string("colonyname")
    sim.authz.require_member(signer, colony)
    for sid in [s for s, d in sim.state.snapshots.items() if d["colonyname"] == colony]:
        sim.state.remove_snapshot(sid)
    return EMPTY
