"""Fixtures for tests on the Kubernetes test cluster: the admin's view, and a kubeconfig of a
ServiceAccount bound to exactly the Role of deploy/k8s/executor.yaml (what every executor under
test runs as). Import them into a test module::

    from k8s_fixtures import admin_fixture, executor_kubeconfig_fixture  # noqa: F401
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra.components import K8sCluster
from pollinator_k8s.manifest import short_hash
from test_run_local import SUBMITTED, Output

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "k8s" / "executor.yaml"
PROCESS_LABEL = "pollinator.io/process"


class Admin:
    """The cluster admin's view, for setting the stage and checking what the plugin did."""

    def __init__(self, cluster: K8sCluster) -> None:
        from kubernetes import client

        self.cluster = cluster
        self.api = cluster.api_client()
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)

    def jobs_of(self, pid: str) -> list[Any]:
        selector = f"{PROCESS_LABEL}={short_hash(pid)}"
        return list(
            self.batch.list_namespaced_job(self.cluster.namespace, label_selector=selector).items
        )

    def remove_jobs(self, output: Output) -> None:
        """Delete the Jobs of the processes ``output`` submitted: a test that ends early stops
        its executor, which leaves its jobs running for a successor that never comes."""
        for pid in set(SUBMITTED.findall("".join(output.err))):
            for job in self.jobs_of(pid):
                self.batch.delete_namespaced_job(
                    job.metadata.name, self.cluster.namespace, propagation_policy="Background"
                )

    def pods_of(self, pid: str) -> list[Any]:
        selector = f"{PROCESS_LABEL}={short_hash(pid)}"
        return list(
            self.core.list_namespaced_pod(self.cluster.namespace, label_selector=selector).items
        )


def deploy_objects() -> dict[str, dict[str, Any]]:
    """The objects of deploy/k8s/executor.yaml, by kind (one each)."""
    return {o["kind"]: o for o in yaml.safe_load_all(DEPLOY.read_text()) if o}


@pytest.fixture(scope="module", name="admin")
def admin_fixture(k8s_cluster: K8sCluster) -> Iterator[Admin]:
    made = Admin(k8s_cluster)
    yield made
    made.api.close()


@pytest.fixture(scope="module", name="executor_kubeconfig")
def executor_kubeconfig_fixture(
    k8s_cluster: K8sCluster, admin: Admin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A kubeconfig of a fresh ServiceAccount with exactly the Role of deploy/k8s/executor.yaml."""
    from kubernetes import client

    name = f"pollinator-test-{uuid.uuid4().hex[:6]}"
    ns = k8s_cluster.namespace
    role = deploy_objects()["Role"]
    admin.core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    admin.rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": role["rules"]})
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }
    admin.rbac.create_namespaced_role_binding(ns, binding)
    path = k8s_cluster.service_account_kubeconfig(
        name, tmp_path_factory.mktemp("sa") / "kubeconfig"
    )
    # Not an admin: anything outside the Role is refused.
    restricted = client.CoreV1Api(
        __import__("kubernetes").config.new_client_from_config(config_file=str(path))
    )
    with pytest.raises(client.exceptions.ApiException) as refused:
        restricted.list_namespaced_secret(ns)
    assert refused.value.status == 403
    yield path
    admin.rbac.delete_namespaced_role_binding(name, ns)
    admin.rbac.delete_namespaced_role(name, ns)
    admin.core.delete_namespaced_service_account(name, ns)
