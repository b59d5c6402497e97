"""CFS sync end to end against the simulator over real HTTP, on memory:// and a local directory
store: every rule of docs/sync.md."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pollinator_simulator.embedded import EmbeddedSimulator

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import File, Reference, S3Object
from pollinator_core.errors import PollinatorError, UsageError
from pollinator_core.plugins.manager import open_storage
from pollinator_core.project.loader import Project
from pollinator_core.storage.location import SMALL_OBJECT, StorageLocation
from pollinator_core.sync import (
    Kind,
    Mode,
    SyncOptions,
    download_snapshot,
    sync_dir,
    sync_project,
    sync_tree,
)
from pollinator_core.sync import index as index_mod
from pollinator_core.sync.transfer import ChecksumMismatch

COLONY = "dev"


@pytest.fixture(scope="module")
def client() -> Iterator[ColoniesClient]:
    with EmbeddedSimulator() as sim:
        keys = sim.bootstrap(COLONY)
        config = ClientConfig(host=sim.host, port=sim.port, colony_name=COLONY, prvkey=keys.prvkey)
        c = ColoniesClient(config)
        yield c
        c.close()


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageLocation:
    if request.param == "memory":
        return open_storage(f"memory://sync-{uuid.uuid4().hex}")
    return open_storage(str(tmp_path / "store"))


@pytest.fixture
def label() -> str:
    return f"/pollinator/t{uuid.uuid4().hex[:12]}/src"


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust fresh stat keys at once (the racy-timestamp guard needs 2 s of age)."""
    monkeypatch.setattr(index_mod, "RACY_NS", -(10**18))


def write(root: Path, rel: str, data: bytes | str = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def tree_of(root: Path) -> dict[str, bytes | None]:
    """relpath -> content (None for a directory) of everything under root."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


def records(client: ColoniesClient, root_label: str) -> dict[str, File]:
    """(label-relative path) -> latest record, via getfilemsg, for every file under root_label."""
    out = {}
    for lb in client.get_file_labels(COLONY, root_label):
        for fd in client.get_files(COLONY, lb.name):
            rec = client.get_file(COLONY, label=lb.name, name=fd.name)[0]
            sub = lb.name[len(root_label) + 1 :]
            out[f"{sub}/{fd.name}" if sub else fd.name] = rec
    return out


def kinds(report: object) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.rel, a.reason) for a in report.plan.actions]  # type: ignore[attr-defined]


def push(client: ColoniesClient, tree: Path, label: str, storage: StorageLocation, **kw: object):  # type: ignore[no-untyped-def]
    mode = kw.pop("mode", Mode.MIRROR)
    index = kw.pop("index", tree.parent / f"{tree.name}-index.json")
    return sync_tree(client, COLONY, tree, label, storage, mode, index_path=index, **kw)  # type: ignore[arg-type]


# --- src: the remote mirrors the local tree -------------------------------------------------


def test_mirror_round_trip_with_renames_deletes_and_empty_dirs(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "main.py", "print(1)")
    write(src, "pkg/mod.py", "x = 1")
    write(src, "pkg/old.py", "old")
    write(src, "empty.txt", b"")
    (src / "outputs" / "logs").mkdir(parents=True)
    report = push(client, src, label, storage)
    assert {a.reason for a in report.plan.actions} == {"new"}
    snap_dir = tmp_path / "snap1"
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    download_snapshot(client, COLONY, snap.snapshotid, snap_dir, storage)
    assert tree_of(snap_dir) == tree_of(src)

    os.rename(src / "pkg" / "mod.py", src / "pkg" / "renamed.py")
    (src / "pkg" / "old.py").unlink()
    (src / "outputs" / "logs").rmdir()
    write(src, "main.py", "print(2)")
    report = push(client, src, label, storage)
    assert sorted(kinds(report)) == [
        ("mark", "outputs", "new"),
        ("remove", "pkg/mod.py", "deleted"),
        ("remove", "pkg/old.py", "deleted"),
        ("unmark", "outputs/logs", "deleted"),
        ("upload", "main.py", "changed"),
        ("upload", "pkg/renamed.py", "new"),
    ]
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    snap_dir = tmp_path / "snap2"
    download_snapshot(client, COLONY, snap.snapshotid, snap_dir, storage)
    assert tree_of(snap_dir) == tree_of(src)


def test_root_holding_only_directories_still_snapshots(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    # The official server snapshots nothing under a label holding no file itself.
    src = tmp_path / "src"
    write(src, "a/b.txt", "b")
    push(client, src, label, storage)
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    download_snapshot(client, COLONY, snap.snapshotid, tmp_path / "out", storage)
    assert tree_of(tmp_path / "out") == tree_of(src)
    write(src, "top.txt", "now the root has a file")
    assert sorted(kinds(push(client, src, label, storage))) == [
        ("unmark", "", "not empty"),
        ("upload", "top.txt", "new"),
    ]


def test_unchanged_push_moves_nothing_and_records_hold_no_secrets(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "a.txt", "same")
    write(src, "d/b.txt", "same")  # identical content: one object
    write(src, "c.txt", "other")
    push(client, src, label, storage)
    again = push(client, src, label, storage)
    assert again.plan.actions == [] and again.done is None
    recs = records(client, label)
    assert set(recs) == {"a.txt", "d/b.txt", "c.txt"}
    for rel, rec in recs.items():
        data = (src / rel).read_bytes()
        assert rec.checksum == hashlib.sha256(data).hexdigest() and rec.size == len(data)
        assert rec.checksumalg == "SHA256"
        assert rec.ref.s3object.object == rec.checksum  # content-addressed
        assert rec.ref.s3object.accesskey == "" and rec.ref.s3object.secretkey == ""
    objects = {rec.ref.s3object.object for rec in recs.values()}
    assert len(objects) == 2 and all(storage.has_object(o) for o in objects)


def test_ignore_file_defaults_and_the_state_dir(
    client: ColoniesClient, storage: StorageLocation, tmp_path: Path
) -> None:
    project = Project(root=tmp_path / "proj", name=f"p{uuid.uuid4().hex[:8]}")
    src = project.src_dir
    write(project.root, ".pollinatorignore", "cfs/src/build/\n*.log\n")
    write(src, "keep.py")
    write(src, "build/out.bin")
    write(src, "x.log")
    write(src, "sub/.pollinatorignore", "secret.txt\n")
    write(src, "sub/secret.txt")
    write(src, "sub/ok.txt")
    for junk in (".git/HEAD", "__pycache__/a.pyc", ".venv/bin/python", "mod.pyc"):
        write(src, junk)
    project.data_dir.mkdir(parents=True)
    write(project.state_dir, "sync/leftover.json")
    reports = sync_project(client, COLONY, project, storage, ("src",))
    assert sorted(a.rel for a in reports[0].plan.of(Kind.UPLOAD)) == [
        "keep.py",
        "sub/.pollinatorignore",
        "sub/ok.txt",
    ]
    # A tree that contains the state directory never syncs it.
    report = sync_tree(
        client,
        COLONY,
        project.root,
        label := f"{project.label_prefix}/all",
        storage,
        Mode.PUSH,
        exclude=(project.state_dir,),
    )
    assert not any(a.rel.startswith(".pollinator/") for a in report.plan.actions)
    assert label in {lb.name for lb in client.get_file_labels(COLONY, label)}


# --- data: up, removal only on request ------------------------------------------------------


def test_data_push_removes_remote_files_only_when_asked(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write(data, "a.csv", "1")
    write(data, "b.csv", "2")
    push(client, data, label, storage, mode=Mode.PUSH)
    (data / "b.csv").unlink()
    write(data, "a.csv", "11")
    report = push(client, data, label, storage, mode=Mode.PUSH)
    assert kinds(report) == [("upload", "a.csv", "changed")] and report.plan.kept_remote == 1
    assert "b.csv" in records(client, label)
    report = push(client, data, label, storage, mode=Mode.PUSH, options=SyncOptions(delete=True))
    assert kinds(report) == [("remove", "b.csv", "deleted")]
    assert set(records(client, label)) == {"a.csv"}


# --- result: down, local edits never overwritten -----------------------------------------------


def upload_as_other(
    client: ColoniesClient, storage: StorageLocation, label: str, name: str, data: bytes
) -> File:
    """Another writer (an executor) adding a revision."""
    sha = hashlib.sha256(data).hexdigest()
    storage.prepare_write()
    storage.put_bytes(storage.object_key(sha), data)
    return client.add_file(
        File(
            colonyname=COLONY,
            label=label,
            name=name,
            size=len(data),
            checksum=sha,
            checksumalg="SHA256",
            ref=storage.reference(storage.object_key(sha)),
        )
    )


def test_result_pull_keeps_both_when_the_local_copy_was_edited(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    result = tmp_path / "result"
    upload_as_other(client, storage, label, "out.txt", b"v1")
    upload_as_other(client, storage, label + "/plots", "p.txt", b"p1")
    report = push(client, result, label, storage, mode=Mode.PULL)
    assert sorted(kinds(report)) == [
        ("download", "out.txt", "new"),
        ("download", "plots/p.txt", "new"),
    ]
    write(result, "out.txt", "my edit")  # edited since the pull
    write(result, "mine.txt", "local only")
    upload_as_other(client, storage, label, "out.txt", b"v2")
    upload_as_other(client, storage, label + "/plots", "p.txt", b"p2")  # untouched locally
    report = push(client, result, label, storage, mode=Mode.PULL)
    side = "out.txt.remote-" + hashlib.sha256(b"v2").hexdigest()[:8]
    assert sorted(kinds(report)) == [
        ("download", "out.txt", "conflict"),
        ("download", "plots/p.txt", "changed"),
    ]
    assert tree_of(result) == {
        "mine.txt": b"local only",
        "out.txt": b"my edit",
        side: b"v2",
        "plots": None,
        "plots/p.txt": b"p2",
    }
    assert "mine.txt" not in records(client, label)  # local result files never go up
    assert push(client, result, label, storage, mode=Mode.PULL).plan.actions == []
    # Deleted locally after the pull: not brought back while the remote copy is unchanged.
    (result / "plots" / "p.txt").unlink()
    assert push(client, result, label, storage, mode=Mode.PULL).plan.actions == []


# --- change detection --------------------------------------------------------------------------


def test_same_size_same_mtime_change_is_pushed(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path, trusting: None
) -> None:
    src = tmp_path / "src"
    path = write(src, "a.txt", "aaaa")
    push(client, src, label, storage)
    st = path.stat()
    path.write_text("bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert kinds(push(client, src, label, storage)) == [("upload", "a.txt", "changed")]
    assert records(client, label)["a.txt"].checksum == hashlib.sha256(b"bbbb").hexdigest()


def test_checksum_option_catches_a_change_the_index_missed(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path, trusting: None
) -> None:
    src = tmp_path / "src"
    path = write(src, "a.txt", "aaaa")
    index_path = tmp_path / "idx.json"
    push(client, src, label, storage, index=index_path)
    path.write_text("bbbb")
    doc = json.loads(index_path.read_text())
    st = path.stat()
    doc["files"]["a.txt"][:4] = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    index_path.write_text(json.dumps(doc))  # the index now vouches for stale content
    assert push(client, src, label, storage, index=index_path).plan.actions == []
    report = push(client, src, label, storage, index=index_path, options=SyncOptions(checksum=True))
    assert kinds(report) == [("upload", "a.txt", "changed")]


def test_remote_changes_by_another_writer_are_seen(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "a.txt", "mine")
    write(src, "d/b.txt", "b")
    push(client, src, label, storage)
    upload_as_other(client, storage, label, "a.txt", b"theirs")
    upload_as_other(client, storage, label + "/d", "intruder.txt", b"i")
    assert sorted(kinds(push(client, src, label, storage))) == [
        ("remove", "d/intruder.txt", "deleted"),
        ("upload", "a.txt", "changed"),
    ]
    assert push(client, src, label, storage).plan.actions == []


# --- safety ------------------------------------------------------------------------------------


def test_interrupted_sync_never_leaves_a_record_without_its_object(
    client: ColoniesClient,
    storage: StorageLocation,
    label: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "src"
    for i in range(6):
        write(src, f"f{i}.txt", f"content {i}")
    real_put, real_add = storage.put_bytes, client.add_file
    calls = {"put": 0, "add": 0}

    def flaky_put(key: str, data: bytes) -> None:
        calls["put"] += 1
        if data == b"content 3":
            raise OSError("connection reset while uploading")
        real_put(key, data)

    def flaky_add(file: File) -> File:
        calls["add"] += 1
        if file.name == "f4.txt":
            raise OSError("server went away")
        return real_add(file)

    monkeypatch.setattr(storage, "put_bytes", flaky_put)
    monkeypatch.setattr(client, "add_file", flaky_add)
    with pytest.raises(PollinatorError, match="2 of 6 failed"):
        push(client, src, label, storage)
    recs = records(client, label)
    assert set(recs) == {"f0.txt", "f1.txt", "f2.txt", "f5.txt"}
    assert all(storage.has_object(r.ref.s3object.object) for r in recs.values())
    # f4's object is there without a record: the resumed sync adds the record, no bytes.
    monkeypatch.setattr(client, "add_file", real_add)
    puts: list[str] = []

    def counting_put(key: str, data: bytes) -> None:
        puts.append(key)
        real_put(key, data)

    monkeypatch.setattr(storage, "put_bytes", counting_put)
    report = push(client, src, label, storage)
    assert sorted(a.rel for a in report.plan.actions) == ["f3.txt", "f4.txt"]
    assert puts == [hashlib.sha256(b"content 3").hexdigest()]
    assert set(records(client, label)) == {f"f{i}.txt" for i in range(6)}


def test_a_new_small_file_is_read_once_and_hashed_as_it_uploads(
    client: ColoniesClient,
    storage: StorageLocation,
    label: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trusting: None,
) -> None:
    from pollinator_core.sync import transfer

    src = tmp_path / "src"
    for i in range(4):
        write(src, f"d{i}/f.txt", f"content {i}")
    write(src, "big.bin", b"b" * 64)
    monkeypatch.setattr(transfer, "SMALL_OBJECT", 32)  # big.bin streams: hashed up front
    hashed: list[str] = []
    real_hash = index_mod.hash_file

    def spy(path: str) -> tuple[str, tuple[int, int, int, int]]:
        hashed.append(Path(path).relative_to(src).as_posix())
        return real_hash(path)

    monkeypatch.setattr(index_mod, "hash_file", spy)
    push(client, src, label, storage)
    assert hashed == ["big.bin"]
    recs = records(client, label)
    for i in range(4):
        assert recs[f"d{i}/f.txt"].checksum == hashlib.sha256(f"content {i}".encode()).hexdigest()
    # The upload's own hash was cached: only the file edited since is read to plan.
    hashed.clear()
    write(src, "d1/f.txt", "edited")
    report = push(client, src, label, storage)
    assert hashed == ["d1/f.txt"]
    assert kinds(report) == [("upload", "d1/f.txt", "changed")]


@pytest.mark.parametrize(
    ("sub", "name"),
    [
        ("", "../escape.txt"),
        ("", ".."),
        ("/..", "escape.txt"),
        ("/a/../..", "x"),
        ("//tmp", "x"),
        ("", "a\\..\\x"),
        ("/a\\..", "x"),
        # (No NUL: it cannot reach a record, PostgreSQL refuses it; see docs/simulator.md.)
    ],
)
def test_remote_names_that_would_escape_are_refused(
    client: ColoniesClient,
    storage: StorageLocation,
    label: str,
    tmp_path: Path,
    sub: str,
    name: str,
) -> None:
    upload_as_other(client, storage, label, "fine.txt", b"ok")
    upload_as_other(client, storage, label + sub, name, b"evil")
    result = tmp_path / "deep" / "result"
    with pytest.raises(UsageError, match="refusing remote") as err:
        push(client, result, label, storage, mode=Mode.PULL, index=tmp_path / "idx.json")
    assert repr(name) in str(err.value) or repr(label + sub) in str(err.value)
    assert not (tmp_path / "deep").exists()
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    with pytest.raises(UsageError, match="refusing remote"):
        download_snapshot(client, COLONY, snap.snapshotid, tmp_path / "snap", storage)
    assert not (tmp_path / "snap").exists()


def test_symlinks_outside_the_project_are_not_followed(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "proj" / "src"
    write(src, "a.txt", "a")
    write(tmp_path, "secret.txt", "secret")
    (src / "secret-link").symlink_to(tmp_path / "secret.txt")
    (src / "home").symlink_to(tmp_path)
    (src / "alias.txt").symlink_to(src / "a.txt")
    report = push(client, src, label, storage, boundary=tmp_path / "proj")
    assert sorted(a.rel for a in report.plan.of(Kind.UPLOAD)) == ["a.txt", "alias.txt"]
    assert {rel for rel, _ in report.skipped} == {"secret-link", "home"}


def test_downloads_are_verified_before_they_replace_anything(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    result = tmp_path / "result"
    write(result, "out.txt", "precious")
    rec = upload_as_other(client, storage, label, "out.txt", b"v2")
    storage.put_bytes(rec.ref.s3object.object, b"corrupted")  # bytes no longer match the record
    with pytest.raises(ChecksumMismatch, match=r"out\.txt"):
        push(client, result, label, storage, mode=Mode.PULL, index=None)
    assert tree_of(result) == {"out.txt": b"precious"}  # no temp file left, target untouched


def test_dry_run_lists_and_changes_nothing(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "a.txt", "a")
    report = push(client, src, label, storage, options=SyncOptions(dry_run=True))
    assert kinds(report) == [("upload", "a.txt", "new"), ("mark", "", "new")] or kinds(report) == [
        ("upload", "a.txt", "new")
    ]
    assert report.done is None and records(client, label) == {}


def test_large_and_empty_files(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    big = os.urandom(SMALL_OBJECT + 12345)
    write(src, "big.bin", big)
    write(src, "empty", b"")
    push(client, src, label, storage)
    out = tmp_path / "out"
    push(client, out, label, storage, mode=Mode.PULL)
    assert tree_of(out) == {"big.bin": big, "empty": b""}


# --- the executor side ----------------------------------------------------------------------------


@pytest.mark.parametrize("keeplocal", [True, False])
def test_sync_dir_follows_the_official_executor_semantics(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path, keeplocal: bool
) -> None:
    job = tmp_path / "job"
    upload_as_other(client, storage, label, "shared.txt", b"remote")
    upload_as_other(client, storage, label, "remote-only.txt", b"r")
    write(job, "shared.txt", "local")
    write(job, "new/local-only.txt", "l")
    report = sync_dir(client, COLONY, label, job, storage, keeplocal=keeplocal)
    assert not report.plan.of(Kind.REMOVE)
    recs = records(client, label)
    assert (job / "remote-only.txt").read_bytes() == b"r"
    assert recs["new/local-only.txt"].checksum == hashlib.sha256(b"l").hexdigest()
    expected = b"local" if keeplocal else b"remote"
    assert (job / "shared.txt").read_bytes() == expected
    assert recs["shared.txt"].checksum == hashlib.sha256(expected).hexdigest()


def test_download_snapshot_pins_revisions_and_skips_present_files(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    upload_as_other(client, storage, label, "a.txt", b"v1")
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    upload_as_other(client, storage, label, "a.txt", b"v2")
    dest = tmp_path / "run"
    done = download_snapshot(client, COLONY, snap.snapshotid, dest, storage)
    assert (dest / "a.txt").read_bytes() == b"v1" and list(done.downloaded) == ["a.txt"]
    again = download_snapshot(client, COLONY, snap.snapshotid, dest, storage)
    assert again.downloaded == {}


def test_pycolonies_style_records_with_random_object_keys_are_read(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    # The official tools store bytes under a random key and a record pointing at it.
    key = uuid.uuid4().hex * 2
    storage.prepare_write()
    storage.put_bytes(key, b"official")
    client.add_file(
        File(
            colonyname=COLONY,
            label=label,
            name="o.txt",
            size=8,
            checksum=hashlib.sha256(b"official").hexdigest(),
            checksumalg="SHA256",
            ref=Reference(protocol="s3", s3object=S3Object(object=key, bucket="whatever")),
        )
    )
    out = tmp_path / "out"
    push(client, out, label, storage, mode=Mode.PULL)
    assert (out / "o.txt").read_bytes() == b"official"


def test_a_snapshot_whose_file_was_removed_later_fails_clearly(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "a.txt", "a")
    write(src, "gone.txt", "g")
    push(client, src, label, storage)
    snap = client.create_snapshot(COLONY, label, uuid.uuid4().hex)
    (src / "gone.txt").unlink()
    push(client, src, label, storage)
    with pytest.raises(PollinatorError, match="no longer exists: a later sync removed it"):
        download_snapshot(client, COLONY, snap.snapshotid, tmp_path / "run", storage)


def test_two_syncs_of_one_directory_never_overlap(
    client: ColoniesClient, storage: StorageLocation, label: str, tmp_path: Path
) -> None:
    from pollinator_core.sync.index import locked

    src = tmp_path / "src"
    write(src, "a.txt", "a")
    index = tmp_path / "idx.json"
    with locked(index), pytest.raises(UsageError, match="another sync of this directory"):
        push(client, src, label, storage, index=index)
    assert push(client, src, label, storage, index=index).done is not None


def test_a_large_file_changing_during_its_upload_leaves_no_object_and_no_record(
    client: ColoniesClient,
    storage: StorageLocation,
    label: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pollinator_core.sync import transfer

    monkeypatch.setattr(transfer, "SMALL_OBJECT", 10)  # stream even small files
    src = tmp_path / "src"
    path = write(src, "big.bin", b"x" * 100)
    real_put = storage.put_file

    def put_then_write(key: str, local: str) -> None:
        real_put(key, local)
        path.write_bytes(b"y" * 100)  # a writer racing the upload

    monkeypatch.setattr(storage, "put_file", put_then_write)
    with pytest.raises(UsageError, match="changed while it was being uploaded"):
        push(client, src, label, storage)
    assert not storage.has_object(hashlib.sha256(b"x" * 100).hexdigest())
    assert records(client, label) == {}
    monkeypatch.setattr(storage, "put_file", real_put)
    push(client, src, label, storage)
    assert records(client, label)["big.bin"].checksum == hashlib.sha256(b"y" * 100).hexdigest()
