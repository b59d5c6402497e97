"""Wire-level helpers: errors, Go-style payload access, IDs, times and resource units.

Everything here mirrors how the official Go server reads and writes the protocol, so handlers can
stay close to the official handler logic without re-deriving these details each time.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pollinator_core.colonies import models
from pollinator_core.colonies.crypto import sha3_hex

T = TypeVar("T")


class ApiError(Exception):
    """An RPC failure: becomes an error envelope whose HTTP status equals ``status``.

    ``then``: the status of a second envelope with the same message written into the same body,
    as official handlers do when they report one database error twice (the reply is then not one
    JSON document; the HTTP status stays the first).
    """

    def __init__(self, status: int, message: str, *, then: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.then = then


#: PostgreSQL's refusal of a 0x00 byte in a text column, which the official server passes on.
NUL_IN_TEXT = 'pq: invalid byte sequence for encoding "UTF8": 0x00'


def has_nul(*texts: str) -> bool:
    """Whether any of the texts holds a NUL, which no PostgreSQL text column can store."""
    return any("\x00" in text for text in texts)


def like(pattern: str, text: str) -> bool:
    """PostgreSQL's ``text LIKE pattern``: ``%`` any run, ``_`` any one character, a backslash
    makes the next character literal. The official label queries are LIKE queries, so ``_``
    and ``%`` in label names are wildcards there."""
    parts, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


def random_id() -> str:
    """IDs as the official server makes them: sha3-256 hex of a random UUID string."""
    return sha3_hex(str(uuid.uuid4()))


def now_ns() -> int:
    return time.time_ns()


def fmt_time(ns: int) -> str:
    """RFC 3339 in UTC with microseconds, trailing zeros trimmed (Go's RFC3339Nano over
    PostgreSQL's microsecond timestamps); 0 is Go's zero time."""
    if ns <= 0:
        return models.ZERO_TIME
    secs, rem = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micros = rem // 1000
    if micros == 0:
        return base + "Z"
    return base + "." + f"{micros:06d}".rstrip("0") + "Z"


def parse_time(text: str) -> int:
    """Inverse of fmt_time (nanoseconds; 0 for the zero time)."""
    if not text or text.startswith("0001-01-01"):
        return 0
    dt = datetime.fromisoformat(text)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def or_null(items: list[Any]) -> list[Any] | None:
    """The official server sends a nil slice (JSON null) for most empty listings."""
    return items or None


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Payload:
    """A decoded RPC payload read the way Go's encoding/json fills a message struct: keys match
    case-insensitively, unknown keys are ignored, null is the zero value, and a value of the wrong
    JSON type is an "invalid JSON" error (400, with the handler's own message)."""

    __slots__ = ("_fields", "invalid")

    def __init__(self, data: Mapping[str, Any], invalid: str) -> None:
        self._fields = {str(k).lower(): v for k, v in data.items()}
        self.invalid = invalid

    def _bad(self) -> ApiError:
        return ApiError(400, self.invalid)

    def string(self, key: str) -> str:
        value = self._fields.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._bad()
        return value

    def integer(self, key: str) -> int:
        value = self._fields.get(key)
        if value is None:
            return 0
        # Go's int is 64 bits: a larger number is a decoding error there.
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise self._bad()
        return value

    def boolean(self, key: str) -> bool:
        value = self._fields.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._bad()
        return value

    def array(self, key: str) -> list[Any]:
        value = self._fields.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad()
        return value

    def strings(self, key: str) -> list[str]:
        values = self.array(key)
        if not all(isinstance(v, str) for v in values):
            raise self._bad()
        return values

    def raw(self, key: str) -> Any:
        """The value as sent (None when absent or null), for fields no model describes and where
        null and [] mean different things."""
        return self._fields.get(key)

    def object(self, key: str) -> Payload | None:
        """A nested JSON object, read the same way; None when absent or null."""
        value = self._fields.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._bad()
        return Payload(value, self.invalid)

    def time(self, key: str) -> int:
        """An RFC 3339 time (UTC nanoseconds, 0 for none or Go's zero time)."""
        text = self.string(key)
        try:
            return parse_time(text)
        except ValueError:
            raise self._bad() from None

    def model(self, key: str, cls: type[T]) -> T | None:
        """A nested object decoded into a ``colonies.models`` class; None when absent."""
        value = self._fields.get(key)
        if value is None:
            return None
        try:
            return models.from_dict(cls, value)
        except Exception:
            raise self._bad() from None


# --- resource units, parsed as the official server does -------------------------------------

_MEM_UNITS = {
    "Ki": 1024,
    "KiB": 1024,
    "Mi": 1024**2,
    "MiB": 1024**2,
    "Gi": 1024**3,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "K": 1000,
    "KB": 1000,
    "Kb": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "Mb": 1000**2,
    "G": 1000**3,
    "Gb": 1000**3,
    "TB": 1000**4,
    "Tb": 1000**4,
}
# Longest suffix first, so "10MiB" is read as MiB and never as a shorter unit.
_MEM_ORDER = sorted(_MEM_UNITS, key=len, reverse=True)


def _go_int(text: str) -> int | None:
    body = text[1:] if text[:1] in "+-" else text
    return int(text) if body.isdigit() and body.isascii() else None


def parse_cpu(cpu: str) -> int:
    """Millicores. Only "<n>m" is understood; anything else counts as 0 (as officially)."""
    if not cpu.endswith("m"):
        return 0
    value = _go_int(cpu[:-1])
    if value is None:
        raise ValueError("Error converting CPU to int")
    return value


def parse_mem(mem: str) -> int:
    """Bytes from "<n><unit>" (Ki, Mi, Gi, K, M, G, ...); "" is 0."""
    if not mem:
        return 0
    for unit in _MEM_ORDER:
        if mem.endswith(unit):
            value = _go_int(mem[: -len(unit)])
            if value is None:
                break
            return value * _MEM_UNITS[unit]
    raise ValueError(f"error converting memory to int: cannot parse {mem!r}")


def fmt_mem(nbytes: int) -> str:
    return f"{nbytes // (1024 * 1024)}Mi"
