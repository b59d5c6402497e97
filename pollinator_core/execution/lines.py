"""Reassemble a job's output, which arrives in arbitrary byte chunks, into whole lines of text.

Backends hand over bytes exactly as they come off a pipe or an API stream, so a chunk can end in
the middle of a line or of a multi-byte UTF-8 character. Lines end at ``\\n`` or at a lone
``\\r`` (a progress bar redrawing itself is a line too, and would otherwise never be shown). The
terminator stays in the text, so concatenating the lines gives back the output byte for byte.
A line longer than ``max_line`` bytes is cut, at a character boundary, to bound memory.
"""

from __future__ import annotations

import re

_TERMINATOR = re.compile(rb"\r\n|\n|\r(?!\Z)")
DEFAULT_MAX_LINE = 64 * 1024


def _char_boundary(data: bytes, limit: int) -> int:
    """The largest cut point <= ``limit`` that does not fall inside a UTF-8 sequence."""
    cut = limit
    # Continuation bytes look like 0b10xxxxxx; step back (at most 3) to the character's start.
    while cut > 0 and limit - cut < 4 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LineAssembler:
    """Feed chunks in, get complete lines out; :meth:`flush` returns the unterminated tail."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        self._pending = b""

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a line whose end has not arrived."""
        return len(self._pending)

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk
        lines: list[str] = []
        start = 0
        for match in _TERMINATOR.finditer(data):
            lines.extend(self._bounded(data[start : match.end()]))
            start = match.end()
        rest = data[start:]
        while len(rest) > self._max_line:
            cut = _char_boundary(rest, self._max_line)
            lines.append(_decode(rest[:cut]))
            rest = rest[cut:]
        self._pending = rest
        return lines

    def flush(self) -> list[str]:
        """The last, unterminated line (if any), at the end of the output."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest else []

    def _bounded(self, line: bytes) -> list[str]:
        pieces: list[str] = []
        while len(line) > self._max_line:
            cut = _char_boundary(line, self._max_line)
            pieces.append(_decode(line[:cut]))
            line = line[cut:]
        pieces.append(_decode(line))
        return pieces
