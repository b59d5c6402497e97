"""The test infrastructure itself: the missing-component policy, and that each real component
answers the way the other tests use it (under CI these are what fail when a backend is broken)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infra.components import (
    Component,
    ComponentMissing,
    DockerEngine,
    S3Server,
    component_missing,
    read_env_file,
)


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
