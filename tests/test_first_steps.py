"""The first steps a new user takes, exactly as printed (issue 13, item 16): the README's first
command, and the command `pollinator new` suggests, in a shell whose PATH does not have
Pollinator (the venv not activated). Before, `new` suggested a `pollinator run` that was not
on PATH, and the README made the example project inside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from test_run_local import POLLINATOR

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def shell(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLONIES_", "VIRTUAL_ENV"))}
    env.update(PATH=BARE_PATH, HOME=str(home), POLLINATOR_LOCAL_IDLE="60")
    return subprocess.run(
        ["sh", "-c", script], cwd=cwd, env=env, text=True, capture_output=True, timeout=120
    )


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^python3 -m venv \.venv .*$", text, re.MULTILINE)
    assert found, "the README's first command is gone"
    return found.group(0)


def test_the_readme_first_command_works_as_printed(tmp_path: Path) -> None:
    steps = readme_first_command().split(" && ")
    # The steps that make the venv and install into it run once per checkout; here the test's
    # own venv stands in for .venv (sourcing its activate script changes nothing in it).
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1] == ". .venv/bin/activate"
    assert steps[2].startswith("pip install ") and " -e ." in steps[2]
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    (checkout / ".venv").symlink_to(VENV)
    done = shell(" && ".join([steps[1], *steps[3:]]), checkout, home)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "data/hello.txt says: Hello world!" in done.stdout
        made = [p.parent for p in home.rglob("project.yaml")]
        assert len(made) == 1 and not list(checkout.rglob("project.yaml"))  # not in the checkout
        assert (made[0] / "cfs" / "result" / "latest" / "result.txt").is_file()
    finally:
        shell(f"{POLLINATOR} executor stop", home / "pollinator-demo", home)


def test_what_new_suggests_runs_as_printed(tmp_path: Path) -> None:
    created = shell(f"{POLLINATOR} new demo", tmp_path, tmp_path)
    assert created.returncode == 0, created.stderr
    suggested = created.stdout.split("Try it:\n", 1)[1].splitlines()
    assert suggested == [f"  cd {tmp_path / 'demo'}", f"  {POLLINATOR} run --follow"]
    done = shell(" && ".join(line.strip() for line in suggested), tmp_path, tmp_path)
    try:
        assert done.returncode == 0, done.stderr
        assert "data/hello.txt says: Hello world!" in done.stdout
        assert "Wrote result/result.txt" in done.stdout  # not a path that is gone after the run
    finally:
        shell(f"{POLLINATOR} executor stop", tmp_path / "demo", tmp_path)
    # With Pollinator on PATH (an activated venv), the plain name is what works.
    on_path = subprocess.run(
        [POLLINATOR, "new", "other"],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{Path(POLLINATOR).parent}:{BARE_PATH}"},
        text=True,
        capture_output=True,
    )
    assert on_path.stdout.rstrip().endswith("\n  pollinator run --follow")
