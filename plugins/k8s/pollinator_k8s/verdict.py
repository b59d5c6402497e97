"""How a Kubernetes Job stands and how it ended, from the Job and its pods as the API shows them.

Pure functions over the API's JSON (the cases and messages are those measured on a real
cluster, tests/infra/k8s/README.md). A job ends only on evidence, in this order:

1. the Job's terminal condition (``Complete``, ``Failed``), explained by its pods' ``main``
   containers: OOMKilled, then an evicted pod, then the deadline (walltime), then the first
   non-zero exit code, with the signal named; a failed Job whose pods are gone is explained by
   the exit code in the Job's own message, else it is *lost*, never a success;
2. a pod that cannot start: an invalid image name, a missing image with pull policy Never and
   a container configuration the kubelet refuses (``CreateContainerConfigError``) at once; a
   pull or a container creation that keeps failing (``ErrImagePull``, ``ImagePullBackOff``,
   ``CreateContainerError``) after ``image_pull_timeout`` seconds; with the kubelet's message;
3. a pod the scheduler cannot place (``PodScheduled=False``, ``Unschedulable``): pending, with
   the scheduler's message, and failed after ``pending_timeout`` seconds (0: never).

A pending job says why (``waiting``); the runtime turns that into log lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from pollinator_core.api import JobState, Reason, SchedulerJob, Termination

from .manifest import CONTAINER, INDEX_ANNOTATION

#: waiting reasons that cannot resolve by waiting (fail at once)
FAIL_AT_ONCE = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
#: waiting reasons that may yet resolve (a registry hiccup or throttling, a node under load),
#: with what is failing (the pending line) and what failed (the verdict)
RETRIED = {
    "ErrImagePull": ("image pull failing", "the image could not be pulled"),
    "ImagePullBackOff": ("image pull failing", "the image could not be pulled"),
    "CreateContainerError": ("container creation failing", "the container could not be created"),
}
_EXIT_IN_MESSAGE = re.compile(r"failed with exit code (\d+)")


@attrs.frozen
class Ended:
    """How a pod's main container terminated."""

    exit_code: int
    reason: str
    message: str = ""
    finished: str = ""


@attrs.frozen
class PodView:
    """What the runtime needs of one pod."""

    name: str
    uid: str
    index: int
    created: str
    phase: str
    reason: str = ""
    message: str = ""
    #: the main container is waiting: (reason, message)
    waiting: tuple[str, str] | None = None
    #: when the main container started running (RFC 3339), once it did
    started: str = ""
    ended: Ended | None = None
    #: the scheduler's message while it cannot place the pod
    unschedulable: str = ""
    deleting: bool = False

    @property
    def ran(self) -> bool:
        """The main container ran (its log exists)."""
        return bool(self.started) or self.ended is not None


def pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    try:
        index = int(annotations.get(INDEX_ANNOTATION, 0))
    except ValueError:
        index = 0
    waiting: tuple[str, str] | None = None
    started = ""
    ended: Ended | None = None
    for container in status.get("containerStatuses") or ():
        if container.get("name") != CONTAINER:
            continue
        state = container.get("state") or {}
        if "waiting" in state:
            info = state["waiting"] or {}
            waiting = (str(info.get("reason") or ""), str(info.get("message") or ""))
        if "running" in state:
            started = str((state["running"] or {}).get("startedAt") or "")
        if "terminated" in state:
            info = state["terminated"] or {}
            started = str(info.get("startedAt") or "")
            ended = Ended(
                int(info.get("exitCode", 0)),
                str(info.get("reason") or ""),
                str(info.get("message") or ""),
                str(info.get("finishedAt") or ""),
            )
    unschedulable = ""
    for condition in status.get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "unschedulable")
    return PodView(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        index=index,
        created=str(meta.get("creationTimestamp") or ""),
        phase=str(status.get("phase") or ""),
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        waiting=waiting,
        started=started,
        ended=ended,
        unschedulable=unschedulable,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one RFC 3339 time of the API to another (0 when either is missing)."""
    if not earlier or not later:
        return 0.0
    return (_parse(later) - _parse(earlier)).total_seconds()


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def conditions(job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The Job's conditions that hold (status True), by type."""
    found = {}
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("status") == "True":
            found[str(condition.get("type"))] = condition
    return found


def finished(job: Mapping[str, Any]) -> bool:
    held = conditions(job)
    return "Complete" in held or "Failed" in held


def latest_per_rank(pods: Iterable[PodView]) -> list[PodView]:
    """The newest pod of each rank (a replaced pod is superseded), by rank."""
    newest: dict[int, PodView] = {}
    for pod in pods:
        if pod.index not in newest or pod.created >= newest[pod.index].created:
            newest[pod.index] = pod
    return [newest[i] for i in sorted(newest)]


def _who(pod: PodView, ranks: int) -> str:
    return f"rank {pod.index}: " if ranks > 1 else ""


def _pod_evidence(pod: PodView) -> str:
    if pod.ended is None:
        return f"pod {pod.name}: {pod.phase or 'no phase'}"
    what = f"pod {pod.name}: container {CONTAINER} terminated"
    if pod.ended.reason:
        what += f" ({pod.ended.reason})"
    return f"{what}, exit code {pod.ended.exit_code}"


def ended_job(
    job: Mapping[str, Any], pods: Sequence[PodView], *, ranks: int, walltime: int
) -> Termination:
    """How a Job with a terminal condition ended; ``pods`` are every pod seen of it."""
    held = conditions(job)
    latest = latest_per_rank(pods)
    evidence = [_pod_evidence(p) for p in latest]
    if "Complete" in held:
        condition = held["Complete"]
        return Termination.exited(
            0, evidence=[f"Job Complete ({condition.get('reason') or 'no reason'})", *evidence]
        )
    condition = held.get("Failed") or {}
    reason = str(condition.get("reason") or "")
    evidence.insert(0, f"Job Failed ({reason}): {condition.get('message') or ''}".rstrip(": "))
    for pod in latest:
        if pod.ended is not None and pod.ended.reason == "OOMKilled":
            return Termination(
                Reason.OOM,
                detail=f"{_who(pod, ranks)}container {CONTAINER} was OOMKilled",
                evidence=tuple(evidence),
            ).with_exit(pod.ended.exit_code)
    for pod in latest:
        if pod.reason == "Evicted":
            return Termination(
                Reason.NODE_FAILURE,
                detail=f"{_who(pod, ranks)}evicted: {pod.message}",
                evidence=tuple(evidence),
            ).with_exit(pod.ended.exit_code if pod.ended else None)
    failing = sorted(
        (p for p in latest if p.ended is not None and p.ended.exit_code != 0),
        key=lambda p: p.ended.finished if p.ended else "",
    )
    if reason == "DeadlineExceeded":
        code = failing[0].ended.exit_code if failing and failing[0].ended else None
        return Termination(
            Reason.WALLTIME, detail=f"{walltime} s", evidence=tuple(evidence)
        ).with_exit(code)
    if failing and failing[0].ended is not None:
        first = failing[0]
        assert first.ended is not None
        detail = f"{_who(first, ranks)}{first.ended.reason}" if ranks > 1 else ""
        return Termination.exited(first.ended.exit_code, evidence=evidence, detail=detail)
    found = _EXIT_IN_MESSAGE.search(str(condition.get("message") or ""))
    if found:
        return Termination.exited(int(found.group(1)), evidence=evidence)
    return Termination(
        Reason.LOST,
        detail=f"the Job failed ({reason or 'no reason given'}) and no pod shows how",
        evidence=tuple(evidence),
    )


@attrs.define
class Watch:
    """What one job has shown over time: the pods seen, and since when something is wrong."""

    #: every pod seen, by uid (a pod deleted at the deadline is still remembered)
    pods: dict[str, PodView] = attrs.field(factory=dict)
    #: the pods the last poll listed
    current: list[PodView] = attrs.field(factory=list)
    unschedulable_since: float | None = None
    pull_failing_since: float | None = None

    def update(self, pods: Sequence[PodView]) -> None:
        self.current = list(pods)
        for pod in pods:
            self.pods[pod.uid] = pod


def standing(
    job: Mapping[str, Any],
    watch: Watch,
    *,
    now: float,
    ranks: int,
    walltime: int,
    pending_timeout: float,
    image_pull_timeout: float,
) -> SchedulerJob:
    """The job's state for the poller (see the module's docstring for the order)."""
    if finished(job):
        verdict = ended_job(job, list(watch.pods.values()), ranks=ranks, walltime=walltime)
        return SchedulerJob(JobState.ENDED, termination=verdict)
    live = [p for p in watch.current if not p.deleting]
    for pod in live:
        if pod.waiting is not None and pod.waiting[0] in FAIL_AT_ONCE:
            reason, message = pod.waiting
            return SchedulerJob(
                JobState.ENDED,
                termination=Termination(
                    Reason.INFRASTRUCTURE,
                    detail=f"{_who(pod, ranks)}{reason}: {message}",
                    evidence=(f"pod {pod.name}: container {CONTAINER} waiting: {reason}",),
                ),
            )
    pulling = [p for p in live if p.waiting is not None and p.waiting[0] in RETRIED]
    if pulling:
        watch.pull_failing_since = watch.pull_failing_since or now
        pod = pulling[0]
        assert pod.waiting is not None
        reason, message = pod.waiting
        failing, failed = RETRIED[reason]
        if now - watch.pull_failing_since >= image_pull_timeout:
            return SchedulerJob(
                JobState.ENDED,
                termination=Termination(
                    Reason.INFRASTRUCTURE,
                    detail=f"{failed} for {image_pull_timeout:.0f} s: {message or reason}",
                    evidence=(f"pod {pod.name}: container {CONTAINER} waiting: {reason}",),
                ),
            )
        return SchedulerJob(JobState.PENDING, waiting=f"{failing} ({reason}): {message}")
    watch.pull_failing_since = None
    stuck = [p for p in live if p.unschedulable]
    if stuck:
        watch.unschedulable_since = watch.unschedulable_since or now
        message = stuck[0].unschedulable
        if pending_timeout and now - watch.unschedulable_since >= pending_timeout:
            return SchedulerJob(
                JobState.ENDED,
                termination=Termination(
                    Reason.INFRASTRUCTURE,
                    detail=f"not scheduled within {pending_timeout:.0f} s: {message}",
                    evidence=(f"pod {stuck[0].name}: PodScheduled False (Unschedulable)",),
                ),
            )
        return SchedulerJob(JobState.PENDING, waiting=f"unschedulable: {message}")
    watch.unschedulable_since = None
    if any(p.ran for p in watch.current):
        return SchedulerJob(JobState.RUNNING)
    return SchedulerJob(JobState.PENDING)
