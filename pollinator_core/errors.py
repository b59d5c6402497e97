"""Errors that reach the user, each carrying the exit code the CLI returns.

Exit codes (documented in the README):
0 success; 1 the job failed; 2 bad usage or a bad project; 3 infrastructure unreachable or
misconfigured (server, storage, engine); 130 interrupted.
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
