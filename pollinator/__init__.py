"""Pollinator from Python: submit a project, follow it, read how it ended, fetch its results.

    import pollinator

    run = pollinator.submit("~/demo", walltime="10m", args=["--epochs", "3"])
    outcome = run.wait()
    print(outcome.state, outcome.exit_code, outcome.reason)
    print(run.fetch_results().directory)

The guide is docs/python-api.md; the implementation is :mod:`pollinator_core.runs.handle`.
"""

from pollinator_core.errors import InfraError, JobFailed, PollinatorError, UsageError
from pollinator_core.execution.termination import Reason, Termination
from pollinator_core.runs.handle import Outcome, Run, attach, runs, submit
from pollinator_core.runs.submit import Pulled

__all__ = [
    "InfraError",
    "JobFailed",
    "Outcome",
    "PollinatorError",
    "Pulled",
    "Reason",
    "Run",
    "Termination",
    "UsageError",
    "attach",
    "runs",
    "submit",
]
