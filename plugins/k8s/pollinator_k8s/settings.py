"""The ``k8s`` settings section: project.yaml ``k8s:``, ``POLLINATOR_K8S_<KEY>``, ``-s KEY=VALUE``.

Checked once, when they are loaded: a list item that cannot mean anything (a toleration without
a key, a node selector without ``=``) is refused with the accepted form, before an executor
registers or a dry run prints a manifest.
"""

from __future__ import annotations

import re

import attrs

from pollinator_core.api import SettingsSection, UsageError, parse_duration, setting

STORAGE_MODES = ("hostpath", "claim")
PULL_POLICIES = ("", "Always", "IfNotPresent", "Never")
KEEP_MODES = ("delete", "ttl")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Kubernetes label keys: an optional DNS-subdomain prefix and a name of at most 63 characters.
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _seconds(value: object) -> int:
    return parse_duration(value)


def _label_key(key: str, what: str) -> str:
    if not _LABEL_KEY.fullmatch(key) or len(key) > 316:
        raise ValueError(f"{what} {key!r} is not a Kubernetes label key (prefix/name)")
    return key


def _pairs(value: object) -> tuple[str, ...]:
    """``key=value`` items (a list, or comma-separated text)."""
    items = _items(value)
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"node selector item {item!r}: write KEY=VALUE")
        _label_key(key, "node selector key")
        if not _LABEL_VALUE.fullmatch(val):
            raise ValueError(f"node selector item {item!r}: {val!r} is not a label value")
    return items


def _tolerations(value: object) -> tuple[str, ...]:
    """``key[=value][:effect]`` items: Equal with a value, Exists without."""
    items = _items(value)
    for item in items:
        rest, _, effect = item.partition(":")
        key, _, _ = rest.partition("=")
        _label_key(key, "toleration key")
        if effect and effect not in _EFFECTS:
            raise ValueError(
                f"toleration {item!r}: the effect must be one of {', '.join(_EFFECTS)}"
            )
    return items


def _items(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ValueError(f"must be a list of text, got {value!r}")


@attrs.frozen
class K8sSettings:
    kubeconfig: str = setting(
        "",
        "A kubeconfig file. Empty: the pod's own credentials when the executor runs in a "
        "cluster, else $KUBECONFIG, else ~/.kube/config.",
    )
    context: str = setting("", "The kubeconfig context to use. Empty: its current context.")
    namespace: str = setting(
        "",
        "Where the Jobs go. Empty: the executor pod's namespace in a cluster, else the "
        "context's namespace, else default.",
    )
    service_account: str = setting(
        "",
        "The ServiceAccount job pods run as (its token is never mounted). Empty: the "
        "namespace's default.",
    )
    storage: str = setting(
        "hostpath",
        "How job pods see the executor's files: hostpath mounts the process's directory from "
        "the node (single-node clusters, or a filesystem mounted alike on every node); claim "
        "mounts a subPath of a PersistentVolumeClaim the executor has mounted at claim_path.",
        choices=STORAGE_MODES,
    )
    claim: str = setting("", "storage claim: the PersistentVolumeClaim (ReadWriteMany) to mount.")
    claim_path: str = setting(
        "",
        "storage claim: where this executor sees the claim's root; its --fs-dir must be inside it.",
    )
    node_selector: tuple[str, ...] = setting(
        (), "Node labels job pods need, as KEY=VALUE items.", parse=_pairs
    )
    tolerations: tuple[str, ...] = setting(
        (),
        "Taints job pods tolerate, as KEY[=VALUE][:EFFECT] items (Equal with a value, Exists "
        "without).",
        parse=_tolerations,
    )
    runtime_class: str = setting(
        "", "The RuntimeClass of job pods (gvisor, kata ...); empty: none."
    )
    gpu_resource: str = setting(
        "nvidia.com/gpu",
        "The extended resource a GPU is (nvidia.com/gpu, amd.com/gpu); job pods asking for "
        "GPUs also tolerate taints of that key.",
    )
    gpu_node_label: str = setting(
        "",
        "A node label whose value names the GPU model (nvidia.com/gpu.product): conditions.gpu."
        "name then selects nodes by it. Empty: gpu.name is not used.",
    )
    image_pull_policy: str = setting(
        "",
        "imagePullPolicy of job containers. Empty: Kubernetes' default (Always for :latest, "
        "IfNotPresent otherwise); rebuild-image asks for Always.",
        choices=PULL_POLICIES,
    )
    keep: str = setting(
        "delete",
        "What happens to a Job once its results are in: delete it (and its pods), or keep it "
        "for keep_ttl seconds (ttlSecondsAfterFinished) to inspect with kubectl.",
        choices=KEEP_MODES,
    )
    keep_ttl: int = setting(
        3600, "keep ttl: seconds a finished Job stays (a duration: 1h, 30m).", parse=_seconds
    )
    pending_timeout: int = setting(
        900,
        "Seconds a job pod may stay unschedulable before the process fails with the "
        "scheduler's message; 0: wait (for an autoscaler), up to the process's maxqueuetime.",
        parse=_seconds,
    )
    image_pull_timeout: int = setting(
        300,
        "Seconds an image may keep failing to pull (ErrImagePull, ImagePullBackOff), or a "
        "container to be created, before the process fails with the kubelet's message; "
        "invalid names fail at once.",
        parse=_seconds,
    )
    kill_grace: int = setting(
        30,
        "Seconds a stopped job (cancel, walltime) gets between SIGTERM and SIGKILL "
        "(terminationGracePeriodSeconds).",
        parse=_seconds,
    )
    master_port: int = setting(29500, "MASTER_PORT of jobs with several processes.")
    poll_interval: float = setting(
        10.0,
        "Most seconds between two status checks of all jobs (one list of Jobs and one of "
        "pods, whatever their number); 1 s right after a change.",
    )


def check(settings: K8sSettings) -> K8sSettings:
    """Refuse combinations no single setting can judge (a UsageError saying what is missing)."""
    if settings.storage == "claim" and not (settings.claim and settings.claim_path):
        raise UsageError(
            "k8s.storage is claim, but claim (the PersistentVolumeClaim job pods mount) or "
            "claim_path (where this executor has that claim mounted) is not set."
        )
    if settings.poll_interval < 1:
        raise UsageError(f"k8s.poll_interval must be at least 1 s, got {settings.poll_interval}.")
    return settings


SETTINGS = SettingsSection(
    "k8s", K8sSettings, "Kubernetes: `pollinator executor start --type k8s` and --backend k8s."
)
