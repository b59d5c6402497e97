"""A project whose cfs/result or .pollinator cannot be written (issue 13, item 2): run -f and
results printed a 30-line traceback and exited 1, "the job failed", although it succeeded. Now:
one paragraph, exit status 3 (a local storage problem), and the results stay on the server for
`pollinator results` once the directory is writable again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_local import POLLINATOR, LocalProject, submitted_id


@pytest.fixture
def project(tmp_path: Path) -> Iterator[LocalProject]:
    made = LocalProject(tmp_path / "demo", "process", "")
    yield made
    made.cli("executor", "stop")


def read_only(
    project: LocalProject, directory: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The CLI with ``directory`` read-only: a read-only bind mount in a mount namespace of its
    own as root (root writes through file modes), the file mode otherwise."""
    argv = [POLLINATOR, *args]
    if os.geteuid() == 0:
        mount = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "sh", "-c", mount, "sh", str(directory), *argv]
    else:
        directory.chmod(0o555)
    try:
        return subprocess.run(
            argv, cwd=project.root, env=project.env, text=True, capture_output=True, timeout=60
        )
    finally:
        directory.chmod(0o755)


def test_a_read_only_result_directory_is_one_paragraph_exit_3_and_results_come_later(
    project: LocalProject,
) -> None:
    result_dir = project.root / "cfs" / "result"
    done = read_only(project, result_dir, *project.run_args())
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    pid = submitted_id(done.stderr)
    short = pid[:12]
    assert f"pollinator: process {short} succeeded" in done.stderr
    error = done.stderr[done.stderr.index("Error: ") :]
    assert error.count("\n") == 1  # one paragraph
    assert f"Cannot write the results of process {short} into cfs/result/{pid}/" in error
    assert (
        f"They stay on the server: make cfs/result writable and run `pollinator results {short}`"
        in error
    )

    again = read_only(project, result_dir, "results", short)
    assert again.returncode == 3
    assert "Traceback" not in again.stderr and "They stay on the server" in again.stderr

    fetched = project.cli("results", short)
    assert fetched.returncode == 0, fetched.stderr
    assert (result_dir / pid / "result.txt").read_text().startswith("Hello world!")


def test_a_read_only_state_directory_stops_the_run_before_it_is_submitted(
    project: LocalProject,
) -> None:
    state = project.root / ".pollinator"
    state.mkdir()
    done = read_only(project, state, *project.run_args())
    assert done.returncode == 3
    assert done.stderr.startswith(f"Error: Cannot write {state}: ")
    assert "make it writable" in done.stderr and done.stderr.count("\n") == 1
    assert "submitted" not in done.stderr
