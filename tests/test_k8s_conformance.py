"""The Kubernetes runtime passes the runtime conformance suite (pollinator_core.testing) on the
real test cluster, running as the ServiceAccount with the Role of deploy/k8s/executor.yaml."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from infra.components import K8sCluster
from k8s_fixtures import (  # noqa: F401  (the fixtures admin and executor_kubeconfig)
    Admin,
    admin_fixture,
    executor_kubeconfig_fixture,
)
from pollinator_k8s.plugin import make_runtime
from pollinator_k8s.runtime import K8sRuntime
from pollinator_k8s.settings import SETTINGS

from pollinator_core.api import Job, Runtime
from pollinator_core.testing import RuntimeConformance, run_job

pytestmark = pytest.mark.k8s

#: both runtime instances of an adoption test are the same executor
OWNER = uuid.uuid4().hex * 2


class TestK8sRuntimeConformance(RuntimeConformance):
    walltime = 5
    slack = 90.0  # a pod's start on a busy 2-core node, the poll, the kill grace

    def make_runtime(self, request: pytest.FixtureRequest) -> Runtime:
        cluster: K8sCluster = request.getfixturevalue("k8s_cluster")
        kubeconfig: Path = request.getfixturevalue("executor_kubeconfig")
        self.image = cluster.image
        self.admin: Admin = request.getfixturevalue("admin")
        settings = SETTINGS.load(
            None,
            {
                "kubeconfig": str(kubeconfig),
                "namespace": cluster.namespace,
                "image_pull_policy": "Never",
                "kill_grace": "3",
                "poll_interval": "2",
            },
            env={},
        )
        runtime = make_runtime(settings)
        assert isinstance(runtime, K8sRuntime)
        runtime.owner = OWNER
        return runtime

    def job(self, command: str, **fields: object) -> Job:
        fields.setdefault("cpu_millis", 200)  # a few millicores would slow the start by seconds
        return super().job(command, **fields)

    def leftovers(self, runtime: Runtime, handle: str, job: Job) -> list[str]:
        # Background deletion: the Job goes at once, its pods a moment later.
        deadline = time.monotonic() + 30
        while True:
            left = [f"Job {j.metadata.name}" for j in self.admin.jobs_of(job.process_id)]
            left += [f"pod {p.metadata.name}" for p in self.admin.pods_of(job.process_id)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)

    def test_dollar_signs_reach_the_job_as_written(self, conformance_runtime: Runtime) -> None:
        """Kubernetes expands $(NAME) and $$ in commands and environment values: not ours."""
        value = "$(HOME) $$ $HOME ${HOME} $(PROJECT_DIR) $"
        job = self.job(
            "printf '%s\\n' \"$LITERAL\" '$(PROJECT_DIR) $$'",
            env={"LITERAL": value, "PROJECT_DIR": "/p"},
        )
        run = run_job(conformance_runtime, job, timeout=self.slack)
        assert run.termination.succeeded, run.termination
        assert run.lines == [value + "\n", "$(PROJECT_DIR) $$\n"]
