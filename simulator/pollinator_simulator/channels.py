"""Process channels: small append-only message logs between a process's submitter and executor.

A function spec may name channels (``spec.channels``). Each becomes a log keyed by (process,
name) when the process is submitted; the submitter and, once it is assigned, the executor may
append, read and subscribe. The log is in arrival order, except that a message goes before the
messages of its own sender with higher sequence numbers directly before it; a position in the
log is what ``afterseq`` counts. When the process ends (successful, failed
or cancelled) its channels are dropped; a channel of a process that has not succeeded or failed
is created again on first use, as the official server does.

Limits as on the official server: 10 MiB per message, 10,000 messages per channel, 100 channels
per process, 500 messages in a burst and 100 a second per process, and 10,000 undelivered
messages per subscriber, after which the subscriber is told it is too slow and dropped.

Unlike the official server, which keeps channels in memory only, channels are stored like every
other record, so they survive a simulator restart.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from pollinator_core.colonies.models import ProcessState

from .store import Doc, ProcessRec, State
from .wire import ApiError, fmt_time, now_ns

MAX_MESSAGE_SIZE = 10 * 1024 * 1024
MAX_LOG_ENTRIES = 10_000
MAX_CHANNELS_PER_PROCESS = 100
BURST = 500.0
RATE = 100.0  # messages a second, per process
SUBSCRIBER_BUFFER = 10_000

_CHANNEL = "channel"  # record kinds in the store
_MESSAGE = "channelmsg"
_ENDED = (ProcessState.SUCCESS, ProcessState.FAILED, ProcessState.CANCELLED)
# A channel is not created again for a process that finished like this (cancelled ones are).
_CLOSED = (ProcessState.SUCCESS, ProcessState.FAILED)
# What a subscriber's queue yields when its channel is dropped.
CLOSED: Doc = {}


def _key(*parts: str) -> str:
    return "\x1f".join(parts)


@dataclass(eq=False)
class _Bucket:
    """A token bucket: BURST messages at once, refilled at RATE a second."""

    tokens: float = BURST
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * RATE)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(eq=False)
class Channel:
    record: Doc  # {processid, name, submitterid, executorid}
    log: list[Doc] = field(default_factory=list)  # wire entries, in reading order
    arrivals: int = 0  # messages ever appended: the next one's arrival number
    subscribers: list[asyncio.Queue[Doc]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return _key(self.record["processid"], self.record["name"])

    def may_access(self, caller: str) -> bool:
        return caller in (self.record["submitterid"], self.record["executorid"])

    def insert(self, entry: Doc) -> None:
        """At the end, but before the sender's own messages with a higher sequence that come
        directly before it (what the official server's sort by sender and sequence, then by
        time, does to a newly appended message)."""
        sender, seq = entry["senderid"], entry["sequence"]
        at = len(self.log)
        while at and self.log[at - 1]["senderid"] == sender and self.log[at - 1]["sequence"] > seq:
            at -= 1
        self.log.insert(at, entry)


def decode_payload(value: Any) -> bytes | None:
    """A message payload as Go reads a []byte: base64 text or an array of byte values."""
    if value is None:
        return None
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    if isinstance(value, list) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        return bytes(value)
    raise ValueError("payload is neither base64 text nor an array of bytes")


class ChannelRouter:
    def __init__(self, state: State) -> None:
        self.state = state
        self._channels: dict[str, Channel] = {}
        self._by_process: dict[str, list[Channel]] = {}
        self._buckets: dict[str, _Bucket] = {}
        for record in state.records[_CHANNEL].values():
            self._index(Channel(record))
        for doc in sorted(state.records[_MESSAGE].values(), key=lambda d: d["arrival"]):
            channel = self._channels.get(_key(doc["processid"], doc["name"]))
            if channel is not None:
                channel.insert(doc["entry"])
                channel.arrivals = doc["arrival"] + 1
        self.prune()
        state.colony_listeners.append(lambda _: self.prune())

    def _index(self, channel: Channel) -> None:
        self._channels[channel.key] = channel
        self._by_process.setdefault(channel.record["processid"], []).append(channel)

    # --- following processes ------------------------------------------------------------------

    def process_changed(self, rec: ProcessRec) -> None:
        """Called on every process state change: create, hand over to the executor, drop."""
        if rec.state in _ENDED:
            self.drop_process(rec.id)
            return
        for name in rec.doc["spec"].get("channels") or ():
            channel = self._channels.get(_key(rec.id, name))
            if channel is None:
                if len(self._by_process.get(rec.id, ())) >= MAX_CHANNELS_PER_PROCESS:
                    continue  # as officially: the extra channels are not created
                channel = self._create(rec, name, executor="")
            if rec.state == ProcessState.RUNNING and rec.doc["isassigned"]:
                executor = rec.doc["assignedexecutorid"]
                if channel.record["executorid"] != executor:
                    channel.record["executorid"] = executor
                    self.state.put_record(_CHANNEL, channel.key, channel.record)

    def _create(self, rec: ProcessRec, name: str, executor: str) -> Channel:
        record = {
            "processid": rec.id,
            "name": name,
            "submitterid": rec.doc["initiatorid"],
            "executorid": executor,
        }
        channel = Channel(record)
        self._index(channel)
        self.state.put_record(_CHANNEL, channel.key, record)
        return channel

    def drop_process(self, process_id: str) -> None:
        for channel in self._by_process.pop(process_id, []):
            del self._channels[channel.key]
            self.state.drop_record(_CHANNEL, channel.key)
            for n in range(channel.arrivals):
                self.state.drop_record(_MESSAGE, _key(channel.key, f"{n:010d}"))
            for queue in channel.subscribers:
                queue.put_nowait(CLOSED)
        self._buckets.pop(process_id, None)

    def prune(self) -> None:
        """Drop the channels of processes that are gone (removed, or their colony removed)."""
        for process_id in list(self._by_process):
            rec = self.state.processes.get(process_id)
            if rec is None or rec.state in _ENDED:
                self.drop_process(process_id)

    # --- the operations -----------------------------------------------------------------------

    def get(self, rec: ProcessRec, name: str) -> Channel:
        """The channel, created if the spec names it and the process has not closed."""
        channel = self._channels.get(_key(rec.id, name))
        if channel is not None:
            return channel
        if rec.state in _CLOSED or name not in (rec.doc["spec"].get("channels") or ()):
            raise ApiError(404, "Channel not found")
        if len(self._by_process.get(rec.id, ())) >= MAX_CHANNELS_PER_PROCESS:
            raise ApiError(500, "process has too many channels")
        return self._create(rec, name, executor=rec.doc["assignedexecutorid"])

    def append(
        self,
        channel: Channel,
        sender: str,
        sequence: int,
        in_reply_to: int,
        payload: bytes | None,
        kind: str,
    ) -> None:
        """Raises PermissionError (not the submitter or executor) or ApiError."""
        if payload is not None and len(payload) > MAX_MESSAGE_SIZE:
            raise ApiError(500, "message payload exceeds maximum size")
        if not channel.may_access(sender):
            raise PermissionError
        process_id = channel.record["processid"]
        if not self._buckets.setdefault(process_id, _Bucket()).take():
            raise ApiError(500, "rate limit exceeded")
        if len(channel.log) >= MAX_LOG_ENTRIES:
            raise ApiError(500, "channel log is full")
        entry: Doc = {"sequence": sequence}
        if in_reply_to:
            entry["inreplyto"] = in_reply_to
        entry["timestamp"] = fmt_time(now_ns())
        entry["senderid"] = sender
        entry["payload"] = None if payload is None else base64.b64encode(payload).decode()
        entry["type"] = kind or "data"
        channel.insert(entry)
        arrival = channel.arrivals
        channel.arrivals += 1
        self.state.put_record(
            _MESSAGE,
            _key(channel.key, f"{arrival:010d}"),
            {
                "processid": process_id,
                "name": channel.record["name"],
                "arrival": arrival,
                "entry": entry,
            },
        )
        for queue in list(channel.subscribers):
            if queue.qsize() >= SUBSCRIBER_BUFFER:
                channel.subscribers.remove(queue)
                queue.put_nowait(
                    {
                        "sequence": 0,
                        "timestamp": fmt_time(0),
                        "senderid": "",
                        "payload": None,
                        "error": "subscriber disconnected: buffer full",
                    }
                )
                queue.put_nowait(CLOSED)
            else:
                queue.put_nowait(entry)

    @staticmethod
    def read_after(channel: Channel, caller: str, after: int, limit: int) -> list[Doc]:
        """Entries from position ``after`` on (at most ``limit``, 0 = all). PermissionError
        when the caller is neither the submitter nor the executor."""
        if not channel.may_access(caller):
            raise PermissionError
        start = max(after, 0)
        end = len(channel.log) if limit <= 0 else start + limit
        return channel.log[start:end]

    @staticmethod
    def subscribe(channel: Channel, caller: str) -> asyncio.Queue[Doc]:
        if not channel.may_access(caller):
            raise PermissionError
        queue: asyncio.Queue[Doc] = asyncio.Queue()
        channel.subscribers.append(queue)
        return queue

    @staticmethod
    def unsubscribe(channel: Channel, queue: asyncio.Queue[Doc]) -> None:
        if queue in channel.subscribers:
            channel.subscribers.remove(queue)
