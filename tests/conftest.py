"""Shared pytest wiring: fixtures for real components and the missing-component policy.

- ``docker_engine`` (session): :class:`infra.components.DockerEngine` (``.client``, ``.image``).
- ``s3_server`` (session): :class:`infra.components.S3Server` (``.endpoint``, ``.url``, keys,
  ``.bucket``, ``.env()``), verified with a real signed request.
- ``colonies_server`` (session): :class:`infra.components.ColoniesServer`, the official Colonies
  server v1.9.12 (exclusive assign, as deployed) with a colony, a user (``.prvkey``), the colony
  and server keys, and a short stale-executor window (``.stale_seconds``).
  ``colonies_server_v187``: the same for v1.8.7; ``colonies_servers``: every instance
  (``.main``, ``.distributed`` for v1.9.12 with distributed assign, ``.v187``).
- ``slurm_cluster`` (session): :class:`infra.components.SlurmCluster` (``.partition``,
  ``.accounting``, ``.test_user``, ``.shared_dir``, ``.sif_dir``, ``.test_sif``, outages on
  purpose: ``.stop_dbd()``, ``.start_dbd()``, ``.restart_ctld()``), probed with ``scontrol ping``,
  ``sinfo`` and ``apptainer --version``.
- ``k8s_cluster`` (session): :class:`infra.components.K8sCluster` (admin ``.kubeconfig``,
  ``.namespace``, ``.image``, ``.hostpath``, ``.claim``, ``.service_account_kubeconfig()``,
  ``.restart_apiserver()``), verified by /readyz and the node's Ready condition.
- A test marked ``docker``, ``s3``, ``colonies_server``, ``slurm`` or ``k8s`` requires that
  component even when it does not ask for the fixture; a test asking for the fixture gets the
  marker.
- Missing component: skip with the reason; under ``CI=true`` fail instead.

Start the components with tests/infra/docker_up.sh, s3_up.sh, colonies_up.sh, slurm_up.sh and
k8s_up.sh (.ci/run does). Kept import-light: docker, boto3 and kubernetes load only when a test
needs them.
"""

from __future__ import annotations

import pytest
from infra.components import (
    COLONIES,
    COMPONENTS,
    DOCKER,
    FIXTURE_MARKERS,
    K8S,
    S3,
    SLURM,
    ColoniesServer,
    ColoniesServers,
    DockerEngine,
    K8sCluster,
    S3Server,
    SlurmCluster,
    ci_requires_components,
)


@pytest.fixture(scope="session")
def docker_engine() -> DockerEngine:
    """A live Docker engine (SDK client) and the local python3 base image."""
    return DOCKER.require()


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """The test S3 server (Ceph RADOS Gateway) with its credentials and test bucket."""
    return S3.require()


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The one-node Slurm cluster with Apptainer, its test user, shared and SIF directories."""
    return SLURM.require()


@pytest.fixture(scope="session")
def k8s_cluster() -> K8sCluster:
    """The single-node Kubernetes test cluster: admin kubeconfig, namespace, imported test image,
    hostPath directory and claim, and ServiceAccount kubeconfigs on request."""
    return K8S.require()


@pytest.fixture(scope="session")
def colonies_servers() -> ColoniesServers:
    """Every instance of the official Colonies server that tests/infra/colonies_up.sh runs."""
    return COLONIES.require()


@pytest.fixture(scope="session")
def colonies_server(colonies_servers: ColoniesServers) -> ColoniesServer:
    """The official Colonies server v1.9.12 (exclusive assign), its colony, user and keys."""
    return colonies_servers.main


@pytest.fixture(scope="session")
def colonies_server_v187(colonies_servers: ColoniesServers) -> ColoniesServer:
    """The official Colonies server v1.8.7 (before the executor capabilities change)."""
    return colonies_servers.v187


def pytest_report_header(config: pytest.Config) -> str:
    if ci_requires_components():
        return "components: CI=true, a missing component (marker) FAILS its tests"
    return "components: a missing component (marker) skips its tests (CI=true fails)"


# tryfirst: the markers must be on the items before `-m` selection runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in fixturenames and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, component in COMPONENTS.items():
        if item.get_closest_marker(marker) is not None:
            component.require()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    probed = [c for c in COMPONENTS.values() if c.probed]
    if probed:
        terminalreporter.section("components")
        for component in probed:
            terminalreporter.write_line(f"{component.marker}: {component.status()}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    for component in COMPONENTS.values():
        component.close()
