"""The test infrastructure itself: the missing-component policy, and that each real component
answers the way the other tests use it (under CI these are what fail when a backend is broken)."""

from __future__ import annotations

import pwd
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.components import (
    ColoniesServer,
    ColoniesServers,
    Component,
    ComponentMissing,
    DockerEngine,
    K8sCluster,
    S3Server,
    SlurmCluster,
    _probe_slurm,
    colonies_server_from_env,
    component_missing,
    read_env_file,
)
from pollinator_core.colonies.client import ColoniesClient, Unsupported
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.colonies.models import Executor, ExecutorState


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


# --- Slurm + Apptainer ---------------------------------------------------------------------------
#
# What this cluster reports for each way a job ends (the Slurm plugin maps these):
#   exit 0       sacct -X: COMPLETED 0:0       scontrol: JobState=COMPLETED Reason=None
#   exit 3       sacct -X: FAILED 3:0          scontrol: JobState=FAILED Reason=NonZeroExitCode
#   over --mem   sacct -X: OUT_OF_MEMORY 0:125 scontrol: JobState=OUT_OF_MEMORY Reason=OutOfMemory
#   over --time  sacct -X: TIMEOUT 0:0         scontrol: JobState=TIMEOUT Reason=TimeLimit
#                (the batch step: CANCELLED 0:15; scontrol's ExitCode=0:15)
# sacct's Reason column says None for all of them; sacct lags squeue by a second or so, and
# longer after a slurmdbd outage (see _job_end).

#: Job states after which a job no longer changes.
_RUNNING_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"}


def test_slurm_probe_names_the_script_when_the_env_file_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLINATOR_TEST_SLURM_ENV", str(tmp_path / "absent.env"))
    with pytest.raises(ComponentMissing, match=r"no Slurm env file .* tests/infra/slurm_up\.sh"):
        _probe_slurm()


def test_slurm_probe_names_a_missing_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "slurm.env"
    env.write_text("POLLINATOR_SLURM_CLUSTER=pollinator\n")
    monkeypatch.setenv("POLLINATOR_TEST_SLURM_ENV", str(env))
    with pytest.raises(ComponentMissing, match="lacks POLLINATOR_SLURM_PARTITION"):
        _probe_slurm()


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def _job_dir(cluster: SlurmCluster, user: str) -> Path:
    """A fresh directory in the shared directory, owned by ``user``, with a ``cfs`` inside."""
    path = cluster.shared_dir / f"infra-test-{uuid.uuid4().hex[:12]}"
    (path / "cfs").mkdir(parents=True)
    for p in (path, path / "cfs"):
        shutil.chown(p, user, user)
    return path


def _apptainer_job(cluster: SlurmCluster, workdir: Path, user: str, code: str) -> Path:
    """A batch script that runs ``python3 -c CODE`` in the test SIF with workdir/cfs at /cfs."""
    container = ["apptainer", "exec", "--containall", "--cleanenv"]
    bind = ["--bind", f"{workdir / 'cfs'}:/cfs", str(cluster.test_sif)]
    script = workdir / "job.sh"
    script.write_text(
        f"#!/bin/bash\nexec {shlex.join([*container, *bind, 'python3', '-c', code])}\n"
    )
    shutil.chown(script, user, user)
    script.chmod(0o755)
    return script


def _sbatch(cluster: SlurmCluster, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["sbatch", "--parsable", f"--partition={cluster.partition}", *args]
    if user != "root":
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=240)


def _job_end(cluster: SlurmCluster, job: str, limit: float = 150) -> tuple[str, str, str]:
    """(State, ExitCode) once the job has ended, from sacct -X (scontrol without accounting),
    and scontrol's Reason."""
    deadline = time.monotonic() + limit
    while True:
        if cluster.accounting:
            # Empty until slurmctld has sent the job's record to slurmdbd. After an outage of
            # slurmdbd the final State can arrive before the end record: ExitCode 0:0 and End
            # Unknown for some seconds. The record is complete when End is known.
            row = _out(["sacct", "-n", "-P", "-X", "-j", job, "-o", "State,ExitCode,End"]).strip()
            state, exit_code, end = row.split("|") if row else ("", "", "")
        else:
            fields = dict(re.findall(r"(\w+)=(\S*)", _out(["scontrol", "show", "job", job])))
            state, exit_code, end = fields["JobState"], fields["ExitCode"], fields["EndTime"]
        if state and state.split()[0] not in _RUNNING_STATES and end != "Unknown":
            break
        assert time.monotonic() < deadline, f"job {job} still {state or 'unknown'} after {limit} s"
        time.sleep(0.5)
    reason = re.search(r"\bReason=(\S+)", _out(["scontrol", "show", "job", job]))
    return state, exit_code, reason.group(1) if reason else ""


def test_slurm_cluster_answers_as_a_login_node_does(
    slurm_cluster: SlurmCluster, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("slurm") is not None  # added by conftest
    partitions = _out(["sinfo", "-h", "-o", "%P %D %c"]).split()
    assert partitions == [f"{slurm_cluster.partition}*", "1", "2"]
    assert _out(["singularity", "--version"]).split()[-1] == slurm_cluster.apptainer_version
    sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=60)
    if slurm_cluster.accounting:
        assert sacct.returncode == 0, sacct.stderr
    else:
        assert "accounting storage is disabled" in sacct.stderr + sacct.stdout


@pytest.fixture(scope="module")
def hogs(slurm_cluster: SlurmCluster) -> Iterator[dict[str, tuple[str, Path]]]:
    """A TIMEOUT job and an OUT_OF_MEMORY job, submitted by the first Slurm job test so that the
    timeout's 60-90 s (Slurm counts --time in minutes and checks limits every 30 s) overlap the
    tests before the last one; cancelled afterwards if a failed test left them running."""
    jobs: dict[str, tuple[str, Path]] = {}
    # 256M, not less: under a smaller limit the kernel keeps evicting and re-reading the SIF's
    # pages (charged to the job) and the hog thrashed 30-75 s before the OOM kill; here 2-4 s.
    programs = {
        "timeout": ("--time=1", "import time; print('sleeping', flush=True); time.sleep(600)"),
        "oom": (
            "--mem=256M",
            "print('eating', flush=True); a = [bytearray(10**7) for _ in range(1000)]",
        ),
    }
    try:
        for name, (limit, code) in programs.items():
            workdir = _job_dir(slurm_cluster, "root")
            script = _apptainer_job(slurm_cluster, workdir, "root", code)
            out = workdir / "job.out"
            done = _sbatch(
                slurm_cluster, "root", limit, f"--output={out}", f"--chdir={workdir}", str(script)
            )
            assert done.returncode == 0, done.stderr
            jobs[name] = (done.stdout.split()[0], out)
        yield jobs
    finally:
        if jobs:
            subprocess.run(["scancel", *(job for job, _ in jobs.values())], check=False, timeout=60)


def test_a_job_over_its_memory_limit_ends_out_of_memory(
    slurm_cluster: SlurmCluster, hogs: dict[str, tuple[str, Path]]
) -> None:
    job, out = hogs["oom"]
    assert _job_end(slurm_cluster, job) == ("OUT_OF_MEMORY", "0:125", "OutOfMemory")
    lines = out.read_text().splitlines()
    assert lines[0] == "eating"
    assert re.search(r"Detected \d+ oom-kill event\(s\) in StepId=\d+\.batch", lines[-1]), lines


@pytest.mark.parametrize(("as_root", "exit_code"), [(True, 0), (False, 3)])
def test_sbatch_runs_apptainer_exec_and_sacct_reads_the_exit_code(
    slurm_cluster: SlurmCluster, as_root: bool, exit_code: int
) -> None:
    user = "root" if as_root else slurm_cluster.test_user
    workdir = _job_dir(slurm_cluster, user)
    code = (
        "import os, sys\n"
        "print('hello from the container, uid', os.getuid(), flush=True)\n"
        "open('/cfs/result.txt', 'w').write('written in the job')\n"
        f"sys.exit({exit_code})\n"
    )
    script = _apptainer_job(slurm_cluster, workdir, user, code)
    done = _sbatch(
        slurm_cluster,
        user,
        "--wait",
        "--export=NONE",
        f"--chdir={workdir}",
        f"--output={workdir / 'job.out'}",
        "--time=2",
        "--mem=256M",
        str(script),
    )
    assert done.returncode == exit_code, done.stderr
    job = done.stdout.split()[0]
    uid = pwd.getpwnam(user).pw_uid
    assert (workdir / "job.out").read_text() == f"hello from the container, uid {uid}\n"
    result = workdir / "cfs" / "result.txt"
    assert result.read_text() == "written in the job"
    assert result.stat().st_uid == uid
    expected = (
        ("COMPLETED", "0:0", "None") if exit_code == 0 else ("FAILED", "3:0", "NonZeroExitCode")
    )
    assert _job_end(slurm_cluster, job) == expected


def test_outages_on_purpose_keep_the_job_and_its_record(slurm_cluster: SlurmCluster) -> None:
    if not slurm_cluster.accounting:
        pytest.skip("the cluster runs without accounting (slurm_up.sh --no-dbd)")
    workdir = _job_dir(slurm_cluster, "root")
    done = _sbatch(
        slurm_cluster,
        "root",
        f"--output={workdir / 'job.out'}",
        "--wrap",
        "echo before; sleep 8; echo after; exit 3",
    )
    assert done.returncode == 0, done.stderr
    job = done.stdout.split()[0]
    try:
        slurm_cluster.stop_dbd()
        sacct = subprocess.run(["sacct", "-j", job], capture_output=True, text=True, timeout=60)
        assert sacct.returncode != 0
        assert "Connection refused" in sacct.stderr
        slurm_cluster.restart_ctld()
        assert _out(["squeue", "-h", "-j", job, "-o", "%T"]).strip() in {"PENDING", "RUNNING"}
        fields: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while fields.get("JobState", "RUNNING") in _RUNNING_STATES:
            assert time.monotonic() < deadline, f"job {job} did not end: {fields}"
            time.sleep(0.5)
            fields = dict(re.findall(r"(\w+)=(\S*)", _out(["scontrol", "show", "job", job])))
        assert (fields["JobState"], fields["ExitCode"]) == ("FAILED", "3:0")
    finally:
        slurm_cluster.start_dbd()
    # slurmctld kept the record while slurmdbd was away and sends it now.
    assert _job_end(slurm_cluster, job, limit=60) == ("FAILED", "3:0", "NonZeroExitCode")
    assert (workdir / "job.out").read_text() == "before\nafter\n"


@pytest.mark.slow
def test_a_job_over_its_time_limit_ends_timeout(
    slurm_cluster: SlurmCluster, hogs: dict[str, tuple[str, Path]]
) -> None:
    job, out = hogs["timeout"]
    assert _job_end(slurm_cluster, job) == ("TIMEOUT", "0:0", "TimeLimit")
    lines = out.read_text().splitlines()
    assert lines[0] == "sleeping"
    assert re.search(
        rf"\*\*\* JOB {job} ON localhost CANCELLED AT \S+ DUE TO TIME LIMIT", lines[-1]
    )


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


# --- the official Colonies server -------------------------------------------------------------

_ENV_AS_WRITTEN = """# Written by tests/infra/colonies_up.sh
COLONIES_SERVER_HOST=127.0.0.1
COLONIES_SERVER_PORT=50180
COLONIES_SERVER_TLS=false
COLONIES_SERVER_VERSION=v1.9.12
COLONIES_SERVER_ID=sid
COLONIES_SERVER_PRVKEY=server-secret
COLONIES_COLONY_NAME=pollinator-test
COLONIES_COLONY_ID=cid
COLONIES_COLONY_PRVKEY=colony-secret
COLONIES_USER_NAME=pollinator-user
COLONIES_USER_ID=uid
COLONIES_PRVKEY=user-secret
COLONIES_EXCLUSIVE_ASSIGN=true
COLONIES_ALLOW_EXECUTOR_REREGISTER=false
COLONIES_STALE_EXECUTOR_DURATION=10
COLONIES_CLEANUP_INTERVAL=1
"""


def test_the_colonies_env_file_reads_back_and_keys_stay_out_of_reprs(tmp_path: Path) -> None:
    path = tmp_path / "colonies.env"
    path.write_text(_ENV_AS_WRITTEN)
    server = colonies_server_from_env("colonies", read_env_file(path))
    assert (server.url, server.version, server.colony_name) == (
        "http://127.0.0.1:50180",
        "v1.9.12",
        "pollinator-test",
    )
    assert server.exclusive_assign and (server.stale_seconds, server.cleanup_seconds) == (10, 1)
    assert not any(
        secret in repr(server) for secret in ("server-secret", "colony-secret", "user-secret")
    )
    env = server.env()
    assert env["COLONIES_PRVKEY"] == "user-secret"
    assert env["COLONIES_COLONY_PRVKEY"] == "colony-secret"
    path.write_text(_ENV_AS_WRITTEN.replace("COLONIES_USER_ID=uid\n", ""))
    with pytest.raises(KeyError, match="COLONIES_USER_ID"):
        colonies_server_from_env("colonies", read_env_file(path))


def _client(server: ColoniesServer, prvkey: str) -> ColoniesClient:
    return ColoniesClient(ClientConfig(host=server.host, port=server.port, prvkey=prvkey))


def test_colonies_server_serves_its_colony_to_each_key(
    colonies_server: ColoniesServer, request: pytest.FixtureRequest
) -> None:
    """The setup tests rely on: the user is a member, the colony key owns the colony (adds and
    approves executors), the server key owns the server; the stale window is short."""
    assert request.node.get_closest_marker("colonies_server") is not None  # added by conftest
    user = _client(colonies_server, colonies_server.prvkey)
    assert user.version() == "v1.9.12"
    assert user.get_colony(colonies_server.colony_name).colonyid == colonies_server.colony_id
    assert user.signer_id == colonies_server.user_id
    server = user.with_key(colonies_server.server_prvkey)
    assert colonies_server.colony_name in {c.name for c in server.get_colonies()}
    executor_key = generate_private_key()
    name = f"infra-{uuid.uuid4().hex[:8]}"
    owner = user.with_key(colonies_server.colony_prvkey)
    owner.add_executor(
        Executor(
            executorid=id_from_private_key(executor_key),
            executortype="infra-selftest",
            executorname=name,
            colonyname=colonies_server.colony_name,
        )
    )
    owner.approve_executor(colonies_server.colony_name, name)
    try:
        executor = user.with_key(executor_key)
        assert executor.assign(colonies_server.colony_name, timeout=-1) is None
        assert user.get_executor(colonies_server.colony_name, name).state == ExecutorState.APPROVED
    finally:
        owner.remove_executor(colonies_server.colony_name, name)
        user.close()
    assert colonies_server.exclusive_assign
    assert 0 < colonies_server.stale_seconds <= 30


def test_colonies_servers_run_their_versions_and_modes(colonies_servers: ColoniesServers) -> None:
    assert (colonies_servers.main.version, colonies_servers.main.exclusive_assign) == (
        "v1.9.12",
        True,
    )
    dist = colonies_servers.distributed
    assert (dist.version, dist.exclusive_assign) == ("v1.9.12", False)
    assert _client(dist, dist.prvkey).version() == "v1.9.12"
    ports = {s.port for s in (colonies_servers.main, dist, colonies_servers.v187)}
    assert len(ports) == 3


def test_colonies_server_v187_is_the_old_protocol(colonies_server_v187: ColoniesServer) -> None:
    """v1.8.7 has no cancelprocessmsg and never removes silent executors."""
    client = _client(colonies_server_v187, colonies_server_v187.prvkey)
    try:
        assert client.version() == "v1.8.7"
        with pytest.raises(Unsupported) as info:
            client.cancel_process("0" * 64)
        assert info.value.server_message == "invalid rpcMsg.PayloadType, cancelprocessmsg"
    finally:
        client.close()
    assert colonies_server_v187.stale_seconds == 0


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port`` in our namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_colonies_servers_are_reachable_on_loopback_only(colonies_servers: ColoniesServers) -> None:
    """Only the bridges listen in our namespace, on 127.0.0.1; the servers' own :50080 and
    etcd's 0.0.0.0:2379-2381 stay inside their namespaces."""
    for server in (colonies_servers.main, colonies_servers.distributed, colonies_servers.v187):
        assert _listening(server.port) == {"0100007F"}  # 127.0.0.1, little-endian hex
    for port in (50080, 2379, 2380, 2381):
        assert _listening(port) == set(), f"something listens on port {port} in our namespace"
