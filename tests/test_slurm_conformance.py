"""The Slurm runtime against the runtime contract (pollinator_core.testing), on the real
cluster: every job an sbatch of the test SIF in Apptainer."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from infra.components import SlurmCluster
from pollinator_slurm.runtime import SlurmRuntime
from pollinator_slurm.settings import SlurmSettings

from pollinator_core.api import Job, Runtime
from pollinator_core.testing import RuntimeConformance

pytestmark = pytest.mark.slurm


class TestSlurmRuntime(RuntimeConformance):
    #: the wrapper's own timer counts seconds; Slurm's minutes are only its backstop
    walltime = 3
    #: scheduling, srun and Apptainer's start, and a shared, 2-CPU test node
    slack = 60.0

    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        cluster: SlurmCluster = request.getfixturevalue("slurm_cluster")
        self.image = str(cluster.test_sif)
        self.jobs = self.host_dir(request.getfixturevalue("tmp_path")) / "jobs"
        settings = SlurmSettings(
            partition=cluster.partition,
            grace=2.0,
            poll_interval=0.5,
            poll_max_interval=5.0,
            job_dir=str(self.jobs),
        )
        return SlurmRuntime(settings)

    def host_dir(self, tmp_path: Path) -> Path:
        return tmp_path  # the test node is the cluster's one node: the same filesystem

    def job(self, command: str, **fields: Any) -> Job:
        fields.setdefault("mem_bytes", 256 * 2**20)
        fields.setdefault("process_id", uuid.uuid4().hex * 2)
        return super().job(command, **fields)

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        queued = subprocess.run(
            ["squeue", "-h", "-j", handle, "-t", "PENDING,RUNNING,COMPLETING", "-o", "%T"],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        files = [str(self.jobs / job.name)] if (self.jobs / job.name).exists() else []
        return [f"Slurm job {handle} {state}" for state in queued] + files
