"""Resource quantities as people write them, and as the Colonies executors expect them.

Parsers take what a user may write in project.yaml and return plain integers (millicores,
bytes, seconds); formatters give back the only spellings the official executors accept
(``"<n>m"`` for cpu, ``"<n>Mi"`` for memory). Every error says which forms are accepted.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

CPU_FORMS = "whole or fractional cores (2, 0.5, '1.5') or millicores ('500m')"
MEMORY_FORMS = (
    "bytes (1048576) or a number with a unit: Ki, Mi, Gi, Ti (powers of 1024) "
    "or K, M, G, T (powers of 1000), e.g. '512Mi', '4Gi', '1G'"
)
DURATION_FORMS = "seconds (600) or a duration such as '45s', '90m', '2h', '1h30m', '1d'"

_MEMORY_UNITS = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "K": 1000,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_MEMORY_RE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)")
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_SECONDS = (86400, 3600, 60, 1)
_MEBI = 1024**2


def _number(value: object) -> Decimal | None:
    """A non-negative decimal from an int, float or plain numeric string; None otherwise.

    Exponents are refused on purpose: ``1e999999999`` must not become a billion-digit int.
    """
    if isinstance(value, bool):  # YAML `true` is not a quantity
        return None
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        return Decimal(value.strip())
    return None


def parse_cpu(value: object) -> int:
    """Millicores from ``2``, ``0.5``, ``"1.5"`` or ``"500m"``."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.endswith("m"):
        millis = _number(text[:-1])
    else:
        cores = _number(text)
        millis = None if cores is None else cores * 1000
    if millis is None:
        raise ValueError(f"cannot read {value!r} as a cpu amount; use {CPU_FORMS}")
    if millis != millis.to_integral_value():
        raise ValueError(f"cpu {value!r} is finer than one millicore; round it to whole 'm'")
    return int(millis)


def parse_memory(value: object) -> int:
    """Bytes from ``1048576``, ``"512Mi"``, ``"4Gi"``, ``"1G"``, ``"1000M"`` or ``"1024Ki"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _MEMORY_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or match["unit"] not in _MEMORY_UNITS:
        raise ValueError(f"cannot read {value!r} as a memory amount; use {MEMORY_FORMS}")
    # Round up: asking for a fraction of a byte too little could fail an exact limit.
    return math.ceil(Decimal(match["number"]) * _MEMORY_UNITS[match["unit"]])


def parse_duration(value: object) -> int:
    """Seconds from ``600``, ``"600"``, ``"45s"``, ``"90m"``, ``"2h"``, ``"1h30m"`` or ``"1d"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isdigit():
        return int(text)
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"cannot read {value!r} as a duration; use {DURATION_FORMS}")
    parts = zip(match.groups(), _DURATION_SECONDS, strict=True)
    return sum(int(part or 0) * unit for part, unit in parts)


def format_cpu(millis: int) -> str:
    """``"<n>m"``: the only cpu spelling the official executors accept."""
    return f"{millis}m"


def format_memory(nbytes: int) -> str:
    """``"<n>Mi"``, rounded up: the executors accept only Mi and Gi."""
    return f"{-(-nbytes // _MEBI)}Mi"
