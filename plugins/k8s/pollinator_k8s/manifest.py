"""A :class:`Job` as Kubernetes objects: a batch/v1 Job (and, for several nodes, a headless
Service), built as plain dicts and serialised by a library, never from a text template.

What the objects say, and why:

- ``backoffLimit: 0`` and ``restartPolicy: Never``: Colonies owns retries (``maxretries``); a
  failing script runs once. A pod failure policy makes a disruption (preemption, eviction, a
  drained node: condition ``DisruptionTarget``) not count, so the pod is replaced, and fails the
  Job at once on a non-zero exit of ``main``; ``podReplacementPolicy: Failed`` keeps a
  replacement from running beside a pod still terminating.
- ``activeDeadlineSeconds`` on the Job is the walltime. Kubernetes counts it from when the Job
  was created, queue and image pull included; the runtime extends it by that wait once the
  job runs, so the job gets its full walltime from its start (README, "Time limits").
- The name is :func:`external_name` (``pln-`` + 16 hex of the process id's SHA-256), the same
  hash is a label (label values hold 63 characters, a process id 64) and the full id an
  annotation. The executor's own label (a hash of its id) scopes listing and clean-up.
- Job pods get no ServiceAccount token, no Service environment variables and nothing secret:
  only the spec's environment.
- Kubernetes expands ``$(NAME)`` in a container's command and environment values and turns
  ``$$`` into ``$``: every ``$`` there is written ``$$`` (:func:`literal`), so the job gets the
  text verbatim.
- The user's script is an argument (``sh -c LAUNCHER pollinator SCRIPT``), not part of any
  text: the launcher is a fixed POSIX ``sh`` program that runs it as a child, so that the
  SIGTERM of a cancel or walltime reaches the job (a shell as PID 1 ignores it), a job that
  handles it gets its grace to finish, and the script's exit code is the container's.
- Several processes: ``conditions.nodes`` pods (an Indexed Job, pod *k* is node *k*), each
  running ``processesPerNode`` copies of the command with ``RANK = node * processesPerNode +
  local rank``, ``LOCAL_RANK``, ``NODE_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
  ``MASTER_ADDR`` and ``MASTER_PORT`` (torchrun's names). cpu, memory and GPUs are asked per
  pod: processesPerNode times the spec's per-process cpu and memory, and the spec's GPUs per
  node. MASTER_ADDR is the IP of the rank-0 pod, which publishes it in a file on the shared
  storage that the other pods wait for: that works with and without cluster DNS (pods of one
  cluster reach each other by IP). A job without shared storage gets the rank-0 pod's DNS
  name (``<job>-0.<job>``, from the headless Service) instead, which needs cluster DNS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import yaml

from pollinator_core.api import Job, JobFailed, format_cpu, format_memory, job_env, shell_script

from .settings import K8sSettings

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pollinator"
PROCESS_LABEL = "pollinator.io/process"
OWNER_LABEL = "pollinator.io/executor"
PROCESS_ANNOTATION = "pollinator.io/process-id"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
CONTAINER = "main"
#: what LAUNCH_MANY sets for each process it starts
LAUNCHER_SETS = {"RANK", "LOCAL_RANK", "MASTER_ADDR"}
#: where, under the job's first mount, the rank-0 pod publishes its IP
MASTER_FILE = ".pollinator/master-addr"

#: On SIGTERM (cancel, walltime): pass it to every process of the container, the script's own
#: shell included (so the script stops, as it would under Slurm or Docker), and note it.
_ON_TERM = """\
exec 2>&1
stopping=
trap 'stopping=1; trap "" TERM; kill -TERM -1 2>/dev/null' TERM
"""
#: Once the script's shell ended, and only if the job is being stopped: wait for the processes
#: still saving their work (a SIGTERM handler), up to the kill at the end of the grace. A job
#: that ends by itself ends at once, background children and all.
_WAIT_FOR_THE_REST = """\
while [ -n "$stopping" ]; do
  stopping=
  for proc in /proc/[0-9]*; do
    [ "${proc#/proc/}" = 1 ] || [ ! -r "$proc/status" ] && continue
    value=Z  # a process gone meanwhile counts as ended
    while read -r key value _; do [ "$key" = State: ] && break; done 2>/dev/null <"$proc/status"
    [ "$value" = Z ] || stopping=1
  done
  [ -z "$stopping" ] || sleep 1
done
exit "$rc"
"""
#: The launcher of a one-process job (``$1`` is the job's script). A shell as a container's
#: PID 1 gets no default signal handlers and would ignore SIGTERM; this one traps it. ``wait``
#: reports a job killed by a signal ("Terminated") on stderr: not the job's output, dropped.
LAUNCH_ONE = (
    _ON_TERM
    + """\
sh -c "$1" &
pid=$!
while :; do wait "$pid" 2>/dev/null; rc=$?; kill -0 "$pid" 2>/dev/null || break; done
"""
    + _WAIT_FOR_THE_REST
)

#: The launcher of a pod with ranks: publish or learn MASTER_ADDR, start LOCAL_WORLD_SIZE
#: copies, exit with the first non-zero code among them.
LAUNCH_MANY = (
    _ON_TERM
    + """\
if [ -n "${POLLINATOR_MASTER_FILE:-}" ]; then
  if [ "$NODE_RANK" = 0 ]; then
    mkdir -p "${POLLINATOR_MASTER_FILE%/*}"
    printf '%s\\n' "$POD_IP" >"$POLLINATOR_MASTER_FILE.$$"
    mv -f "$POLLINATOR_MASTER_FILE.$$" "$POLLINATOR_MASTER_FILE"
  fi
  until [ -s "$POLLINATOR_MASTER_FILE" ] || [ -n "$stopping" ]; do sleep 1; done
  [ -n "$stopping" ] && exit 143
  read -r MASTER_ADDR <"$POLLINATOR_MASTER_FILE"
  export MASTER_ADDR
fi
pids=
i=0
while [ "$i" -lt "$LOCAL_WORLD_SIZE" ]; do
  LOCAL_RANK=$i RANK=$((NODE_RANK * LOCAL_WORLD_SIZE + i)) sh -c "$1" &
  pids="$pids $!"
  i=$((i + 1))
done
rc=0
for pid in $pids; do
  while :; do wait "$pid" 2>/dev/null; r=$?; kill -0 "$pid" 2>/dev/null || break; done
  [ "$rc" -ne 0 ] || rc=$r
done
"""
    + _WAIT_FOR_THE_REST
)


def literal(text: str) -> str:
    """``text`` as Kubernetes passes it on unchanged: it expands ``$(NAME)`` in a container's
    command, arguments and environment values, and turns ``$$`` into ``$``; every ``$`` doubled
    means no expansion at all."""
    return text.replace("$", "$$")


def short_hash(text: str) -> str:
    """16 hex characters of ``text``'s SHA-256: fits a label value."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labels(job: Job, owner: str) -> dict[str, str]:
    found = {MANAGED_BY: MANAGER, PROCESS_LABEL: short_hash(job.process_id)}
    if owner:
        found[OWNER_LABEL] = short_hash(owner)
    return found


def selector(owner: str) -> str:
    """The label selector of every Job (and pod) this executor made."""
    if owner:
        return f"{MANAGED_BY}={MANAGER},{OWNER_LABEL}={short_hash(owner)}"
    return f"{MANAGED_BY}={MANAGER}"


def _subpath(source: str, settings: K8sSettings) -> str:
    """The claim's subPath that holds ``source`` (a directory of the executor's)."""
    path = PurePosixPath(source)
    if not path.is_absolute():  # a dry run's placeholder: shown as it is
        return source
    root = PurePosixPath(settings.claim_path)
    if not path.is_relative_to(root) or ".." in path.parts:
        raise JobFailed(
            f"the job's files are in {source}, which is not on the claim {settings.claim!r} "
            f"(mounted at {settings.claim_path}): start the executor with an --fs-dir inside "
            "claim_path."
        )
    return str(path.relative_to(root))


def _volumes(job: Job, settings: K8sSettings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if settings.storage == "claim" and job.mounts:
        volumes.append({"name": "storage", "persistentVolumeClaim": {"claimName": settings.claim}})
    for i, mount in enumerate(job.mounts):
        entry: dict[str, Any] = {"mountPath": mount.target}
        if settings.storage == "claim":
            entry["name"] = "storage"
            entry["subPath"] = _subpath(mount.source, settings)
        else:
            entry["name"] = f"storage-{i}"
            volumes.append(
                {"name": entry["name"], "hostPath": {"path": mount.source, "type": "Directory"}}
            )
        if mount.read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    return volumes, mounts


def _rank_env(job: Job, settings: K8sSettings) -> list[dict[str, Any]]:
    """The variables of a job with several processes (see the module's docstring)."""
    if job.nodes * job.processes_per_node == 1:
        return []
    env: list[dict[str, Any]] = [
        {"name": "WORLD_SIZE", "value": str(job.nodes * job.processes_per_node)},
        {"name": "LOCAL_WORLD_SIZE", "value": str(job.processes_per_node)},
        {"name": "MASTER_PORT", "value": str(settings.master_port)},
    ]
    if job.nodes == 1:
        env += [{"name": "NODE_RANK", "value": "0"}, {"name": "MASTER_ADDR", "value": "127.0.0.1"}]
        return env
    index = f"metadata.annotations['{INDEX_ANNOTATION}']"
    env.append({"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}})
    if job.mounts:
        shared = PurePosixPath(job.mounts[0].target) / MASTER_FILE
        env += [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POLLINATOR_MASTER_FILE", "value": str(shared)},
        ]
    else:
        env.append({"name": "MASTER_ADDR", "value": f"{job.name}-0.{job.name}"})
    return env


def _resources(job: Job, settings: K8sSettings) -> dict[str, Any]:
    amounts: dict[str, str] = {}
    per_pod = job.processes_per_node
    if job.cpu_millis:
        amounts["cpu"] = format_cpu(job.cpu_millis * per_pod)
    if job.mem_bytes:
        amounts["memory"] = format_memory(job.mem_bytes * per_pod)
    limits = dict(amounts)
    if job.gpu_count:
        limits[settings.gpu_resource] = str(job.gpu_count)
    resources: dict[str, Any] = {}
    if amounts:
        resources["requests"] = amounts
    if limits:
        resources["limits"] = limits
    return resources


def _toleration(item: str) -> dict[str, str]:
    rest, _, effect = item.partition(":")
    key, sep, value = rest.partition("=")
    found = {"key": key, "operator": "Equal" if sep else "Exists"}
    if sep:
        found["value"] = value
    if effect:
        found["effect"] = effect
    return found


def _pull_policy(job: Job, settings: K8sSettings) -> str:
    if job.rebuild_image and settings.image_pull_policy != "Never":
        return "Always"
    return settings.image_pull_policy


def job_object(job: Job, settings: K8sSettings, namespace: str, owner: str = "") -> dict[str, Any]:
    """The batch/v1 Job that runs ``job``."""
    if not job.image:
        raise JobFailed(
            "the function spec names no image (kwargs docker-image): a Kubernetes job needs one"
        )
    tags = labels(job, owner)
    notes = {PROCESS_ANNOTATION: job.process_id}
    rank_env = _rank_env(job, settings)
    # The rank variables are ours (the launcher sets RANK, LOCAL_RANK and MASTER_ADDR per process).
    ours = {e["name"] for e in rank_env} | (LAUNCHER_SETS if rank_env else set())
    env = [{"name": k, "value": literal(v)} for k, v in job_env(job).items() if k not in ours] + [
        {**e, "value": literal(e["value"])} if "value" in e else e for e in rank_env
    ]
    volumes, volume_mounts = _volumes(job, settings)
    launcher = LAUNCH_ONE if not rank_env else LAUNCH_MANY
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": job.image,
        "command": [literal(a) for a in ("sh", "-c", launcher, "pollinator", shell_script(job))],
        "env": env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if policy := _pull_policy(job, settings):
        container["imagePullPolicy"] = policy
    if job.workdir:
        container["workingDir"] = job.workdir
    if resources := _resources(job, settings):
        container["resources"] = resources
    if volume_mounts:
        container["volumeMounts"] = volume_mounts
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.kill_grace,
        "containers": [container],
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    node_selector = dict(item.split("=", 1) for item in settings.node_selector)
    if job.gpu_count and job.gpu_name and settings.gpu_node_label:
        node_selector[settings.gpu_node_label] = job.gpu_name
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [_toleration(t) for t in settings.tolerations]
    if job.gpu_count:
        tolerations.append({"key": settings.gpu_resource, "operator": "Exists"})
    if tolerations:
        pod["tolerations"] = tolerations
    if settings.runtime_class:
        pod["runtimeClassName"] = settings.runtime_class
    if job.nodes > 1:
        pod["subdomain"] = job.name
    if volumes:
        pod["volumes"] = volumes
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn", "values": [0]},
                },
            ]
        },
        "podReplacementPolicy": "Failed",
    }
    if job.walltime > 0:
        spec["activeDeadlineSeconds"] = job.walltime
    if job.nodes > 1:
        spec.update(completions=job.nodes, parallelism=job.nodes, completionMode="Indexed")
    spec["template"] = {"metadata": {"labels": dict(tags), "annotations": dict(notes)}, "spec": pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": namespace,
            "labels": tags,
            "annotations": notes,
        },
        "spec": spec,
    }


def service_object(job: Job, namespace: str, owner: str = "") -> dict[str, Any] | None:
    """The headless Service that gives the pods of a several-node job their DNS names
    (``<job>-<k>.<job>``, where the cluster has DNS); None for one node. The runtime makes
    the Job its owner, so it goes with the Job."""
    if job.nodes <= 1:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": job.name,
            "namespace": namespace,
            "labels": labels(job, owner),
            "annotations": {PROCESS_ANNOTATION: job.process_id},
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: job.name},
            "publishNotReadyAddresses": True,
        },
    }


def owned_by(service: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """``service`` with ``job`` (as the API returned it, with its uid) as its owner."""
    meta = job["metadata"]
    reference = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }
    return {**service, "metadata": {**service["metadata"], "ownerReferences": [reference]}}


class _Dumper(yaml.SafeDumper):
    """The safe dumper, showing text of several lines as a block (``|``) where YAML can."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream, as ``kubectl apply -f`` takes it (yaml.safe_load_all
    gives them back unchanged)."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def render(settings: K8sSettings, job: Job, namespace: str = "") -> dict[str, str]:
    """What ``pollinator run --dry-run --backend k8s`` shows."""
    where = namespace or settings.namespace or "default"
    objects = [job_object(job, settings, where)]
    service = service_object(job, where)
    if service is not None:
        objects.append(service)
    return {"k8s-job.yaml": to_yaml(objects)}
