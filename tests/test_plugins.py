"""Plugins: entry-point discovery, the POLLINATOR_PLUGINS allow-list, errors, and every hook.

A real third-party distribution (tests/third_party_plugin) is pip-installed into a temporary
directory that is put on the path, so nothing leaks into the environment other tests use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
import pytest

from pollinator_core.colonies.models import FunctionSpec
from pollinator_core.errors import InfraError, ProjectError, UsageError
from pollinator_core.plugins import manager as plugins
from pollinator_core.plugins.backend import Backend, Connection
from pollinator_core.plugins.executors import ExecutorType
from pollinator_core.plugins.hookspecs import hookimpl
from pollinator_core.plugins.manager import Hooks, load_plugins
from pollinator_core.plugins.settings import SettingsSection, setting
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import Project, parse_project
from pollinator_core.project.scaffold import new_project
from pollinator_core.project.units import parse_duration
from pollinator_core.runs import submit
from pollinator_core.runs.submit import final_function_spec

PLUGIN_SOURCE = Path(__file__).parent / "third_party_plugin"
POLLINATOR = Path(sys.executable).parent / "pollinator"
BUILTINS = {"storage", "colonies", "local_docker", "slurm", "k8s"}  # as pyproject.toml registers


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example plugin (module + dist-info)."""
    site = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("build") / "plugin"
    shutil.copytree(PLUGIN_SOURCE, source)  # setuptools builds in the tree: keep ours clean
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site)]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True)
    assert done.returncode == 0, f"pip could not install the example plugin:\n{done.stderr}"
    return site


@pytest.fixture
def example_on_path(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(example_site))
    return example_site


def run_cli(args: list[str], site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [str(POLLINATOR), *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def demo_project() -> Project:
    return parse_project("projectname: demo\n", Path("/work/demo/project.yaml"))


# --- a real third-party distribution -------------------------------------------------------


def test_third_party_plugin_is_listed(example_site: Path) -> None:
    table = run_cli(["plugins"], example_site, POLLINATOR_PLUGINS="example")
    assert table.returncode == 0, table.stderr
    assert (
        "example (pollinator-example-plugin 0.1.0, module pollinator_example_plugin)\n"
        "  hooks: pollinator_function_spec\n"
    ) in table.stdout
    listed = run_cli(["plugins", "--json"], example_site, POLLINATOR_PLUGINS="example")
    example = {p["name"]: p for p in json.loads(listed.stdout)}["example"]
    assert example == {
        "name": "example",
        "distribution": "pollinator-example-plugin",
        "version": "0.1.0",
        "module": "pollinator_example_plugin",
        "hooks": ["pollinator_function_spec"],
        "backends": [],
        "executor_types": [],
        "storage_schemes": [],
        "settings": {},
    }


def test_third_party_hook_changes_the_dry_run(example_site: Path, tmp_path: Path) -> None:
    created = new_project(tmp_path / "demo")
    dry_run = ["-C", str(created.root), "run", "--dry-run", "--json"]
    done = run_cli(dry_run, example_site, POLLINATOR_PLUGINS="example")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spec"]["env"]["EXAMPLE_PLUGIN"] == f"seen {created.name}"
    without = run_cli(dry_run, example_site, POLLINATOR_PLUGINS="")
    assert "EXAMPLE_PLUGIN" not in json.loads(without.stdout)["spec"]["env"]


def names(hooks: Hooks) -> set[str]:
    return {p.name for p in hooks.plugin_info()}


def test_allow_list_selects_third_party_plugins_only(
    example_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert names(load_plugins(frozenset({"example"}))) == BUILTINS | {"example"}
    assert names(load_plugins(frozenset())) == BUILTINS  # the built-ins always load
    assert names(load_plugins(frozenset(), builtins=False)) == set()
    with pytest.raises(UsageError, match=r"POLLINATOR_PLUGINS names nope, .*Installed: .*example"):
        load_plugins(frozenset({"nope"}))
    with pytest.raises(UsageError, match="the built-in plugins always load"):
        load_plugins(frozenset({"local_docker"}))
    # hooks() reads the variable once per process; cache_clear() makes it read it again
    for value, expected in [("", BUILTINS), (" example , ", BUILTINS | {"example"})]:
        monkeypatch.setenv("POLLINATOR_PLUGINS", value)
        plugins.hooks.cache_clear()
        assert names(plugins.hooks()) == expected
    plugins.hooks.cache_clear()


def test_builtin_plugins_register_like_any_other() -> None:
    infos = {info.name: info for info in load_plugins().plugin_info()}
    assert set(infos) >= BUILTINS
    for name in BUILTINS:
        assert infos[name].distribution == "pollinator" and infos[name].hooks, name


def test_loading_is_lazy() -> None:
    code = (
        "import sys, pollinator_core.plugins.manager, pollinator_core.project.funcspec\n"
        "assert not [m for m in sys.modules if m.startswith(('pollinator_core.builtin',"
        " 'pollinator_local_docker'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- plugins that go wrong -----------------------------------------------------------------


def fake_distribution(site: Path, module: str, source: str) -> None:
    """An installed distribution ``<module>-dist 1.0`` whose entry point is ``module``."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pollinator]\n{module} = {module}\n")


def test_a_plugin_that_fails_to_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(tmp_path, "broken", "import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InfraError) as info:
        load_plugins(frozenset({"broken"}))
    message = str(info.value)
    assert "plugin 'broken' (module broken, distribution broken-dist 1.0) failed to load" in message
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in message
    assert "POLLINATOR_PLUGINS" in message and "\n" not in message


def test_a_misspelt_hook_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (
        "from pollinator_core.api import hookimpl\n\n"
        "@hookimpl\ndef pollinator_storag(url):\n    return None\n"
    )
    fake_distribution(tmp_path, "typo", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        InfraError,
        match=r"plugin 'typo' \(module typo, distribution typo-dist 1.0\) is invalid.*storag\b",
    ):
        load_plugins(frozenset({"typo"}))


def test_trace(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLINATOR_TRACE_HOOKS", "1")
    hooks = with_plugin(StoragePlugin())
    hooks.storage("mem://x")
    err = capsys.readouterr().err
    assert "[hook] pollinator_storage(url) -> test" in err
    assert "[hook] pollinator_storage returned 'location of mem://x'" in err


# --- every hook, through the typed wrapper -------------------------------------------------


def with_plugin(plugin: object) -> Hooks:
    hooks = load_plugins(frozenset(), builtins=False)
    hooks.pm.register(plugin, name="test")
    return hooks


class StoragePlugin:
    @hookimpl
    def pollinator_storage(self, url: str) -> str | None:
        return f"location of {url}" if url.startswith("mem://") else None


def test_hook_pollinator_storage() -> None:
    hooks = with_plugin(StoragePlugin())
    location: object = hooks.storage("mem://x")  # a stand-in for a StorageLocation
    assert location == "location of mem://x"
    assert hooks.storage("gcs://x") is None


class SpecPlugin:
    @hookimpl
    def pollinator_function_spec(self, project: Project, spec: FunctionSpec) -> None:
        if project.name == "refused":
            raise ProjectError("refused by the test plugin")
        spec.env["TEST"] = project.name


def test_hook_pollinator_function_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = with_plugin(SpecPlugin())
    monkeypatch.setattr(submit, "hooks", lambda: hooks)
    project = demo_project()
    spec = final_function_spec(project, "s", "c")
    assert spec.env["TEST"] == "demo"
    assert "TEST" not in build_function_spec(project, "s", "c").env  # still pure
    with pytest.raises(ProjectError, match="refused"):
        final_function_spec(attrs.evolve(project, name="refused"), "s", "c")


class FakeBackend(Backend):
    def __init__(self, name: str) -> None:
        self.name = name

    def connect(
        self, project: Project, options: Mapping[str, Mapping[str, str]] | None = None
    ) -> Connection:
        raise NotImplementedError("never connected in these tests")


class BackendPlugin:
    @hookimpl
    def pollinator_register_backends(self, register: Callable[[Backend], None]) -> None:
        register(FakeBackend("cloud"))


def test_hook_pollinator_register_backends() -> None:
    hooks = with_plugin(BackendPlugin())
    assert list(hooks.backends()) == ["cloud"]
    hooks.pm.register(BackendPlugin(), name="again")
    with pytest.raises(InfraError, match="Two plugins register the backend 'cloud'"):
        hooks.backends()


class ExecutorPlugin:
    @hookimpl
    def pollinator_register_executors(self, register: Callable[[ExecutorType], None]) -> None:
        register(ExecutorType("fake", lambda settings: ("a fake runtime", settings), "fake"))


def test_hook_pollinator_register_executors() -> None:
    hooks = with_plugin(ExecutorPlugin())
    kinds = hooks.executor_types()
    built: object = kinds["fake"].factory("its settings")
    assert list(kinds) == ["fake"] and built == ("a fake runtime", "its settings")
    hooks.pm.register(ExecutorPlugin(), name="again")
    with pytest.raises(InfraError, match="Two plugins register the executor type 'fake'"):
        hooks.executor_types()


class WrongTypePlugin:
    @hookimpl
    def pollinator_register_executors(self, register: Callable[[object], None]) -> None:
        register(("fake", lambda: None))  # the hook's old shape


def test_a_wrong_registration_is_one_paragraph_naming_the_plugin() -> None:
    hooks = with_plugin(WrongTypePlugin())
    with pytest.raises(InfraError) as info:
        hooks.executor_types()
    message = str(info.value)
    assert message.startswith("The plugin 'test' (registered in-process) registered tuple")
    assert "which takes a ExecutorType" in message and "\n" not in message


@attrs.frozen
class FakeSettings:
    queue: str = setting("batch", "The queue jobs go to.", choices=("batch", "express"))
    retries: int = setting(2, "How often a refused submission is tried again.")
    timeout: int = setting(60, "Seconds for a scheduler command.", parse=parse_duration)
    modules: tuple[str, ...] = setting((), "Environment modules to load.")
    exclusive: bool = setting(False, "Whole nodes only.")


class SettingsPlugin:
    @hookimpl
    def pollinator_register_settings(
        self, register: Callable[[SettingsSection[FakeSettings]], None]
    ) -> None:
        register(SettingsSection("fake", FakeSettings, "A fake scheduler."))


def test_hook_pollinator_register_settings(tmp_path: Path) -> None:
    hooks = with_plugin(SettingsPlugin())
    section = hooks.settings()["fake"]
    assert section.load(env={}) == FakeSettings()
    text = "projectname: d\nfake:\n  queue: express\n  timeout: 2m\n  modules: [gcc, mpi]\n"
    project = parse_project(text, tmp_path / "project.yaml", sections=hooks.settings())
    loaded = section.load(project.sections["fake"], env={})
    assert loaded == FakeSettings("express", 2, 120, ("gcc", "mpi"), False)
    # the environment beats project.yaml, options beat both
    env = {"POLLINATOR_FAKE_RETRIES": "5", "POLLINATOR_FAKE_EXCLUSIVE": "true"}
    loaded = section.load(project.sections["fake"], {"queue": "batch"}, env=env)
    assert (loaded.queue, loaded.retries, loaded.exclusive) == ("batch", 5, True)
    assert section.load(None, {"modules": "a, b"}, env={}).modules == ("a", "b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fake:\n  queu: x\n", "line 3: fake.queu: unknown setting 'queu' of fake. Did you mean"),
        ("fake:\n  queue: slow\n", "line 3: fake.queue: must be one of batch, express, got"),
        ("fake:\n  retries: two\n", "line 3: fake.retries: must be a whole number, got 'two'"),
        ("fake:\n  exclusive: 1\n", "line 3: fake.exclusive: must be true or false, got 1"),
        ("fake:\n  timeout: soon\n", "line 3: fake.timeout:"),
    ],
)
def test_settings_are_checked_like_project_yaml(tmp_path: Path, text: str, expected: str) -> None:
    hooks = with_plugin(SettingsPlugin())
    path = tmp_path / "project.yaml"
    project = parse_project("projectname: d\n" + text, path, sections=hooks.settings())
    with pytest.raises(UsageError) as info:
        hooks.settings()["fake"].load(project.sections["fake"], env={})
    assert str(info.value).startswith(f"{path} {expected}")


def test_settings_from_options_and_environment_are_checked() -> None:
    section = with_plugin(SettingsPlugin()).settings()["fake"]
    with pytest.raises(UsageError, match=r"^\$POLLINATOR_FAKE_RETRIES: must be a whole number"):
        section.load(env={"POLLINATOR_FAKE_RETRIES": "many"})
    with pytest.raises(UsageError, match=r"^option fake.queue: must be one of batch, express"):
        section.load(None, {"queue": "x"}, env={})


class SchemePlugin:
    @hookimpl
    def pollinator_storage_schemes(self) -> list[str]:
        return ["gcs"]


def test_hook_pollinator_storage_schemes() -> None:
    hooks = with_plugin(SchemePlugin())
    assert hooks.storage_schemes() == {"test": ["gcs"]}
    assert hooks.plugin_info()[0].storage_schemes == ("gcs",)


def test_plugin_info_of_an_in_process_plugin() -> None:
    (info,) = with_plugin(ExecutorPlugin()).plugin_info()
    assert (info.name, info.distribution, info.version) == ("test", "", "")
    assert info.hooks == ("pollinator_register_executors",)
    assert info.executor_types == ("fake",)
