"""The table of RPC handlers, filled by the handler modules through the ``rpc`` decorator.

Each entry carries the two messages the official handler uses before it does anything else: the
"invalid JSON" one and the "msg.MsgType does not match payloadType" one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .wire import Payload

if TYPE_CHECKING:
    from .server import Simulator

Handler = Callable[["Simulator", str, Payload], Awaitable[Any]]

EMPTY: dict[str, Any] = {}  # an empty success: base64 of "{}"


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    invalid: str
    mismatch: str
    reply_type: str


ROUTES: dict[str, Route] = {}


def rpc(
    msgtype: str,
    what: str,
    *,
    invalid: str | None = None,
    mismatch: str | None = None,
    reply_type: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register a handler. ``what`` completes the official "Failed to <what>, msg.MsgType does
    not match payloadType"; ``invalid`` and ``mismatch`` replace the two messages where the
    official wording differs from that pattern."""

    def register(fn: Handler) -> Handler:
        ROUTES[msgtype] = Route(
            handler=fn,
            invalid=invalid or f"Failed to {what}, invalid JSON",
            mismatch=mismatch or f"Failed to {what}, msg.MsgType does not match payloadType",
            reply_type=reply_type or msgtype,
        )
        return fn

    return register
