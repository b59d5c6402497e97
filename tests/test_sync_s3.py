"""CFS sync against the real S3 server (Ceph RADOS Gateway) and the simulator, and
interoperability with the official SDK: what pycolonies uploads we download, and what we upload
pycolonies downloads, through the same server and bucket."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.components import S3Server
from pollinator_simulator.embedded import EmbeddedSimulator

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.plugins.manager import open_storage
from pollinator_core.storage.location import SMALL_OBJECT, StorageLocation
from pollinator_core.sync import Mode, download_snapshot, sync_tree

pytestmark = pytest.mark.s3
COLONY = "dev"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[EmbeddedSimulator, str]]:
    with EmbeddedSimulator() as s:
        yield s, s.bootstrap(COLONY).prvkey


@pytest.fixture
def client(sim: tuple[EmbeddedSimulator, str]) -> Iterator[ColoniesClient]:
    s, prvkey = sim
    c = ColoniesClient(ClientConfig(host=s.host, port=s.port, colony_name=COLONY, prvkey=prvkey))
    yield c
    c.close()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def storage(s3_env: S3Server) -> StorageLocation:
    return open_storage(None)  # from AWS_S3_*, as a user's shell would configure it


@pytest.fixture
def label() -> str:
    return f"/pollinator/s3-{uuid.uuid4().hex[:12]}/src"


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_mirror_push_snapshot_and_unchanged_push_on_s3(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {f"d{i % 3}/f{i}.txt": os.urandom(100 + i) for i in range(30)}
    files["big.bin"] = os.urandom(SMALL_OBJECT + 1)  # multipart
    for rel, data in files.items():
        write(src, rel, data)
    (src / "empty").mkdir()
    index = tmp_path / "index.json"
    report = sync_tree(client, COLONY, src, label, storage, Mode.MIRROR, index_path=index)
    assert report.done is not None and len(report.done.uploaded) == len(files)
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    out = tmp_path / "snap"
    download_snapshot(client, COLONY, snap.snapshotid, out, open_storage(None))
    assert (out / "empty").is_dir()
    assert {
        p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
    } == files
    # Unchanged: no request reaches S3 at all (the S3 client is never even created).
    fresh = open_storage(None)
    again = sync_tree(client, COLONY, src, label, fresh, Mode.MIRROR, index_path=index)
    assert again.plan.actions == [] and fresh._fs is None


def test_what_pycolonies_uploads_we_download(
    client: ColoniesClient,
    storage: StorageLocation,
    sim: tuple[EmbeddedSimulator, str],
    label: str,
    tmp_path: Path,
) -> None:
    from pycolonies import Colonies

    s, prvkey = sim
    sdk = Colonies(s.host, s.port)
    up = tmp_path / "up.txt"
    up.write_bytes(b"uploaded by pycolonies.upload_file")
    sdk.upload_file(COLONY, prvkey, filepath=str(up), label=label)
    sdk.upload_data(COLONY, prvkey, filename="data.bin", data=b"\x00\x01 upload_data", label=label)
    sdk.upload_data(
        COLONY, prvkey, filename="deep.txt", data=b"in a sub-label", label=label + "/a/b"
    )
    result = tmp_path / "result"
    report = sync_tree(client, COLONY, result, label, storage, Mode.PULL)
    assert report.done is not None and len(report.done.downloaded) == 3
    assert (result / "up.txt").read_bytes() == b"uploaded by pycolonies.upload_file"
    assert (result / "data.bin").read_bytes() == b"\x00\x01 upload_data"
    assert (result / "a" / "b" / "deep.txt").read_bytes() == b"in a sub-label"


def test_what_we_upload_pycolonies_downloads(
    client: ColoniesClient,
    storage: StorageLocation,
    sim: tuple[EmbeddedSimulator, str],
    label: str,
    tmp_path: Path,
) -> None:
    from pycolonies import Colonies

    s, prvkey = sim
    src = tmp_path / "src"
    write(src, "main.py", b"print('hello')")
    write(src, "pkg/data.csv", b"a,b\n1,2\n")
    write(src, "empty.txt", b"")
    sync_tree(client, COLONY, src, label, storage, Mode.MIRROR)
    sdk = Colonies(s.host, s.port)
    got = tmp_path / "got"
    for sub, name in (("", "main.py"), ("/pkg", "data.csv"), ("", "empty.txt")):
        path = sdk.download_file(COLONY, prvkey, dst=str(got), label=label + sub, filename=name)
        expected = (src / sub.lstrip("/") / name).read_bytes()
        assert Path(path).read_bytes() == expected
    data = sdk.download_data(COLONY, prvkey, label=label, filename="main.py")
    assert data == b"print('hello')"
    rec = sdk.get_file(COLONY, prvkey, label=label, filename="main.py")[0]
    assert rec["checksum"] == hashlib.sha256(b"print('hello')").hexdigest()
    assert rec["ref"]["s3object"]["accesskey"] == "" and rec["ref"]["s3object"]["secretkey"] == ""
