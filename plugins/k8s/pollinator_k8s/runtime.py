"""Jobs as Kubernetes batch/v1 Jobs: executor type ``k8s``.

On :class:`BatchRuntime`, which brings the poller (one cycle for all jobs, adaptive interval,
outages that pause and never decide), adoption through :meth:`find`, notices and cancel
confirmation. What this runtime adds:

- **one cycle = two requests**: a list of this executor's Jobs and a list of their pods, by
  label, whatever the number of jobs (:meth:`K8sRuntime._poll`); :mod:`.verdict` reads them.
  One watch of the same pods (a single long request) wakes the poller when anything changes,
  at most every ``NUDGE_GAP`` seconds: a pod that starts or ends is seen at once, and quiet
  jobs cost a cycle every ``poll_interval`` seconds;
- **logs from the API** (:meth:`K8sRuntime.logs`): one follower thread per pod, reconnecting
  with ``sinceTime`` and dropping repeats, a final read once the container ended, pods merged
  with ``[rank k]``; the byte offset of an adopting executor is honoured by reading the output
  again from the start and skipping that many bytes;
- **cancel**: the Job deleted with foreground propagation, so its pods get SIGTERM and their
  grace; the job counts as ended only when the Job and its pods are gone; insisting (after
  ``cancel_confirm``) deletes the pods at once;
- **walltime**: the Job's ``activeDeadlineSeconds``, extended once the job runs by the time it
  waited to start, so the limit counts from the start;
- **clean-up**: after the results are in, the Job is deleted, or given ``ttlSecondsAfterFinished``
  (``keep: ttl``); a Job that never finished is always deleted. At start (:meth:`reconcile`) the
  executor's Jobs whose process it no longer runs are deleted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import attrs

from pollinator_core.api import (
    BatchRuntime,
    InfraError,
    Job,
    JobFailed,
    JobState,
    Polling,
    Reason,
    SchedulerJob,
    Termination,
)

from .kube import ApiError, Kube
from .manifest import (
    CONTAINER,
    JOB_NAME_LABEL,
    PROCESS_ANNOTATION,
    job_object,
    owned_by,
    selector,
    service_object,
)
from .podlog import Cursor, Line, Merger, split_lines
from .settings import K8sSettings
from .verdict import PodView, Watch, finished, pod_view, seconds_between, standing

log = logging.getLogger("pollinator.k8s")

#: how long lines of several pods wait for earlier lines of another pod
MERGE_WINDOW = 1.0
#: seconds between attempts to reopen a log stream that broke off
REOPEN_DELAY = (0.5, 5.0)
#: at most one poll per this many seconds on account of the pod watch
NUDGE_GAP = 0.5
#: seconds between attempts to open the pod watch again after it failed
WATCH_RETRY = (1.0, 30.0)


@attrs.define
class _Tracked:
    """This runtime's view of one Job (the base class keeps the rest)."""

    job: Job
    watch: Watch = attrs.field(factory=Watch)
    #: we deleted it (cancel): its absence then means it is over
    deleted: bool = False
    #: the API showed it being deleted (by us or someone else)
    deleting: bool = False
    #: its deadline was extended by the wait before its start
    deadline_set: bool = False
    #: it reached a terminal condition (Complete, Failed)
    finished: bool = False


class K8sRuntime(BatchRuntime):
    """Jobs in one namespace, through :class:`Kube`."""

    type = "k8s"

    def __init__(self, kube: Kube, settings: K8sSettings) -> None:
        super().__init__(
            Polling(
                max_interval=settings.poll_interval,
                repeat_notice=60.0,
                cancel_confirm=settings.kill_grace + 15.0,
            )
        )
        self.kube = kube
        self.settings = settings
        #: whose Jobs these are (the executor's id); scopes listing and clean-up
        self.owner = ""
        self._k8s: dict[str, _Tracked] = {}
        self._k8s_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._last_nudge = 0.0
        self._nudge_timer: threading.Timer | None = None

    def describe(self) -> str:
        return f"Kubernetes Jobs in namespace {self.kube.namespace} at {self.kube.where}"

    def close(self) -> None:
        super().close()
        with self._k8s_lock:
            if self._nudge_timer is not None:
                self._nudge_timer.cancel()
        self.kube.close()

    # --- start -----------------------------------------------------------------------------

    def reconcile(self, owner: str, running: Collection[str]) -> None:
        """Label new Jobs with ``owner``; delete the owner's Jobs whose process is not in
        ``running`` (the server no longer has it running for this executor), except finished
        ones kept for inspection with a TTL."""
        self.owner = owner
        try:
            jobs = self.kube.list_jobs(selector(owner))
        except InfraError as exc:
            log.warning("could not look for Jobs left behind: %s", exc)
            return
        for item in jobs:
            meta = item.get("metadata") or {}
            pid = (meta.get("annotations") or {}).get(PROCESS_ANNOTATION, "")
            if pid in running:
                continue
            kept = finished(item) and (item.get("spec") or {}).get("ttlSecondsAfterFinished")
            if kept or meta.get("deletionTimestamp"):
                continue
            log.info("deleting Job %s: its process %s is no longer run by this executor",
                     meta.get("name"), pid[:12])  # fmt: skip
            with contextlib.suppress(InfraError):
                self.kube.delete_job(str(meta.get("name")))

    # --- BatchRuntime ------------------------------------------------------------------------

    def _remember(self, job: Job) -> _Tracked:
        with self._k8s_lock:
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(
                    target=self._watch_pods, name="k8s-pod-watch", daemon=True
                )
                self._watcher.start()
            return self._k8s.setdefault(job.name, _Tracked(job))

    # --- the pod watch: a signal to poll now ---------------------------------------------------

    def _watch_pods(self) -> None:
        delay = WATCH_RETRY[0]
        while not self._closed.is_set():
            try:
                for _ in self.kube.watch_pods(selector(self.owner)):
                    self._nudge()
                    delay = WATCH_RETRY[0]
                    if self._closed.is_set():
                        return
                continue  # the API ended this watch after its time: open the next
            except ApiError as exc:
                log.info("no pod watch (%s); status comes from polling alone", exc)
                return
            except InfraError as exc:
                log.debug("pod watch: %s", exc)
            self._closed.wait(delay)
            delay = min(delay * 2, WATCH_RETRY[1])

    def _nudge(self) -> None:
        """Wake the poller now, or once ``NUDGE_GAP`` has passed since the last time."""
        with self._k8s_lock:
            now = time.monotonic()
            wait = self._last_nudge + NUDGE_GAP - now
            if wait <= 0:
                self._last_nudge = now
                self._wake.set()
            elif self._nudge_timer is None or not self._nudge_timer.is_alive():
                self._nudge_timer = threading.Timer(wait, self._nudge)
                self._nudge_timer.daemon = True
                self._nudge_timer.start()

    def _submit(self, job: Job) -> str:
        body = job_object(job, self.settings, self.kube.namespace, self.owner)
        try:
            created = self.kube.create_job(body)
        except ApiError as exc:
            if exc.status != 409:
                raise JobFailed(
                    f"Kubernetes refused the Job: {exc.api_message or exc.reason}"
                ) from None
            # Submitted before (a retried request, an executor that crashed right after it):
            # the same job, if it is this process's.
            existing = self.kube.get_job(job.name)
            if existing is None or _process_of(existing) != job.process_id:
                raise JobFailed(
                    f"a Job named {job.name} exists in namespace {self.kube.namespace} for "
                    "another process"
                ) from None
            created = existing
        self._remember(job)
        service = service_object(job, self.kube.namespace, self.owner)
        if service is not None:
            try:
                self.kube.create_service(owned_by(service, created))
            except ApiError as exc:
                if exc.status != 409:
                    log.warning("job %s: no headless Service (%s)", job.name, exc)
        return job.name

    def _lookup(self, job: Job) -> str | None:
        found = self.kube.get_job(job.name)
        if found is None or _process_of(found) != job.process_id:
            return None
        tracked = self._remember(job)
        tracked.deadline_set = _deadline_extended(found, job)
        return job.name

    def _poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        chosen = selector(self.owner)
        jobs = {str(j["metadata"]["name"]): j for j in self.kube.list_jobs(chosen)}
        pods: dict[str, list[PodView]] = {}
        for pod in self.kube.list_pods(chosen):
            owner = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL, "")
            pods.setdefault(owner, []).append(pod_view(pod))
        now = time.monotonic()
        seen: dict[str, SchedulerJob] = {}
        for name in ids:
            with self._k8s_lock:
                tracked = self._k8s.get(name)
                if tracked is None:
                    continue
                tracked.watch.update(pods.get(name, []))
            item = jobs.get(name)
            if item is None:
                if (tracked.deleted or tracked.deleting) and not tracked.watch.current:
                    seen[name] = SchedulerJob(JobState.ENDED, termination=self._gone(tracked))
                elif tracked.deleted or tracked.deleting:
                    seen[name] = SchedulerJob(JobState.RUNNING)
                continue  # vanished unseen: the base class waits, then reports it lost
            if item["metadata"].get("deletionTimestamp"):
                tracked.deleting = True
                if tracked.deleted and not tracked.watch.current:
                    # Ours, its pods gone: the API removes the Job itself next.
                    seen[name] = SchedulerJob(JobState.ENDED, termination=self._gone(tracked))
                    continue
            job = tracked.job
            status = standing(
                item,
                tracked.watch,
                now=now,
                ranks=job.nodes,
                walltime=job.walltime,
                pending_timeout=self.settings.pending_timeout,
                image_pull_timeout=self.settings.image_pull_timeout,
            )
            tracked.finished = finished(item)
            if status.state is JobState.RUNNING and not tracked.deadline_set:
                self._extend_deadline(tracked, item)
            seen[name] = status
        return seen

    def _gone(self, tracked: _Tracked) -> Termination:
        """The end of a Job deleted with its pods: by us (the base class puts our reason in),
        or by someone else."""
        ended = [p.ended for p in tracked.watch.pods.values() if p.ended is not None]
        code = ended[-1].exit_code if ended else None
        evidence = "the Job and its pods were deleted"
        if tracked.deleted:
            return Termination(Reason.CANCELLED, evidence=(evidence,)).with_exit(code)
        return Termination(
            Reason.CANCELLED, detail="the Job was deleted in Kubernetes", evidence=(evidence,)
        ).with_exit(code)

    def _extend_deadline(self, tracked: _Tracked, item: dict[str, Any]) -> None:
        """Give the job its whole walltime from its start: the Job's deadline counts from its
        creation, queue and image pull included."""
        tracked.deadline_set = True
        job = tracked.job
        starts = [p.started for p in tracked.watch.pods.values() if p.started]
        created = str((item.get("status") or {}).get("startTime") or "")
        if job.walltime <= 0 or not starts or not created:
            return
        waited = math.ceil(seconds_between(created, min(starts)))
        if waited < 1:
            return
        try:
            deadline = {"spec": {"activeDeadlineSeconds": job.walltime + waited}}
            self.kube.patch_job(job.name, deadline)
        except InfraError as exc:
            log.warning("job %s: could not extend its deadline by %d s: %s", job.name, waited, exc)

    def _cancel(self, external: str, kill: bool) -> None:
        with self._k8s_lock:
            tracked = self._k8s.get(external)
        if tracked is not None:
            tracked.deleted = True
        try:
            if kill and tracked is not None:
                for pod in tracked.watch.current:
                    self.kube.delete_pod(pod.name, 0)
            # Foreground: the Job stays (being deleted) until its pods are gone, which the
            # poller waits for before it calls the job ended.
            self.kube.delete_job(external, "Foreground")
        except InfraError as exc:
            # The poller asks again after cancel_confirm (the API may be back by then).
            log.warning("job %s: could not delete it yet: %s", external, exc)

    def cleanup(self, handle: str) -> None:
        with self._k8s_lock:
            tracked = self._k8s.pop(handle, None)
        super().cleanup(handle)
        if tracked is None or (tracked.deleted and not tracked.watch.current):
            return
        try:
            if self.settings.keep == "ttl" and tracked.finished:
                ttl = {"spec": {"ttlSecondsAfterFinished": self.settings.keep_ttl}}
                self.kube.patch_job(handle, ttl)
            else:
                self.kube.delete_job(handle)
        except InfraError as exc:  # the next start's reconcile deletes it
            log.warning("job %s: clean-up failed: %s", handle, exc)

    # --- logs ---------------------------------------------------------------------------------

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        with self._k8s_lock:
            tracked = self._k8s[handle]
        job = tracked.job
        several = job.nodes > 1
        merger = Merger(
            MERGE_WINDOW if several else 0.0,
            ("rank" if job.processes_per_node == 1 else "node") if several else "",
        )
        lines: queue.Queue[tuple[int, Line]] = queue.Queue()
        stop = threading.Event()
        followers: dict[str, threading.Thread] = {}
        skip = offset
        try:
            while True:
                over = self._ended(handle)
                with self._k8s_lock:
                    known = list(tracked.watch.pods.values())
                for pod in known:
                    if pod.uid not in followers and pod.ran:
                        followers[pod.uid] = self._follow(pod, lines, stop)
                yield from self._take_notices(handle)
                with contextlib.suppress(queue.Empty):
                    rank, line = lines.get(timeout=0.25)
                    merger.add(rank, line, time.monotonic())
                # Followers are asked first: lines they queued before they ended are taken next.
                done = over and not any(t.is_alive() for t in followers.values())
                while not lines.empty():
                    rank, line = lines.get_nowait()
                    merger.add(rank, line, time.monotonic())
                output = merger.ready(time.monotonic(), flush=done)
                if skip and output:
                    cut = min(skip, len(output))
                    output, skip = output[cut:], skip - cut
                yield output  # b"" while quiet: the loop gets control back (to stop following)
                if done:
                    yield from self._take_notices(handle)
                    return
        finally:
            stop.set()

    def _follow(
        self, pod: PodView, lines: queue.Queue[tuple[int, Line]], stop: threading.Event
    ) -> threading.Thread:
        thread = threading.Thread(
            target=self._follow_pod, args=(pod, lines, stop), name=f"log-{pod.name}", daemon=True
        )
        thread.start()
        return thread

    def _follow_pod(
        self, pod: PodView, lines: queue.Queue[tuple[int, Line]], stop: threading.Event
    ) -> None:
        """Read one pod's log until its container ended and the last read is done."""
        cursor = Cursor()
        delay = REOPEN_DELAY[0]
        ended = pod.ended is not None
        last_reads = 3  # a container that ended but whose log cannot be read: a few tries
        while not stop.is_set() and last_reads > 0:
            if cursor.started:
                cursor.reopen()
            if ended:
                last_reads -= 1
            try:
                chunks = self.kube.log(pod.name, CONTAINER, follow=not ended, since=cursor.since())
                for line in split_lines(chunks, final=ended):
                    if cursor.accept(line):
                        lines.put((pod.index, line))
                        delay = REOPEN_DELAY[0]
                    if stop.is_set():
                        return
                if ended:
                    return  # the last read of an ended container
            except ApiError as exc:
                if exc.status == 404:
                    return  # the pod is gone, and its log with it
                log.info("log of %s: %s", pod.name, exc)
            except InfraError as exc:
                log.info("log stream of %s broke off (%s); reopening", pod.name, exc)
            # The stream ended: the container may have ended, or the stream was cut.
            self._wake.set()
            try:
                fresh = self.kube.get_pod(pod.name)
            except InfraError:
                fresh = {}  # the API is down: try the stream again later
            if fresh is None:
                return
            if fresh:
                ended = pod_view(fresh).ended is not None
            stop.wait(delay)
            delay = min(delay * 2, REOPEN_DELAY[1])


def _process_of(item: dict[str, Any]) -> str:
    return str(((item.get("metadata") or {}).get("annotations") or {}).get(PROCESS_ANNOTATION, ""))


def _deadline_extended(item: dict[str, Any], job: Job) -> bool:
    """True when an earlier executor already extended the Job's deadline."""
    deadline = (item.get("spec") or {}).get("activeDeadlineSeconds")
    return job.walltime <= 0 or (isinstance(deadline, int) and deadline > job.walltime)
