"""Colonies times (RFC 3339 with nanoseconds, zero time for "unset") for people."""

from __future__ import annotations

import time
from datetime import datetime

from pollinator_core.colonies.models import ZERO_TIME


def parse_time(text: str) -> float | None:
    """Seconds since the epoch, or None for the zero time or an unreadable value."""
    if not text or text == ZERO_TIME or text.startswith("0001-"):
        return None
    text = text.replace("Z", "+00:00")
    head, dot, frac = text.partition(".")
    if dot:  # Python reads at most microseconds; the server writes nanoseconds
        digits = len(frac) - len(frac.lstrip("0123456789"))
        frac = frac[: min(digits, 6)] + frac[digits:]
        text = f"{head}.{frac}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def local_time(seconds: float | None) -> str:
    """``2025-01-31 14:05:09`` in local time; ``-`` when unknown."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h01m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def ago(seconds: float | None) -> str:
    """``5s ago``; ``never`` when unknown."""
    return "never" if seconds is None else f"{duration(time.time() - seconds)} ago"
