"""The command line: lazy commands, errors without tracebacks, new, run --dry-run, plugins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from pollinator_core import __version__
from pollinator_core.cli import run as run_command
from pollinator_core.cli.main import COMMANDS, cli, main
from pollinator_core.errors import ProjectError
from pollinator_core.plugins import manager as plugins
from pollinator_core.project.loader import load_project

GOLDEN_NEW = Path(__file__).parent / "golden" / "funcspec_new.json"
POLLINATOR = Path(sys.executable).parent / "pollinator"
HEAVY = {"docker", "kubernetes", "s3fs", "aiohttp", "botocore", "rich", "fsspec", "yaml", "pluggy"}


@pytest.fixture(autouse=True)
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Specs must not depend on what is installed: no plugin adjusts them in these tests."""
    monkeypatch.setenv("POLLINATOR_PLUGINS", "")
    monkeypatch.delenv("COLONIES_COLONY_NAME", raising=False)
    plugins.hooks.cache_clear()
    yield
    plugins.hooks.cache_clear()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def expected_spec(name: str) -> str:
    return (
        GOLDEN_NEW.read_text()
        .replace("/pollinator/demo", f"/pollinator/{name}")
        .replace('"label": "demo"', f'"label": "{name}"')
    )


def imported_modules(code: str, **env: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


# --- the group -----------------------------------------------------------------------------


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, (_, short_help) in COMMANDS.items():
        assert name in result.output and short_help in result.output
    assert "_POLLINATOR_COMPLETE=bash_source pollinator" in result.output


def test_help_imports_nothing_heavy() -> None:
    code = "import sys; from pollinator_core.cli.main import main; main(['--help'])"
    modules = imported_modules(code)
    assert "pollinator_core.cli.main" in modules
    assert not {m.split(".")[0] for m in modules} & HEAVY
    assert not [m for m in modules if m.startswith("pollinator_core.cli.context.")]


def test_completion_imports_no_command() -> None:
    code = "from pollinator_core.cli.main import main; main()"
    env = {"_POLLINATOR_COMPLETE": "bash_complete", "COMP_WORDS": "pollinator r", "COMP_CWORD": "1"}
    modules = imported_modules(code, **env)
    assert not [m for m in modules if m.startswith("pollinator_core.cli.context.")]


def test_completion(runner: CliRunner) -> None:
    env = {"_POLLINATOR_COMPLETE": "bash_complete", "COMP_WORDS": "pollinator ru"}
    env["COMP_CWORD"] = "1"
    result = runner.invoke(cli, [], prog_name="pollinator", env=env)
    assert result.output.split() == ["plain,run"]


def test_every_registered_command_loads_and_has_help(runner: CliRunner) -> None:
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert isinstance(command, click.Command), name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, name


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.output.strip() == f"pollinator, version {__version__}"


def test_unknown_command_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rnu"]) == 2
    assert "No such command 'rnu'. Did you mean 'run'?" in capsys.readouterr().err


# --- errors --------------------------------------------------------------------------------


def test_expected_errors_are_one_line_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: No project.yaml in ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_vv_adds_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-vv", "run", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "Error: No project.yaml" in err
    main(["run", "--help"])  # back to warnings only for the other tests


def test_ctrl_c_exits_130(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.invoke(cli, ["new", "."])

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "final_function_spec", interrupted)
    assert main(["run", "--dry-run"]) == 130
    assert capsys.readouterr().err.strip() == "Interrupted."


def test_bugs_are_not_hidden(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(cli, ["new", "."])

    def buggy(*args: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(run_command, "final_function_spec", buggy)
    with pytest.raises(ZeroDivisionError):
        main(["run", "--dry-run"])


# --- new and run --dry-run -----------------------------------------------------------------


def test_new_then_dry_run_matches_the_golden_spec(runner: CliRunner, tmp_path: Path) -> None:
    created = runner.invoke(cli, ["new", "demo"])
    assert created.exit_code == 0, created.output
    project = load_project(directory=tmp_path / "demo")
    assert f"Project {project.name} is ready" in created.output
    assert "cd " in created.output and "pollinator run" in created.output
    for path in ["project.yaml", ".pollinatorignore", "cfs/src/main.py", "cfs/data/hello.txt"]:
        assert (tmp_path / "demo" / path).is_file(), path
    assert (tmp_path / "demo" / "cfs" / "result").is_dir()
    assert (tmp_path / "demo" / "cfs" / "data" / "hello.txt").read_text() == "Hello world!\n"

    result = runner.invoke(cli, ["-C", "demo", "run", "--dry-run", "--backend", "colonies"])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_spec(project.name)
    both = runner.invoke(cli, ["-C", "demo", "run", "--dry-run", "--json"])
    assert json.loads(both.stdout)["spec"] == json.loads(expected_spec(project.name))


def test_generated_project_yaml(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(cli, ["new", "My Project!"])
    text = (tmp_path / "My Project!" / "project.yaml").read_text()
    data = yaml.safe_load(text)
    assert "backend" not in data  # the environment decides: a server configured, or local
    assert data["conditions"]["executorNames"] == []
    assert data["environment"]["init-cmd"] == ""
    assert "tunnel" in data and data["tunnel"] is None
    assert text.count("\n# ") >= 10  # commented for a reader
    name = data["projectname"]
    assert name.startswith("my-project-")
    assert re.fullmatch(r"my-project-[a-z]+-[a-z]+-[0-9a-f]{4}", name), name


def test_new_with_executor_names(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["new", "-n", "lumi-1", "--executorname", "lumi-2", "p"])
    assert result.exit_code == 0, result.output
    project = load_project(directory=tmp_path / "p")
    assert project.conditions.executor_names == ("lumi-1", "lumi-2")
    assert project.environment.init_cmd == "pip3 install numpy"  # the original's default
    assert project.backend is None


def test_new_keeps_existing_files_unless_forced(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "cfs" / "src").mkdir(parents=True)
    (tmp_path / "cfs" / "src" / "main.py").write_text("print('mine')\n")
    result = runner.invoke(cli, ["new"])
    assert result.exit_code == 0, result.output
    assert "kept     cfs/src/main.py (exists; --force overwrites)" in result.output
    assert "created  project.yaml" in result.output
    assert (tmp_path / "cfs" / "src" / "main.py").read_text() == "print('mine')\n"
    assert "cd " not in result.output  # already there

    again = runner.invoke(cli, ["new"])
    assert "Kept the existing project.yaml" in again.output and "created" not in again.output

    forced = runner.invoke(cli, ["new", "--force"])
    assert "created  cfs/src/main.py" in forced.output
    assert "PROJECT_DIR" in (tmp_path / "cfs" / "src" / "main.py").read_text()


def test_new_refuses_a_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    result = runner.invoke(cli, ["new", "afile"])
    assert result.exit_code == 2 and "afile" in result.output


def test_dry_run_colony_from_the_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(cli, ["new", "."])
    monkeypatch.setenv("COLONIES_COLONY_NAME", "dev")
    result = runner.invoke(cli, ["run", "--dry-run", "--json"])
    assert json.loads(result.stdout)["spec"]["conditions"]["colonyname"] == "dev"


def test_dry_run_found_from_a_subdirectory(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(cli, ["new", "."])
    os.chdir(tmp_path / "cfs" / "src")
    result = runner.invoke(cli, ["run", "--dry-run", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["spec"]["funcname"] == "execute"


def test_plugins_command_lists_the_builtins_whatever_the_allow_list(runner: CliRunner) -> None:
    listed = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    assert {p["name"] for p in listed} == {"colonies", "local_docker", "slurm", "storage", "k8s"}
    local = {p["name"]: p for p in listed}["local_docker"]
    assert local["executor_types"] == ["docker"] and local["backends"] == ["local"]
    assert [row[0] for row in local["settings"]["local"]] == ["runtime", "kill_grace"]


def test_project_errors_reach_the_user_whole(
    runner: CliRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "project.yaml").write_text("projectname: d\nconditions:\n  executornames: [a]\n")
    assert main(["run", "--dry-run"]) == ProjectError.exit_code
    err = capsys.readouterr().err
    assert "line 3: unknown key 'executornames' in conditions. Did you mean 'executorNames'?" in err


# --- the real thing, in a shell ------------------------------------------------------------


def test_new_and_dry_run_in_a_real_shell(tmp_path: Path) -> None:
    script = (
        f"{POLLINATOR} new demo >/dev/null && cd demo && "
        f"{POLLINATOR} run --dry-run --backend colonies"
    )
    env = {**os.environ, "POLLINATOR_PLUGINS": ""}
    env.pop("COLONIES_COLONY_NAME", None)
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    name = load_project(directory=tmp_path / "demo").name
    assert done.stdout == expected_spec(name)
    assert done.stderr == ""


def test_generated_main_runs_as_a_plain_process(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    subprocess.run([str(POLLINATOR), "new", "p"], cwd=tmp_path, check=True, capture_output=True)
    cfs = tmp_path / "p" / "cfs"
    (cfs / "result").rmdir()  # main.py must create it
    env = {**os.environ, "PROJECT_DIR": str(cfs), "COLONIES_PROCESS_ID": "pid-1"}
    done = subprocess.run(
        [sys.executable, str(cfs / "src" / "main.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"PROJECT_DIR: {cfs}" in done.stdout and "COLONIES_PROCESS_ID: pid-1" in done.stdout
    assert "Hello world!" in (cfs / "result" / "result.txt").read_text()
