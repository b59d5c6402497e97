"""Process channels on the simulator: order under concurrent writers, the WebSocket
subscription, access rules, the channel's life with its process, restarts; through Pollinator's
client and through the official SDK."""

from __future__ import annotations

import base64
import itertools
import threading
from typing import Any

import pytest
from family_support import COLONY, RpcRefused, Stack, spec, stack, wait_for
from pollinator_simulator.wire import parse_time
from pycolonies import Colonies, ColoniesError

pytestmark = pytest.mark.timeout(60)
__all__ = ["stack"]  # the fixture, used by name


def _running(stack: Stack, channels: list[str]) -> str:
    """A process with these channels, submitted by the user and running on the executor."""
    submitted = stack.rpc(stack.user, "submitfuncspecmsg", spec=spec("chat", channels=channels))
    assert submitted["spec"]["channels"] == channels
    assigned = stack.rpc(stack.executor, "assignprocessmsg", colonyname=COLONY, timeout=5)
    assert assigned["processid"] == submitted["processid"]
    return str(submitted["processid"])


def _append(stack: Stack, key: str, pid: str, seq: int, text: str, **extra: Any) -> None:
    payload = list(text.encode())
    stack.rpc(
        key, "channelappendmsg", processid=pid, name="chat", sequence=seq, payload=payload, **extra
    )


def _read(stack: Stack, pid: str, after: int = 0, limit: int = 0) -> list[dict[str, Any]]:
    found = stack.rpc(
        stack.user, "channelreadmsg", processid=pid, name="chat", afterseq=after, limit=limit
    )
    return list(found)


def _subscriber(
    sdk: Colonies, pid: str, key: str, want: int, timeout: int, after: int = 0
) -> tuple[threading.Thread, list[Any]]:
    """A thread collecting what an SDK subscription from position ``after`` is pushed, until
    ``want`` entries arrived or ``timeout`` seconds passed; and the list it collects into."""
    got: list[Any] = []

    def collect(entries: list[Any]) -> bool:
        got.extend(entries)
        return len(got) < want

    thread = threading.Thread(
        target=sdk.subscribe_channel,
        args=(pid, "chat", key),
        kwargs={"after_seq": after, "timeout": timeout, "callback": collect},
    )
    thread.start()
    return thread, got


def test_order_under_concurrent_writers_as_read_and_as_pushed(stack: Stack) -> None:
    pid = _running(stack, ["chat"])
    per_writer = 100
    subscriber, pushed = _subscriber(stack.sdk, pid, stack.user, 2 * per_writer, 20)

    def write(key: str, who: str) -> None:
        for seq in range(1, per_writer + 1):
            _append(stack, key, pid, seq, f"{who} {seq}")

    writers = [
        threading.Thread(target=write, args=(stack.user, "user")),
        threading.Thread(target=write, args=(stack.executor, "executor")),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(20)
    subscriber.join(20)
    assert not subscriber.is_alive()

    log = _read(stack, pid)
    assert len(log) == 2 * per_writer and len(pushed) == 2 * per_writer
    senders = [e["senderid"] for e in log]
    assert sum(a != b for a, b in itertools.pairwise(senders)) > 1  # the writers interleaved
    # Each sender's messages in its own order; all of them in one order, read or pushed alike.
    for sender in (stack.executor_id, stack.user_id):
        mine = [e["sequence"] for e in log if e["senderid"] == sender]
        assert mine == list(range(1, per_writer + 1))
    assert [(e["senderid"], e["sequence"]) for e in pushed] == [
        (e["senderid"], e["sequence"]) for e in log
    ]
    stamps = [parse_time(e["timestamp"]) for e in log]
    assert stamps == sorted(stamps)
    assert {base64.b64decode(e["payload"]).decode().split()[0] for e in log} == {"user", "executor"}
    # Reading in pages from a position gives the same sequence.
    pages = [_read(stack, pid, after, 64) for after in range(0, 2 * per_writer, 64)]
    assert [e for page in pages for e in page] == log


def test_a_late_lower_sequence_goes_before_its_senders_higher_ones_just_before_it(
    stack: Stack,
) -> None:
    pid = _running(stack, ["chat"])
    _append(stack, stack.user, pid, 5, "five")
    _append(stack, stack.user, pid, 6, "six")
    _append(stack, stack.user, pid, 4, "four")
    _append(stack, stack.executor, pid, 1, "reply", inreplyto=5)
    _append(stack, stack.user, pid, 3, "three")  # another sender's message is in between
    found = [(e["sequence"], e.get("inreplyto")) for e in _read(stack, pid)]
    assert found == [(4, None), (5, None), (6, None), (1, 5), (3, None)]


def test_channels_survive_a_restart_and_are_pushed_from_a_position(stack: Stack) -> None:
    pid = _running(stack, ["chat", "other"])
    _append(stack, stack.user, pid, 1, "hello")
    _append(stack, stack.executor, pid, 1, "hi", inreplyto=1)
    stack.rpc(
        stack.user,
        "channelappendmsg",
        processid=pid,
        name="chat",
        sequence=2,
        payload=None,
        payloadtype="end",
    )
    before = _read(stack, pid)
    assert [e["type"] for e in before] == ["data", "data", "end"]
    assert before[2]["payload"] is None and "inreplyto" not in before[0]

    stack.restart()
    assert _read(stack, pid) == before
    backlog = stack.sdk.channel_read(pid, "chat", 1, 1, stack.executor)
    assert [e["payload"] for e in backlog] == [b"hi"]
    # A subscription from position 1: the rest at once, then what is appended, then the end.
    sub, pushed = _subscriber(stack.sdk, pid, stack.executor, 3, 5, after=1)
    wait_for("the backlog", lambda: len(pushed) >= 2, timeout=5)
    _append(stack, stack.user, pid, 3, "after the restart")
    sub.join(10)
    assert not sub.is_alive()
    assert [e["payload"] for e in pushed] == [b"hi", None, b"after the restart"]
    # Executor handover is kept too: the executor still may write after the restart.
    _append(stack, stack.executor, pid, 2, "still mine")

    # An idle subscription ends after its timeout with an empty frame.
    assert stack.sdk.subscribe_channel(pid, "other", stack.user, timeout=1) == []


def test_who_may_use_a_channel_and_its_life_with_the_process(stack: Stack) -> None:
    pid = _running(stack, ["chat"])

    def refused(key: str, msgtype: str = "channelappendmsg", **fields: Any) -> tuple[int, str]:
        body = {"processid": pid, "name": "chat", "sequence": 1, "payload": [104, 105]}
        with pytest.raises(RpcRefused) as err:
            stack.rpc(key, msgtype, **{**body, **fields})
        return err.value.status, err.value.server_message

    other = stack.add_executor("other")
    assert refused(other) == (403, "Not authorized to write to channel")
    assert refused(other, "channelreadmsg") == (403, "Not authorized to read from channel")
    assert refused(stack.owner)[0] == 403  # the colony owner is not a member
    assert refused(stack.user, name="undeclared") == (404, "Channel not found")
    assert refused(stack.user, processid="0" * 64) == (404, "Process not found")
    assert refused(stack.user, payload=[1, 256]) == (
        400,
        "Failed to append to channel, invalid JSON",
    )
    with pytest.raises(ColoniesError, match="Not authorized to subscribe to channel"):
        stack.sdk.subscribe_channel(pid, "chat", other, timeout=1)

    # A payload may also come as base64 text (Go's []byte); it is sent back as base64.
    stack.rpc(
        stack.user,
        "channelappendmsg",
        processid=pid,
        name="chat",
        sequence=1,
        payload=base64.b64encode(b"hi").decode(),
    )
    assert _read(stack, pid)[0]["payload"] == "aGk="
    assert stack.sdk.channel_read(pid, "chat", 0, 0, stack.user)[0]["payload"] == b"hi"

    # Closing the process drops its channels, for good.
    stack.rpc(stack.executor, "closesuccessfulmsg", processid=pid, out=[])
    assert refused(stack.user, "channelreadmsg") == (404, "Channel not found")
    stack.restart()
    assert refused(stack.user, "channelreadmsg") == (404, "Channel not found")

    # A cancelled process's channels are dropped too, and (as officially) made anew on use.
    waiting = stack.rpc(stack.user, "submitfuncspecmsg", spec=spec("w", channels=["chat"]))
    stack.rpc(
        stack.user,
        "channelappendmsg",
        processid=waiting["processid"],
        name="chat",
        sequence=1,
        payload=[1],
    )
    stack.rpc(stack.user, "cancelprocessmsg", processid=waiting["processid"])
    assert _read(stack, waiting["processid"]) == []
