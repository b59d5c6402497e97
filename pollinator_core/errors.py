"""Errors that reach the user, each carrying the exit code the CLI returns.

Exit codes (documented in the README):
0 success; 1 the job failed; 2 bad usage or a bad project; 3 infrastructure unreachable or
misconfigured (server, storage, engine); 130 interrupted (Ctrl-C); 143 and 129 for SIGTERM and
SIGHUP, which the CLI treats as Ctrl-C.
"""

from __future__ import annotations


class PollinatorError(Exception):
    """Base class: the message is one paragraph a user can act on; never a traceback."""

    exit_code = 1


class UsageError(PollinatorError):
    """Bad command-line usage or a bad project (project.yaml, paths)."""

    exit_code = 2


class ProjectError(UsageError):
    """project.yaml is missing, unreadable or invalid."""


class InfraError(PollinatorError):
    """A server, storage or engine is unreachable or misconfigured."""

    exit_code = 3


class JobFailed(PollinatorError):
    """The remote job ended FAILED or CANCELLED."""

    exit_code = 1


class Interrupted(PollinatorError):
    """The user pressed Ctrl-C."""

    exit_code = 130


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the CLI would see Ctrl-C, so that every command treats
    them alike (``run -f`` detaches or cancels and says so); the exit status is 128 + the
    signal, as the shell reports a process killed by it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


def interrupt_exit_code(exc: BaseException | None) -> int:
    """The exit status for an interruption: 128 + the signal for SIGTERM/SIGHUP, else 130."""
    return exc.exit_code if isinstance(exc, SignalInterrupt) else Interrupted.exit_code
