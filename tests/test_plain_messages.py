"""Messages that said the wrong thing, or a traceback (issue 13, items 9, 10 and 11)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)
from test_run_colonies import colonies_env
from test_run_local import POLLINATOR, LocalProject, submitted_id


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    yield made
    made.cli("executor", "stop")


def test_results_says_which_file_conflicted_and_where_the_run_version_went(
    local: LocalProject,
) -> None:
    done = local.cli(*local.run_args())
    pid = submitted_id(done.stderr)
    mine = local.root / "cfs" / "result" / pid / "result.txt"
    mine.write_text("my own edit\n")
    again = local.cli("results", pid[:12])
    assert again.returncode == 0, again.stderr
    where = f"cfs/result/{pid}"
    saved = [p.name for p in mine.parent.iterdir() if p.name.startswith("result.txt.remote-")]
    assert len(saved) == 1 and mine.read_text() == "my own edit\n"
    assert f"results: {where}/ (0 new files), process {pid[:12]} SUCCESS" in again.stderr
    assert (
        f"conflict {where}/result.txt: you changed it; yours is kept, the run's version is saved "
        f"as {where}/{saved[0]}"
    ) in again.stderr


def test_a_local_run_does_not_claim_to_run_on_docker(local: LocalProject) -> None:
    done = local.cli(*local.run_args())
    assert done.returncode == 0
    assert "pollinator: local backend: jobs run as host processes" in done.stderr
    assert "pollinator: running\n" in done.stderr and "local-docker" not in done.stderr


def test_ps_and_run_say_what_is_misconfigured(
    sim_colony: SimColony,  # noqa: F811
    tmp_path: Path,
) -> None:
    project = LocalProject(tmp_path / "demo", "process", "")
    project.env = colonies_env(sim_colony, tmp_path / "store")
    submitted = project.cli("run", "--backend", "colonies")  # no executor: it stays WAITING
    assert submitted.returncode == 0, submitted.stderr
    listed = json.loads(project.cli("ps", "--json").stdout)
    assert [r["state"] for r in listed] == ["WAITING"]

    del project.env["COLONIES_PRVKEY"]
    broken = project.cli("ps")
    assert broken.returncode == 3  # not 0, and not "unreachable"
    assert "UNKNOWN" in broken.stdout and "unreachable" not in broken.stdout + broken.stderr
    assert "Error: runs on the colonies backend: COLONIES_PRVKEY is not set" in broken.stderr

    project.env = colonies_env(sim_colony, tmp_path / "store")
    project.env["COLONIES_COLONY_NAME"] = "no-such-colony"
    wrong = project.cli("run", "--backend", "colonies")
    assert wrong.returncode == 3
    error = wrong.stderr[wrong.stderr.index("Error: ") :]
    assert error.startswith("Error: The Colonies server has no colony named 'no-such-colony'.")
    assert "msg" not in error and "key in use signs as" not in error  # no RPC name, no key blame


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POLLINATOR, *args], cwd=cwd, text=True, capture_output=True, timeout=30)


def test_a_name_too_long_for_the_file_system_is_one_paragraph(tmp_path: Path) -> None:
    done = cli("new", "x" * 300, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: Cannot create a project in a directory named xxx")
    assert "(300 bytes): a file or directory name may have at most 255" in done.stderr
    assert "Traceback" not in done.stderr


def test_simulator_serve_refuses_a_database_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    not_db = cli("simulator", "serve", "--port", "0", "--db", "notes.txt", cwd=tmp_path)
    assert not_db.returncode == 2
    assert "--db notes.txt is not a simulator database (not an SQLite file)" in not_db.stderr
    nowhere = cli("simulator", "serve", "--port", "0", "--db", "no/such/dir/x.db", cwd=tmp_path)
    assert nowhere.returncode == 2
    assert "cannot be created: " in nowhere.stderr and "is not a directory" in nowhere.stderr
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        ro = cli("simulator", "serve", "--port", "0", "--db", "ro/x.db", cwd=tmp_path)
        assert ro.returncode == 2
    for done in (not_db, nowhere):
        assert "Traceback" not in done.stderr
