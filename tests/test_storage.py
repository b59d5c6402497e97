"""Storage locations: URL resolution through the plugin hook, the official S3 variables, records
without secrets, and (marked s3) the real Ceph RADOS Gateway: bucket creation, existence checks,
multipart."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from infra.components import S3Server

from pollinator_core.builtin.storage import LIST_MIN_KEYS, S3Settings, s3_location
from pollinator_core.errors import InfraError, UsageError
from pollinator_core.plugins.manager import open_storage
from pollinator_core.storage.location import (
    SMALL_OBJECT,
    LocalStorageLocation,
    StorageLocation,
    storage_url_from_env,
)

S3_VARS = (
    "AWS_S3_ENDPOINT",
    "AWS_S3_ACCESSKEY",
    "AWS_S3_SECRETKEY",
    "AWS_S3_REGION",
    "AWS_S3_BUCKET",
    "AWS_S3_TLS",
    "AWS_S3_SKIPVERIFY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in S3_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_url_from_env(clean_env: pytest.MonkeyPatch) -> None:
    assert storage_url_from_env() is None
    clean_env.setenv("AWS_S3_BUCKET", "bkt")
    assert storage_url_from_env() == "s3://bkt"
    with pytest.raises(InfraError, match="AWS_S3_BUCKET"):
        storage_url_from_env({"AWS_S3_ENDPOINT": "localhost:9000"})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AWS_S3_ENDPOINT": "minio:9000"}, ("minio", 9000, False, "http://minio:9000")),
        (
            {"AWS_S3_ENDPOINT": "minio:9000", "AWS_S3_TLS": "true"},
            ("minio", 9000, True, "https://minio:9000"),
        ),
        ({"AWS_S3_ENDPOINT": "https://s3.example.org"}, ("s3.example.org", 443, True, None)),
        ({}, ("s3.us-east-1.amazonaws.com", 443, True, None)),
    ],
)
def test_s3_settings_read_the_official_variables(
    env: dict[str, str], expected: tuple[Any, ...]
) -> None:
    s = S3Settings(env)
    host, port, tls, url = expected
    assert (s.host, s.port, s.tls) == (host, port, tls)
    if url is not None:
        assert s.endpoint_url == url


def test_s3_location_records_carry_no_secrets(clean_env: pytest.MonkeyPatch) -> None:
    env = {
        "AWS_S3_ENDPOINT": "127.0.0.1:7480",
        "AWS_S3_ACCESSKEY": "AKIA-NOT-IN-RECORDS",
        "AWS_S3_SECRETKEY": "secret-not-in-records",
        "AWS_S3_REGION": "eu-north-1",
    }
    loc = s3_location("s3://bkt/some/prefix", env)
    ref = loc.reference(loc.object_key("ab" * 32))
    assert ref.protocol == "s3"
    s3 = ref.s3object
    assert (s3.server, s3.port, s3.tls, s3.region, s3.bucket) == (
        "127.0.0.1",
        7480,
        False,
        "eu-north-1",
        "bkt",
    )
    assert s3.object == "some/prefix/" + "ab" * 32
    assert s3.accesskey == "" and s3.secretkey == ""
    assert "secret" not in repr(loc) and "AKIA" not in repr(loc)
    assert loc.path(s3.object) == "bkt/some/prefix/" + "ab" * 32


def test_s3_needs_the_official_credentials() -> None:
    with pytest.raises(InfraError, match="AWS_S3_ACCESSKEY and AWS_S3_SECRETKEY"):
        s3_location("s3://bkt", {"AWS_S3_ENDPOINT": "127.0.0.1:7480"})


def test_opening_s3_does_not_import_s3fs() -> None:
    code = (
        "import sys; from pollinator_core.plugins.manager import open_storage; "
        "loc = open_storage('s3://bucket'); loc.reference('k'); "
        "assert 's3fs' not in sys.modules and 'botocore' not in sys.modules, 'imported'"
    )
    env = {
        **os.environ,
        "AWS_S3_ENDPOINT": "127.0.0.1:1",
        "AWS_S3_ACCESSKEY": "a",
        "AWS_S3_SECRETKEY": "s",
    }
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_urls_resolve_through_the_plugin_hook(tmp_path: Path) -> None:
    mem = open_storage("memory://tests-hook")
    assert mem.protocol == "memory" and mem.root == "/tests-hook"
    local = open_storage(f"file://{tmp_path}/store")
    assert isinstance(local, LocalStorageLocation) and local.root == f"{tmp_path}/store"
    assert open_storage(tmp_path / "plain").root == str(tmp_path / "plain")
    with pytest.raises(UsageError, match="no storage plugin handles"):
        open_storage("gopher://nowhere")


@pytest.mark.parametrize("url", ["memory://tests-ops-{}", "{tmp}/store-{}"])
def test_object_operations(url: str, tmp_path: Path) -> None:
    loc = open_storage(url.format(uuid.uuid4().hex, tmp=tmp_path))
    loc.prepare_write()
    data = b"hello"
    key = loc.object_key(hashlib.sha256(data).hexdigest())
    assert not loc.has_object(key)
    loc.put_bytes(key, data)
    assert loc.has_object(key) and loc.get_bytes(key) == data
    assert loc.existing({key, "0" * 64}) == {key}
    src = tmp_path / "big.bin"
    src.write_bytes(b"z" * 1000)
    loc.put_file("big", str(src))
    loc.get_file("big", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"z" * 1000


def test_local_store_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = open_storage(str(tmp_path / "store"))
    loc.prepare_write()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        loc.put_bytes("k", b"data")
    assert os.listdir(tmp_path / "store") == []  # no partial object, no temp file


# --- the real S3 server ----------------------------------------------------------------------


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def boto(server: S3Server) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


@pytest.fixture
def fresh_bucket(s3_env: S3Server) -> Iterator[str]:
    name = f"pollinator-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = boto(s3_env)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass


@pytest.mark.s3
def test_s3_bucket_is_created_on_first_write(fresh_bucket: str, s3_env: S3Server) -> None:
    loc = open_storage(f"s3://{fresh_bucket}")
    assert loc.record.bucket == fresh_bucket and loc.record.port == int(
        s3_env.endpoint.split(":")[1]
    )
    loc.prepare_write()
    loc.put_bytes("k", b"v")
    assert boto(s3_env).get_object(Bucket=fresh_bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.s3
def test_s3_existence_checks_by_head_and_by_listing(fresh_bucket: str) -> None:
    loc = open_storage(f"s3://{fresh_bucket}/pre")
    loc.prepare_write()
    keys = [loc.object_key(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(400)]
    present = set(keys[::2])
    for key in present:
        loc.put_bytes(key, b"x")
    assert len(keys) >= LIST_MIN_KEYS  # the listing path
    assert loc.existing(keys) == present
    few = keys[:10]  # the HEAD path
    assert loc.existing(few) == present & set(few)
    assert loc.has_object(keys[0]) and not loc.has_object(keys[1])


@pytest.mark.s3
def test_s3_large_files_go_multipart(fresh_bucket: str, s3_env: S3Server, tmp_path: Path) -> None:
    loc: StorageLocation = open_storage(f"s3://{fresh_bucket}")
    loc.prepare_write()
    big = tmp_path / "big.bin"
    data = os.urandom(SMALL_OBJECT + 1)
    big.write_bytes(data)
    loc.put_file("big", str(big))
    head = boto(s3_env).head_object(Bucket=fresh_bucket, Key="big")
    assert "-" in head["ETag"]  # multipart ETags are "<md5 of md5s>-<parts>"
    loc.get_file("big", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data


@pytest.mark.s3
def test_s3_wrong_secret_is_refused_clearly(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pollinator_core.errors import InfraError

    monkeypatch.setenv("AWS_S3_SECRETKEY", "not-the-secret")
    loc = open_storage(f"s3://{s3_env.bucket}")
    with pytest.raises(InfraError, match="refused access"):
        loc.prepare_write()


def test_signed_requests_retry_transient_failures() -> None:
    import http.server
    import threading

    from pollinator_core.storage.s3 import SignedS3

    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["Authorization"], self.headers["x-amz-date"]))
            status = 503 if len(seen) == 1 else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s3 = SignedS3(f"http://127.0.0.1:{server.server_port}", "AK", "SK", "us-east-1")
        s3.put("bkt", "pre/" + "ab" * 32, b"data")
    finally:
        server.shutdown()
    assert [p for p, _, _ in seen] == ["/bkt/pre/" + "ab" * 32] * 2
    auth = seen[-1][1]
    assert (
        auth.startswith("AWS4-HMAC-SHA256 Credential=AK/") and "/us-east-1/s3/aws4_request" in auth
    )
    assert "SK" not in auth


def test_pollinator_storage_wins_over_the_s3_variables() -> None:
    from pollinator_core.storage.location import storage_url_from_env

    env = {"POLLINATOR_STORAGE": "file:///srv/cfs", "AWS_S3_BUCKET": "b"}
    assert storage_url_from_env(env) == "file:///srv/cfs"
    assert storage_url_from_env({**env, "POLLINATOR_STORAGE": " "}) == "s3://b"
    assert storage_url_from_env({}) is None
