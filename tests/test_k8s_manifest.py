"""The Kubernetes plugin's manifests: built as objects, hostile input kept as data, golden files.

Regenerate the golden files after an intended change with
``POLLINATOR_REGEN_GOLDEN=1 pytest tests/test_k8s_manifest.py`` and review the diff.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pollinator_k8s.manifest import (
    LAUNCH_MANY,
    LAUNCH_ONE,
    PROCESS_ANNOTATION,
    job_object,
    render,
    selector,
    service_object,
)
from pollinator_k8s.settings import SETTINGS, K8sSettings, check
from test_run_local import POLLINATOR

from pollinator_core.api import Job, JobFailed, Mount, UsageError, shell_script

GOLDEN = Path(__file__).parent / "golden"
REGEN_ENV = "POLLINATOR_REGEN_GOLDEN"
PID = hashlib.sha256(b"hostile").hexdigest()  # 64 hex, as Colonies process ids are
BIG = ("0123456789abcdef" * 18_750)[:300_000]  # a 300 KB environment value
HOSTILE_COMMAND = 'python3 -c \'print("$HOME `id` $(rm -rf /) ; \\\\ 🐝 ü")\'\necho "it\'s" done'
HOSTILE_ENV = {
    "QUOTES": "it's \"quoted\" 'twice'",
    "DOLLAR": "$HOME ${PATH} $(id) `id` $(PROJECT_DIR) $$ $$$",
    "NEWLINES": "line one\nline two\n\n- not: yaml\n",
    "UNICODE": "bienvenüe 🐝 Ωμέγα 日本語 \u2028 \t tab",
    "YAML": "key: value\n---\n- [a, b]\n&anchor *alias !!python/object:os.system",
    "BIG": BIG,
}


def kubernetes_expands(text: str, env: dict[str, str]) -> str:
    """What Kubernetes makes of a command argument or an environment value (the documented
    rule): ``$$`` becomes ``$``, ``$(NAME)`` of a defined variable its value."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i:]:
            name = text[i + 2 : text.index(")", i)]
            out.append(env.get(name, text[i : text.index(")", i) + 1]))
            i = text.index(")", i) + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def hostile_job() -> Job:
    return Job(
        process_id=PID,
        image="localhost/pollinator-python:bookworm",
        command=HOSTILE_COMMAND,
        init_command="export GREETING=\"héllo '$USER'\"; pip install 'numpy<2'",
        env={**HOSTILE_ENV, "PROJECT_DIR": "/cfs/pollinator/p/s", "COLONIES_PROCESS_ID": PID},
        mounts=(Mount("/srv/pollinator/fs/" + PID + "/abcd1234", "/cfs"),),
        workdir="/cfs/pollinator/p/s/src",
        cpu_millis=1500,
        mem_bytes=3 * 1024**3,
        gpu_count=2,
        gpu_name="a100",
        walltime=3600,
    )


def hostile_settings(**changes: Any) -> K8sSettings:
    values: dict[str, Any] = {
        "namespace": "science",
        "service_account": "pollinator-job",
        "storage": "claim",
        "claim": "pollinator-cfs",
        "claim_path": "/srv/pollinator",
        "node_selector": ("topology.kubernetes.io/zone=eu-1a", "pool=batch"),
        "tolerations": ("dedicated=science:NoSchedule", "spot"),
        "runtime_class": "gvisor",
        "gpu_node_label": "nvidia.com/gpu.product",
        "keep": "ttl",
    }
    values.update(changes)
    return check(K8sSettings(**values))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get(REGEN_ENV):
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8") if path.exists() else ""
    assert text == expected, (
        f"the manifest differs from {path}. If the change is intended, regenerate with "
        f"{REGEN_ENV}=1 pytest tests/test_k8s_manifest.py and review the diff."
    )


# --- golden files ------------------------------------------------------------------------------


def test_golden_hostile_job() -> None:
    job, settings = hostile_job(), hostile_settings()
    text = render(settings, job)["k8s-job.yaml"]
    check_golden("k8s_job_hostile.yaml", text)
    # The YAML says exactly what the objects say: every hostile value comes back unchanged.
    (loaded,) = yaml.safe_load_all(text)
    assert loaded == job_object(job, settings, "science")
    container = loaded["spec"]["template"]["spec"]["containers"][0]
    # What the container gets once Kubernetes expanded its variable references: the text.
    env: dict[str, str] = {}
    for entry in container["env"]:
        env[entry["name"]] = kubernetes_expands(entry["value"], env)
    command = [kubernetes_expands(a, env) for a in container["command"]]
    assert command == ["sh", "-c", LAUNCH_ONE, "pollinator", shell_script(job)]
    for name, value in HOSTILE_ENV.items():
        assert env[name] == value
    assert len(env["BIG"]) == 300_000


def test_golden_several_nodes_and_processes() -> None:
    job = Job(
        process_id=PID,
        image="localhost/pollinator-python:bookworm",
        command="python3 train.py",
        env={"PROJECT_DIR": "/cfs/p", "COLONIES_PROCESS_ID": PID, "RANK": "user's"},
        mounts=(Mount("/var/lib/pollinator/" + PID + "/x", "/cfs"),),
        cpu_millis=500,
        mem_bytes=512 * 1024**2,
        nodes=3,
        processes_per_node=2,
        walltime=60,
    )
    text = render(K8sSettings(), job)["k8s-job.yaml"]
    check_golden("k8s_job_ranks.yaml", text)
    loaded_job, loaded_service = yaml.safe_load_all(text)
    spec = loaded_job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == job.name == loaded_service["metadata"]["name"]
    assert loaded_service["spec"]["clusterIP"] == "None"
    container = pod["containers"][0]
    assert kubernetes_expands(container["command"][2], {}) == LAUNCH_MANY
    # Per pod: processesPerNode times the per-process amounts.
    assert container["resources"]["requests"] == {"cpu": "1000m", "memory": "1024Mi"}
    names = [e["name"] for e in container["env"]]
    assert names.count("RANK") == 0  # the launcher sets it per process; the user's is not kept
    assert {"WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "POD_IP"} <= set(names)
    world = next(e["value"] for e in container["env"] if e["name"] == "WORLD_SIZE")
    assert world == "6"


# --- what every Job says ----------------------------------------------------------------------


def test_the_job_is_one_attempt_with_a_deadline_and_no_credentials() -> None:
    job = hostile_job()
    made = job_object(job, hostile_settings(), "science", owner="f" * 64)
    meta, spec = made["metadata"], made["spec"]
    assert re.fullmatch(r"pln-[0-9a-f]{16}", meta["name"]) and len(meta["name"]) <= 63
    assert all(len(v) <= 63 for v in meta["labels"].values())
    assert meta["annotations"] == {PROCESS_ANNOTATION: PID}
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["podReplacementPolicy"] == "Failed"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [0]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["serviceAccountName"] == "pollinator-job"
    container = pod["containers"][0]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["resources"]["limits"] == {
        "cpu": "1500m",
        "memory": "3072Mi",
        "nvidia.com/gpu": "2",
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in pod["tolerations"]
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "science",
        "effect": "NoSchedule",
    } in (pod["tolerations"])
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "a100"
    assert container["volumeMounts"] == [
        {"mountPath": "/cfs", "name": "storage", "subPath": f"fs/{PID}/abcd1234"}
    ]
    assert pod["volumes"] == [
        {"name": "storage", "persistentVolumeClaim": {"claimName": "pollinator-cfs"}}
    ]
    # Nothing secret travels: no envFrom, no secret volume, no token.
    assert "envFrom" not in container
    assert meta["labels"]["pollinator.io/executor"] == hashlib.sha256(b"f" * 64).hexdigest()[:16]
    assert selector("f" * 64).endswith(meta["labels"]["pollinator.io/executor"])


def test_hostpath_storage_mounts_the_process_directory() -> None:
    job = hostile_job()
    pod = job_object(job, K8sSettings(), "default")["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "storage-0", "hostPath": {"path": job.mounts[0].source, "type": "Directory"}}
    ]
    assert service_object(job, "default") is None


def test_a_directory_outside_the_claim_is_refused() -> None:
    job = hostile_job()
    with pytest.raises(JobFailed, match="not on the claim 'pollinator-cfs'"):
        job_object(job, hostile_settings(claim_path="/elsewhere"), "science")


def test_rebuild_image_asks_for_a_fresh_pull() -> None:
    job = Job(process_id=PID, image="repo/img:1", command="true", rebuild_image=True)
    container = job_object(job, K8sSettings(), "d")["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    never = K8sSettings(image_pull_policy="Never")
    container = job_object(job, never, "d")["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"


def test_a_job_without_an_image_is_refused() -> None:
    with pytest.raises(JobFailed, match="names no image"):
        job_object(Job(process_id=PID, image="", command="true"), K8sSettings(), "d")


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("node_selector", "gpu", "write KEY=VALUE"),
        ("node_selector", "bad key!=1", "is not a Kubernetes label key"),
        ("tolerations", "dedicated:Sometimes", "the effect must be one of"),
        ("keep", "forever", "must be one of delete, ttl"),
        ("pending_timeout", "soon", "cannot read 'soon' as a duration"),
        ("storag", "claim", "Did you mean 'storage'"),
    ],
)
def test_bad_settings_are_refused_with_the_accepted_form(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        SETTINGS.load(None, {key: value}, env={})


def test_claim_storage_needs_the_claim_and_where_it_is() -> None:
    with pytest.raises(UsageError, match="claim_path"):
        check(SETTINGS.load(None, {"storage": "claim", "claim": "c"}, env={}))


def test_settings_come_from_the_environment() -> None:
    env = {"POLLINATOR_K8S_PENDING_TIMEOUT": "2m", "POLLINATOR_K8S_TOLERATIONS": "a,b=c"}
    loaded = SETTINGS.load(None, None, env=env)
    assert loaded.pending_timeout == 120
    assert loaded.tolerations == ("a", "b=c")


# --- the dry run --------------------------------------------------------------------------------


def test_dry_run_prints_the_manifest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLONIES_", "POLLINATOR_"))}
    subprocess.run(
        [POLLINATOR, "new", str(tmp_path / "p")], env=env, check=True, capture_output=True
    )
    done = subprocess.run(
        [POLLINATOR, "run", "--dry-run", "--backend", "k8s", "--json", "-s", "k8s.namespace=lab"],
        cwd=tmp_path / "p", env=env, text=True, capture_output=True, check=True,
    )  # fmt: skip
    import json

    rendered = json.loads(done.stdout)["rendered"]["k8s-job.yaml"]
    (made,) = yaml.safe_load_all(rendered)
    assert made["kind"] == "Job" and made["metadata"]["namespace"] == "lab"
    bad = subprocess.run(
        [POLLINATOR, "run", "--dry-run", "--backend", "k8s", "-s", "k8s.storage=claim"],
        cwd=tmp_path / "p", env=env, text=True, capture_output=True,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "claim_path" in bad.stderr and "Traceback" not in bad.stderr


# --- the launcher, in a real container (PID 1 of its own PID namespace) -----------------------


def _launch(image: str, launcher: str, job_script: str, env: dict[str, str], term: bool) -> Any:
    import docker

    client = docker.from_env()
    container = client.containers.run(
        image, ["sh", "-c", launcher, "pollinator", job_script], environment=env, detach=True
    )
    try:
        if term:
            for _ in range(100):
                if b"ready" in container.logs():
                    break
                time.sleep(0.1)
            container.kill("SIGTERM")
        code = container.wait(timeout=60)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_sigterm_reaches_the_job_which_gets_its_grace(docker_engine: Any) -> None:
    # A handler that takes its time to save: the container waits for it (up to the kill).
    handler = (
        "import signal, sys, time\n"
        "def stop(*_):\n    time.sleep(2); print('saved', flush=True); sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    job = Job(process_id=PID, image="x", command=f"python3 -c {shlex.quote(handler)}\necho never")
    code, out = _launch(docker_engine.image, LAUNCH_ONE, shell_script(job), {}, term=True)
    # The script's shell got SIGTERM too (it stops, as under Slurm or Docker): its code, 143.
    assert (code, out) == (143, "ready\nsaved\n")
    job = Job(process_id=PID, image="x", command="echo ready; sleep 60; echo never")
    code, out = _launch(docker_engine.image, LAUNCH_ONE, shell_script(job), {}, term=True)
    assert (code, out) == (143, "ready\n")  # no "Terminated" from the launcher's wait
    job = Job(process_id=PID, image="x", command="echo out; echo err >&2; exit 4")
    code, out = _launch(docker_engine.image, LAUNCH_ONE, shell_script(job), {}, term=False)
    assert (code, out) == (4, "out\nerr\n")
    # A job that ends by itself ends at once: a background child does not hold it.
    job = Job(process_id=PID, image="x", command="sleep 600 & echo main done")
    started = time.monotonic()
    code, out = _launch(docker_engine.image, LAUNCH_ONE, shell_script(job), {}, term=False)
    assert (code, out) == (0, "main done\n") and time.monotonic() - started < 30


@pytest.mark.docker
def test_several_processes_per_node_get_their_ranks(docker_engine: Any, tmp_path: Path) -> None:
    job = Job(
        process_id=PID,
        image="x",
        command='echo "rank=$RANK local=$LOCAL_RANK master=$MASTER_ADDR"; exit "$LOCAL_RANK"',
    )
    env = {"LOCAL_WORLD_SIZE": "3", "NODE_RANK": "2", "MASTER_ADDR": "127.0.0.1"}
    code, out = _launch(docker_engine.image, LAUNCH_MANY, shell_script(job), env, term=False)
    assert sorted(out.splitlines()) == [
        "rank=6 local=0 master=127.0.0.1",
        "rank=7 local=1 master=127.0.0.1",
        "rank=8 local=2 master=127.0.0.1",
    ]
    assert code == 1  # the first non-zero exit among them
    # Rank 0 publishes its IP; every rank reads MASTER_ADDR from the file.
    env = {
        "LOCAL_WORLD_SIZE": "1",
        "NODE_RANK": "0",
        "POD_IP": "10.1.2.3",
        "POLLINATOR_MASTER_FILE": "/tmp/shared/.pollinator/master-addr",
    }
    job = Job(process_id=PID, image="x", command='echo "master=$MASTER_ADDR rank=$RANK"')
    code, out = _launch(docker_engine.image, LAUNCH_MANY, shell_script(job), env, term=False)
    assert (code, out) == (0, "master=10.1.2.3 rank=0\n")


# --- bad input: one paragraph and an exit status, never a traceback ---------------------------


def test_a_missing_or_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLONIES_", "POLLINATOR_", "KUBECONFIG"))
    }
    env.update(HOME=str(tmp_path / "home"), POLLINATOR_LOCAL_IDLE="5")
    new = [POLLINATOR, "new", str(tmp_path / "p")]
    subprocess.run(new, env=env, check=True, capture_output=True)

    def run(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POLLINATOR, "run", "--backend", "k8s", *options],
            cwd=tmp_path / "p", env=env, text=True, capture_output=True, timeout=120,
        )  # fmt: skip

    missing = run("-s", "k8s.kubeconfig=/nonexistent/kubeconfig")
    assert missing.returncode == 2
    assert "The kubeconfig /nonexistent/kubeconfig does not exist" in missing.stderr
    none = run()  # no $KUBECONFIG, no ~/.kube/config, not in a pod
    assert none.returncode == 2
    assert "No usable Kubernetes credentials" in none.stderr
    # A cluster that does not answer (a closed port; the token is a stand-in, never sent).
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "stand-in"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "closed.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    closed = run("-s", f"k8s.kubeconfig={path}")
    assert closed.returncode == 3
    assert "the Kubernetes API at https://127.0.0.1:1" in closed.stderr
    assert "is unreachable" in closed.stderr
    for done in (missing, none, closed):
        assert "Traceback" not in done.stderr
