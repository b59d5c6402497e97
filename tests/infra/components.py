"""Real components the integration tests need, and the one policy for when one is missing.

Policy: a missing component SKIPS its tests with the reason, except under CI (``CI=true``), where
it FAILS them: a silent skip must never hide a broken backend. Every component goes through
:meth:`Component.require`, whether a test asks for its fixture or only carries its marker.

The tests get here through tests/conftest.py (fixtures ``docker_engine``, ``s3_server``,
``colonies_server``..., ``slurm_cluster``, ``k8s_cluster``); import the types from here for
annotations: ``from infra.components import S3Server``. Heavy libraries (docker, botocore,
kubernetes) are imported only when a component is first probed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import pytest

if TYPE_CHECKING:
    import docker
    from kubernetes.client import ApiClient

T = TypeVar("T")

#: Where tests/infra/*.sh keep pid files, logs and env files (the scripts use the same default).
CI_DIR = Path(os.environ.get("POLLINATOR_CI_DIR", "/tmp/pollinator-ci"))
#: The base image tests/infra/docker_up.sh builds (python3 on Debian bookworm, no registry).
DEFAULT_IMAGE = "localhost/pollinator-python:bookworm"


class ComponentMissing(Exception):
    """Raised by a probe: the component is not there; the message says why and how to start it."""


def ci_requires_components() -> bool:
    """True under CI, where a missing component is a failure instead of a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def component_missing(reason: str) -> NoReturn:
    """Skip the current test with ``reason``, or fail it under CI."""
    if ci_requires_components():
        pytest.fail(f"{reason} (CI=true: a missing component fails)", pytrace=False)
    pytest.skip(reason)


class Component(Generic[T]):
    """A real component, probed once per test session; ``marker`` is its pytest marker."""

    def __init__(
        self,
        marker: str,
        probe: Callable[[], T],
        close: Callable[[T], None] | None = None,
    ) -> None:
        self.marker = marker
        self._probe = probe
        self._close = close
        self._value: T | None = None
        self._missing: str | None = None
        self.probed = False

    def require(self) -> T:
        """The component's handle; skips (or fails under CI) when it is missing."""
        if not self.probed:
            self.probed = True
            try:
                self._value = self._probe()
            except ComponentMissing as exc:
                self._missing = str(exc)
        if self._missing is not None or self._value is None:
            component_missing(f"{self.marker}: {self._missing}")
        return self._value

    def status(self) -> str:
        """One line for the end-of-session summary."""
        if not self.probed:
            return "not needed"
        return "ok" if self._missing is None else f"MISSING: {self._missing}"

    def close(self) -> None:
        if self._value is not None and self._close is not None:
            self._close(self._value)
        self._value = None


# --- Docker -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerEngine:
    """A live Docker engine and the local base image (python3) tests run containers from."""

    client: docker.DockerClient
    image: str


def _probe_docker() -> DockerEngine:
    hint = "start it with: bash tests/infra/docker_up.sh"
    try:
        import docker
        import docker.errors
    except ImportError as exc:
        raise ComponentMissing(f"the docker SDK is not installed ({exc})") from exc
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ComponentMissing(f"no Docker engine answers ({exc}); {hint}") from exc
    image = os.environ.get("POLLINATOR_TEST_IMAGE", DEFAULT_IMAGE)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as exc:
        client.close()
        raise ComponentMissing(f"base image {image} is missing; {hint}") from exc
    return DockerEngine(client=client, image=image)


def _close_docker(engine: DockerEngine) -> None:
    engine.client.close()


# --- S3 (Ceph RADOS Gateway) -------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """An S3 server with a bucket the tests may write to. Values mean what the official Colonies
    tools' AWS_S3_* variables mean (``endpoint`` is host:port, without a scheme)."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)  # never printed in test output
    region: str
    bucket: str
    tls: bool = False

    @property
    def url(self) -> str:
        """The endpoint as a URL, as boto3/s3fs take it (``endpoint_url``)."""
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def env(self) -> dict[str, str]:
        """The AWS_S3_* variables for this server (for ``monkeypatch.setenv`` or a subprocess)."""
        return {
            "AWS_S3_ENDPOINT": self.endpoint,
            "AWS_S3_ACCESSKEY": self.access_key,
            "AWS_S3_SECRETKEY": self.secret_key,
            "AWS_S3_REGION": self.region,
            "AWS_S3_BUCKET": self.bucket,
            "AWS_S3_TLS": "true" if self.tls else "false",
            "AWS_S3_SKIPVERIFY": "false",
        }


def s3_env_file() -> Path:
    """The env file tests/infra/s3_up.sh writes; POLLINATOR_TEST_S3_ENV points elsewhere."""
    return Path(os.environ.get("POLLINATOR_TEST_S3_ENV", str(CI_DIR / "s3.env")))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``#`` comments, optional ``export``, optional quotes), as shells write."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _probe_s3() -> S3Server:
    # Only the dedicated env file, never AWS_S3_* from the caller's shell: those may point at a
    # real object store, and the tests write and delete objects.
    path = s3_env_file()
    hint = "start one with: bash tests/infra/s3_up.sh"
    if not path.is_file():
        raise ComponentMissing(f"no S3 env file at {path}; {hint}")
    env = read_env_file(path)
    try:
        server = S3Server(
            endpoint=env["AWS_S3_ENDPOINT"],
            access_key=env["AWS_S3_ACCESSKEY"],
            secret_key=env["AWS_S3_SECRETKEY"],
            region=env.get("AWS_S3_REGION", "us-east-1"),
            bucket=env["AWS_S3_BUCKET"],
            tls=env.get("AWS_S3_TLS", "false").lower() == "true",
        )
    except KeyError as exc:
        raise ComponentMissing(f"{path} lacks {exc.args[0]}; {hint}") from exc
    _check_s3(server, hint)
    return server


def _check_s3(server: S3Server, hint: str) -> None:
    """A real signed request: the server answers, accepts the keys, and the bucket exists."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise ComponentMissing(f"boto3 is not installed ({exc})") from exc
    client: Any = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=server.bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        if code in {"404", "NoSuchBucket"}:
            reason = f"bucket {server.bucket} is missing on {server.url}"
        else:
            reason = f"S3 at {server.url} refused the test keys ({code})"
        raise ComponentMissing(f"{reason}; {hint}") from exc
    except BotoCoreError as exc:
        raise ComponentMissing(f"no S3 server answers at {server.url} ({exc}); {hint}") from exc
    finally:
        client.close()


# --- The official Colonies server (tests/infra/colonies_up.sh) ----------------------------------


@dataclass(frozen=True)
class ColoniesServer:
    """One instance of the official Colonies server, with a colony and a user of it.

    ``prvkey`` belongs to the user (a member that submits); ``colony_prvkey`` owns the colony
    (adds executors and users); ``server_prvkey`` owns the server. ``stale_seconds`` is how long
    the server keeps an executor it has not heard from (0: never removed, as in v1.8.x), checked
    every ``cleanup_seconds``. Keys never appear in reprs.
    """

    name: str
    version: str
    host: str
    port: int
    server_id: str
    colony_name: str
    colony_id: str
    user_name: str
    user_id: str
    exclusive_assign: bool
    stale_seconds: int
    cleanup_seconds: int
    server_prvkey: str = field(repr=False)
    colony_prvkey: str = field(repr=False)
    prvkey: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """COLONIES_* variables for a client signing as the user (the official tools' names)."""
        return {
            "COLONIES_SERVER_HOST": self.host,
            "COLONIES_SERVER_PORT": str(self.port),
            "COLONIES_SERVER_TLS": "false",
            "COLONIES_SERVER_ID": self.server_id,
            "COLONIES_SERVER_PRVKEY": self.server_prvkey,
            "COLONIES_COLONY_NAME": self.colony_name,
            "COLONIES_COLONY_ID": self.colony_id,
            "COLONIES_COLONY_PRVKEY": self.colony_prvkey,
            "COLONIES_PRVKEY": self.prvkey,
        }


@dataclass(frozen=True)
class ColoniesServers:
    """The instances tests/infra/colonies_up.sh runs side by side."""

    #: v1.9.12 with exclusive assign, as the official deployment runs it (the default peer).
    main: ColoniesServer
    #: v1.9.12 with distributed assign, the server's own default when nothing is configured.
    distributed: ColoniesServer
    #: v1.8.7: what the official executors link; executor capabilities are objects there.
    v187: ColoniesServer


#: Instance name (env file $CI_DIR/<name>.env) -> the version colonies_up.sh runs there.
COLONIES_INSTANCES = {"colonies": "v1.9.12", "colonies-dist": "v1.9.12", "colonies-v187": "v1.8.7"}


def colonies_env_file(name: str) -> Path:
    """The env file tests/infra/colonies_up.sh writes for an instance."""
    return CI_DIR / f"{name}.env"


def colonies_server_from_env(name: str, env: dict[str, str]) -> ColoniesServer:
    """A ColoniesServer from an env file's variables; KeyError names a missing one."""
    return ColoniesServer(
        name=name,
        version=env["COLONIES_SERVER_VERSION"],
        host=env["COLONIES_SERVER_HOST"],
        port=int(env["COLONIES_SERVER_PORT"]),
        server_id=env["COLONIES_SERVER_ID"],
        colony_name=env["COLONIES_COLONY_NAME"],
        colony_id=env["COLONIES_COLONY_ID"],
        user_name=env["COLONIES_USER_NAME"],
        user_id=env["COLONIES_USER_ID"],
        exclusive_assign=env["COLONIES_EXCLUSIVE_ASSIGN"] == "true",
        stale_seconds=int(env["COLONIES_STALE_EXECUTOR_DURATION"]),
        cleanup_seconds=int(env["COLONIES_CLEANUP_INTERVAL"]),
        server_prvkey=env["COLONIES_SERVER_PRVKEY"],
        colony_prvkey=env["COLONIES_COLONY_PRVKEY"],
        prvkey=env["COLONIES_PRVKEY"],
    )


def _server_version(server: ColoniesServer) -> str:
    """The build version the server reports (versionmsg needs no signature)."""
    import base64
    import json
    import urllib.request

    payload = base64.b64encode(json.dumps({"msgtype": "versionmsg"}).encode()).decode()
    body = json.dumps({"payloadtype": "versionmsg", "payload": payload, "signature": ""})
    request = urllib.request.Request(f"{server.url}/api", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        reply = json.loads(response.read())
    return str(json.loads(base64.b64decode(reply["payload"])).get("buildversion", ""))


def _probe_colonies() -> ColoniesServers:
    hint = "start them with: bash tests/infra/colonies_up.sh"
    servers: dict[str, ColoniesServer] = {}
    for name, version in COLONIES_INSTANCES.items():
        path = colonies_env_file(name)
        if not path.is_file():
            raise ComponentMissing(f"no env file at {path}; {hint}")
        try:
            server = colonies_server_from_env(name, read_env_file(path))
        except (KeyError, ValueError) as exc:
            raise ComponentMissing(f"{path} is incomplete ({exc}); {hint}") from exc
        try:
            reported = _server_version(server)
        except (OSError, ValueError, KeyError) as exc:
            reason = f"no Colonies server answers at {server.url} ({exc}); {hint}"
            raise ComponentMissing(reason) from exc
        if reported != version or server.version != version:
            raise ComponentMissing(
                f"the server at {server.url} reports version {reported!r}, "
                f"expected {version}; {hint}"
            )
        servers[name] = server
    return ColoniesServers(
        main=servers["colonies"],
        distributed=servers["colonies-dist"],
        v187=servers["colonies-v187"],
    )


# --- Slurm with Apptainer (tests/infra/slurm_up.sh) ---------------------------------------------

#: The script that runs the test cluster; SlurmCluster's control methods call it.
SLURM_UP = Path(__file__).with_name("slurm_up.sh")


@dataclass(frozen=True)
class SlurmCluster:
    """The one-node Slurm cluster (node ``localhost``, 2 CPUs, 4096 MB) with Apptainer.

    The Slurm commands (sbatch, squeue, sacct, scancel, scontrol) are on PATH and find the cluster
    through ``slurm_conf`` (/etc/slurm/slurm.conf), as on a login node. ``accounting`` tells
    whether slurmdbd keeps accounting (plain ``sacct`` answers) or not (it says "Slurm accounting
    storage is disabled"; ``sacct -c`` still reads the job completion file). Memory limits are
    enforced (cgroup v1): a job over its ``--mem`` ends OUT_OF_MEMORY.

    ``test_user`` is a non-root user that may submit (as root: ``runuser -u USER -- sbatch ...``);
    ``shared_dir`` (mode 1777) is visible to jobs of every user; ``sif_dir`` is where SIFs are
    cached (world-readable), ``test_sif`` the test image (tests/infra/docker_up.sh) as a SIF.
    """

    cluster: str
    partition: str
    account: str
    accounting: bool
    test_user: str
    shared_dir: Path
    sif_dir: Path
    test_sif: Path
    apptainer: Path
    apptainer_version: str
    slurm_conf: Path
    log_dir: Path

    # Outages on purpose, for tests of what a backend does then. They act on the shared cluster:
    # a test that stops slurmdbd must start it again (try/finally), whatever happens.

    def stop_dbd(self) -> None:
        """Stop slurmdbd (clients get "Connection refused"; slurmctld queues its records)."""
        _slurm_up("--stop-dbd")

    def start_dbd(self) -> None:
        """Start slurmdbd again; slurmctld then sends it the records it queued."""
        _slurm_up("--start-dbd")

    def restart_ctld(self) -> None:
        """Restart slurmctld (SIGTERM, start, wait until it answers); running jobs go on."""
        _slurm_up("--restart-ctld")


def _slurm_up(flag: str) -> None:
    done = subprocess.run(
        ["bash", str(SLURM_UP), flag], capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{SLURM_UP.name} {flag} failed (exit {done.returncode}): {done.stderr}")


def slurm_env_file() -> Path:
    """The env file tests/infra/slurm_up.sh writes; POLLINATOR_TEST_SLURM_ENV points elsewhere."""
    return Path(os.environ.get("POLLINATOR_TEST_SLURM_ENV", str(CI_DIR / "slurm.env")))


def _run(argv: list[str], hint: str) -> str:
    """stdout of a command that must succeed, or ComponentMissing with its message."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise ComponentMissing(f"{argv[0]} is not installed; {hint}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ComponentMissing(f"`{' '.join(argv)}` hangs (30 s); {hint}") from exc
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise ComponentMissing(
            f"`{' '.join(argv)}` failed: {reason[-1] if reason else done.returncode}; {hint}"
        )
    return done.stdout


#: What the probe reads from the env file, as POLLINATOR_SLURM_<KEY>.
_SLURM_ENV_KEYS = (
    "cluster",
    "partition",
    "account",
    "test_user",
    "shared_dir",
    "sif_dir",
    "test_sif",
    "apptainer",
    "conf",
    "log_dir",
)


def _probe_slurm() -> SlurmCluster:
    path = slurm_env_file()
    hint = "start it with: bash tests/infra/slurm_up.sh (as root)"
    if not path.is_file():
        raise ComponentMissing(f"no Slurm env file at {path}; {hint}")
    env = read_env_file(path)
    try:
        values = {key: env[f"POLLINATOR_SLURM_{key.upper()}"] for key in _SLURM_ENV_KEYS}
    except KeyError as exc:
        raise ComponentMissing(f"{path} lacks {exc.args[0]}; {hint}") from exc

    if "is UP" not in _run(["scontrol", "ping"], hint):
        raise ComponentMissing(f"slurmctld does not answer `scontrol ping`; {hint}")
    partition = values["partition"]
    states = _run(["sinfo", "-h", "-p", partition, "-o", "%T"], hint).split()
    if not set(states) & {"idle", "mixed", "allocated", "completing"}:
        raise ComponentMissing(f"partition {partition} has no usable node ({states}); {hint}")
    # Whether accounting is on comes from the running slurmctld, not from the env file.
    config = _run(["scontrol", "show", "config"], hint)
    storage = re.search(r"^AccountingStorageType\s*=\s*(\S+)", config, re.MULTILINE)
    version = _run([values["apptainer"], "--version"], hint).split()
    if not version or not version[-1].startswith("1."):
        raise ComponentMissing(f"{values['apptainer']} --version says {version}; {hint}")
    test_sif = Path(values["test_sif"])
    if not test_sif.is_file():
        raise ComponentMissing(f"the test SIF {test_sif} is missing; {hint}")
    return SlurmCluster(
        cluster=values["cluster"],
        partition=partition,
        account=values["account"],
        accounting=storage is not None and storage.group(1) == "accounting_storage/slurmdbd",
        test_user=values["test_user"],
        shared_dir=Path(values["shared_dir"]),
        sif_dir=Path(values["sif_dir"]),
        test_sif=test_sif,
        apptainer=Path(values["apptainer"]),
        apptainer_version=version[-1],
        slurm_conf=Path(values["conf"]),
        log_dir=Path(values["log_dir"]),
    )


# --- Kubernetes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class K8sCluster:
    """The single-node Kubernetes test cluster of tests/infra/k8s_up.sh (tests/infra/k8s/README.md).

    ``kubeconfig`` is the cluster admin's (system:masters, client certificate files): use it to set
    the stage, and :meth:`service_account_kubeconfig` for the code under test. ``hostpath`` is a
    directory on this machine that job pods may mount (``hostPath``), and ``claim`` a
    ReadWriteMany PersistentVolumeClaim in ``namespace`` bound to the same directory. ``image`` is
    imported into the node's containerd: pods use it with ``imagePullPolicy: Never`` or
    ``IfNotPresent`` (no registry is reachable).
    """

    kubeconfig: Path
    namespace: str
    image: str
    hostpath: Path
    claim: str
    node: str
    version: str
    up_script: Path

    def api_client(self) -> ApiClient:
        """A new admin client (close it, or use it as a context manager)."""
        from kubernetes import config

        client: ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client

    def service_account_kubeconfig(
        self,
        name: str,
        path: Path,
        namespace: str | None = None,
        expiration_seconds: int = 3600,
    ) -> Path:
        """Write a kubeconfig at ``path`` (mode 0600) that authenticates as ServiceAccount
        ``name`` in ``namespace`` (default: the cluster's), with a token from the TokenRequest API.

        The ServiceAccount must exist; what it may do is whatever Roles the test binds to it, so
        code under test can run with a minimal Role instead of as admin. The token is written to
        the file only (never returned or logged) and expires after ``expiration_seconds``.
        """
        import yaml
        from kubernetes import client

        namespace = namespace or self.namespace
        admin = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8"))
        cluster = dict(admin["clusters"][0]["cluster"])
        if "certificate-authority" in cluster:  # kubectl writes it relative to the kubeconfig
            cluster["certificate-authority"] = str(
                self.kubeconfig.parent / cluster["certificate-authority"]
            )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
        )
        with self.api_client() as api:
            token = (
                client.CoreV1Api(api)
                .create_namespaced_service_account_token(name, namespace, request)
                .status.token
            )
        user = f"system:serviceaccount:{namespace}:{name}"
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "pollinator", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "pollinator",
                    "context": {"cluster": "pollinator", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "pollinator",
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(document, out)
        return path

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again: every watch and log stream is cut. Returns when
        the new one is ready (a few seconds)."""
        subprocess.run(
            ["bash", str(self.up_script), "--restart-apiserver"],
            check=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )


def k8s_env_file() -> Path:
    """The env file tests/infra/k8s_up.sh writes; POLLINATOR_TEST_K8S_ENV points elsewhere."""
    return Path(os.environ.get("POLLINATOR_TEST_K8S_ENV", str(CI_DIR / "k8s.env")))


def _probe_k8s() -> K8sCluster:
    # Only the dedicated env file, never KUBECONFIG from the caller's shell: that may point at a
    # real cluster, and the tests create and delete objects.
    path = k8s_env_file()
    hint = "start it with: bash tests/infra/k8s_up.sh"
    if not path.is_file():
        raise ComponentMissing(f"no Kubernetes env file at {path}; {hint}")
    env = read_env_file(path)
    try:
        cluster = K8sCluster(
            kubeconfig=Path(env["POLLINATOR_K8S_KUBECONFIG"]),
            namespace=env["POLLINATOR_K8S_NAMESPACE"],
            image=env["POLLINATOR_K8S_IMAGE"],
            hostpath=Path(env["POLLINATOR_K8S_HOSTPATH"]),
            claim=env["POLLINATOR_K8S_CLAIM"],
            node=env["POLLINATOR_K8S_NODE"],
            version=env["POLLINATOR_K8S_VERSION"],
            up_script=Path(env["POLLINATOR_K8S_UP"]),
        )
    except KeyError as exc:
        raise ComponentMissing(f"{path} lacks {exc.args[0]}; {hint}") from exc
    _check_k8s(cluster, hint)
    return cluster


def _check_k8s(cluster: K8sCluster, hint: str) -> None:
    """The apiserver is ready (/readyz, as admin) and the node is Ready."""
    try:
        from kubernetes import client
        from kubernetes.client.exceptions import OpenApiException
        from kubernetes.config.config_exception import ConfigException
        from urllib3.exceptions import HTTPError
    except ImportError as exc:
        raise ComponentMissing(f"the kubernetes client is not installed ({exc})") from exc
    try:
        api = cluster.api_client()
    except (ConfigException, OSError) as exc:
        raise ComponentMissing(f"cannot load {cluster.kubeconfig} ({exc}); {hint}") from exc
    with api:
        try:
            response = api.call_api("GET", f"{api.configuration.host}/readyz", _request_timeout=10)
            ready = response.read().decode("utf-8", "replace")
            node = client.CoreV1Api(api).read_node(cluster.node, _request_timeout=10)
        except (OpenApiException, HTTPError, OSError) as exc:
            raise ComponentMissing(
                f"the Kubernetes API server does not answer ({exc}); {hint}"
            ) from exc
    if response.status != 200 or ready != "ok":
        raise ComponentMissing(f"the Kubernetes API server is not ready (/readyz: {ready}); {hint}")
    conditions = {c.type: c for c in (node.status.conditions if node.status else None) or []}
    condition = conditions.get("Ready")
    if condition is None or condition.status != "True":
        why = f"{condition.reason}: {condition.message}" if condition else "no Ready condition"
        raise ComponentMissing(f"node {cluster.node} is not Ready ({why}); {hint}")


DOCKER: Component[DockerEngine] = Component("docker", _probe_docker, _close_docker)
S3: Component[S3Server] = Component("s3", _probe_s3)
SLURM: Component[SlurmCluster] = Component("slurm", _probe_slurm)
K8S: Component[K8sCluster] = Component("k8s", _probe_k8s)
COLONIES: Component[ColoniesServers] = Component("colonies_server", _probe_colonies)

#: Marker name -> component: a test with the marker requires the component.
COMPONENTS: dict[str, Component[Any]] = {c.marker: c for c in (DOCKER, S3, SLURM, K8S, COLONIES)}
#: Fixture name -> marker: a test using the fixture gets the marker (so ``-m "not docker"`` works).
FIXTURE_MARKERS: dict[str, str] = {
    "docker_engine": "docker",
    "s3_server": "s3",
    "slurm_cluster": "slurm",
    "k8s_cluster": "k8s",
    "colonies_server": "colonies_server",
    "colonies_server_v187": "colonies_server",
    "colonies_servers": "colonies_server",
}
