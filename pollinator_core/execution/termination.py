"""How a job ended: one record for every runtime, shown the same way everywhere.

A :class:`Termination` holds the exit code, the signal, a :class:`Reason` from a closed set and
the evidence that led to it (``"sacct: State=OUT_OF_MEMORY ExitCode=0:125"``, ``"exit record:
exit code 0"``). Runtimes build one when a job ends; the executor writes it into the process's
``errors`` (a summary line a person reads, then one ``termination {...}`` line a program reads);
``pollinator status`` and the Python API read it back with :func:`from_errors`, whatever runtime
ran the job.
"""

from __future__ import annotations

import enum
import json
import signal as signals
from collections.abc import Iterable, Sequence

import attrs

#: how the executor introduces the output tail in a process's errors
TAIL_MARK = " lines of output:\n"
#: how the machine-readable record starts in a process's errors
RECORD_MARK = "termination "
#: a shell reports "killed by signal N" as exit code 128 + N
SIGNAL_BASE = 128


class Reason(enum.Enum):
    """Why a job ended. ``EXIT`` means it ended by itself, with its exit code."""

    EXIT = "exit"
    OOM = "oom"
    WALLTIME = "walltime"
    CANCELLED = "cancelled"
    NODE_FAILURE = "node failure"
    LOST = "lost"
    INFRASTRUCTURE = "infrastructure"


_WHAT = {
    Reason.OOM: "out of memory",
    Reason.WALLTIME: "walltime exceeded",
    Reason.CANCELLED: "cancelled",
    Reason.NODE_FAILURE: "node failure",
    Reason.LOST: "lost",
    Reason.INFRASTRUCTURE: "infrastructure failure",
}


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


@attrs.frozen
class Termination:
    """The end of one job. ``detail`` is one line in the runtime's own words."""

    reason: Reason
    exit_code: int | None = None
    signal: int | None = None
    detail: str = ""
    evidence: tuple[str, ...] = ()

    @classmethod
    def exited(
        cls, exit_code: int, *, evidence: Iterable[str] = (), detail: str = ""
    ) -> Termination:
        """A job that ended by itself; an exit code above 128 from a shell names the signal."""
        sig = exit_code - SIGNAL_BASE if SIGNAL_BASE < exit_code < SIGNAL_BASE + 65 else None
        return cls(Reason.EXIT, exit_code, sig, detail, tuple(evidence))

    @property
    def succeeded(self) -> bool:
        return self.reason is Reason.EXIT and self.exit_code == 0

    def with_exit(self, exit_code: int | None, *evidence: str) -> Termination:
        """This record, with the exit code the job really had (say, after our SIGTERM)."""
        sig = self.signal
        if exit_code is not None and SIGNAL_BASE < exit_code < SIGNAL_BASE + 65:
            sig = exit_code - SIGNAL_BASE
        return attrs.evolve(
            self, exit_code=exit_code, signal=sig, evidence=(*self.evidence, *evidence)
        )

    def summary(self) -> str:
        """One line for a person: what happened, its detail, then the exit code and signal:
        ``exit code 3``, ``walltime exceeded (600 s); exit code 143, killed by SIGTERM``."""
        code = "" if self.exit_code is None else f"exit code {self.exit_code}"
        killed = "" if self.signal is None else f"killed by {signal_name(self.signal)}"
        if self.reason is Reason.EXIT:
            text = code or "ended"
            return f"{text} ({killed})" if killed else text
        text = _WHAT[self.reason]
        if self.detail:
            text += f" ({self.detail})"
        facts = ", ".join(f for f in (code, killed) if f)
        return f"{text}; {facts}" if facts else text

    def to_json(self) -> str:
        record = {
            "reason": self.reason.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "detail": self.detail,
            "evidence": list(self.evidence),
        }
        return json.dumps(record, ensure_ascii=False)

    def errors(self) -> list[str]:
        """What goes first into a failed process's ``errors``: the summary, then the record."""
        return [self.summary(), RECORD_MARK + self.to_json()]


def from_errors(errors: Sequence[str]) -> Termination | None:
    """The record a Pollinator executor wrote into ``errors``; None for anyone else's."""
    for line in errors:
        if not line.startswith(RECORD_MARK):
            continue
        try:
            record = json.loads(line[len(RECORD_MARK) :])
            return Termination(
                Reason(record["reason"]),
                record.get("exit_code"),
                record.get("signal"),
                str(record.get("detail") or ""),
                tuple(str(e) for e in record.get("evidence") or ()),
            )
        except (ValueError, KeyError, TypeError):
            return None
    return None
