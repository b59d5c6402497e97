"""The executor loop under faults, with the test kit's fake batch runtime against the simulator:
an outage at submit, an executor killed mid-job, a status call that hangs, a log stream that
breaks. The fake scheduler runs no processes; each job runs a program of the test's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from pollinator_core.colonies.models import ProcessState
from pollinator_core.execution.termination import Reason
from pollinator_core.testing import FakeBatchRuntime, FakeJob, FakeScheduler, LoopHarness

StartExecutor = Callable[..., LoopHarness]


def output_lines(loop: LoopHarness, pid: str) -> list[str]:
    """The job's own lines in the process log (without the executor's notices)."""
    return [line for line in loop.lines(pid) if not line.startswith("pollinator: ")]


def test_an_outage_at_submit_fails_nothing_and_the_queue_drains_after_it(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    scheduler = FakeScheduler(tmp_path / "scheduler")
    scheduler.down("slurmctld is not responding")
    loop = pollinator_executor(FakeBatchRuntime(scheduler), max_jobs=3)
    first = loop.submit("echo first")
    loop.wait_for("the outage notice", lambda: "is unreachable" in loop.output(first))
    time.sleep(1.5)  # the assign call in flight when the outage showed (poll: 1 s) returns
    # Assignment is paused: with two free slots, these would otherwise be taken at once.
    queued = [loop.submit("echo second"), loop.submit("echo third")]
    time.sleep(1.5)
    assert loop.state(first) is ProcessState.RUNNING
    assert [loop.state(pid) for pid in queued] == [ProcessState.WAITING] * 2
    notice = loop.lines(first)[0]
    assert notice.startswith("pollinator: the fake scheduler is unreachable (the fake scheduler ")
    assert "slurmctld is not responding" in notice and "trying again in" in notice
    scheduler.up()
    for pid, text in zip([first, *queued], ["first", "second", "third"], strict=True):
        process = loop.wait(pid)
        assert process.state is ProcessState.SUCCESS, process.errors
        assert output_lines(loop, pid) == [f"echo {text}\n"]
    assert len(scheduler.submissions) == 3


def test_a_killed_executor_s_job_is_adopted_and_closed_with_its_true_exit_code(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    go = threading.Event()

    def program(ctl: FakeJob) -> None:
        ctl.start()
        ctl.write("line 1\nline 2\nli")  # the last line is not whole yet when the executor dies
        ctl.wait(go)
        ctl.write("ne 3\n")
        ctl.finish(3)

    scheduler = FakeScheduler(tmp_path / "scheduler", program)
    first = pollinator_executor(FakeBatchRuntime(scheduler))
    pid = first.submit("train")
    first.wait_for("two whole lines forwarded", lambda: first.forwarded(pid) == 14)
    first.kill()
    second = first.restart(FakeBatchRuntime(scheduler))
    assert second.adopted == 1
    second.wait_for("the re-attach notice", lambda: "re-attached" in second.output(pid))
    go.set()
    process = second.wait(pid)
    assert process.state is ProcessState.FAILED
    termination = second.termination(pid)
    assert termination is not None
    assert (termination.reason, termination.exit_code) == (Reason.EXIT, 3)
    assert output_lines(second, pid) == ["line 1\n", "line 2\n", "line 3\n"]
    assert len(scheduler.submissions) == 1, "the adopted job was submitted a second time"


def test_an_executor_killed_before_submitting_submits_once_after_restart(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    scheduler = FakeScheduler(tmp_path / "scheduler")
    scheduler.down("no route to host")
    first = pollinator_executor(FakeBatchRuntime(scheduler))
    pid = first.submit("echo late")
    first.wait_for("the outage notice", lambda: "is unreachable" in first.output(pid))
    first.kill()  # assigned, never submitted
    scheduler.up()
    second = first.restart(FakeBatchRuntime(scheduler))
    assert second.adopted == 1
    assert second.wait(pid).state is ProcessState.SUCCESS
    assert output_lines(second, pid) == ["echo late\n"]
    assert len(scheduler.submissions) == 1


def test_a_status_call_that_hangs_holds_up_no_other_job(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    scheduler = FakeScheduler(tmp_path / "scheduler")
    release = scheduler.hang_status("echo stuck")
    loop = pollinator_executor(FakeBatchRuntime(scheduler), max_jobs=2)
    stuck = loop.submit("echo stuck")
    loop.wait_for("the stuck job's output", lambda: loop.output(stuck) == "echo stuck\n")
    others = [loop.submit(f"echo other {i}") for i in range(3)]
    for pid in others:
        assert loop.wait(pid, timeout=20).state is ProcessState.SUCCESS
    assert loop.state(stuck) is ProcessState.RUNNING  # its status call still hangs
    release.set()
    assert loop.wait(stuck).state is ProcessState.SUCCESS


def test_a_broken_log_stream_loses_no_line_and_repeats_none(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    def program(ctl: FakeJob) -> None:
        ctl.start()
        ctl.write("one\ntwo\nthree\n")
        ctl.finish(0)

    scheduler = FakeScheduler(tmp_path / "scheduler", program)
    scheduler.break_logs("count", after=len("one\ntw"))  # mid-line
    loop = pollinator_executor(FakeBatchRuntime(scheduler))
    pid = loop.submit("count")
    process = loop.wait(pid)
    assert process.state is ProcessState.SUCCESS, process.errors
    assert loop.lines(pid) == ["one\n", "two\n", "three\n"]


def test_a_cancelled_process_cancels_the_scheduler_job(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    def program(ctl: FakeJob) -> None:
        ctl.start()
        ctl.write("waiting\n")
        ctl.wait(threading.Event())  # until cancelled

    scheduler = FakeScheduler(tmp_path / "scheduler", program)
    loop = pollinator_executor(FakeBatchRuntime(scheduler))
    pid = loop.submit("sleep forever")
    loop.wait_for("the job's output", lambda: loop.output(pid) == "waiting\n")
    loop.user.cancel_process(pid)
    loop.wait_for("the scheduler job's end", lambda: scheduler.jobs() == [])
    assert scheduler.calls["cancel"] >= 1
    assert loop.state(pid) is ProcessState.CANCELLED


def test_a_stopping_executor_leaves_a_quiet_job_running_at_once_and_the_next_adopts_it(
    pollinator_executor: StartExecutor, tmp_path: Path
) -> None:
    go = threading.Event()

    def program(ctl: FakeJob) -> None:
        ctl.start()
        ctl.write("working\n")
        ctl.wait(go)  # quiet: prints nothing while the executor stops
        ctl.write("done\n")
        ctl.finish(0)

    scheduler = FakeScheduler(tmp_path / "scheduler", program)
    first = pollinator_executor(FakeBatchRuntime(scheduler))
    pid = first.submit("train")
    first.wait_for("the job's first line", lambda: first.output(pid) == "working\n")
    started = time.monotonic()
    first.executor.shutdown(0)
    assert time.monotonic() - started < 5, "shutdown waited on a job it leaves running"
    assert first.executor.left_running == 1
    assert first.state(pid) is ProcessState.RUNNING
    second = first.restart(FakeBatchRuntime(scheduler))
    assert second.adopted == 1
    go.set()
    assert second.wait(pid).state is ProcessState.SUCCESS
    assert output_lines(second, pid) == ["working\n", "done\n"]
    assert len(scheduler.submissions) == 1
