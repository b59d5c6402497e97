"""The exit record: how a job's own wrapper says how the job ended, on the shared filesystem.

A scheduler's accounting can be down (slurmdbd), late, or wrong about the payload (Slurm says
OUT_OF_MEMORY for a step while the program exited 0). So batch runtimes run the job under a
small POSIX ``sh`` wrapper that writes ``exit.json`` atomically (a temporary file, then
``mv``) with the payload's exit code and, when the wrapper itself stopped the job (walltime
pre-signal, cancel), why. :func:`decide` combines it with what the scheduler reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from pollinator_core.execution.termination import Reason, Termination

#: the file name the wrapper writes, next to the job's output
RECORD_FILE = "exit.json"

#: a shell function for wrappers: ``pollinator_exit_record CODE [REASON]`` writes the record to
#: ``$POLLINATOR_EXIT_RECORD``. Values are numbers and fixed words only: no user text.
RECORD_FUNCTION = """\
pollinator_exit_record() {
  printf '{"exit_code": %d, "reason": "%s", "host": "%s", "ended": %d}\\n' \\
    "$1" "${2:-}" "$(hostname 2>/dev/null || echo unknown)" "$(date +%s)" \\
    > "$POLLINATOR_EXIT_RECORD.tmp" && mv -f "$POLLINATOR_EXIT_RECORD.tmp" "$POLLINATOR_EXIT_RECORD"
}
"""

#: the wrapper's reasons (it can only know these; "oom" when the scheduler told the job's
#: output that it killed a step for its memory)
_REASONS = {"walltime": Reason.WALLTIME, "cancelled": Reason.CANCELLED, "oom": Reason.OOM}
#: scheduler verdicts that override an exit record saying the payload exited
_SCHEDULER_WINS = {Reason.OOM, Reason.WALLTIME, Reason.NODE_FAILURE, Reason.CANCELLED}


@attrs.frozen
class ExitRecord:
    exit_code: int
    reason: str = ""
    host: str = ""

    def termination(self) -> Termination:
        evidence = (
            f"exit record: exit code {self.exit_code}"
            + (f", {self.reason}" if self.reason else "")
            + (f" on {self.host}" if self.host else "")
        )
        reason = _REASONS.get(self.reason)
        if reason is None:
            return Termination.exited(self.exit_code, evidence=[evidence])
        return Termination(reason).with_exit(self.exit_code, evidence)


def read_exit_record(path: Path) -> ExitRecord | None:
    """The record at ``path``; None when there is none (yet) or it is unreadable."""
    try:
        data = json.loads(path.read_text())
        return ExitRecord(
            int(data["exit_code"]), str(data.get("reason") or ""), str(data.get("host") or "")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def decide(record: ExitRecord | None, scheduler: Termination | None) -> Termination | None:
    """How the job ended, from the wrapper's record and the scheduler's final verdict.

    - the scheduler says out of memory, walltime, node failure or cancelled: that is the truth,
      even if the payload's wrapper saw exit code 0 (a killed step), and both are named;
    - otherwise the exit record: the payload's own exit code;
    - no record: the scheduler's exit code;
    - neither: None (the caller waits, within a bound, then reports the job lost).
    """
    if scheduler is not None and scheduler.reason in _SCHEDULER_WINS:
        if record is None:
            return scheduler
        theirs = record.termination()
        code = scheduler.exit_code if scheduler.exit_code is not None else theirs.exit_code
        return attrs.evolve(
            scheduler.with_exit(code), evidence=(*scheduler.evidence, *theirs.evidence)
        )
    if record is not None:
        mine = record.termination()
        return attrs.evolve(
            mine, evidence=(*mine.evidence, *(scheduler.evidence if scheduler else ()))
        )
    return scheduler
