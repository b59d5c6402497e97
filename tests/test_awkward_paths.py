"""Projects in directories whose names a shell would split or interpret: spaces, quotes, ``;``,
``$``, backquotes and non-ASCII letters. Every path reaches the job as one path, and nothing in
a name ever runs (issue 13, item 1: in ``semi;echo INJECTED`` the injected command ran and the
run reported success although main.py never did)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run_local import RUNTIMES, LocalProject, submitted_id

from pollinator_core.execution.job import Job, Mount
from pollinator_core.execution.script import PathRewriter, link_dir, shell_safe

AWKWARD = [
    "my proj ü",
    "semi;echo INJECTED",
    'it\'s "quoted"',
    "$HOME and `id` and $(id)",
]


@pytest.mark.parametrize("name", AWKWARD)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_example_runs_in_an_awkward_directory(
    runtime: str, name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    image = request.getfixturevalue("docker_engine").image if runtime == "docker" else ""
    project = LocalProject(tmp_path / name / "inner dir", runtime, image)
    try:
        done = project.cli(*project.run_args())
    finally:
        project.cli("executor", "stop")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INJECTED" not in done.stdout.replace(str(project.root), "")
    assert "data/hello.txt says: Hello world!" in done.stdout
    pid = submitted_id(done.stderr)
    result = project.root / "cfs" / "result" / pid / "result.txt"
    assert result.read_text().startswith("Hello world!")


def test_a_host_path_that_is_not_shell_safe_is_never_spliced_into_shell_text() -> None:
    assert shell_safe("/tmp/pollinator-0/cfs-0123abcd")
    for name in AWKWARD:
        assert not shell_safe(f"/tmp/{name}")
        rewrite = PathRewriter((Mount(f"/tmp/{name}", "/cfs"),))
        [(link, target)] = rewrite.links.items()
        assert target == f"/tmp/{name}" and link.parent == link_dir()
        assert rewrite("cd '/cfs/p' && python3 /cfs/p/main.py") == (
            f"cd '{link}/p' && python3 {link}/p/main.py"
        )
    assert not PathRewriter((Mount("/tmp/plain_dir-1", "/cfs"),)).links


def test_links_are_made_in_a_private_directory_and_removed(tmp_path: Path) -> None:
    target = tmp_path / "semi;echo INJECTED"
    target.mkdir()
    rewrite = PathRewriter((Mount(str(target), "/cfs"),))
    rewrite.make_links()
    [link] = rewrite.links
    assert link.resolve() == target.resolve()
    assert link_dir().stat().st_mode & 0o777 == 0o700
    rewrite.remove_links()
    assert not link.exists()


def test_the_dry_run_shows_the_link_a_process_job_reaches_its_directory_through() -> None:
    from pollinator_local_docker.process_runtime import render

    job = Job(
        "p1",
        "",
        "python3 /cfs/p/src/main.py",
        env={"PROJECT_DIR": "/cfs/p"},
        mounts=(Mount("/tmp/semi;echo INJECTED", "/cfs"),),
        workdir="/cfs/p/src",
    )
    text = render(job)["command.sh"]
    assert f"ln -sfn '/tmp/semi;echo INJECTED' {link_dir()}/cfs-" in text
    assert "INJECTED" not in text.split("\n", 1)[1]


def test_the_dry_run_docker_command_quotes_a_mount_source_with_a_comma() -> None:
    import shlex

    from pollinator_local_docker.docker_runtime import render

    job = Job("p1", "img", "true", mounts=(Mount('/tmp/a,b "c"', "/cfs"),))
    argv = shlex.split(render(job)["docker-run.sh"], comments=True)
    mount = argv[argv.index("--mount") + 1]
    assert mount == 'type=bind,"source=/tmp/a,b ""c""",target=/cfs'
