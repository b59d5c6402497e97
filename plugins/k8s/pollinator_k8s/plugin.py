"""Hook implementations of the built-in Kubernetes plugin.

It registers the ``k8s`` settings section, executor type ``k8s`` (``pollinator executor start
--type k8s``) and the ``--backend k8s`` choice: the local agent (an embedded simulator) with a
``k8s`` executor, for a user with a kubeconfig and no Colonies server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pollinator_core.api import (
    Backend,
    ExecutorType,
    Job,
    LocalBackend,
    Runtime,
    SettingsSection,
    hookimpl,
)

from .settings import SETTINGS, K8sSettings, check


def make_runtime(settings: K8sSettings) -> Runtime:
    """A runtime on the cluster the settings name, once the API has let it list Jobs."""
    from .kube import Kube
    from .runtime import K8sRuntime

    kube = Kube.connect(check(settings))
    try:
        kube.check_access()
    except BaseException:
        kube.close()
        raise
    return K8sRuntime(kube, settings)


def render(settings: K8sSettings, job: Job) -> dict[str, str]:
    """The Job (and Service) manifest the executor would create, as YAML."""
    from .manifest import render as render_manifest

    return render_manifest(check(settings), job)


@hookimpl
def pollinator_register_settings(register: Callable[[SettingsSection[Any]], None]) -> None:
    register(SETTINGS)


@hookimpl
def pollinator_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(ExecutorType("k8s", make_runtime, "k8s", "Kubernetes batch/v1 Jobs", render))


@hookimpl
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        LocalBackend(
            "k8s",
            "k8s",
            "A Kubernetes cluster from your kubeconfig, without a Colonies server: a local "
            "simulator and a k8s executor, state in .pollinator/k8s/.",
        )
    )
