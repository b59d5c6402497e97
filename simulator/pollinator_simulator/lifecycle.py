"""Process lifecycle: creation, assignment, closing, cancelling, workflows and timeouts.

Everything runs on the server's single event-loop thread and no method awaits between reading
and changing state, so an assignment is atomic by construction: two executors can never be given
the same process. Ready processes sit in one heap per (colony, executor type) ordered by
prioritytime; entries are invalidated lazily through a ticket instead of being removed.

State rules and error messages follow the official server (pkg/server/controllers,
pkg/database/postgresql/processes.go, pkg/core/processgraph.go).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pollinator_core.colonies import models
from pollinator_core.colonies.crypto import sha3_hex
from pollinator_core.colonies.models import AttributeType, ExecutorState, ProcessState
from pollinator_core.project.units import format_cpu

from .store import Doc, ProcessRec, State, target_names
from .wire import (
    ApiError,
    fmt_mem,
    fmt_time,
    now_ns,
    parse_cpu,
    parse_mem,
    parse_time,
    random_id,
)

WAITING, RUNNING, SUCCESS, FAILED, CANCELLED = (int(s) for s in ProcessState)
_DAY_NS = 86_400 * 1_000_000_000
_SECOND = 1_000_000_000


def spec_doc(
    spec: models.FunctionSpec, names_given: bool = False, channels: Sequence[str] = ()
) -> tuple[Doc, int, int]:
    """A function spec as the official server stores and returns it, with its cpu (millicores)
    and memory (bytes). Resource strings come back normalised ("<n>m", "<n>Mi"), as there.
    ``names_given``: the spec carried executornames as a list, so none comes back as [], not
    null (a Go nil slice and an empty one are stored apart). ``channels`` (the spec's channel
    names, which the model does not carry) is sent only when there are some, as Go's omitempty
    does."""
    c = spec.conditions
    cpu = parse_cpu(c.cpu)
    mem = parse_mem(c.mem)
    storage = parse_mem(c.storage)
    gpu_mem = parse_mem(c.gpu.mem)
    fs = models.to_dict(spec.fs)
    doc = {
        "nodename": spec.nodename,
        "funcname": spec.funcname,
        "args": spec.args,
        "kwargs": spec.kwargs,
        "priority": spec.priority,
        "maxwaittime": spec.maxwaittime,
        "maxexectime": spec.maxexectime,
        "maxretries": spec.maxretries,
        "conditions": {
            "colonyname": c.colonyname,
            # Shown as [] for ["*"] (the scheduler still sees the "*", see Engine._select).
            "executornames": (
                [] if c.executornames == ["*"] else c.executornames or ([] if names_given else None)
            ),
            "executortype": c.executortype,
            "dependencies": c.dependencies,
            "nodes": c.nodes,
            "cpu": format_cpu(cpu),
            "processes": c.processes,
            "processespernode": c.processespernode,
            "mem": fmt_mem(mem),
            "storage": fmt_mem(storage),
            "gpu": {
                "name": c.gpu.name,
                "mem": fmt_mem(gpu_mem),
                "count": c.gpu.count,
                "nodecount": c.gpu.nodecount,
            },
            "walltime": c.walltime,
        },
        "label": spec.label,
        "fs": {
            "mount": fs["mount"],
            "snapshots": fs["snapshots"] or None,
            "dirs": fs["dirs"] or None,
        },
        "env": dict(spec.env),
    }
    if channels:
        doc["channels"] = list(channels)
    return doc, cpu, mem


class Assignment(NamedTuple):
    """A process just assigned, and the execdeadline it had before (what the official server
    in exclusive-assign mode puts in its assign reply)."""

    rec: ProcessRec
    previous_execdeadline: str


def attribute_id(target: str, key: str, kind: int) -> str:
    """The official server's attribute ID: sha3 of target, key and type, so one process holds
    one attribute per (key, type); the ID is the table's primary key."""
    return sha3_hex(f"{target}{key}{kind}")


#: PostgreSQL's words when a second attribute with the same (target, key, type) is inserted.
DUPLICATE_ATTRIBUTE = 'pq: duplicate key value violates unique constraint "prod_attributes_pkey"'


def _attribute(rec_doc: Doc, kind: int, key: str, value: str) -> Doc:
    return {
        "attributeid": attribute_id(rec_doc["processid"], key, kind),
        "targetid": rec_doc["processid"],
        "targetcolonyname": rec_doc["spec"]["conditions"]["colonyname"],
        "targetprocessgraphid": rec_doc["processgraphid"],
        "state": rec_doc["state"],
        "attributetype": kind,
        "key": key,
        "value": value,
    }


#: The scheduler passes math.MaxInt8 for the nodes, processes and processes-per-node a process
#: may ask for (colonies_controller.go, scheduler.go): a process asking for more is never assigned.
MAX_SCHEDULED = 127


class Engine:
    def __init__(
        self,
        state: State,
        notify: Callable[[ProcessRec], None],
        *,
        stale_check_ns: int = 60 * _SECOND,
        exclusive_assign: bool = True,
    ) -> None:
        self.state = state
        self._stale_check_ns = stale_check_ns
        self._exclusive = exclusive_assign
        self._notify = notify
        self._ready: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
        self._tickets = itertools.count(1)
        self._work_waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = defaultdict(set)
        self._resume_waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._last_stale_check = 0

    def rebuild_queues(self) -> None:
        for rec in sorted(self.state.processes.values(), key=lambda r: r.doc["prioritytime"]):
            if rec.assignable:
                self._enqueue(rec)

    # --- waking long-polling assigners --------------------------------------------------------

    def _enqueue(self, rec: ProcessRec) -> None:
        rec.queued = next(self._tickets)
        heap = self._ready.setdefault((rec.colony, rec.exectype), [])
        heapq.heappush(heap, (rec.doc["prioritytime"], rec.queued, rec.id))

    def _make_ready(self, rec: ProcessRec) -> None:
        self._enqueue(rec)
        self._wake(self._work_waiters.pop((rec.colony, rec.exectype), set()))

    @staticmethod
    def _wake(futures: set[asyncio.Future[None]]) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_result(None)

    async def _wait(self, registry: set[asyncio.Future[None]], seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        registry.add(fut)
        try:
            async with asyncio.timeout(seconds):
                await fut
        except TimeoutError:
            pass
        finally:
            registry.discard(fut)

    async def wait_for_work(self, colony: str, exectype: str, seconds: float) -> None:
        """Until a process may have become ready for this executor type, or ``seconds`` pass."""
        await self._wait(self._work_waiters[(colony, exectype)], seconds)

    async def wait_for_resume(self, colony: str, seconds: float) -> None:
        await self._wait(self._resume_waiters[colony], seconds)

    def set_paused(self, colony: str, paused: bool) -> None:
        self.state.set_paused(colony, paused)
        if not paused:
            self._wake(self._resume_waiters.pop(colony, set()))

    # --- creation -----------------------------------------------------------------------------

    def new_process(
        self,
        spec: models.FunctionSpec,
        initiator_id: str,
        initiator_name: str,
        *,
        graph_id: str = "",
        wait_for_parents: bool = False,
        names_given: bool = False,
        channels: Sequence[str] = (),
    ) -> ProcessRec:
        """A WAITING process, not yet stored. Raises ValueError for unreadable cpu/mem."""
        sdoc, cpu, mem = spec_doc(spec, names_given, channels)
        now = now_ns()
        wait_deadline = now + spec.maxwaittime * _SECOND if spec.maxwaittime > 0 else 0
        doc: Doc = {
            "processid": random_id(),
            "initiatorid": initiator_id,
            "initiatorname": initiator_name,
            "assignedexecutorid": "",
            "isassigned": False,
            "state": WAITING,
            "prioritytime": spec.priority * -_DAY_NS + now,
            "submissiontime": fmt_time(now),
            "starttime": fmt_time(0),
            "endtime": fmt_time(0),
            "waitdeadline": fmt_time(wait_deadline),
            "execdeadline": fmt_time(0),
            "retries": 0,
            "attributes": [],
            "spec": sdoc,
            "waitforparents": wait_for_parents,
            "parents": [],
            "children": [],
            "processgraphid": graph_id,
            "in": [],
            "out": [],
            "errors": [],
        }
        # The official server keeps env as ENV attributes and rebuilds spec.env from them.
        doc["attributes"] = [
            _attribute(doc, AttributeType.ENV, k, str(v)) for k, v in sdoc["env"].items()
        ]
        return ProcessRec(
            doc=doc,
            colony=spec.conditions.colonyname,
            exectype=spec.conditions.executortype,
            names=target_names(spec.conditions.executornames),
            cpu=cpu,
            mem=mem,
            submitted=now,
            wait_deadline=wait_deadline,
        )

    def add_process(self, rec: ProcessRec) -> None:
        self.state.save_process(rec)
        for attribute in rec.doc["attributes"]:
            self.state.attributes[attribute["attributeid"]] = attribute
        if rec.assignable:
            self._make_ready(rec)
        self._notify(rec)

    def add_attribute(
        self, rec: ProcessRec, kind: int, key: str, value: str, *, colony: str, state: int
    ) -> Doc:
        """An attribute an executor adds. ``colony`` and ``state`` are stored as the client sent
        them, as the official server does (it fills in only the ID and the graph)."""
        attribute = _attribute(rec.doc, kind, key, value)
        if attribute["attributeid"] in self.state.attributes:
            raise ApiError(400, DUPLICATE_ATTRIBUTE)
        attribute.update(targetcolonyname=colony, state=state)
        rec.doc["attributes"].append(attribute)
        if kind == AttributeType.ENV:
            rec.doc["spec"]["env"][key] = value
        self.state.attributes[attribute["attributeid"]] = attribute
        self.state.save_process(rec)
        return attribute

    # --- assignment ---------------------------------------------------------------------------

    def _select(self, executor: Doc, colony: str, cpu: int, mem: int) -> ProcessRec | None:
        heap = self._ready.get((colony, executor["executortype"]))
        if not heap:
            return None
        name = executor["executorname"]
        processes = self.state.processes
        skipped: list[tuple[int, int, str]] = []
        found = None
        while heap:
            entry = heapq.heappop(heap)
            rec = processes.get(entry[2])
            if rec is None or rec.queued != entry[1] or not rec.assignable:
                continue  # stale ticket
            if self._matches(rec, name) and rec.cpu <= cpu and rec.mem <= mem:
                found = rec
                break
            skipped.append(entry)
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def _matches(self, rec: ProcessRec, name: str) -> bool:
        """Names and sizes as the official scheduler checks them. executornames ["*"] means any
        executor to the distributed assign only; the exclusive scheduler looks for an executor
        named "*" (FindCandidatesByName) or no names at all (FindCandidates)."""
        conditions = rec.doc["spec"]["conditions"]
        if max(conditions["nodes"], conditions["processes"], conditions["processespernode"]) > (
            MAX_SCHEDULED
        ):
            return False
        if not rec.names or name in rec.names:
            return True
        return rec.names == {"*"} and not self._exclusive

    def assign(self, executor: Doc, colony: str, cpu: int, mem: int) -> Assignment | None:
        """Give the executor its best candidate, now RUNNING; None when there is none."""
        rec = self._select(executor, colony, cpu, mem)
        if rec is None:
            return None
        now = now_ns()
        rec.queued = 0
        rec.started = now
        doc = rec.doc
        previous_deadline = doc["execdeadline"]
        doc["isassigned"] = True
        doc["assignedexecutorid"] = executor["executorid"]
        doc["starttime"] = fmt_time(now)
        maxexec = doc["spec"]["maxexectime"]
        if maxexec > 0:
            rec.exec_deadline = now + maxexec * _SECOND
            doc["execdeadline"] = fmt_time(rec.exec_deadline)
        rec.set_state(RUNNING)
        if rec.graph:
            if doc["parents"]:
                # A child's input is its parents' outputs, concatenated.
                inputs: list[Any] = []
                for pid in doc["parents"]:
                    parent = self.state.processes.get(pid)
                    if parent is not None:
                        inputs.extend(parent.doc["out"])
                doc["in"] = inputs
            self.resolve_graph(rec.graph)
        self.state.save_process(rec)
        self._notify(rec)
        return Assignment(rec, previous_deadline)

    def unassign(self, rec: ProcessRec) -> None:
        """Back to WAITING for another executor (a timed-out run); counts a retry."""
        now = now_ns()
        doc = rec.doc
        doc["isassigned"] = False
        doc["assignedexecutorid"] = ""
        doc["endtime"] = fmt_time(now)
        doc["retries"] += 1
        maxwait = doc["spec"]["maxwaittime"]
        if maxwait > 0:
            rec.wait_deadline = now + maxwait * _SECOND
            doc["waitdeadline"] = fmt_time(rec.wait_deadline)
        rec.set_state(WAITING)
        self.state.save_process(rec)
        self._make_ready(rec)
        self._notify(rec)

    # --- closing ------------------------------------------------------------------------------

    def set_output(self, rec: ProcessRec, output: list[Any]) -> None:
        rec.doc["out"] = output
        self.state.save_process(rec)

    def close_successful(self, rec: ProcessRec, executor_id: str, output: list[Any]) -> None:
        state = rec.state
        if state == FAILED:
            raise ApiError(400, "Tried to set failed process as successful")
        if state == CANCELLED:
            raise ApiError(400, "Tried to set cancelled process as successful")
        if state == WAITING:
            raise ApiError(400, "Tried to set waiting process as successful without being running")
        if output:
            rec.doc["out"] = output
        end = now_ns()
        rec.doc["endtime"] = fmt_time(end)
        rec.set_state(SUCCESS)
        self.state.save_process(rec)
        if rec.graph:
            self.resolve_graph(rec.graph)
        self._update_function_stats(rec, executor_id, end)
        self._notify(rec)

    def close_failed(self, rec: ProcessRec, errors: list[str]) -> None:
        state = rec.state
        if state == SUCCESS:
            raise ApiError(400, "Tried to set successful process as failed")
        if state == FAILED:
            raise ApiError(400, "Tried to set failed process as failed")
        if state == CANCELLED:
            raise ApiError(400, "Tried to set cancelled process as failed")
        rec.doc["endtime"] = fmt_time(now_ns())
        rec.doc["errors"] = errors
        rec.set_state(FAILED)
        self.state.save_process(rec)
        if rec.graph:
            self.resolve_graph(rec.graph)
        self._notify(rec)

    def cancel(self, rec: ProcessRec) -> None:
        """WAITING or RUNNING -> CANCELLED. A running process keeps its executor, which learns of
        the cancellation when its next close/log call is refused (as on the official server)."""
        state = rec.state
        if state == SUCCESS:
            raise ApiError(400, "Tried to cancel successful process")
        if state == FAILED:
            raise ApiError(400, "Tried to cancel failed process")
        if state == CANCELLED:
            raise ApiError(400, "Tried to cancel already cancelled process")
        rec.doc["endtime"] = fmt_time(now_ns())
        rec.set_state(CANCELLED)
        self.state.save_process(rec)
        self._notify(rec)

    def _update_function_stats(self, rec: ProcessRec, executor_id: str, end: int) -> None:
        executor = self.state.executor_by_id.get(executor_id)
        if executor is None:
            return
        funcname = rec.doc["spec"]["funcname"]
        for fn in self.state.functions.values():
            if (fn["colonyname"], fn["executorname"], fn["funcname"]) != (
                rec.colony,
                executor["executorname"],
                funcname,
            ):
                continue
            wait = (rec.started - rec.submitted) / _SECOND
            run = (end - rec.started) / _SECOND
            first = fn["counter"] == 0
            fn["counter"] += 1
            fn["minwaittime"] = wait if first else min(fn["minwaittime"], wait)
            fn["maxwaittime"] = wait if first else max(fn["maxwaittime"], wait)
            fn["minexectime"] = run if first else min(fn["minexectime"], run)
            fn["maxexectime"] = run if first else max(fn["maxexectime"], run)
            fn["avgwaittime"] = wait if first else (fn["avgwaittime"] + wait) / 2
            fn["avgexectime"] = run if first else (fn["avgexectime"] + run) / 2
            self.state.save_function(fn)

    # --- workflows ----------------------------------------------------------------------------

    def submit_workflow(
        self,
        workflow: models.WorkflowSpec,
        initiator_id: str,
        initiator_name: str,
        channels: Sequence[Sequence[str]] = (),
    ) -> Doc:
        """Create a process graph: roots are ready at once, children wait for their parents.
        ``channels[i]`` are the channel names of ``workflow.functionspecs[i]``."""
        now = now_ns()
        graph: Doc = {
            "processgraphid": random_id(),
            "initiatorid": initiator_id,
            "initiatorname": initiator_name,
            "colonyname": workflow.colonyname,
            "rootprocessids": [],
            "state": WAITING,
            "submissiontime": fmt_time(now),
            "starttime": fmt_time(0),
            "endtime": fmt_time(0),
            "processids": [],
            "nodes": [],
            "edges": [],
        }
        by_node: dict[str, ProcessRec] = {}
        for i, spec in enumerate(workflow.functionspecs):
            if spec.nodename == "":
                raise ApiError(500, "Nodename is missing, check function spec for errors")
            if spec.maxexectime == 0:
                spec.maxexectime = -1  # the official server does this for workflows only
            spec.conditions.colonyname = workflow.colonyname
            if spec.nodename in by_node:
                raise ApiError(500, "Duplicate nodename: " + spec.nodename)
            try:
                rec = self.new_process(
                    spec,
                    initiator_id,
                    initiator_name,
                    graph_id=graph["processgraphid"],
                    wait_for_parents=bool(spec.conditions.dependencies),
                    channels=channels[i] if i < len(channels) else (),
                )
            except ValueError as err:
                raise ApiError(500, str(err)) from None
            by_node[spec.nodename] = rec
        for rec in by_node.values():
            for dep in rec.doc["spec"]["conditions"]["dependencies"]:
                parent = by_node.get(dep)
                if parent is None:
                    raise ApiError(
                        500,
                        "Failed to submit workflow, invalid dependencies, are you depending on a "
                        "nodename that does not exits?",
                    )
                rec.doc["parents"].append(parent.id)
                parent.doc["children"].append(rec.id)
        graph["processids"] = [r.id for r in by_node.values()]
        graph["rootprocessids"] = [r.id for r in by_node.values() if not r.doc["parents"]]
        self.state.save_graph(graph)
        for rec in by_node.values():
            self.add_process(rec)
        return graph

    def resolve_graph(self, graph_id: str) -> None:
        """Release children whose parents all succeeded and recompute the graph's state. When a
        process has a FAILED parent, the official server marks every process of the graph that
        is not already FAILED as FAILED; so does this."""
        graph = self.state.graphs.get(graph_id)
        if graph is None:
            return
        procs = self.state.processes
        recs = [procs[p] for p in graph["processids"] if p in procs]
        parent_failed = any(
            procs[p].state == FAILED for r in recs for p in r.doc["parents"] if p in procs
        )
        if parent_failed:
            for r in recs:
                if r.state != FAILED:
                    r.set_state(FAILED)
                    self.state.save_process(r)
                    self._notify(r)
            self._set_graph_state(graph, FAILED)
            return
        for r in recs:
            if r.doc["waitforparents"] and all(
                p in procs and procs[p].state == SUCCESS for p in r.doc["parents"]
            ):
                r.doc["waitforparents"] = False
                self.state.save_process(r)
                if r.assignable:
                    self._make_ready(r)
                    self._notify(r)
        states = [r.state for r in recs]
        if FAILED in states:
            new = FAILED
        elif CANCELLED in states:
            new = CANCELLED
        elif all(s == SUCCESS for s in states):
            new = SUCCESS
        elif SUCCESS in states or RUNNING in states:
            new = RUNNING
        else:
            new = WAITING
        self._set_graph_state(graph, new)

    def _set_graph_state(self, graph: Doc, state: int) -> None:
        if graph["state"] == WAITING and state == RUNNING:
            graph["starttime"] = fmt_time(now_ns())
        elif state in (SUCCESS, FAILED, CANCELLED):
            graph["endtime"] = fmt_time(now_ns())
        graph["state"] = state
        self.state.save_graph(graph)

    def cancel_graph(self, graph: Doc) -> None:
        for pid in graph["processids"]:
            rec = self.state.processes.get(pid)
            if rec is not None and rec.state in (WAITING, RUNNING):
                self.cancel(rec)
        self._set_graph_state(graph, CANCELLED)

    # --- the timeout loop ---------------------------------------------------------------------

    def sweep(self, now: int, stale_executor_ns: int | None) -> None:
        """One pass of the official timeout loop: run deadlines re-queue or fail a process, wait
        deadlines fail it. Deadlines compare in whole seconds, and a process with maxexectime 0
        (not -1) counts as past its (zero) deadline, exactly as the official server does."""
        now_s = now // _SECOND
        for rec in [r for r in self.state.processes.values() if r.state == RUNNING]:
            spec = rec.doc["spec"]
            if spec["maxexectime"] == -1:
                continue
            deadline_s = rec.exec_deadline // _SECOND if rec.exec_deadline else -(2**62)
            if now_s > deadline_s:
                maxretries = spec["maxretries"]
                if maxretries > -1 and rec.doc["retries"] >= maxretries:
                    self.close_failed(rec, ["Maximum execution time limit exceeded"])
                else:
                    self.unassign(rec)
        for rec in [r for r in self.state.processes.values() if r.state == WAITING]:
            if rec.doc["spec"]["maxwaittime"] in (-1, 0):
                continue
            if now_s > rec.wait_deadline // _SECOND:
                self.close_failed(rec, ["Maximum waiting time limit exceeded"])
        if stale_executor_ns is not None and now - self._last_stale_check >= self._stale_check_ns:
            self._last_stale_check = now
            self._remove_stale_executors(now, stale_executor_ns)

    def _remove_stale_executors(self, now: int, max_age: int) -> None:
        """As the official cleanup worker: executors never heard from (zero lastheardfromtime)
        are skipped, the others are unregistered once silent for longer than ``max_age``."""
        for doc in list(self.state.executors.values()):
            if doc["state"] == ExecutorState.UNREGISTERED:
                continue
            heard = parse_time(doc["lastheardfromtime"])
            if heard and now - heard > max_age:
                self.unregister_executor(doc)

    # --- executors ------------------------------------------------------------------------------

    def unregister_executor(self, executor: Doc) -> None:
        """What the official server does to a removed executor: the record stays, UNREGISTERED
        (so its key is no longer a member and its name stays taken), its functions go, and its
        RUNNING processes go back to WAITING as if never started: start and end times zero,
        retries unchanged, the old execdeadline left in place."""
        executor["state"] = ExecutorState.UNREGISTERED
        self.state.save_executor(executor)
        self.state.remove_functions_of(executor["colonyname"], executor["executorname"])
        executor_id = executor["executorid"]
        for rec in list(self.state.processes.values()):
            if rec.state != RUNNING or rec.doc["assignedexecutorid"] != executor_id:
                continue
            doc = rec.doc
            doc["isassigned"] = False
            doc["assignedexecutorid"] = ""
            doc["starttime"] = doc["endtime"] = fmt_time(0)
            rec.started = 0
            rec.set_state(WAITING)
            self.state.save_process(rec)
            self._make_ready(rec)
            self._notify(rec)
