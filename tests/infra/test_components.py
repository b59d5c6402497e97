"""The test infrastructure itself: the missing-component policy, and that each real component
answers the way the other tests use it (under CI these are what fail when a backend is broken)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infra.components import (
    ColoniesServer,
    ColoniesServers,
    Component,
    ComponentMissing,
    DockerEngine,
    S3Server,
    colonies_server_from_env,
    component_missing,
    read_env_file,
)
from pollinator_core.client import AccessDenied, ColoniesClient
from pollinator_core.config import ClientConfig
from pollinator_core.crypto import generate_private_key, id_from_private_key
from pollinator_core.models import Executor, ExecutorState


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
        with pytest.raises(AccessDenied, match=r"invalid rpcMsg\.PayloadType"):
            client.cancel_process("0" * 64)
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
