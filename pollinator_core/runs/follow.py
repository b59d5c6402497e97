"""Follow a process: print its log as it grows and report how it ended.

Polling, as every Colonies client does (getlogsmsg since the last timestamp + getprocessmsg),
but every 0.1 s while output flows, relaxing to 0.3 s after a quiet spell, so a printed line
reaches the terminal well within half a second. Unlike the original, entries that share the
last timestamp are not skipped (the server's ``since`` is exclusive), and the final state is
read only after the log has been drained, so the last lines are never lost.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.models import Process
from pollinator_core.execution.termination import RECORD_MARK, TAIL_MARK

#: the most log entries one getlogsmsg returns
PAGE = 500
FAST_POLL = 0.1
SLOW_POLL = 0.3
#: seconds without output after which polling relaxes
QUIET = 3.0
STATE_EVERY = 0.25


class LogPrinter:
    """Prints a process's log entries once each, in order, from ``since`` onwards."""

    def __init__(
        self,
        client: ColoniesClient,
        colony: str,
        process_id: str,
        out: TextIO,
        tail: int | None = None,
    ) -> None:
        self._client = client
        self._colony = colony
        self._pid = process_id
        self._out = out
        self._since = 0
        self._at_since: set[str] = set()  # messages already printed with timestamp == since
        self.ends_with_newline = True
        #: print only this many last lines of what is there at the first poll
        self._tail = tail

    def poll(self) -> int:
        """Print what is new; return how many entries were printed."""
        if self._tail is None:
            return self._poll()
        tail, self._tail = self._tail, None
        real_out, buffer = self._out, io.StringIO()
        self._out = buffer
        try:
            printed = self._poll()
        finally:
            self._out = real_out
        lines = buffer.getvalue().splitlines(keepends=True)
        self._write("".join(lines[-tail:] if tail else []))
        return printed

    def _poll(self) -> int:
        printed = 0
        while True:
            logs = self._client.get_logs(
                self._colony, self._pid, count=PAGE, since=max(self._since - 1, 0)
            )
            for entry in logs:
                if entry.timestamp < self._since or (
                    entry.timestamp == self._since and entry.message in self._at_since
                ):
                    continue
                if entry.timestamp > self._since:
                    self._since, self._at_since = entry.timestamp, set()
                self._at_since.add(entry.message)
                self._write(entry.message)
                printed += 1
            if len(logs) < PAGE:
                return printed

    def end_line(self) -> None:
        """Finish an unterminated last line, so what is printed next starts on its own."""
        if not self.ends_with_newline:
            self._write("\n")

    def _write(self, message: str) -> None:
        if message:
            self._out.write(message)
            self._out.flush()
            self.ends_with_newline = message.endswith("\n")


def follow(
    client: ColoniesClient,
    colony: str,
    process_id: str,
    *,
    out: TextIO | None = None,
    on_state: Callable[[Process], None] | None = None,
    tail: int | None = None,
) -> Process:
    """Print the log until the process has finished; return the finished process.

    ``on_state`` sees the process each time its state is read (every 0.25 s); ``tail``: of
    what was logged before, only the last lines.
    """
    printer = LogPrinter(client, colony, process_id, out or sys.stdout, tail)
    last_output = time.monotonic()
    next_state = 0.0
    while True:
        if printer.poll():
            last_output = time.monotonic()
        now = time.monotonic()
        if now >= next_state:
            process = client.get_process(process_id)
            next_state = now + STATE_EVERY
            if on_state is not None:
                on_state(process)
            if process.state.finished:
                printer.poll()  # whatever was logged before the close
                printer.end_line()
                return process
        time.sleep(FAST_POLL if now - last_output < QUIET else SLOW_POLL)


class _Lines(io.StringIO):
    """What a LogPrinter writes, taken back out as whole lines."""

    def take(self, *, final: bool) -> list[str]:
        text = self.getvalue()
        lines = text.splitlines(keepends=True)
        rest = "" if final or not lines or lines[-1].endswith("\n") else lines.pop()
        self.seek(0)
        self.truncate()
        self.write(rest)
        return lines


def stream(
    client: ColoniesClient,
    colony: str,
    process_id: str,
    *,
    follow: bool,
    tail: int | None = None,
) -> Iterator[str]:
    """The process's output as lines (each with its newline but perhaps the last), from its
    last ``tail`` lines when given; with ``follow`` until the process has finished."""
    buffer = _Lines()
    printer = LogPrinter(client, colony, process_id, buffer, tail)
    last_output = time.monotonic()
    while True:
        if printer.poll():
            last_output = time.monotonic()
        yield from buffer.take(final=False)
        if not follow or client.get_process(process_id).state.finished:
            printer.poll()  # whatever was logged before the close
            yield from buffer.take(final=True)
            return
        quiet = time.monotonic() - last_output >= QUIET
        time.sleep(SLOW_POLL if quiet else FAST_POLL)


def print_log(
    client: ColoniesClient, colony: str, process_id: str, out: TextIO, tail: int | None = None
) -> None:
    """Print the log so far (its last ``tail`` lines), once."""
    printer = LogPrinter(client, colony, process_id, out, tail)
    printer.poll()
    printer.end_line()


def failure_summary(process: Process, *, with_tail: bool) -> str:
    """Why a process failed or was cancelled: its errors, the log tail only when ``with_tail``
    (a follower has shown the output already)."""
    errors = [
        e
        for e in process.errors
        if (with_tail or TAIL_MARK not in e) and not e.startswith(RECORD_MARK)
    ]
    head = f"process {process.processid[:12]} {process.state.name}"
    if not errors:
        return head
    return f"{head}: {errors[0]}" + "".join("\n  " + e.replace("\n", "\n  ") for e in errors[1:])
