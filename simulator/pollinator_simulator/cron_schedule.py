"""Cron expressions as the official server reads them: six fields, seconds first.

``second minute hour day-of-month month day-of-week``, each a ``*`` or ``?``, a number or a name
(``jan``..``dec``, ``sun``..``sat``), a range ``a-b``, any of those with a step ``/n``, or a
comma-separated list of them. Or a descriptor: ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``), ``@hourly``, ``@every <duration>`` (Go's duration
syntax, at least a second). A ``TZ=<zone>`` or ``CRON_TZ=<zone>`` prefix picks the time zone;
without it the server's local time applies. When both day fields are restricted, a day matching
either one matches, as in classic cron; when either is ``*`` or ``?``, both must match.

``parse`` raises ValueError with the official parser's wording; ``Schedule.next`` gives the first
activation strictly after a time, or None when there is none within five years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_STAR = 1 << 63  # the field was written as * or ?: marks "unrestricted" for the day rule

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_SECONDS = _Bounds(0, 59)
_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTH = _Bounds(1, 12, _MONTHS)
_DOW = _Bounds(0, 6, _DAYS)
_FIELDS = (_SECONDS, _MINUTES, _HOURS, _DOM, _MONTH, _DOW)


def _bits(low: int, high: int, step: int) -> int:
    return sum(1 << i for i in range(low, high + 1, step))


def _all(bounds: _Bounds) -> int:
    return _bits(bounds.low, bounds.high, 1) | _STAR


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _number(text: str, expr: str) -> int:
    try:
        value = _atoi(text)
    except ValueError as err:
        raise ValueError(f"failed to parse int from {text}: {err}") from None
    if value < 0:
        raise ValueError(f"negative number ({value}) not allowed: {expr}")
    return value


def _range(expr: str, bounds: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, _STAR
    else:
        names = bounds.names or {}
        named = names.get(low_high[0].lower())
        start = named if named is not None else _number(low_high[0], expr)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            named_end = names.get(low_high[1].lower())
            end = named_end if named_end is not None else _number(low_high[1], expr)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _number(range_and_step[1], expr)
        if len(low_high) == 1:
            end = bounds.high  # "a/n" means from a to the end
        if step > 1:
            extra = 0
    else:
        raise ValueError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise ValueError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise ValueError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(text: str, bounds: _Bounds) -> int:
    bits = 0
    for expr in (part for part in text.split(",") if part):
        bits |= _range(expr, bounds)
    return bits


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = re.compile(r"[0-9]*(\.[0-9]*)?")
_UNIT = re.compile(r"[^0-9.]*")


def parse_duration(text: str) -> float:
    """Seconds, from Go's duration syntax ("1h30m", "1.5s", "500ms"), with Go's errors."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    pos, total = 0, 0.0
    while pos < len(body):
        number = _NUMBER.match(body, pos)
        digits = number.group(0) if number else ""
        if digits in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        unit = _UNIT.match(body, number.end() if number else pos)
        name = unit.group(0) if unit else ""
        if not name:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if name not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{name}" in duration "{text}"')
        total += float(digits) * _DURATION_UNITS[name]
        pos = unit.end() if unit else len(body)
    return -total if text.startswith("-") else total


@dataclass(frozen=True)
class Schedule:
    """Bit sets of the allowed values per field, or a fixed delay (``@every``)."""

    second: int = 0
    minute: int = 0
    hour: int = 0
    dom: int = 0
    month: int = 0
    dow: int = 0
    zone: tzinfo | None = None  # None: the server's local time
    every: float = 0.0  # seconds; nonzero for @every

    def next(self, after: datetime) -> datetime | None:
        """The first activation strictly after ``after`` (an aware datetime)."""
        if self.every:
            base = after.replace(microsecond=0)
            return base + timedelta(seconds=self.every)
        zone = self.zone or after.astimezone().tzinfo
        t = after.astimezone(zone).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        limit = t.year + 5
        while t.year <= limit:
            if not self.month >> t.month & 1:
                t = (t.replace(day=1) + timedelta(days=32)).replace(
                    day=1, hour=0, minute=0, second=0
                )
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if not self.hour >> t.hour & 1:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if not self.minute >> t.minute & 1:
                t = (t + timedelta(minutes=1)).replace(second=0)
                continue
            if not self.second >> t.second & 1:
                t += timedelta(seconds=1)
                continue
            return t.replace(tzinfo=zone).astimezone(after.tzinfo)
        return None

    def _day_matches(self, t: datetime) -> bool:
        dom = bool(self.dom >> t.day & 1)
        dow = bool(self.dow >> ((t.weekday() + 1) % 7) & 1)
        if self.dom & _STAR or self.dow & _STAR:
            return dom and dow
        return dom or dow


_DESCRIPTORS = {
    "@yearly": ("0", "0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "0", "*", "*", "*"),
    "@hourly": ("0", "0", "*", "*", "*", "*"),
}


def parse(spec: str) -> Schedule:
    if not spec:
        raise ValueError("empty cron expression string")
    zone: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        name = spec[spec.index("=") + 1 : spec.find(" ") if " " in spec else len(spec)]
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"provided bad location {name}: unknown time zone {name}") from None
        spec = spec[spec.find(" ") :].strip() if " " in spec else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            try:
                seconds = parse_duration(spec[len("@every ") :])
            except ValueError as err:
                raise ValueError(f"failed to parse duration {spec}: {err}") from None
            return Schedule(zone=zone, every=max(float(int(seconds)), 1.0))
        if spec not in _DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {spec}")
        fields: tuple[str, ...] = _DESCRIPTORS[spec]
    else:
        fields = tuple(spec.split())
        if len(fields) != len(_FIELDS):
            shown = "[" + " ".join(fields) + "]"
            raise ValueError(f"expected exactly 6 fields, found {len(fields)}: {shown}")
    second, minute, hour, dom, month, dow = (
        _field(text, bounds) for text, bounds in zip(fields, _FIELDS, strict=True)
    )
    return Schedule(second, minute, hour, dom, month, dow, zone=zone)
