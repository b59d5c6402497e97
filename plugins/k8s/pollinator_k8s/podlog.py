"""Pod logs without loss or repetition, across dropped streams, and several pods as one output.

The API streams a container's log line by line, each line prefixed with the time the container
runtime read it (``timestamps=true``, RFC 3339 with nanoseconds). A stream can end while the
container runs (an apiserver restart, a kubelet log rotation, a proxy's idle timeout); it is
then opened again with ``sinceTime``, which the API takes in whole seconds and inclusively, so
the new stream repeats the lines of that second: :class:`Cursor` drops exactly those already
seen (by time, and by count for lines that share one time). Whether the job is over is never
decided from a stream's end: the pod's state says so, and one last read without ``follow``
collects what the stream may have missed.

:class:`Merger` orders the lines of several pods by their time (rank breaks ties) within a
short window and puts ``[rank k]`` before each; one pod's lines pass straight through.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import attrs

_STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_stamp(stamp: bytes) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time; None when it is not one."""
    found = _STAMP.fullmatch(stamp)
    if found is None:
        return None
    whole, fraction, zone = found.groups()
    offset = "+00:00" if zone == b"Z" else zone.decode()
    seconds = datetime.fromisoformat(whole.decode() + offset).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or b"0").ljust(9, b"0"))


def since_text(nanos: int) -> str:
    """``sinceTime`` for a line at ``nanos``: its whole second (the API's precision)."""
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class Line:
    """One line of a pod's output: its time, and its bytes (newline included, if it had one)."""

    nanos: int
    text: bytes


def split_lines(chunks: Iterable[bytes], *, final: bool) -> Iterator[Line]:
    """The timestamped lines of a log response. A last piece without a newline is a line only
    when ``final`` (a read of an ended container); in a stream that broke off it is half a line
    that the next stream sends again."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for raw in whole:
            yield _line(raw + b"\n")
    if final and rest:
        yield _line(rest)


def _line(raw: bytes) -> Line:
    body, newline = (raw[:-1], b"\n") if raw.endswith(b"\n") else (raw, b"")
    stamp, _, text = body.partition(b" ")
    nanos = parse_stamp(stamp)
    if nanos is None:  # not the API's framing (cannot happen with timestamps=true): keep it
        return Line(-1, raw)
    return Line(nanos, text + newline)


@attrs.define
class Cursor:
    """How far one container's log was read: the last line's time, how many lines had it, and
    how many of those a reopened stream will repeat."""

    last: int = -1
    at_last: int = 0
    _repeat: int = 0

    @property
    def started(self) -> bool:
        return self.last >= 0

    def since(self) -> str:
        return since_text(self.last) if self.started else ""

    def reopen(self) -> None:
        """A new request from :meth:`since` is about to repeat the lines of that second."""
        self._repeat = self.at_last

    def accept(self, line: Line) -> bool:
        """True for a line not seen before."""
        if line.nanos < 0:
            return True
        if line.nanos < self.last:
            return False
        if line.nanos == self.last:
            if self._repeat > 0:
                self._repeat -= 1
                return False
            self.at_last += 1
            return True
        self.last, self.at_last, self._repeat = line.nanos, 1, 0
        return True


@attrs.define
class Merger:
    """Several pods' lines as one output, in time order within ``window`` seconds.

    A line waits until it has been held ``window`` seconds, so that a line of another pod with
    an earlier time can still go before it; with one pod (``prefix`` False, window 0) lines pass
    at once and unchanged."""

    window: float
    prefix: str = ""  # "rank" or "node"; empty: no prefix
    _held: list[tuple[int, int, int, float, bytes]] = attrs.field(factory=list)
    _seq: int = 0

    def add(self, rank: int, line: Line, now: float) -> None:
        self._seq += 1
        heapq.heappush(self._held, (line.nanos, rank, self._seq, now, line.text))

    def ready(self, now: float, *, flush: bool = False) -> bytes:
        """The output of the lines whose wait is over (all of them when ``flush``)."""
        out = []
        while self._held:
            _, rank, _, arrived, text = self._held[0]
            if not flush and now - arrived < self.window:
                # The oldest-in-time line is not ripe: nothing after it may go first.
                break
            heapq.heappop(self._held)
            out.append(f"[{self.prefix} {rank}] ".encode() + text if self.prefix else text)
        return b"".join(out)
