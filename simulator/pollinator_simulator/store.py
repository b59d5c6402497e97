"""The simulator's state: in memory, optionally written through to SQLite.

All reads are served from memory. With a database file every mutation is also written to
SQLite inside an open transaction, and the server commits that transaction before it replies, so
whatever a client saw acknowledged survives a SIGKILL and a restart. The state lives on the
server's event-loop thread only; nothing here is thread-safe and nothing needs to be.

Records are kept in their wire shape (plain JSON dicts) so replies need no conversion; a process
also carries the few numbers the scheduler needs (resources, deadlines) beside its document.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollinator_core.colonies.models import ProcessState

Doc = dict[str, Any]


@dataclass(slots=True, eq=False)
class ProcessRec:
    """A process: its wire document plus scheduler fields (times in UTC nanoseconds, 0 = unset)."""

    doc: Doc
    colony: str
    exectype: str
    names: frozenset[str]  # empty: any executor may take it
    cpu: int  # millicores
    mem: int  # bytes
    submitted: int = 0
    started: int = 0
    wait_deadline: int = 0
    exec_deadline: int = 0
    queued: int = 0  # the ready-queue ticket that is current; 0 when not queued

    @property
    def id(self) -> str:
        return str(self.doc["processid"])

    @property
    def state(self) -> int:
        return int(self.doc["state"])

    @property
    def graph(self) -> str:
        return str(self.doc["processgraphid"])

    @property
    def assignable(self) -> bool:
        d = self.doc
        return (
            d["state"] == ProcessState.WAITING and not d["isassigned"] and not d["waitforparents"]
        )

    def set_state(self, state: int) -> None:
        self.doc["state"] = state
        for attribute in self.doc["attributes"]:
            attribute["state"] = state

    def to_row(self) -> Doc:
        extra = [self.cpu, self.mem, self.submitted, self.started]
        return {"doc": self.doc, "x": [*extra, self.wait_deadline, self.exec_deadline]}

    @classmethod
    def from_row(cls, row: Doc) -> ProcessRec:
        doc = row["doc"]
        cpu, mem, submitted, started, wait_deadline, exec_deadline = row["x"]
        conditions = doc["spec"]["conditions"]
        return cls(
            doc=doc,
            colony=conditions["colonyname"],
            exectype=conditions["executortype"],
            names=target_names(conditions["executornames"]),
            cpu=cpu,
            mem=mem,
            submitted=submitted,
            started=started,
            wait_deadline=wait_deadline,
            exec_deadline=exec_deadline,
        )


def target_names(names: list[str] | None) -> frozenset[str]:
    """Executor names a process may go to; none means any (what "*" means depends on the assign
    mode: see Engine._matches)."""
    return frozenset(names or ())


class Persistence:
    """Where mutations go besides memory. The base class keeps nothing (the in-memory default)."""

    def put(self, kind: str, key: str, doc: Any) -> None:
        pass

    def delete(self, kind: str, key: str) -> None:
        pass

    def add_log(self, log: Doc) -> None:
        pass

    def delete_logs(self, colony: str) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass

    def load(self) -> tuple[list[tuple[str, str, Any]], list[Doc]]:
        return [], []


class SqlitePersistence(Persistence):
    """Write-through SQLite (WAL, synchronous=NORMAL: a committed transaction survives the process
    being killed; only a power loss could take the last ones)."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (kind TEXT NOT NULL, key TEXT NOT NULL,"
            " doc TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS logs (processid TEXT, colonyname TEXT, executorname TEXT,"
            " message TEXT, ts INTEGER)"
        )
        self._db.commit()
        self._dirty = False

    def put(self, kind: str, key: str, doc: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO kv (kind, key, doc) VALUES (?, ?, ?)",
            (kind, key, json.dumps(doc, separators=(",", ":"))),
        )
        self._dirty = True

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE kind = ? AND key = ?", (kind, key))
        self._dirty = True

    def add_log(self, log: Doc) -> None:
        self._db.execute(
            "INSERT INTO logs VALUES (?, ?, ?, ?, ?)",
            (
                log["processid"],
                log["colonyname"],
                log["executorname"],
                log["message"],
                log["timestamp"],
            ),
        )
        self._dirty = True

    def delete_logs(self, colony: str) -> None:
        self._db.execute("DELETE FROM logs WHERE colonyname = ?", (colony,))
        self._dirty = True

    def commit(self) -> None:
        if self._dirty:
            self._db.commit()
            self._dirty = False

    def close(self) -> None:
        self.commit()
        self._db.close()

    def load(self) -> tuple[list[tuple[str, str, Any]], list[Doc]]:
        rows = [(k, key, json.loads(d)) for k, key, d in self._db.execute("SELECT * FROM kv")]
        logs = [
            {"processid": p, "colonyname": c, "executorname": e, "message": m, "timestamp": t}
            for p, c, e, m, t in self._db.execute("SELECT * FROM logs ORDER BY ts")
        ]
        return rows, logs


def _key(*parts: str) -> str:
    return "\x1f".join(parts)


@dataclass
class State:
    """Every record the server holds, with the indexes the handlers need."""

    persistence: Persistence = field(default_factory=Persistence)
    colonies: dict[str, Doc] = field(default_factory=dict)  # by name
    users: dict[tuple[str, str], Doc] = field(default_factory=dict)  # (colony, name)
    user_ids: dict[tuple[str, str], Doc] = field(default_factory=dict)  # (colony, userid)
    executors: dict[tuple[str, str], Doc] = field(default_factory=dict)  # (colony, name)
    executor_by_id: dict[str, Doc] = field(default_factory=dict)
    functions: dict[str, Doc] = field(default_factory=dict)  # by functionid
    processes: dict[str, ProcessRec] = field(default_factory=dict)
    graphs: dict[str, Doc] = field(default_factory=dict)
    attributes: dict[str, Doc] = field(default_factory=dict)  # by attributeid, shared with docs
    logs: dict[str, list[Doc]] = field(default_factory=lambda: defaultdict(list))
    log_ts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    executor_logs: dict[tuple[str, str], list[Doc]] = field(
        default_factory=lambda: defaultdict(list)
    )
    files: dict[str, Doc] = field(default_factory=dict)  # by fileid
    # (colony, label) -> name -> file ids, oldest revision first
    labels: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    snapshots: dict[str, Doc] = field(default_factory=dict)  # by snapshotid
    paused: set[str] = field(default_factory=set)
    file_seq: int = 0
    last_log_ts: int = 0
    # Keys a `serve` without COLONIES_* variables generated, kept so a restart can reuse them.
    dev_keys: dict[str, str] | None = None
    # Records of the families kept by their own modules (crons, generators, channels, blueprints,
    # locations): kind -> key -> document. Those modules index them; the store only keeps them.
    records: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    # Called with a colony's name when it is removed, so those modules cascade the removal.
    colony_listeners: list[Callable[[str], None]] = field(default_factory=list)

    # --- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        rows, logs = self.persistence.load()
        for kind, key, doc in rows:
            if kind == "colony":
                self.colonies[doc["name"]] = doc
            elif kind == "user":
                self.users[(doc["colonyname"], doc["name"])] = doc
                self.user_ids[(doc["colonyname"], doc["userid"])] = doc
            elif kind == "executor":
                self.executors[(doc["colonyname"], doc["executorname"])] = doc
                self.executor_by_id[doc["executorid"]] = doc
            elif kind == "function":
                self.functions[doc["functionid"]] = doc
            elif kind == "process":
                rec = ProcessRec.from_row(doc)
                self.processes[rec.id] = rec
                for attribute in rec.doc["attributes"]:
                    self.attributes[attribute["attributeid"]] = attribute
            elif kind == "graph":
                self.graphs[doc["processgraphid"]] = doc
            elif kind == "file":
                self._index_file(doc)
            elif kind == "snapshot":
                self.snapshots[doc["snapshotid"]] = doc
            elif kind == "paused":
                self.paused.add(doc)
            elif kind == "fileseq":
                self.file_seq = max(self.file_seq, doc)
            elif kind == "devkeys":
                self.dev_keys = doc
            else:
                self.records[kind][key] = doc
        for log in logs:
            self._index_log(log)
        for files in self.labels.values():
            for ids in files.values():
                ids.sort(key=lambda i: self.files[i]["sequencenr"])

    # --- colonies, users, executors, functions -------------------------------------------------

    def save_colony(self, doc: Doc) -> None:
        self.colonies[doc["name"]] = doc
        self.persistence.put("colony", doc["name"], doc)

    def save_user(self, doc: Doc) -> None:
        self.users[(doc["colonyname"], doc["name"])] = doc
        self.user_ids[(doc["colonyname"], doc["userid"])] = doc
        self.persistence.put("user", _key(doc["colonyname"], doc["name"]), doc)

    def remove_user(self, colony: str, name: str) -> None:
        doc = self.users.pop((colony, name), None)
        if doc is not None:
            self.user_ids.pop((colony, doc["userid"]), None)
        self.persistence.delete("user", _key(colony, name))

    def user_by_id(self, colony: str, user_id: str) -> Doc | None:
        return self.user_ids.get((colony, user_id))

    def save_executor(self, doc: Doc) -> None:
        key = (doc["colonyname"], doc["executorname"])
        replaced = self.executors.get(key)
        if replaced is not None and self.executor_by_id.get(replaced["executorid"]) is replaced:
            del self.executor_by_id[replaced["executorid"]]  # a name re-registered with a new key
        self.executors[key] = doc
        self.executor_by_id[doc["executorid"]] = doc
        self.persistence.put("executor", _key(doc["colonyname"], doc["executorname"]), doc)

    def remove_executor(self, colony: str, name: str) -> None:
        doc = self.executors.pop((colony, name), None)
        if doc is not None and self.executor_by_id.get(doc["executorid"]) is doc:
            del self.executor_by_id[doc["executorid"]]
        self.persistence.delete("executor", _key(colony, name))
        self.remove_functions_of(colony, name)

    def remove_functions_of(self, colony: str, executor_name: str) -> None:
        for fid in [
            f
            for f, d in self.functions.items()
            if (d["colonyname"], d["executorname"]) == (colony, executor_name)
        ]:
            self.remove_function(fid)

    def save_function(self, doc: Doc) -> None:
        self.functions[doc["functionid"]] = doc
        self.persistence.put("function", doc["functionid"], doc)

    def remove_function(self, function_id: str) -> None:
        self.functions.pop(function_id, None)
        self.persistence.delete("function", function_id)

    def set_paused(self, colony: str, paused: bool) -> None:
        if paused:
            self.paused.add(colony)
            self.persistence.put("paused", colony, colony)
        else:
            self.paused.discard(colony)
            self.persistence.delete("paused", colony)

    # --- processes and graphs ------------------------------------------------------------------

    def save_process(self, rec: ProcessRec) -> None:
        self.processes[rec.id] = rec
        self.persistence.put("process", rec.id, rec.to_row())

    def remove_process(self, process_id: str) -> None:
        rec = self.processes.pop(process_id, None)
        if rec is None:
            return
        for attribute in rec.doc["attributes"]:
            self.attributes.pop(attribute["attributeid"], None)
        self.persistence.delete("process", process_id)

    def save_graph(self, doc: Doc) -> None:
        self.graphs[doc["processgraphid"]] = doc
        self.persistence.put("graph", doc["processgraphid"], doc)

    def remove_graph(self, graph_id: str) -> None:
        doc = self.graphs.pop(graph_id, None)
        if doc is None:
            return
        for pid in doc["processids"]:
            self.remove_process(pid)
        self.persistence.delete("graph", graph_id)

    # --- logs ----------------------------------------------------------------------------------

    def add_log(self, log: Doc) -> None:
        self._index_log(log)
        self.persistence.add_log(log)

    def _index_log(self, log: Doc) -> None:
        self.logs[log["processid"]].append(log)
        self.log_ts[log["processid"]].append(log["timestamp"])
        self.executor_logs[(log["colonyname"], log["executorname"])].append(log)
        self.last_log_ts = max(self.last_log_ts, log["timestamp"])

    def remove_colony_logs(self, colony: str) -> None:
        for pid in [p for p, logs in self.logs.items() if logs and logs[0]["colonyname"] == colony]:
            del self.logs[pid]
            del self.log_ts[pid]
        for key in [k for k in self.executor_logs if k[0] == colony]:
            del self.executor_logs[key]
        self.persistence.delete_logs(colony)

    # --- files and snapshots -------------------------------------------------------------------

    def next_file_seq(self) -> int:
        """The global revision counter; never reused, even after removals and restarts."""
        self.file_seq += 1
        self.persistence.put("fileseq", "", self.file_seq)
        return self.file_seq

    def add_file(self, doc: Doc) -> None:
        self._index_file(doc)
        self.persistence.put("file", doc["fileid"], doc)

    def _index_file(self, doc: Doc) -> None:
        self.files[doc["fileid"]] = doc
        names = self.labels.setdefault((doc["colonyname"], doc["label"]), {})
        names.setdefault(doc["name"], []).append(doc["fileid"])
        self.file_seq = max(self.file_seq, doc["sequencenr"])

    def remove_file(self, file_id: str) -> None:
        doc = self.files.pop(file_id, None)
        if doc is None:
            return
        key = (doc["colonyname"], doc["label"])
        names = self.labels[key]
        names[doc["name"]].remove(file_id)
        if not names[doc["name"]]:
            del names[doc["name"]]
        if not names:
            del self.labels[key]
        self.persistence.delete("file", file_id)

    def save_snapshot(self, doc: Doc) -> None:
        self.snapshots[doc["snapshotid"]] = doc
        self.persistence.put("snapshot", doc["snapshotid"], doc)

    def remove_snapshot(self, snapshot_id: str) -> None:
        self.snapshots.pop(snapshot_id, None)
        self.persistence.delete("snapshot", snapshot_id)

    # --- whole colonies ------------------------------------------------------------------------

    def remove_colony(self, name: str) -> None:
        """A colony and everything in it, as the official server cascades it."""
        self.colonies.pop(name, None)
        self.persistence.delete("colony", name)
        for _, uname in [k for k in self.users if k[0] == name]:
            self.remove_user(name, uname)
        for _, ename in [k for k in self.executors if k[0] == name]:
            self.remove_executor(name, ename)
        for gid in [g for g, d in self.graphs.items() if d["colonyname"] == name]:
            self.remove_graph(gid)
        for pid in [p for p, r in self.processes.items() if r.colony == name]:
            self.remove_process(pid)
        for fid in [f for f, d in self.files.items() if d["colonyname"] == name]:
            self.remove_file(fid)
        for sid in [s for s, d in self.snapshots.items() if d["colonyname"] == name]:
            self.remove_snapshot(sid)
        self.remove_colony_logs(name)
        self.set_paused(name, False)
        for listener in self.colony_listeners:
            listener(name)

    def put_record(self, kind: str, key: str, doc: Any) -> None:
        self.records[kind][key] = doc
        self.persistence.put(kind, key, doc)

    def drop_record(self, kind: str, key: str) -> None:
        self.records[kind].pop(key, None)
        self.persistence.delete(kind, key)

    def save_dev_keys(self, keys: dict[str, str]) -> None:
        self.dev_keys = keys
        self.persistence.put("devkeys", "", keys)

    def commit(self) -> None:
        self.persistence.commit()
