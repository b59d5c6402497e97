"""How the Kubernetes plugin reads a Job's end, and its logs, from what the API returns.

The objects here are minimal stand-ins for API replies, in the shapes and with the reasons and
messages recorded on the real test cluster (tests/infra/k8s/README.md); the k8s-marked tests in
test_k8s_runtime.py check the same verdicts end to end on that cluster.
"""

from __future__ import annotations

from typing import Any

import pytest
from pollinator_k8s.podlog import Cursor, Line, Merger, parse_stamp, since_text, split_lines
from pollinator_k8s.verdict import Watch, ended_job, pod_view, standing

from pollinator_core.api import JobState, Reason

T0 = "2026-01-02T03:04:05Z"


def api_job(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "pln-0123456789abcdef"},
        "status": {
            "startTime": T0,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions
            ],
        },
    }


def api_pod(
    name: str = "pln-0123456789abcdef-x",
    *,
    index: int = 0,
    state: dict[str, Any] | None = None,
    phase: str = "Running",
    created: str = T0,
    reason: str = "",
    message: str = "",
    unschedulable: str = "",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if reason:
        status.update(reason=reason, message=message)
    if state is not None:
        status["containerStatuses"] = [{"name": "main", "state": state}]
    if unschedulable:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": unschedulable}
        ]  # fmt: skip
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "status": status,
    }


def terminated(code: int, reason: str = "Error", finished: str = T0) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason, "startedAt": T0,
                           "finishedAt": finished}}  # fmt: skip


def verdict(job: dict[str, Any], *pods: dict[str, Any], ranks: int = 1) -> Any:
    views = [pod_view(p) for p in pods]
    return ended_job(job, views, ranks=ranks, walltime=60)


# --- ended Jobs ---------------------------------------------------------------------------------


def test_complete_is_success() -> None:
    done = verdict(api_job(("Complete", "CompletionsReached", "")), api_pod(state=terminated(0)))
    assert done.succeeded
    assert done.evidence[0] == "Job Complete (CompletionsReached)"


def test_a_failing_exit_code_is_reported_with_its_evidence() -> None:
    job = api_job(("Failed", "PodFailurePolicy", "Container main ... failed with exit code 3"))
    done = verdict(job, api_pod(state=terminated(3)))
    assert (done.reason, done.exit_code, done.signal) == (Reason.EXIT, 3, None)
    assert "pod pln-0123456789abcdef-x: container main terminated (Error), exit code 3" in (
        done.evidence
    )


def test_oom_comes_before_everything_else() -> None:
    job = api_job(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"))
    done = verdict(job, api_pod(state=terminated(137, "OOMKilled")))
    assert (done.reason, done.exit_code) == (Reason.OOM, 137)
    assert done.summary() == (
        "out of memory (container main was OOMKilled); exit code 137, killed by SIGKILL"
    )


def test_an_evicted_pod_is_a_node_failure() -> None:
    pod = api_pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    done = verdict(api_job(("Failed", "BackoffLimitExceeded", "")), pod)
    assert done.reason is Reason.NODE_FAILURE
    assert "low on resource" in done.detail


def test_the_deadline_is_walltime_with_the_exit_code_seen() -> None:
    job = api_job(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"))
    done = verdict(job, api_pod(state=terminated(143)))
    assert done.summary() == "walltime exceeded (60 s); exit code 143, killed by SIGTERM"
    gone = verdict(job)  # the pods were deleted before any poll saw them end
    assert (gone.reason, gone.exit_code) == (Reason.WALLTIME, None)


def test_a_failed_job_whose_pods_are_gone_is_read_from_its_message_or_lost() -> None:
    message = "Container main for pod default/p failed with exit code 5 matching FailJob rule"
    done = verdict(api_job(("Failed", "PodFailurePolicy", message)))
    assert (done.reason, done.exit_code) == (Reason.EXIT, 5)
    lost = verdict(api_job(("Failed", "BackoffLimitExceeded", "backoff limit")))
    assert lost.reason is Reason.LOST and not lost.succeeded


def test_the_first_rank_to_fail_is_named() -> None:
    job = api_job(("Failed", "PodFailurePolicy", ""))
    done = verdict(
        job,
        api_pod("a", index=0, state=terminated(143, finished="2026-01-02T03:04:09Z")),
        api_pod("b", index=1, state=terminated(2, finished="2026-01-02T03:04:07Z")),
        ranks=2,
    )
    assert (done.exit_code, done.detail) == (2, "rank 1: Error")


def test_a_replaced_pod_is_superseded_by_its_replacement() -> None:
    job = api_job(("Complete", "CompletionsReached", ""))
    old = api_pod("old", phase="Failed", reason="Evicted", created=T0)
    new = api_pod("new", state=terminated(0), created="2026-01-02T03:05:00Z")
    assert verdict(job, old, new).succeeded


# --- jobs that have not ended -------------------------------------------------------------------


def stand(job: dict[str, Any], watch: Watch, now: float, *pods: dict[str, Any]) -> Any:
    watch.update([pod_view(p) for p in pods])
    return standing(
        job, watch, now=now, ranks=1, walltime=60, pending_timeout=10, image_pull_timeout=20
    )


def test_an_invalid_image_name_fails_at_once_with_the_kubelets_message() -> None:
    message = 'couldn\'t parse image name "localhost/Pollinator:1": invalid reference format'
    waiting = {"waiting": {"reason": "InvalidImageName", "message": message}}
    seen = stand(api_job(), Watch(), 0.0, api_pod(state=waiting, phase="Pending"))
    assert seen.state is JobState.ENDED
    assert seen.termination.reason is Reason.INFRASTRUCTURE
    assert seen.termination.detail == f"InvalidImageName: {message}"


def test_a_failing_pull_is_pending_until_its_bound() -> None:
    watch = Watch()
    message = 'Back-off pulling image "localhost/missing:1": ErrImagePull: failed to pull'
    pod = api_pod(state={"waiting": {"reason": "ImagePullBackOff", "message": message}})
    first = stand(api_job(), watch, 100.0, pod)
    assert first.state is JobState.PENDING
    assert first.waiting == f"image pull failing (ImagePullBackOff): {message}"
    assert stand(api_job(), watch, 119.0, pod).state is JobState.PENDING
    last = stand(api_job(), watch, 120.0, pod)
    assert last.state is JobState.ENDED
    assert last.termination.detail.startswith("the image could not be pulled for 20 s: Back-off")


def test_unschedulable_is_pending_with_the_schedulers_message_then_fails() -> None:
    watch = Watch()
    message = "0/1 nodes are available: 1 Insufficient cpu."
    pod = api_pod(phase="Pending", unschedulable=message)
    assert stand(api_job(), watch, 50.0, pod).waiting == f"unschedulable: {message}"
    ended = stand(api_job(), watch, 60.0, pod)
    assert ended.termination.detail == f"not scheduled within 10 s: {message}"


def test_running_and_pending() -> None:
    running = api_pod(state={"running": {"startedAt": T0}})
    assert stand(api_job(), Watch(), 0.0, running).state is JobState.RUNNING
    creating = api_pod(state={"waiting": {"reason": "ContainerCreating"}}, phase="Pending")
    seen = stand(api_job(), Watch(), 0.0, creating)
    assert (seen.state, seen.waiting) == (JobState.PENDING, "")
    assert stand(api_job(), Watch(), 0.0).state is JobState.PENDING  # no pod yet


# --- logs ---------------------------------------------------------------------------------------


def test_timestamps_of_any_precision() -> None:
    assert parse_stamp(b"2026-01-02T03:04:05Z") == 1767323045 * 10**9
    assert parse_stamp(b"2026-01-02T03:04:05.5Z") == 1767323045 * 10**9 + 500_000_000
    assert parse_stamp(b"2026-01-02T03:04:05.000000001Z") == 1767323045 * 10**9 + 1
    assert parse_stamp(b"2026-01-02T04:04:05.25+01:00") == 1767323045 * 10**9 + 250_000_000
    assert parse_stamp(b"not a time") is None
    assert since_text(1767323045 * 10**9 + 999_999_999) == T0


def test_lines_are_split_and_a_broken_off_half_line_is_dropped() -> None:
    chunks = [
        b"2026-01-02T03:04:05.1Z hel",
        b"lo\n2026-01-02T03:04:05.2Z \n2026-01-02T03:04:05.3Z ha",
    ]
    assert list(split_lines(chunks, final=False)) == [
        Line(parse_stamp(b"2026-01-02T03:04:05.1Z") or 0, b"hello\n"),
        Line(parse_stamp(b"2026-01-02T03:04:05.2Z") or 0, b"\n"),
    ]
    last = list(split_lines(chunks, final=True))[-1]
    assert last.text == b"ha"  # the container's last output had no newline


def test_a_reopened_stream_repeats_nothing_and_loses_nothing() -> None:
    second = 1767323045 * 10**9
    first_stream = [Line(second - 5, b"a\n"), Line(second + 1, b"b\n"), Line(second + 1, b"c\n")]
    cursor = Cursor()
    out = [line.text for line in first_stream if cursor.accept(line)]
    assert cursor.since() == T0
    cursor.reopen()
    # The API resends the whole second (inclusive, whole seconds), then new lines.
    again = [Line(second + 1, b"b\n"), Line(second + 1, b"c\n"), Line(second + 1, b"d\n"),
             Line(second + 2, b"e\n")]  # fmt: skip
    out += [line.text for line in again if cursor.accept(line)]
    assert out == [b"a\n", b"b\n", b"c\n", b"d\n", b"e\n"]


@pytest.mark.parametrize("window", [0.0, 1.0])
def test_pods_are_merged_in_time_order_with_their_rank(window: float) -> None:
    merger = Merger(window, "rank")
    merger.add(1, Line(20, b"one-late\n"), now=0.0)
    merger.add(0, Line(10, b"zero-early\n"), now=0.5)
    merger.add(0, Line(20, b"zero-tie\n"), now=0.5)
    early = merger.ready(0.9)
    if window:
        assert early == b""  # held: an earlier line of another pod may still come
    rest = merger.ready(2.0)
    assert early + rest == b"[rank 0] zero-early\n[rank 0] zero-tie\n[rank 1] one-late\n"
    single = Merger(0.0)
    single.add(0, Line(1, b"x\n"), now=0.0)
    assert single.ready(0.0) == b"x\n"
