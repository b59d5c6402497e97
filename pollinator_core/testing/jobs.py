"""Run one job on a runtime directly, as the executor loop would: submit, read the output as
whole lines, wait for the final status, clean up.

::

    run = run_job(runtime, Job("p1", image, "echo hi; exit 3"))
    run.lines            # ["hi\\n"]: the job's output, as the loop forwards it
    run.notices          # the runtime's own lines ("pollinator: pulled image ...")
    run.termination      # Termination(reason=EXIT, exit_code=3, ...)

The output is read on a thread of its own, so a runtime that never ends a stream fails the
test after ``timeout`` seconds with what it did yield, instead of hanging it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import attrs

from pollinator_core.execution.job import Job
from pollinator_core.execution.lines import LineAssembler
from pollinator_core.execution.runtime import Runtime
from pollinator_core.execution.termination import Termination

_END = object()


@attrs.frozen
class JobRun:
    """One job's run: its handle, output lines and notices with the seconds since submit at
    which each arrived, how it ended, and how long it took."""

    handle: str
    termination: Termination
    #: (seconds since submit, line) for each whole line of output
    timed_lines: tuple[tuple[float, str], ...]
    notices: tuple[str, ...]
    seconds: float
    #: bytes of output read (from the offset given)
    read: int

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.timed_lines]

    @property
    def output(self) -> str:
        return "".join(self.lines)


def run_job(
    runtime: Runtime,
    job: Job,
    *,
    timeout: float = 60.0,
    on_line: Callable[[str, str], None] | None = None,
) -> JobRun:
    """Submit ``job``, follow it to its end, clean up. ``on_line(handle, line)`` sees each
    output line as it arrives (to cancel the job at a given point, say)."""
    started = time.monotonic()
    handle = runtime.submit(job)
    try:
        return follow_job(runtime, handle, timeout=timeout, on_line=on_line, started=started)
    finally:
        runtime.cleanup(handle)


def follow_job(
    runtime: Runtime,
    handle: str,
    *,
    offset: int = 0,
    timeout: float = 60.0,
    on_line: Callable[[str, str], None] | None = None,
    started: float | None = None,
) -> JobRun:
    """Read the job's output from ``offset`` to its end and wait for its final status."""
    started = time.monotonic() if started is None else started
    deadline = time.monotonic() + timeout
    items: queue.Queue[object] = queue.Queue()

    def pump() -> None:
        try:
            for item in runtime.logs(handle, offset):
                items.put(item)
        except BaseException as exc:  # handed to the test's thread, which raises it
            items.put(exc)
        else:
            items.put(_END)

    threading.Thread(target=pump, name=f"logs-{handle[:12]}", daemon=True).start()
    assembler = LineAssembler()
    lines: list[tuple[float, str]] = []
    notices: list[str] = []
    read = 0

    def take(new: list[str]) -> None:
        for line in new:
            lines.append((time.monotonic() - started, line))
            if on_line is not None:
                on_line(handle, line)

    while True:
        try:
            item = items.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise AssertionError(
                f"the output of job {handle} did not end within {timeout} s; it yielded "
                f"{[line for _, line in lines]!r} and the notices {notices!r}"
            ) from None
        if item is _END:
            break
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            notices.append(item)
        elif isinstance(item, bytes):
            read += len(item)
            take(assembler.feed(item))
        else:
            raise AssertionError(f"logs() yielded {item!r}: only bytes and str are allowed")
    take(assembler.flush())
    delay = 0.01
    while not (status := runtime.status(handle)).finished:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {handle}: its output ended, but its status is still {status.state.name} "
                f"after {timeout} s (the contract: logs() ends only once the job ended)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    if status.termination is None:
        raise AssertionError(f"job {handle} ended without a termination record: {status!r}")
    return JobRun(
        handle, status.termination, tuple(lines), tuple(notices), time.monotonic() - started, read
    )
