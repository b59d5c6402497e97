"""The test infrastructure itself: the missing-component policy, and that each real component
answers the way the other tests use it (under CI these are what fail when a backend is broken)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from infra.components import (
    Component,
    ComponentMissing,
    DockerEngine,
    K8sCluster,
    S3Server,
    component_missing,
    read_env_file,
)


def test_a_missing_component_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="demo: not here"):
        component_missing("demo: not here")


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_a_missing_component_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="demo: not here"):
        component_missing("demo: not here")


def test_a_component_is_probed_once_and_keeps_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    calls: list[int] = []

    def probe() -> str:
        calls.append(1)
        raise ComponentMissing("gone away")

    component: Component[str] = Component("demo", probe)
    assert component.status() == "not needed"
    for _ in range(2):
        with pytest.raises(pytest.skip.Exception, match="demo: gone away"):
            component.require()
    assert calls == [1]
    assert component.status() == "MISSING: gone away"


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / "s3.env"
    env.write_text("# comment\n\nexport A=1\nB='two words'\nC=\"x=y\"\nnot a pair\n")
    assert read_env_file(env) == {"A": "1", "B": "two words", "C": "x=y"}


def test_the_s3_secret_stays_out_of_reprs() -> None:
    server = S3Server("127.0.0.1:1", "AK", "very-secret", "us-east-1", "b")
    assert "very-secret" not in repr(server)
    assert server.url == "http://127.0.0.1:1"
    assert server.env()["AWS_S3_SECRETKEY"] == "very-secret"


def test_docker_engine_runs_the_base_image(
    docker_engine: DockerEngine, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("docker") is not None  # added by conftest
    out = docker_engine.client.containers.run(
        docker_engine.image, ["python3", "-c", "print(6 * 7)"], remove=True, network_mode="none"
    )
    assert out.strip() == b"42"


def test_s3_server_round_trip_with_boto3_and_s3fs(
    s3_server: S3Server, request: pytest.FixtureRequest
) -> None:
    import boto3
    import s3fs

    assert request.node.get_closest_marker("s3") is not None  # added by conftest
    prefix = f"infra-selftest/{uuid.uuid4().hex}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    fs = s3fs.S3FileSystem(
        key=s3_server.access_key,
        secret=s3_server.secret_key,
        client_kwargs={"endpoint_url": s3_server.url, "region_name": s3_server.region},
        skip_instance_cache=True,
    )
    try:
        client.put_object(Bucket=s3_server.bucket, Key=f"{prefix}/a.txt", Body=b"from boto3")
        fs.pipe(f"{s3_server.bucket}/{prefix}/b.txt", b"from s3fs")
        assert fs.cat(f"{s3_server.bucket}/{prefix}/a.txt") == b"from boto3"
        body = client.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/b.txt")["Body"].read()
        assert body == b"from s3fs"
    finally:
        fs.rm(f"{s3_server.bucket}/{prefix}", recursive=True)
        client.close()


def test_k8s_cluster_is_ready_at_the_pinned_version(
    k8s_cluster: K8sCluster, request: pytest.FixtureRequest
) -> None:
    from kubernetes import client

    assert request.node.get_closest_marker("k8s") is not None  # added by conftest
    with k8s_cluster.api_client() as api:
        version = client.VersionApi(api).get_code()
        node = client.CoreV1Api(api).read_node(k8s_cluster.node)
    assert version.git_version == k8s_cluster.version
    assert node.status.node_info.kubelet_version == k8s_cluster.version
    assert node.status.node_info.container_runtime_version.startswith("containerd://2.")
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready[0].status == "True"


def test_k8s_service_account_kubeconfig_has_only_its_roles_rights(
    k8s_cluster: K8sCluster, tmp_path: Path
) -> None:
    """The mechanism the plugin's end-to-end tests use to run with a minimal namespaced Role."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    ns = k8s_cluster.namespace
    name = f"infra-test-{uuid.uuid4().hex[:8]}"
    with k8s_cluster.api_client() as admin:
        core = client.CoreV1Api(admin)
        rbac = client.RbacAuthorizationV1Api(admin)
        core.create_namespaced_service_account(
            ns, client.V1ServiceAccount.from_dict({"metadata": {"name": name}})
        )
        rbac.create_namespaced_role(
            ns,
            client.V1Role.from_dict(
                {
                    "metadata": {"name": name},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
                }
            ),
        )
        rbac.create_namespaced_role_binding(
            ns,
            client.V1RoleBinding.from_dict(
                {
                    "metadata": {"name": name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
                }
            ),
        )
        try:
            path = k8s_cluster.service_account_kubeconfig(name, tmp_path / "sa.kubeconfig")
            assert path.stat().st_mode & 0o777 == 0o600
            with config.new_client_from_config(config_file=str(path)) as api:
                as_sa = client.CoreV1Api(api)
                as_sa.list_namespaced_pod(ns)  # allowed by the Role
                for forbidden in (
                    lambda: as_sa.list_namespaced_secret(ns),  # not in the Role
                    lambda: as_sa.list_namespaced_pod("kube-system"),  # other namespace
                ):
                    with pytest.raises(ApiException) as refused:
                        forbidden()
                    assert refused.value.status == 403
                    assert f"system:serviceaccount:{ns}:{name}" in str(refused.value.body)
        finally:
            rbac.delete_namespaced_role_binding(name, ns)
            rbac.delete_namespaced_role(name, ns)
            core.delete_namespaced_service_account(name, ns)


def test_k8s_pods_write_to_the_hostpath_directly_and_through_the_claim(
    k8s_cluster: K8sCluster,
) -> None:
    from kubernetes import client

    sub = f"infra-test-{uuid.uuid4().hex[:8]}"
    host_dir = k8s_cluster.hostpath / sub
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from the host\n")
    volumes = {
        "hostpath": {"hostPath": {"path": str(host_dir), "type": "Directory"}},
        "claim": {"persistentVolumeClaim": {"claimName": k8s_cluster.claim}},
    }
    mounts = {
        "hostpath": {"name": "data", "mountPath": "/cfs"},
        "claim": {"name": "data", "mountPath": "/cfs", "subPath": sub},
    }
    with k8s_cluster.api_client() as api:
        core = client.CoreV1Api(api)
        for kind in ("hostpath", "claim"):
            pod = f"{sub}-{kind}"
            manifest = {
                "metadata": {"name": pod},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "volumes": [{"name": "data", **volumes[kind]}],
                    "containers": [
                        {
                            "name": "main",
                            "image": k8s_cluster.image,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", f"cat /cfs/in.txt > /cfs/{kind}.txt"],
                            "volumeMounts": [mounts[kind]],
                        }
                    ],
                },
            }
            core.create_namespaced_pod(k8s_cluster.namespace, client.V1Pod.from_dict(manifest))
            try:
                for _ in range(300):
                    phase = core.read_namespaced_pod(pod, k8s_cluster.namespace).status.phase
                    if phase in {"Succeeded", "Failed"}:
                        break
                    time.sleep(0.2)
                assert phase == "Succeeded"
                assert (host_dir / f"{kind}.txt").read_text() == "from the host\n"
            finally:
                core.delete_namespaced_pod(pod, k8s_cluster.namespace, grace_period_seconds=0)
