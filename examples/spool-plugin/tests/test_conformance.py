"""The spool runtime against the runtime contract: Pollinator's conformance suite, installed
with Pollinator, applied in a few lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from pollinator_spool.runtime import SpoolRuntime

from pollinator_core.api import Job, Polling, Runtime
from pollinator_core.testing import RuntimeConformance

#: quicker than the default polling, for short test jobs
TEST_POLLING = Polling(min_interval=0.1, max_interval=1.0)


def processes_of(job_id: str) -> list[str]:
    """Processes still running (not zombies) with SPOOL_JOB_ID=<job_id> in their environment."""
    marker = f"SPOOL_JOB_ID={job_id}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker in environ and stat[stat.rindex(")") + 2] != "Z":
            found.append(f"process {proc.name}")
    return found


class TestSpoolRuntime(RuntimeConformance):
    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        self.root = request.getfixturevalue("spool").root
        return SpoolRuntime(self.root, polling=TEST_POLLING)

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        files = [str(p) for p in (self.root / "jobs" / handle, self.root / "queue" / handle)]
        return [f for f in files if Path(f).exists()] + processes_of(handle)
