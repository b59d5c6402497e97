"""``pollinator sync``: the dry-run listing, the summary and the conflict notice, through the click
command against the simulator (the backend's connection is pointed at it)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pollinator_simulator.embedded import EmbeddedSimulator

from pollinator_core.cli.context import CliContext
from pollinator_core.cli.sync import sync
from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.models import File
from pollinator_core.plugins.manager import open_storage
from pollinator_core.project.loader import Project
from pollinator_core.runs import backends
from pollinator_core.storage.location import StorageLocation

COLONY = "dev"


class SimBackend(backends.Backend):
    name = "sim"

    def __init__(self, sim: EmbeddedSimulator, prvkey: str, storage: StorageLocation) -> None:
        self.sim, self.prvkey, self.storage = sim, prvkey, storage

    def connect(self, project: Project, *, runtime: str | None = None) -> backends.Connection:
        config = ClientConfig(host=self.sim.host, port=self.sim.port, prvkey=self.prvkey)
        return backends.Connection("sim", ColoniesClient(config), COLONY, self.storage)


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[EmbeddedSimulator, str]]:
    with EmbeddedSimulator() as s:
        yield s, s.bootstrap(COLONY).prvkey


@pytest.fixture
def project(
    tmp_path: Path, sim: tuple[EmbeddedSimulator, str], monkeypatch: pytest.MonkeyPatch
) -> Project:
    name = f"cli{uuid.uuid4().hex[:8]}"
    (tmp_path / "project.yaml").write_text(f"projectname: {name}\n")
    for d in ("src", "data", "result"):
        (tmp_path / "cfs" / d).mkdir(parents=True)
    storage = open_storage(f"memory://cli-{name}")
    monkeypatch.setattr(backends, "get_backend", lambda _name: SimBackend(*sim, storage))
    return Project(root=tmp_path, name=name)


def run(project: Project, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(sync, list(args), obj=CliContext(directory=project.root))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_lists_each_file_relative_to_the_project(project: Project) -> None:
    (project.src_dir / "main.py").write_text("print(1)")
    (project.src_dir / "lib").mkdir()
    (project.data_dir / "in.csv").write_text("1")
    code, out, _ = run(project, "--dry-run")
    assert code == 0
    assert out.splitlines() == [
        "upload   new      cfs/src/main.py",
        "upload   new      cfs/src/lib/",
        "upload   new      cfs/data/in.csv",
    ]
    code, out, _ = run(project, "--dry-run")
    assert out.splitlines() == [
        "upload   new      cfs/src/main.py",
        "upload   new      cfs/src/lib/",
        "upload   new      cfs/data/in.csv",
    ]  # a dry run changed nothing


def test_sync_then_up_to_date_then_deletions_and_delete_flag(project: Project) -> None:
    (project.src_dir / "a.py").write_text("a")
    (project.src_dir / "b.py").write_text("b")
    (project.data_dir / "d.csv").write_text("d")
    code, _, err = run(project)
    assert code == 0
    assert "cfs/src: 2 up (2 B)" in err and "cfs/data: 1 up (1 B)" in err
    _, _, err = run(project, "src", "data")
    assert "cfs/src: up to date" in err and "cfs/data: up to date" in err
    (project.src_dir / "b.py").unlink()
    (project.data_dir / "d.csv").unlink()
    _, out, err = run(project, "--dry-run")
    assert out.splitlines() == ["remove   deleted  cfs/src/b.py"]
    assert "cfs/data: 1 remote file(s) not present locally were kept" in err
    _, out, _ = run(project, "--dry-run", "--delete", "data")
    assert out.splitlines() == ["remove   deleted  cfs/data/d.csv"]
    code, out, err = run(project, "--quiet")
    assert code == 0 and out == "" and err == ""


def test_result_conflict_is_always_reported(
    project: Project, sim: tuple[EmbeddedSimulator, str]
) -> None:
    s, prvkey = sim
    client = ColoniesClient(ClientConfig(host=s.host, port=s.port, prvkey=prvkey))
    storage = backends.get_backend("sim").connect(project).storage
    storage.prepare_write()
    label = f"{project.label_prefix}/result"

    def remote(data: bytes) -> None:
        sha = hashlib.sha256(data).hexdigest()
        storage.put_bytes(sha, data)
        client.add_file(
            File(
                colonyname=COLONY,
                label=label,
                name="out.txt",
                size=len(data),
                checksum=sha,
                checksumalg="SHA256",
                ref=storage.reference(sha),
            )
        )

    remote(b"v1")
    run(project, "result")
    (project.result_dir / "out.txt").write_text("edited")
    remote(b"v2")
    side = "cfs/result/out.txt.remote-" + hashlib.sha256(b"v2").hexdigest()[:8]
    _, _, err = run(project, "--dry-run", "result")
    assert "conflict cfs/result/out.txt: changed locally and remotely; yours is kept" in err
    assert f"would be saved as {side}" in err
    _, _, err = run(project, "--quiet", "result")
    assert f"saved as {side}" in err
    assert (project.root / side).read_bytes() == b"v2"
    assert (project.result_dir / "out.txt").read_text() == "edited"
