"""Staging a run's files on the executor (issue 13, item 6): it shows in the process log, it
is not part of the job's walltime, and an executor reuses the bytes it staged before (an
unchanged re-run of a 200 MB project copied everything again, 13 s)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pollinator_local_docker.process_runtime import ProcessRuntime
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_local import LocalProject

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import Process, ProcessState
from pollinator_core.executor import staging
from pollinator_core.executor.loop import Executor, ExecutorSettings
from pollinator_core.executor.staging import CfsStager
from pollinator_core.plugins.manager import open_storage
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import load_project
from pollinator_core.project.scaffold import new_project
from pollinator_core.sync.objects import ObjectCache
from pollinator_core.sync.project import sync_project, tree_label

# --- as a user sees it: the local backend ---------------------------------------------------

SHOW_STAGED = """\
import os
hello = os.path.join(os.environ["PROJECT_DIR"], "data", "hello.txt")
print("inode", os.stat(hello).st_ino)
print("says", open(hello).read().strip())
if os.environ.get("TAMPER"):
    with open(hello, "w") as f:  # in place: the same inode (root writes through mode 0444)
        f.write("tampered\\n")
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    made.write_main(SHOW_STAGED)
    yield made
    made.cli("executor", "stop")


def test_an_unchanged_rerun_links_the_bytes_the_executor_staged_before(
    project: LocalProject,
) -> None:
    first = project.run_pairs()
    again = project.run_pairs(TAMPER="1" if os.geteuid() == 0 else "")
    assert again["inode"] == first["inode"]  # the same bytes, not a second copy
    assert again["says"] == "Hello world!"
    if os.geteuid() == 0:
        # A job changed its staged copy in place: the executor notices and stages afresh.
        third = project.run_pairs()
        assert third["says"] == "Hello world!"
        assert third["inode"] != first["inode"]


# --- the executor's side, with a deliberately slow stager -----------------------------------


class SlowStager(CfsStager):
    """Staging that takes ``delay`` seconds more, as a slow file system or network would."""

    delay = 3.0

    def pre_sync(self, process: Process, root: Path, say: Callable[[str], None]) -> None:
        time.sleep(self.delay)
        super().pre_sync(process, root, say)


def test_staging_is_in_the_log_and_not_in_the_walltime(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(staging, "PROGRESS_EVERY", 0.0)  # a line per file
    monkeypatch.setattr(staging, "SUMMARY_AFTER", 0.0)  # and the summary, however quick
    root = new_project(tmp_path / "p").root
    for i in range(5):
        (root / "cfs" / "data" / f"f{i}.txt").write_text(f"file {i}\n")
    (root / "cfs" / "src" / "main.py").write_text(
        "import time\ntime.sleep(1.5)\nprint('the job ran', flush=True)\n"
    )
    text = (root / "project.yaml").read_text().replace("walltime: 600", "walltime: 2")
    (root / "project.yaml").write_text(text)
    project = load_project(directory=root)
    storage = open_storage(str(tmp_path / "store"))

    def client(prvkey: str) -> ColoniesClient:
        config = ClientConfig(
            host=sim_colony.host, port=sim_colony.port, colony_name="test", prvkey=prvkey
        )
        return ColoniesClient(config)

    user, me = client(sim_colony.keys.prvkey), client(sim_colony.executor_prvkey)
    sync_project(user, "test", project, storage, ("src", "data"))
    snapshot = user.create_snapshot("test", tree_label(project, "src"), "s1")
    settings = ExecutorSettings(
        name=sim_colony.executor_name, colony="test", fs_dir=tmp_path / "fs", poll=1
    )
    stager = SlowStager(me, "test", storage, ObjectCache(tmp_path / "fs" / ".objects"))
    executor = Executor(me, ProcessRuntime(kill_grace=0.5), stager, settings)
    serving = threading.Thread(target=executor.serve, daemon=True)
    serving.start()
    try:
        pid = user.submit(build_function_spec(project, snapshot.snapshotid, "test")).processid
        deadline = time.monotonic() + 30
        while not (process := user.get_process(pid)).state.finished:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        executor.shutdown(0)
        serving.join(10)
    # 3 s of staging and 1.5 s of job, within a walltime of 2 s: it counts from the job's start.
    assert process.state is ProcessState.SUCCESS, process.errors
    lines = "".join(e.message for e in user.get_logs("test", pid, count=100)).splitlines()
    progress = [line for line in lines if line.startswith("pollinator: staging data: ")]
    assert progress[-1].startswith("pollinator: staging data: downloading 6 of 6 files, "), lines
    summary = [line for line in lines if line.startswith("pollinator: staged ")]
    assert summary[0].endswith("; the walltime starts with the job"), lines
    assert lines[-1] == "the job ran"


# --- the cache itself -----------------------------------------------------------------------


def put(tmp_path: Path, cache: ObjectCache, name: str, data: bytes) -> tuple[str, Path]:
    path = tmp_path / name
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache.keep(sha, path)
    return sha, path


def test_an_object_changed_through_a_staged_name_is_dropped(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "objects")
    sha, staged_copy = put(tmp_path, cache, "a", b"original")
    root = tmp_path / "root"
    assert cache.place_many(root, [("sub/b", sha, 8)]) == {"sub/b"}
    assert (root / "sub" / "b").stat().st_ino == staged_copy.stat().st_ino
    staged_copy.chmod(0o644)
    staged_copy.write_bytes(b"changed!")  # same size, same inode, another mtime
    assert cache.place_many(root, [("c", sha, 8)]) == set()
    assert not (tmp_path / "objects" / sha[:2] / sha).exists()
    # Another executor process (no memory of the stamps) checks the hash before trusting.
    sha2, _ = put(tmp_path, ObjectCache(tmp_path / "objects2"), "d", b"more")
    assert ObjectCache(tmp_path / "objects2").place_many(root, [("e", sha2, 4)]) == {"e"}
    # A path that would leave the directory is not placed (the download path refuses it).
    assert ObjectCache(tmp_path / "objects2").place_many(root, [("../x", sha2, 4)]) == set()


def test_prune_removes_unused_objects_least_recently_used_first(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "objects", limit=10)
    old, old_path = put(tmp_path, cache, "old", b"x" * 8)
    time.sleep(0.01)
    new, new_path = put(tmp_path, cache, "new", b"y" * 8)
    in_use, _ = put(tmp_path, cache, "used", b"z" * 8)
    old_path.unlink()
    new_path.unlink()  # "used" keeps its staged name: it is in use
    assert cache.prune() == 8  # 16 unused bytes over a limit of 10: the older goes
    objects = tmp_path / "objects"
    assert not (objects / old[:2] / old).exists()
    assert (objects / new[:2] / new).exists() and (objects / in_use[:2] / in_use).exists()
    assert cache.prune(0) == 8
    assert (objects / in_use[:2] / in_use).exists()
