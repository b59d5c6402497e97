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
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from pollinator_core.colonies.models import FunctionSpec
from pollinator_core.errors import InfraError, ProjectError, UsageError
from pollinator_core.plugins import manager as plugins
from pollinator_core.plugins.hookspecs import hookimpl
from pollinator_core.plugins.manager import Hooks, load_plugins
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import Project, parse_project
from pollinator_core.project.scaffold import new_project
from pollinator_core.runs import submit
from pollinator_core.runs.submit import final_function_spec

PLUGIN_SOURCE = Path(__file__).parent / "third_party_plugin"
POLLINATOR = Path(sys.executable).parent / "pollinator"
BUILTINS = {"storage", "colonies", "local_docker"}  # as pyproject.toml registers them


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
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "HOOKS"]
    assert row.split() == [
        "example",
        "pollinator-example-plugin",
        "0.1.0",
        "pollinator_function_spec",
    ]
    listed = run_cli(["plugins", "--json"], example_site, POLLINATOR_PLUGINS="example")
    assert json.loads(listed.stdout) == [
        {
            "name": "example",
            "distribution": "pollinator-example-plugin",
            "version": "0.1.0",
            "module": "pollinator_example_plugin",
            "hooks": ["pollinator_function_spec"],
        }
    ]


def test_third_party_hook_changes_the_dry_run(example_site: Path, tmp_path: Path) -> None:
    created = new_project(tmp_path / "demo")
    done = run_cli(
        ["-C", str(created.root), "run", "--dry-run"], example_site, POLLINATOR_PLUGINS="example"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["env"]["EXAMPLE_PLUGIN"] == f"seen {created.name}"
    without = run_cli(
        ["-C", str(created.root), "run", "--dry-run"], example_site, POLLINATOR_PLUGINS=""
    )
    assert "EXAMPLE_PLUGIN" not in json.loads(without.stdout)["env"]


def test_allow_list(example_on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [p.name for p in load_plugins(frozenset({"example"})).plugin_info()] == ["example"]
    assert load_plugins(frozenset()).plugin_info() == []
    with pytest.raises(UsageError, match=r"POLLINATOR_PLUGINS names nope, .*Installed: .*example"):
        load_plugins(frozenset({"nope"}))
    # hooks() reads the variable once per process; cache_clear() makes it read it again
    for value, expected in [("", []), (" example , ", ["example"])]:
        monkeypatch.setenv("POLLINATOR_PLUGINS", value)
        plugins.hooks.cache_clear()
        assert [p.name for p in plugins.hooks().plugin_info()] == expected
    plugins.hooks.cache_clear()


def test_builtin_plugins_register_like_any_other() -> None:
    infos = {info.name: info for info in load_plugins().plugin_info()}
    assert set(infos) >= BUILTINS
    for name in BUILTINS:
        assert infos[name].distribution == "pollinator" and infos[name].hooks, name


def test_loading_is_lazy() -> None:
    code = (
        "import sys, pollinator_core.plugins.manager, pollinator_core.project.funcspec\n"
        "assert not [m for m in sys.modules if m.endswith(('storage_plugin', 'colonies_backend',"
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
        "from pollinator_core.plugins.hookspecs import hookimpl\n\n"
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
    hooks = load_plugins(frozenset())
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


@attrs.frozen
class FakeBackend:
    name: str


class BackendPlugin:
    @hookimpl
    def pollinator_register_backends(self, register: Callable[[FakeBackend], None]) -> None:
        register(FakeBackend("cloud"))


def test_hook_pollinator_register_backends() -> None:
    hooks = with_plugin(BackendPlugin())
    backends: dict[str, object] = dict(hooks.backends())
    assert backends == {"cloud": FakeBackend("cloud")}
    hooks.pm.register(BackendPlugin(), name="again")
    with pytest.raises(InfraError, match="Two plugins register the backend 'cloud'"):
        hooks.backends()


class ExecutorPlugin:
    @hookimpl
    def pollinator_register_executors(
        self, register: Callable[[str, Callable[[], str]], None]
    ) -> None:
        register("fake", lambda: "a fake execution backend")


def test_hook_pollinator_register_executors() -> None:
    hooks = with_plugin(ExecutorPlugin())
    factories = hooks.executor_factories()
    built: object = factories["fake"]()
    assert list(factories) == ["fake"] and built == "a fake execution backend"
    hooks.pm.register(ExecutorPlugin(), name="again")
    with pytest.raises(InfraError, match="Two plugins register the executor type 'fake'"):
        hooks.executor_factories()


def test_plugin_info_of_an_in_process_plugin() -> None:
    (info,) = with_plugin(ExecutorPlugin()).plugin_info()
    assert (info.name, info.distribution, info.version) == ("test", "", "")
    assert info.hooks == ("pollinator_register_executors",)
