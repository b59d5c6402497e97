"""The Kubernetes plugin end to end, on the real test cluster (tests/infra/k8s_up.sh).

Every executor here authenticates as a ServiceAccount bound to the Role that
deploy/k8s/executor.yaml documents, never as the cluster admin (the admin client only sets the
stage and looks). The independent cases run at once, each through ``pollinator run --backend
k8s --follow`` in a project of its own (its own local agent): the example, a failing job, a
memory hog, a walltime, a missing image, an unschedulable pod, a cancel and a two-node job.
Then, one at a time: the log stream cut by an apiserver restart, and an executor of the
official Colonies server killed mid-job and started again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra.components import ColoniesServer, K8sCluster
from k8s_fixtures import (  # noqa: F401  (the fixtures admin and executor_kubeconfig)
    DEPLOY,
    Admin,
    admin_fixture,
    executor_kubeconfig_fixture,
)
from test_run_local import POLLINATOR, LocalProject, Output, submitted_id

pytestmark = pytest.mark.k8s


# --- the stage ----------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This environment without anything that would point the CLI elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLONIES_", "POLLINATOR_", "AWS_", "KUBECONFIG"))
    }


class K8sProject(LocalProject):
    """A `pollinator new` project set up for the test cluster, run with --backend k8s."""

    def __init__(self, root: Path, cluster: K8sCluster, kubeconfig: Path, **k8s: Any) -> None:
        super().__init__(root, "", cluster.image)
        self.env = clean_env()
        self.env["POLLINATOR_LOCAL_IDLE"] = "120"
        self.edit_yaml("cpu: 1000m", "cpu: 100m")
        self.edit_yaml("mem: 1000Mi", "mem: 128Mi")
        settings = {
            "kubeconfig": str(kubeconfig),
            "namespace": cluster.namespace,
            "image_pull_policy": "IfNotPresent",
            "poll_interval": 2,
            "kill_grace": 5,
            **k8s,
        }
        with open(root / "project.yaml", "a") as f:
            f.write(yaml.safe_dump({"k8s": settings}))

    def run(self) -> Output:
        return self.start("run", "--backend", "k8s", "--follow")


# --- the independent cases, all at once ------------------------------------------------------

FAILING_MAIN = "print('about to fail', flush=True)\nraise SystemExit(3)\n"
OOM_MAIN = (
    "print('allocating', flush=True)\ndata = bytearray(512 * 1024 * 1024)\nprint('survived')\n"
)
WALLTIME_MAIN = """\
import os, signal, sys, time
result = os.path.join(os.environ['PROJECT_DIR'], 'result', 'partial.txt')
def stop(*_):
    with open(result, 'a') as f:
        f.write('stopped cleanly\\n')
    print('saved on SIGTERM', flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
with open(result, 'w') as f:
    f.write('started\\n')
for i in range(600):
    print('tick', i, flush=True)
    time.sleep(1)
"""
MISSING_IMAGE = "localhost/pollinator-missing:1"
SLEEPER_MAIN = "import time\nprint('started', flush=True)\ntime.sleep(300)\nprint('finished')\n"
RANKS_MAIN = """\
import os, socket, time
rank = int(os.environ['RANK'])
print(f"rank {rank} of {os.environ['WORLD_SIZE']}", flush=True)
port = int(os.environ['MASTER_PORT'])
if rank == 0:
    server = socket.create_server(('0.0.0.0', port))
    peer, _ = server.accept()
    print('rank 0 heard:', peer.recv(100).decode(), flush=True)
else:
    for _ in range(60):
        try:
            link = socket.create_connection((os.environ['MASTER_ADDR'], port), timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    link.sendall(b'hello from rank 1')
    print('rank 1 reached rank 0', flush=True)
"""


class Batch:
    """The concurrent cases: each a project, and its `run --follow` under way."""

    def __init__(self, base: Path, cluster: K8sCluster, kubeconfig: Path) -> None:
        self.projects: dict[str, K8sProject] = {}
        self.runs: dict[str, Output] = {}
        self.results: dict[str, tuple[int, str, str]] = {}
        cases: dict[str, tuple[str | None, dict[str, str], dict[str, Any]]] = {
            "example": (None, {}, {}),
            "failing": (FAILING_MAIN, {}, {}),
            "oom": (OOM_MAIN, {"mem: 128Mi": "mem: 64Mi"}, {}),
            "walltime": (WALLTIME_MAIN, {"walltime: 600": "walltime: 8"}, {}),
            "bad_image": (None, {cluster.image: MISSING_IMAGE}, {"image_pull_timeout": 10}),
            "pending": (None, {"cpu: 100m": "cpu: 64"}, {"pending_timeout": 10}),
            "cancel": (SLEEPER_MAIN, {}, {}),
            "ranks": (RANKS_MAIN, {"nodes: 1": "nodes: 2"}, {"keep": "ttl", "keep_ttl": 120}),
        }
        for name, (main, edits, settings) in cases.items():
            project = K8sProject(base / name, cluster, kubeconfig, **settings)
            for old, new in edits.items():
                project.edit_yaml(old, new)
            if main is not None:
                project.write_main(main)
            self.projects[name] = project
        for name, project in self.projects.items():
            self.runs[name] = project.run()

    def finish(self, name: str, timeout: float = 180) -> tuple[int, str, str]:
        if name not in self.results:
            self.results[name] = self.runs[name].finish(timeout)
        return self.results[name]

    def close(self, admin: Admin) -> None:
        for name, run in self.runs.items():
            if run.proc.poll() is None:
                run.proc.kill()
            self.projects[name].cli("executor", "stop", "--backend", "k8s")
            admin.remove_jobs(run)


@pytest.fixture(scope="module")
def batch(
    k8s_cluster: K8sCluster,
    executor_kubeconfig: Path,
    admin: Admin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Batch]:
    made = Batch(tmp_path_factory.mktemp("k8s-batch"), k8s_cluster, executor_kubeconfig)
    yield made
    made.close(admin)


def test_the_example_runs_and_its_result_comes_back(batch: Batch, admin: Admin) -> None:
    code, out, err = batch.finish("example")
    assert code == 0, err
    assert "data/hello.txt says: Hello world!" in out
    pid = submitted_id(err)
    result = batch.projects["example"].root / "cfs" / "result" / pid / "result.txt"
    assert result.read_text().startswith("Hello world! (from pln-")  # the pod's hostname
    assert admin.jobs_of(pid) == []  # keep: delete, once the results were in


def test_a_failing_job_exits_1_with_its_code_and_output(batch: Batch) -> None:
    code, out, err = batch.finish("failing")
    assert code == 1
    assert "about to fail" in out
    assert "FAILED: exit code 3" in err
    status = batch.projects["failing"].cli("status", submitted_id(err)[:12]).stdout
    assert "last 1 lines of output:" in status and "about to fail" in status
    assert "exit code: 3\n" in status and "reason:    exit\n" in status
    record = json.loads(
        batch.projects["failing"].cli("status", "--json", submitted_id(err)[:12]).stdout
    )
    assert any('"reason": "exit", "exit_code": 3' in line for line in record["errors"])


def test_a_memory_hog_is_out_of_memory(batch: Batch) -> None:
    code, _, err = batch.finish("oom")
    assert code == 1
    assert "FAILED: out of memory (container main was OOMKilled); exit code 137" in err


def test_walltime_stops_the_job_and_its_partial_result_comes_back(batch: Batch) -> None:
    code, out, err = batch.finish("walltime")
    assert code == 1
    assert "FAILED: walltime exceeded (8 s); exit code 143, killed by SIGTERM" in err
    assert "saved on SIGTERM" in out
    ticks = [int(t) for t in re.findall(r"^tick (\d+)$", out, re.M)]
    assert ticks == list(range(len(ticks))) and 6 <= len(ticks) <= 10  # 8 s from its start
    partial = batch.projects["walltime"].root / "cfs" / "result" / submitted_id(err) / "partial.txt"
    assert partial.read_text() == "started\nstopped cleanly\n"


def test_a_missing_image_fails_within_the_bound_with_the_kubelets_message(batch: Batch) -> None:
    code, out, err = batch.finish("bad_image")
    both = out + err
    assert code == 1
    assert "pending: image pull failing (ErrImagePull" in both or "(ImagePullBackOff)" in both
    assert re.search(
        r"FAILED: infrastructure failure \(the image could not be pulled for 10 s: .*"
        rf'failed to pull and unpack image "{MISSING_IMAGE}"',
        err,
    )


def test_an_unschedulable_job_streams_pending_lines_and_fails_at_the_timeout(batch: Batch) -> None:
    code, out, err = batch.finish("pending")
    both = out + err
    assert code == 1
    assert "pollinator: pending: unschedulable: 0/1 nodes are available: 1 Insufficient cpu" in both
    assert (
        "FAILED: infrastructure failure (not scheduled within 10 s: 0/1 nodes are available" in err
    )


def test_cancel_removes_the_pods_and_the_process_is_cancelled(batch: Batch, admin: Admin) -> None:
    project, run = batch.projects["cancel"], batch.runs["cancel"]
    run.wait_for("started", timeout=120)
    pid = submitted_id("".join(run.err))
    assert [p.status.phase for p in admin.pods_of(pid)] == ["Running"]
    assert project.cli("cancel", pid[:12]).returncode == 0
    code, out, err = batch.finish("cancel")
    assert code == 1
    assert f"process {pid[:12]} CANCELLED" in err
    assert "finished" not in out
    deadline = time.monotonic() + 30
    while admin.pods_of(pid) or admin.jobs_of(pid):
        assert time.monotonic() < deadline, "the cancelled job's pods did not go"
        time.sleep(0.5)


def test_two_nodes_are_an_indexed_job_with_two_rank_streams(batch: Batch, admin: Admin) -> None:
    code, out, err = batch.finish("ranks")
    assert code == 0, err
    assert "[rank 0] rank 0 of 2" in out and "[rank 1] rank 1 of 2" in out
    assert "[rank 0] rank 0 heard: hello from rank 1" in out  # MASTER_ADDR reached, no DNS
    assert "[rank 1] rank 1 reached rank 0" in out
    (job,) = admin.jobs_of(submitted_id(err))
    assert (job.spec.completion_mode, job.spec.completions) == ("Indexed", 2)
    assert job.spec.ttl_seconds_after_finished == 120  # keep: ttl
    admin.batch.delete_namespaced_job(
        job.metadata.name, admin.cluster.namespace, propagation_policy="Background"
    )


# --- one at a time --------------------------------------------------------------------------------

COUNTER_MAIN = """\
import time
for i in range({n}):
    print(f"line {{i}}", flush=True)
    time.sleep({pause})
"""


def numbered(out: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+)$", out, re.M)]


def test_a_log_stream_cut_by_an_apiserver_restart_loses_and_repeats_nothing(
    k8s_cluster: K8sCluster, executor_kubeconfig: Path, admin: Admin, tmp_path: Path
) -> None:
    project = K8sProject(tmp_path / "cut", k8s_cluster, executor_kubeconfig)
    project.write_main(COUNTER_MAIN.format(n=80, pause=0.2))
    run = project.run()
    try:
        run.wait_for(r"(?m)^line 10$", timeout=120)
        k8s_cluster.restart_apiserver()
        code, out, err = run.finish(timeout=180)
    finally:
        project.cli("executor", "stop", "--backend", "k8s")
        admin.remove_jobs(run)
    assert code == 0, err
    assert numbered(out) == list(range(80))


def own_colony(server: ColoniesServer) -> dict[str, str]:
    """A colony of this test's own on the official server (no other test's executor takes its
    processes), and the COLONIES_* variables of its owner and a member user."""
    from pollinator_core.colonies import crypto
    from pollinator_core.colonies.client import ColoniesClient
    from pollinator_core.colonies.config import ClientConfig
    from pollinator_core.colonies.models import Colony, User

    colony_key, user_key = crypto.generate_private_key(), crypto.generate_private_key()
    name = f"k8s-{uuid.uuid4().hex[:8]}"
    config = ClientConfig(host=server.host, port=server.port, prvkey=server.server_prvkey)
    base = ColoniesClient(config)
    try:
        base.add_colony(Colony(colonyid=crypto.id_from_private_key(colony_key), name=name))
        owner = base.with_key(colony_key)
        owner.add_user(
            User(colonyname=name, userid=crypto.id_from_private_key(user_key), name="tester")
        )
    finally:
        base.close()
    env = {k: v for k, v in server.env().items() if not k.endswith(("PRVKEY", "_ID"))}
    env.update(
        COLONIES_COLONY_NAME=name, COLONIES_COLONY_PRVKEY=colony_key, COLONIES_PRVKEY=user_key
    )
    return env


def test_through_the_official_server_an_executor_killed_mid_job_adopts_it(
    k8s_cluster: K8sCluster,
    executor_kubeconfig: Path,
    colonies_server: ColoniesServer,
    admin: Admin,
    tmp_path: Path,
) -> None:
    """Through the official Colonies server, with the claim shared by executor and job pods: the
    generated example's result comes back; then the executor is SIGKILLed mid-job and started
    again: it adopts the job (no second Job) and the output has every line once."""
    env = {**clean_env(), **own_colony(colonies_server)}
    env["POLLINATOR_STORAGE"] = f"file://{tmp_path / 'store'}"
    name = f"k8s-e2e-{uuid.uuid4().hex[:6]}"
    fs_dir = k8s_cluster.hostpath / name  # on the claim's volume
    executor_env = {
        **env,
        "POLLINATOR_K8S_KUBECONFIG": str(executor_kubeconfig),
        "POLLINATOR_K8S_NAMESPACE": k8s_cluster.namespace,
        "POLLINATOR_K8S_STORAGE": "claim",
        "POLLINATOR_K8S_CLAIM": k8s_cluster.claim,
        "POLLINATOR_K8S_CLAIM_PATH": str(k8s_cluster.hostpath),
        "POLLINATOR_K8S_POLL_INTERVAL": "2",
    }
    command = [POLLINATOR, "executor", "start", "--type", "k8s", "--name", name,
               "--fs-dir", str(fs_dir), "--max-jobs", "4"]  # fmt: skip

    def start_executor() -> Output:
        proc = subprocess.Popen(
            command, env=executor_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        daemon = Output(proc)
        daemon.wait_for("serving colony", stderr=True, timeout=60)
        return daemon

    project = LocalProject(tmp_path / "proj", "", k8s_cluster.image)
    project.env = env
    project.edit_yaml("cpu: 1000m", "cpu: 100m")
    project.edit_yaml("executorNames: []", f"executorNames: [{name}]")
    seen_jobs: set[str] = set()
    watching = threading.Event()

    def watch(pid: str) -> None:
        while not watching.is_set():
            seen_jobs.update(j.metadata.uid for j in admin.jobs_of(pid))
            time.sleep(0.3)

    first = start_executor()
    second: Output | None = None
    run: Output | None = None
    try:
        # The generated example, through the server: its result comes back.
        example = project.cli("run", "--backend", "colonies", "--follow", timeout=180)
        assert example.returncode == 0, example.stderr
        assert "data/hello.txt says: Hello world!" in example.stdout
        result = project.root / "cfs" / "result" / submitted_id(example.stderr) / "result.txt"
        assert result.read_text().startswith("Hello world! (from pln-")
        # A job that outlives its executor.
        project.write_main(COUNTER_MAIN.format(n=40, pause=0.4))
        run = project.start("run", "--backend", "colonies", "--follow")
        run.wait_for(r"(?m)^line 5$", timeout=120)
        pid = submitted_id("".join(run.err))
        watcher = threading.Thread(target=watch, args=(pid,), daemon=True)
        watcher.start()
        first.proc.send_signal(signal.SIGKILL)  # no chance to say goodbye
        first.finish()
        second = start_executor()
        assert "took back 1 running process" in "".join(second.err)
        code, out, err = run.finish(timeout=180)
        watching.set()
        watcher.join(5)
        assert code == 0, err
        assert numbered(out) == list(range(40))  # nothing lost, nothing twice
        assert "re-attached to job pln-" in out
        assert len(seen_jobs) == 1  # one Job, from first to last
        assert admin.jobs_of(pid) == []
    finally:
        watching.set()
        for daemon in (first, second):
            if daemon is not None and daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGTERM)
                daemon.finish()
        if run is not None:
            admin.remove_jobs(run)
        shutil.rmtree(fs_dir, ignore_errors=True)


def test_at_start_the_jobs_of_processes_no_longer_ours_are_removed(
    k8s_cluster: K8sCluster, executor_kubeconfig: Path, admin: Admin, tmp_path: Path
) -> None:
    """reconcile: a Job of ours whose process the server no longer runs for us goes; one whose
    process is still ours stays, and so does another executor's."""
    from pollinator_k8s.plugin import make_runtime
    from pollinator_k8s.runtime import K8sRuntime
    from pollinator_k8s.settings import SETTINGS

    from pollinator_core.api import Job

    settings = SETTINGS.load(
        None, {"kubeconfig": str(executor_kubeconfig), "namespace": k8s_cluster.namespace}, env={}
    )
    me, other = "a" * 64, "b" * 64
    pids = {name: uuid.uuid4().hex * 2 for name in ("orphan", "mine", "theirs")}
    runtimes = [make_runtime(settings), make_runtime(settings)]
    try:
        ours, theirs = runtimes
        assert isinstance(ours, K8sRuntime) and isinstance(theirs, K8sRuntime)
        ours.owner, theirs.owner = me, other
        for name, pid in pids.items():
            job = Job(process_id=pid, image=k8s_cluster.image, command="sleep 300", cpu_millis=10)
            (theirs if name == "theirs" else ours).submit(job)
        ours.reconcile(me, {pids["mine"]})
        assert admin.jobs_of(pids["orphan"]) == []  # deleted in the background
        assert len(admin.jobs_of(pids["mine"])) == 1
        assert len(admin.jobs_of(pids["theirs"])) == 1
    finally:
        for runtime in runtimes:
            runtime.close()
        for pid in pids.values():
            for job in admin.jobs_of(pid):
                admin.batch.delete_namespaced_job(
                    job.metadata.name, k8s_cluster.namespace, propagation_policy="Background"
                )


def test_an_executor_without_the_role_is_refused_at_start(
    k8s_cluster: K8sCluster, admin: Admin, tmp_path: Path
) -> None:
    """The API's refusal, in one paragraph, before the executor registers anywhere."""
    name = f"pollinator-norole-{uuid.uuid4().hex[:6]}"
    ns = k8s_cluster.namespace
    admin.core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    try:
        kubeconfig = k8s_cluster.service_account_kubeconfig(name, tmp_path / "kubeconfig")
        env = {**clean_env(), "COLONIES_COLONY_NAME": "any", "COLONIES_SERVER_HOST": "127.0.0.1"}
        env["POLLINATOR_K8S_KUBECONFIG"] = str(kubeconfig)
        env["POLLINATOR_STORAGE"] = f"file://{tmp_path / 'store'}"
        done = subprocess.run(
            [POLLINATOR, "executor", "start", "--type", "k8s", "--fs-dir", str(tmp_path / "fs")],
            env=env, text=True, capture_output=True, timeout=60,
        )  # fmt: skip
    finally:
        admin.core.delete_namespaced_service_account(name, ns)
    assert done.returncode == 2
    assert "refuses this executor in namespace 'default': 403 Forbidden" in done.stderr
    assert "deploy/k8s/executor.yaml" in done.stderr and "Traceback" not in done.stderr


# --- the deployment manifest -------------------------------------------------------------------


def test_the_deployment_manifest_is_accepted_by_the_api(admin: Admin) -> None:
    """Every object of deploy/k8s/executor.yaml passes the API's own validation (a server-side
    dry run: nothing is created)."""
    paths = {
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    }
    objects = [o for o in yaml.safe_load_all(DEPLOY.read_text()) if o]
    assert sorted({o["kind"] for o in objects}) == sorted(paths)
    # A namespace of its own: the test namespace has a claim of that name already.
    namespace = f"pollinator-deploy-{uuid.uuid4().hex[:6]}"
    admin.core.create_namespace({"metadata": {"name": namespace}})
    try:
        for item in objects:
            request = admin.api.param_serialize(
                "POST", paths[item["kind"]].format(ns=namespace), query_params=[("dryRun", "All")],
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=item, auth_settings=["BearerToken"],
            )  # fmt: skip
            response = admin.api.call_api(*request)
            body = json.loads(response.read() or b"{}")
            assert response.status in (200, 201), (item["kind"], body.get("message"))
    finally:
        admin.core.delete_namespace(namespace)
