"""The Kubernetes test cluster behaves as the Kubernetes plugin will rely on: batch/v1 Jobs run the
imported test image and their logs are read; failures, OOM kills, deadlines, bad images and
unschedulable pods end the way the API documents, with the reasons recorded here; podFailurePolicy
is accepted; a kube-apiserver restart cuts a log stream and the log can be read on afterwards.

These are the facts the plugin builds on (tests/infra/k8s/README.md lists the exact reasons and
messages): if one of them changes with a new Kubernetes release, this file says which.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from infra.components import K8sCluster

pytestmark = pytest.mark.k8s

T = TypeVar("T")


# --- helpers ------------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll ``check`` every 0.2 s until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


class Api:
    """Admin clients for one test, and the Jobs and Pods it made (deleted afterwards)."""

    def __init__(self, cluster: K8sCluster) -> None:
        from kubernetes import client

        self.cluster = cluster
        self.ns = cluster.namespace
        self.client = cluster.api_client()
        self.core = client.CoreV1Api(self.client)
        self.batch = client.BatchV1Api(self.client)
        self.jobs: list[str] = []
        self.pods: list[str] = []
        self.services: list[str] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def job(
        self,
        prefix: str,
        command: list[str],
        *,
        image: str | None = None,
        pull_policy: str = "Never",
        resources: dict[str, Any] | None = None,
        job_spec: dict[str, Any] | None = None,
        pod_spec: dict[str, Any] | None = None,
    ) -> str:
        """Create a batch/v1 Job as the Kubernetes plugin will: restartPolicy Never, backoffLimit
        0, no ServiceAccount token, one container named main. Returns its name."""
        from kubernetes import client

        name = self.name(prefix)
        container: dict[str, Any] = {
            "name": "main",
            "image": image or self.cluster.image,
            "imagePullPolicy": pull_policy,
            "command": command,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        if resources:
            container["resources"] = resources
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                **(job_spec or {}),
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "containers": [container],
                        **(pod_spec or {}),
                    }
                },
            },
        }
        self.batch.create_namespaced_job(self.ns, client.V1Job.from_dict(manifest))
        self.jobs.append(name)
        return name

    def job_condition(self, name: str) -> Any:
        """The Job's terminal condition (Complete or Failed, status True), or None."""
        status = self.batch.read_namespaced_job_status(name, self.ns).status
        for condition in (status.conditions if status else None) or []:
            if condition.type in {"Complete", "Failed"} and condition.status == "True":
                return condition
        return None

    def finished(self, name: str, timeout: float = 90) -> Any:
        return wait_for(f"job {name} to finish", lambda: self.job_condition(name), timeout)

    def pod_of(self, job: str) -> Any:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"job-name={job}").items
        return pods[0] if pods else None

    def main_state(self, job: str) -> Any:
        """The main container's state (running, waiting or terminated), or None."""
        pod = self.pod_of(job)
        statuses = (pod.status.container_statuses if pod and pod.status else None) or []
        return statuses[0].state if statuses else None

    def close(self) -> None:
        from kubernetes.client.exceptions import ApiException

        for delete, names in (
            (self.batch.delete_namespaced_job, self.jobs),
            (self.core.delete_namespaced_pod, self.pods),
            (self.core.delete_namespaced_service, self.services),
        ):
            for name in names:
                try:
                    delete(name, self.ns, propagation_policy="Background", grace_period_seconds=0)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        self.client.close()


@pytest.fixture
def api(k8s_cluster: K8sCluster) -> Iterator[Api]:
    handle = Api(k8s_cluster)
    try:
        yield handle
    finally:
        handle.close()


# --- Jobs ---------------------------------------------------------------------------------------


def test_a_job_runs_the_test_image_and_its_log_is_read(api: Api) -> None:
    name = api.job("ok", ["python3", "-c", "import sys; print('hello from', sys.argv[0])"])
    condition = api.finished(name)
    assert condition.type == "Complete"
    pod = api.pod_of(name)
    assert api.core.read_namespaced_pod_log(pod.metadata.name, api.ns) == "hello from -c\n"
    assert api.main_state(name).terminated.exit_code == 0


def test_a_failing_job_ends_failed_with_the_exit_code(api: Api) -> None:
    name = api.job("fail", ["sh", "-c", "echo about to fail; exit 3"])
    condition = api.finished(name)
    assert (condition.type, condition.reason) == ("Failed", "BackoffLimitExceeded")
    terminated = api.main_state(name).terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    # FallbackToLogsOnError: the log tail becomes the termination message.
    assert terminated.message == "about to fail\n"


def test_a_memory_hog_is_oomkilled(api: Api) -> None:
    name = api.job(
        "oom",
        ["python3", "-c", "x = bytearray(512 * 1024 * 1024); print(len(x))"],
        resources={"limits": {"memory": "64Mi", "cpu": "500m"}},
    )
    condition = api.finished(name)
    assert condition.type == "Failed"
    terminated = api.main_state(name).terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


def test_active_deadline_seconds_fails_the_job_with_deadline_exceeded(api: Api) -> None:
    # sleep as PID 1 ignores SIGTERM: the pod would take its whole grace period to die.
    name = api.job(
        "deadline",
        ["sleep", "600"],
        job_spec={"activeDeadlineSeconds": 3},
        pod_spec={"terminationGracePeriodSeconds": 2},
    )
    condition = api.finished(name, timeout=60)
    assert (condition.type, condition.reason) == ("Failed", "DeadlineExceeded")
    assert condition.message == "Job was active longer than specified deadline"
    # The Job says FailureTarget as soon as the deadline passes, and Failed only once its pods
    # are gone (their grace period later).
    conditions = api.batch.read_namespaced_job_status(name, api.ns).status.conditions
    assert {c.type: c.reason for c in conditions}["FailureTarget"] == "DeadlineExceeded"


def test_pod_failure_policy_is_accepted_and_fails_the_job_on_an_exit_code(api: Api) -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]},
            },
        ]
    }
    name = api.job("policy", ["sh", "-c", "exit 5"], job_spec={"podFailurePolicy": policy})
    stored = api.batch.read_namespaced_job(name, api.ns).spec.pod_failure_policy
    assert [rule.action for rule in stored.rules] == ["Ignore", "FailJob"]
    condition = api.finished(name)
    assert (condition.type, condition.reason) == ("Failed", "PodFailurePolicy")
    assert "exit code 5" in condition.message


@pytest.mark.parametrize(
    ("image", "pull_policy", "reasons"),
    [
        # Not imported, and no registry answers: the kubelet tries, fails, and backs off.
        (
            "localhost/pollinator-no-such-image:1",
            "IfNotPresent",
            {"ErrImagePull", "ImagePullBackOff"},
        ),
        # A name without a registry host would go to the default public registry: not here.
        ("pollinator-no-such-image", "IfNotPresent", {"ErrImagePull", "ImagePullBackOff"}),
        # Not imported, and pulling is not allowed.
        ("localhost/pollinator-no-such-image:1", "Never", {"ErrImageNeverPull"}),
        # Not a valid reference at all (upper case): refused before any pull.
        ("localhost/Pollinator:1", "IfNotPresent", {"InvalidImageName"}),
    ],
)
def test_a_bad_image_leaves_the_container_waiting_with_the_kubelets_reason(
    api: Api, image: str, pull_policy: str, reasons: set[str]
) -> None:
    name = api.job("badimage", ["true"], image=image, pull_policy=pull_policy)

    def waiting() -> Any:
        state = api.main_state(name)
        return (
            state.waiting if state and state.waiting and state.waiting.reason in reasons else None
        )

    state = wait_for(f"{name} to wait with {reasons}", waiting, timeout=60)
    assert state.message  # the kubelet's own words; the README records them
    if state.reason in {"ErrImagePull", "ImagePullBackOff"}:
        # containerd sends every registry to a closed loopback port: no pull leaves the machine.
        assert "dial tcp 127.0.0.1:1: connect: connection refused" in state.message
    assert api.job_condition(name) is None  # a Job waits on a bad image; the plugin must bound it


def test_an_impossible_cpu_request_stays_pending_with_the_schedulers_message(api: Api) -> None:
    name = api.job("cpu64", ["true"], resources={"requests": {"cpu": "64"}})

    def unschedulable() -> Any:
        pod = api.pod_of(name)
        for condition in (pod.status.conditions if pod and pod.status else None) or []:
            if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                return (pod, condition)
        return None

    pod, condition = wait_for(f"{name} to be unschedulable", unschedulable, timeout=30)
    assert pod.status.phase == "Pending"
    assert condition.status == "False"
    assert "Insufficient cpu" in condition.message


# --- log streams --------------------------------------------------------------------------------


def test_a_kube_apiserver_restart_cuts_a_log_stream_and_reading_resumes(
    api: Api, k8s_cluster: K8sCluster
) -> None:
    """The first stream ends while the container still prints; a second one from the last
    timestamp (sinceTime, which the Python client's read_namespaced_pod_log does not expose)
    gives the rest, and every line appears once after dropping the overlap."""
    total = 300
    script = (
        "import time\n"
        f"for i in range({total}):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    name = api.job("stream", ["python3", "-c", script])
    pod = wait_for(
        "the pod to run",
        lambda: (p := api.pod_of(name)) and p.status.phase == "Running" and p.metadata.name,
    )
    seen: list[tuple[str, str]] = []  # (timestamp, text)
    restart: threading.Thread | None = None
    response = api.core.read_namespaced_pod_log(
        pod, api.ns, follow=True, timestamps=True, _preload_content=False
    )
    pending = b""  # a line is taken only once its newline arrived: a cut may split one
    try:
        for chunk in response.stream(4096, decode_content=False):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                stamp, _, text = line.decode().partition(" ")
                seen.append((stamp, text))
            if restart is None and len(seen) >= 20:
                restart = threading.Thread(target=k8s_cluster.restart_apiserver)
                restart.start()
    except Exception as exc:  # the cut shows as EOF or as a protocol error, depending on timing
        print(f"first stream ended with {type(exc).__name__}: {exc}")
    finally:
        response.release_conn()
    assert restart is not None
    restart.join(timeout=180)
    cut_at = len(seen)
    assert 20 <= cut_at < total, f"the stream was not cut ({cut_at} of {total} lines)"

    # sinceTime is inclusive and has second precision in the kubelet: drop what was seen.
    since = seen[-1][0]
    query = f"follow=true&timestamps=true&sinceTime={since.split('.')[0]}Z"
    url = f"{api.client.configuration.host}/api/v1/namespaces/{api.ns}/pods/{pod}/log?{query}"
    rest = api.client.call_api("GET", url, _request_timeout=120).read().decode()
    already = set(seen)
    for line in rest.splitlines():
        stamp, _, text = line.partition(" ")
        if (stamp, text) not in already:
            seen.append((stamp, text))
    assert [text for _, text in seen] == [f"line {i}" for i in range(total)]


# --- networking between pods ----------------------------------------------------------------------


def test_pods_reach_each_other_by_ip_but_peer_hostnames_do_not_resolve(api: Api) -> None:
    """No cluster DNS: an Indexed Job's pods under a headless Service know their own name (the
    kubelet writes it to /etc/hosts) but cannot resolve each other's; pod IPs work."""
    from kubernetes import client

    service = api.name("ranks")
    api.core.create_namespaced_service(
        api.ns,
        client.V1Service.from_dict(
            {
                "metadata": {"name": service},
                "spec": {"clusterIP": "None", "selector": {"pollinator-test": service}},
            }
        ),
    )
    api.services.append(service)
    probe = (
        "import json, os, socket\n"
        "rank = int(os.environ['JOB_COMPLETION_INDEX'])\n"
        "job = os.environ['JOB']\n"
        "def resolve(name):\n"
        "    try:\n"
        "        return socket.gethostbyname(name)\n"
        "    except OSError as exc:\n"
        "        return f'error: {exc}'\n"
        "print(json.dumps({'rank': rank, 'hostname': socket.gethostname(),\n"
        "    'self': resolve(socket.gethostname()),\n"
        "    'hosts': open('/etc/hosts').read(),\n"
        "    'peer': resolve(f'{job}-{1 - rank}.{os.environ[\"SVC\"]}')}))\n"
    )
    job_name = api.name("indexed")
    api.batch.create_namespaced_job(
        api.ns,
        client.V1Job.from_dict(
            {
                "metadata": {"name": job_name},
                "spec": {
                    "completionMode": "Indexed",
                    "completions": 2,
                    "parallelism": 2,
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": {"pollinator-test": service}},
                        "spec": {
                            "subdomain": service,
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "containers": [
                                {
                                    "name": "main",
                                    "image": api.cluster.image,
                                    "imagePullPolicy": "Never",
                                    "command": ["python3", "-c", probe],
                                    "env": [
                                        {"name": "JOB", "value": job_name},
                                        {"name": "SVC", "value": service},
                                    ],
                                    "resources": {"requests": {"cpu": "100m"}},
                                }
                            ],
                        },
                    },
                },
            }
        ),
    )
    api.jobs.append(job_name)
    assert api.finished(job_name).type == "Complete"
    pods = api.core.list_namespaced_pod(api.ns, label_selector=f"job-name={job_name}").items
    reports = sorted(
        (json.loads(api.core.read_namespaced_pod_log(p.metadata.name, api.ns)) for p in pods),
        key=lambda r: r["rank"],
    )
    assert [r["rank"] for r in reports] == [0, 1]
    for report in reports:
        assert report["hostname"] == f"{job_name}-{report['rank']}"
        assert not report["self"].startswith("error"), report  # /etc/hosts has its own name
        assert report["peer"].startswith("error"), report  # no DNS: peers are not resolvable

    # Pod IPs: a listener pod, and a client pod that connects to its IP.
    server = api.name("listener")
    serve = (
        "import socket\n"
        "s = socket.create_server(('0.0.0.0', 29500))\n"
        "c, _ = s.accept()\n"
        "c.sendall(b'hello over the pod network')\n"
        "c.close()\n"
    )
    api.core.create_namespaced_pod(
        api.ns,
        client.V1Pod.from_dict(
            {
                "metadata": {"name": server},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "main",
                            "image": api.cluster.image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", serve],
                        }
                    ],
                },
            }
        ),
    )
    api.pods.append(server)
    ip = wait_for(
        "the listener's IP",
        lambda: (
            (p := api.core.read_namespaced_pod(server, api.ns)).status.phase == "Running"
            and p.status.pod_ip
        ),
    )
    connect = (
        "import socket, sys\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        c = socket.create_connection((sys.argv[1], 29500), timeout=5)\n"
        "        break\n"
        "    except OSError:\n"
        "        import time; time.sleep(0.1)\n"
        "print(c.recv(100).decode())\n"
    )
    client_job = api.job("connect", ["python3", "-c", connect, ip])
    assert api.finished(client_job).type == "Complete"
    log = api.core.read_namespaced_pod_log(api.pod_of(client_job).metadata.name, api.ns)
    assert log == "hello over the pod network\n"
