"""The spool runtime: Pollinator's jobs as jobs of pollinator-spoold, through its files.

A :class:`~pollinator_core.api.BatchRuntime` subclass: the base does the polling (one read of
``status.json`` per cycle for all jobs), the outages (a daemon without a heartbeat), the
verdicts (``accounting.json`` and the wrapper's ``exit.json``), the output (``output.log``,
tailed by byte offset) and adoption (jobs are found again by name). This module only says how
to submit, look at, stop and find a job in the spool.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from pollinator_core.api import (
    RECORD_FILE,
    RECORD_FUNCTION,
    BatchRuntime,
    InfraError,
    Job,
    JobState,
    PathRewriter,
    Polling,
    Reason,
    SchedulerJob,
    Termination,
    job_env,
    shell_script,
)

#: what the daemon runs: fixed text (no user text), which runs the job's command.sh and writes
#: the exit record next to it. The trap keeps the wrapper alive through SIGTERM so that it can
#: record the exit code the command really had. Its own messages (a shell says "Killed" when
#: its child is) go nowhere, the command's stderr to the output as ever: the command runs in a
#: subshell that sets its own stderr, so the wrapper's stays /dev/null while it waits.
WRAPPER = f"""\
{RECORD_FUNCTION}
here=$(dirname "$0")
POLLINATOR_EXIT_RECORD="$here/{RECORD_FILE}"
trap 'true' TERM
exec 3>&2 2>/dev/null
(exec sh "$here/command.sh" 2>&3 3>&-)
code=$?
pollinator_exit_record "$code"
exit "$code"
"""

_STATES = {"pending": JobState.PENDING, "running": JobState.RUNNING}


def job_files(job: Job) -> dict[str, str]:
    """The files a job is submitted as (name -> text). The job runs on this machine, so paths
    under its mounts become the host directories behind them."""
    rewrite = PathRewriter(job.mounts)
    spec = {
        "name": job.name,
        "process_id": job.process_id,
        "env": {key: rewrite(value) for key, value in job_env(job).items()},
        "workdir": rewrite(job.workdir) if job.workdir else "",
        "walltime": job.walltime,
    }
    if not spec["workdir"] and job.mounts:
        spec["workdir"] = job.mounts[0].source
    return {
        "job.json": json.dumps(spec, indent=2) + "\n",
        "wrapper.sh": WRAPPER,
        "command.sh": rewrite(shell_script(job)) + "\n",
    }


class SpoolRuntime(BatchRuntime):
    """Jobs in the spool directory ``root``, run by ``pollinator-spoold --spool root``."""

    type = "spool"

    def __init__(
        self, root: Path, heartbeat_timeout: float = 10.0, polling: Polling | None = None
    ) -> None:
        super().__init__(polling)
        self.root = root
        self.heartbeat_timeout = heartbeat_timeout
        #: job name -> its path rewriter, whose links are removed with the job
        self._rewriters: dict[str, PathRewriter] = {}

    def describe(self) -> str:
        return f"the spool at {self.root}"

    def _dir(self, external: str) -> Path:
        return self.root / "jobs" / external

    # --- what BatchRuntime asks of a scheduler ------------------------------------------

    def _submit(self, job: Job) -> str:
        self._live()  # an unserved spool would only collect jobs: that is an outage
        self._link(job)
        where = self._dir(job.name)
        where.mkdir(parents=True, exist_ok=True)
        for name, text in job_files(job).items():
            (where / name).write_text(text)
        # Last, and atomically: the daemon sees a job only once all its files are there.
        tmp = self.root / "queue" / f".{job.name}"
        tmp.touch()
        os.replace(tmp, self.root / "queue" / job.name)
        return job.name

    def _poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        jobs = self._live()
        return {
            i: SchedulerJob(_STATES[jobs[i]["state"]], waiting=jobs[i].get("waiting", ""))
            for i in ids
            if i in jobs
        }

    def _final(self, ids: Sequence[str]) -> dict[str, Termination]:
        verdicts = {}
        for external in ids:
            where = self._dir(external)
            try:
                data = json.loads((where / "accounting.json").read_text())
                walltime = json.loads((where / "job.json").read_text()).get("walltime", 0)
            except (OSError, ValueError):
                continue  # not ended, or not accounted yet
            verdicts[external] = _termination(data, walltime)
        return verdicts

    def _cancel(self, external: str, kill: bool) -> None:
        where = self._dir(external)
        if where.is_dir():
            tmp = where / ".cancel"
            tmp.write_text("kill" if kill else "term")
            os.replace(tmp, where / "cancel")

    def _lookup(self, job: Job) -> str | None:
        if not (self._dir(job.name) / "job.json").exists():
            return None
        self._link(job)  # a job taken back keeps its links, even after a reboot emptied /tmp
        return job.name

    def _output(self, job: Job) -> Path:
        return self._dir(job.name) / "output.log"

    def cleanup(self, handle: str) -> None:
        super().cleanup(handle)
        rewrite = self._rewriters.pop(handle, None)
        if rewrite is not None:
            rewrite.remove_links()
        (self.root / "queue" / handle).unlink(missing_ok=True)
        shutil.rmtree(self._dir(handle), ignore_errors=True)

    def _link(self, job: Job) -> None:
        """The links job_files names for host directories a shell would misread (a space, `;`):
        made before the daemon can start the job."""
        rewrite = PathRewriter(job.mounts)
        rewrite.make_links()
        self._rewriters[job.name] = rewrite

    # --- the daemon -------------------------------------------------------------------------

    def _live(self) -> dict[str, dict[str, str]]:
        """The daemon's live view; InfraError when no daemon serves the spool."""
        hint = f"start it: pollinator-spoold --spool {self.root}"
        try:
            status = json.loads((self.root / "status.json").read_text())
        except (OSError, ValueError):
            raise InfraError(f"no spool daemon serves {self.root}; {hint}") from None
        age = time.time() - float(status.get("time", 0))
        if age > self.heartbeat_timeout:
            raise InfraError(
                f"the spool daemon of {self.root} has been silent for {age:.0f} s; {hint}"
            )
        jobs: dict[str, dict[str, str]] = status.get("jobs", {})
        return jobs


def _termination(data: dict[str, object], walltime: int) -> Termination:
    """accounting.json -> Termination."""
    code = data.get("exit_code")
    exit_code = code if isinstance(code, int) else None
    reason = str(data.get("reason") or "exit")
    seen = f"spool accounting: reason={reason} exit_code={exit_code}"
    if reason == "walltime":
        return Termination(Reason.WALLTIME, detail=f"{walltime} s").with_exit(exit_code, seen)
    if reason == "cancelled":
        return Termination(Reason.CANCELLED).with_exit(exit_code, seen)
    if reason == "start-failed" or exit_code is None:
        detail = f"the spool daemon could not start the job: {data.get('detail') or 'unknown'}"
        return Termination(Reason.INFRASTRUCTURE, detail=detail, evidence=(seen,))
    return Termination.exited(exit_code, evidence=[seen])
