"""project.yaml: found like git finds a repository, read strictly, every error located."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pollinator_core.errors import ProjectError
from pollinator_core.project.loader import (
    _SECTIONS,
    GpuRequest,
    Project,
    ProjectConditions,
    ProjectEnvironment,
    load_project,
    parse_project,
)

FILE = Path("/work/demo/project.yaml")

# The file the original `pollinator new -n my-executor` wrote (yaml.v2 Marshal).
ORIGINAL = """\
projectname: 5d7a9f0e9d1c4b8aa1c3e0f1b2d3c4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5
conditions:
  executorNames:
  - my-executor
  nodes: 1
  processesPerNode: 1
  cpu: 1000m
  mem: 1000Mi
  walltime: 600
  gpu:
    count: 0
    name: ""
environment:
  docker: python:3.12-rc-bookworm
  rebuildImage: false
  init-cmd: pip3 install numpy
  cmd: python3
  source: main.py
tunnel: null
"""

EVERY_KEY = """\
projectname: full
backend: slurm
priority: 7
maxretries: 1
maxwaittime: 1h
label: nightly
env:
  OMP_NUM_THREADS: 4
  MODE: "fast"
local:
  runtime: process
conditions:
  executorNames: [lumi-1, lumi-2]
  nodes: 2
  processesPerNode: 4
  cpu: 1.5
  mem: 4Gi
  walltime: 1h30m
  gpu: {count: 8, name: a100}
environment:
  docker: ghcr.io/me/img:1
  rebuildImage: true
  init-cmd: ""
  cmd: python3 -u
  source: jobs/train.py
tunnel: null
"""


def parse(text: str) -> Project:
    # `local:` is the built-in local plugin's settings section (checked by the plugin layer).
    return parse_project(textwrap.dedent(text), FILE, sections={"local"})


def error(text: str) -> str:
    with pytest.raises(ProjectError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message  # one paragraph
    assert info.value.exit_code == 2
    return message


def test_original_file_loads_with_the_original_defaults() -> None:
    project = parse(ORIGINAL)
    assert project.name.startswith("5d7a9f")
    assert project.root == FILE.parent
    assert project.conditions == ProjectConditions(
        executor_names=("my-executor",),
        nodes=1,
        processes_per_node=1,
        cpu_millis=1000,
        mem_bytes=1000 * 1024**2,
        walltime=600,
        gpu=GpuRequest(count=0, name=""),
    )
    assert project.environment == ProjectEnvironment(
        docker="python:3.12-rc-bookworm",
        rebuild_image=False,
        init_cmd="pip3 install numpy",
        cmd="python3",
        source="main.py",
    )
    assert (project.priority, project.maxretries, project.maxwaittime) == (5, 3, -1)
    assert (project.label, project.backend, dict(project.env)) == (None, None, {})


def test_only_projectname_is_required_and_defaults_match_the_original() -> None:
    project = parse("projectname: demo\n")
    assert project.conditions == ProjectConditions()
    assert project.environment == ProjectEnvironment()
    assert project.conditions.mem_bytes == 1000 * 1024**2
    assert project.environment.init_cmd == "pip3 install numpy"
    assert project.sections == {}
    assert project.maxqueuetime == 3600


def test_every_key() -> None:
    project = parse(EVERY_KEY)
    assert project.backend == "slurm"
    assert (project.priority, project.maxretries, project.maxwaittime) == (7, 1, 3600)
    assert project.label == "nightly"
    assert project.env == {"OMP_NUM_THREADS": "4", "MODE": "fast"}
    assert dict(project.sections["local"].values) == {"runtime": "process"}
    c = project.conditions
    assert c.executor_names == ("lumi-1", "lumi-2")
    assert (c.nodes, c.processes_per_node, c.cpu_millis) == (2, 4, 1500)
    assert (c.mem_bytes, c.walltime, c.gpu) == (4 * 1024**3, 5400, GpuRequest(8, "a100"))
    e = project.environment
    assert (e.docker, e.rebuild_image, e.init_cmd) == ("ghcr.io/me/img:1", True, "")
    assert (e.cmd, e.source) == ("python3 -u", "jobs/train.py")


def test_paths_and_labels() -> None:
    project = parse("projectname: demo\n")
    root = FILE.parent
    assert project.path == FILE
    assert project.cfs_dir == root / "cfs"
    assert project.src_dir == root / "cfs" / "src"
    assert project.data_dir == root / "cfs" / "data"
    assert project.result_dir == root / "cfs" / "result"
    assert project.state_dir == root / ".pollinator"
    assert project.label_prefix == "/pollinator/demo"


def test_empty_sections_and_null_optionals_mean_defaults() -> None:
    project = parse(
        """\
        projectname: demo
        conditions:
        environment:
          init-cmd:
          source:
        label: null
        backend: null
        env: null
        """
    )
    assert project.conditions == ProjectConditions()
    assert (project.environment.init_cmd, project.environment.source) == ("", "")
    assert (project.label, project.backend) == (None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys, with did-you-mean
        ("projectname: d\nconditions:\n  executornames: [a]\n",
         ["line 3", "'executornames'", "Did you mean 'executorNames'?"]),
        ("projectname: d\nconditions:\n  procesesPerNode: 2\n",
         ["line 3", "Did you mean 'processesPerNode'?"]),
        ("projectname: d\nenvironment:\n  init_cmd: x\n", ["line 3", "Did you mean 'init-cmd'?"]),
        ("projectname: d\nprojectName2: x\n", ["line 2", "Did you mean 'projectname'?"]),
        ("projectname: d\nnodes: 2\n", ["line 2", "belongs under 'conditions.nodes'"]),
        ("projectname: d\nzzz: 1\n", ["line 2", "unknown key 'zzz' at the top level",
                                      "Known keys here: projectname"]),
        ("projectname: d\nconditions:\n  gpu:\n    cnt: 1\n",
         ["line 4", "in conditions.gpu", "Did you mean 'count'?"]),
        # wrong types and values
        ("projectname: d\nconditions:\n  nodes: 0\n",
         ["line 3", "conditions.nodes is 0", "at least 1", "set it to 1 or more"]),
        ("projectname: d\nconditions:\n  processesPerNode: -2\n",
         ["line 3", "conditions.processesPerNode is -2"]),
        ("projectname: d\nconditions:\n  nodes: two\n",
         ["line 3", "conditions.nodes must be a whole number", "'two'", "`nodes: 1`"]),
        ("projectname: d\nconditions:\n  nodes: 1.5\n", ["line 3", "whole number"]),
        ("projectname: d\nconditions:\n  nodes: true\n", ["line 3", "whole number"]),
        ("projectname: d\nconditions:\n  gpu:\n    count: -1\n",
         ["line 4", "conditions.gpu.count is -1", "at least 0"]),
        ("projectname: d\nconditions:\n  cpu: lots\n",
         ["line 3", "conditions.cpu", "'lots'", "millicores ('500m')"]),
        ("projectname: d\nconditions:\n  cpu: 0m\n", ["line 3", "at least 10m"]),
        ("projectname: d\nconditions:\n  mem: 4GB\n",
         ["line 3", "conditions.mem", "'4GB'", "'512Mi'"]),
        ("projectname: d\nconditions:\n  walltime: 10 minutes\n",
         ["line 3", "conditions.walltime", "'1h30m'"]),
        ("projectname: d\nconditions:\n  walltime: 0\n", ["line 3", "more than zero"]),
        ("projectname: d\nconditions:\n  executorNames: foo\n",
         ["line 3", "must be a list", "`executorNames: [name]`"]),
        ("projectname: d\nconditions:\n  executorNames:\n  - a\n  - ''\n",
         ["line 5", "conditions.executorNames[1]"]),
        ("projectname: d\nconditions: 3\n", ["line 2", "conditions must be a mapping"]),
        ("projectname: d\nenvironment:\n  cmd: ''\n",
         ["line 3", "environment.cmd must not be empty", "'python3'"]),
        ("projectname: d\nenvironment:\n  cmd:\n", ["line 3", "environment.cmd has no value"]),
        ("projectname: d\nenvironment:\n  docker: 3\n",
         ["line 3", "environment.docker must be text", 'Quote it: `docker: "3"`']),
        ("projectname: d\nenvironment:\n  rebuildImage: 'yes'\n",
         ["line 3", "environment.rebuildImage must be true or false", "without quotes"]),
        ("projectname: d\nenvironment:\n  source: /etc/passwd\n",
         ["line 3", "environment.source", "inside cfs/src"]),
        ("projectname: d\nenvironment:\n  source: ../up.py\n", ["line 3", "inside cfs/src"]),
        ("projectname: d\nmaxretries: -1\n", ["line 2", "maxretries is -1"]),
        ("projectname: d\nmaxwaittime: -2\n", ["line 2", "maxwaittime", "'90m'"]),
        ("projectname: d\npriority: high\n", ["line 2", "priority must be a whole number"]),
        ("projectname: d\nlabel: ''\n", ["line 2", "label must be non-empty text"]),
        ("projectname: d\nbackend: Local Docker\n", ["line 2", "backend must be a backend name"]),
        ("projectname: d\nslurm:\n  partition: x\n", ["line 2", "unknown key 'slurm'"]),
        ("projectname: d\nlocal: [runtime]\n", ["line 2", "local must be a mapping"]),
        ("projectname: d\nmaxqueuetime: 0\n", ["line 2", "maxqueuetime", "more than zero"]),
        ("projectname: d\nenv: [A]\n", ["line 2", "env must be a mapping"]),
        ("projectname: d\nenv:\n  1BAD: x\n", ["line 3", "not a valid environment variable"]),
        ("projectname: d\nenv:\n  PROJECT_DIR: /x\n", ["line 3", "set by Pollinator"]),
        ("projectname: d\nenv:\n  DEBUG: true\n", ["line 3", 'Quote it: `DEBUG: "true"`']),
        ("projectname: d\nenv:\n  X: [1]\n", ["line 3", "env.X must be text, got a list"]),
        # the project name and the tunnel
        ("conditions: {}\n", ["line 1", "projectname is missing"]),
        ("projectname: my project\n",
         ["line 1", "projectname must be up to 128", "got text ('my project')"]),
        ("projectname: 42\n", ["line 1", "got a whole number (42)"]),
        ("projectname: d\ntunnel:\n  user: me\n  jumpHost: login\n",
         ["line 2", "tunnel is not supported yet", "`tunnel: null`"]),
        # the document itself
        ("- a\n- b\n", ["line 1", "The top level must be a mapping", "got a list"]),
        ("just text\n", ["line 1", "must be a mapping", "got text"]),
        ("projectname: d\nprojectname: e\n", ["line 2", "projectname appears twice"]),
        ("projectname: d\nconditions:\n  nodes: 1\n  nodes: 2\n",
         ["line 4", "conditions.nodes appears twice"]),
        ("projectname: d\nconditions: [1, 2\n", ["line 3", "invalid YAML"]),
        ("projectname: d\nconditions:\n\tnodes: 1\n", ["line 3", "invalid YAML", "not tabs"]),
        ("projectname: d\nenvironment:\n  cmd: a: b\n", ["line 3", "invalid YAML"]),
        ("projectname: d\n--- \nprojectname: e\n", ["line 2", "invalid YAML"]),
        ("projectname: d\nbackend: 2001-13-45\n", ["invalid YAML", "month"]),
        ("", ["is empty", "projectname"]),
        ("# only a comment\n", ["is empty"]),
    ],
)  # fmt: skip
def test_errors_name_the_key_the_line_and_the_fix(text: str, expected: list[str]) -> None:
    message = error(text)
    assert message.startswith(str(FILE))
    for part in expected:
        assert part in message


BIG = "x" * (128 * 1024)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("projectname: d\nmaxretries: 0\n",
         ["line 2", "maxretries is 0, but must be at least 1: the official Colonies executors "
          "fail a job with maxretries 0 at once; set it to 1 or more."]),
        ("projectname: d\nmaxretries: 2147483648\n",
         ["line 2", "at most 2147483647", "32-bit integer"]),
        ("projectname: d\npriority: 50001\n",
         ["line 2", "priority is 50001, but must be at most 50000: the Colonies server refuses "
          "higher priorities"]),
        ("projectname: d\npriority: -50001\n", ["line 2", "at least -50000"]),
        ("projectname: d\nconditions:\n  nodes: 128\n",
         ["line 3", "conditions.nodes is 128, but must be at most 127: the Colonies server "
          "never assigns a process that asks for more"]),
        ("projectname: d\nconditions:\n  processesPerNode: 128\n", ["line 3", "at most 127"]),
        ("projectname: d\nconditions:\n  cpu: 5m\n",
         ["line 3", "conditions.cpu: it is '5m', but must be at least 10m, the least the "
          "official Colonies executors accept."]),
        ("projectname: d\nconditions:\n  cpu: 0.009\n", ["line 3", "at least 10m"]),
        ("projectname: d\nconditions:\n  cpu: 9223372036854775808m\n",
         ["line 3", "at most 9223372036854775807m"]),
        ("projectname: d\nconditions:\n  mem: 8796093022208Mi\n",
         ["line 3", "conditions.mem", "at most 8796093022207Mi"]),
        ("projectname: d\nconditions:\n  walltime: 2147483000\n",
         ["line 3", "walltime + maxqueuetime is 2147486600 s", "at most 2147483647 s"]),
        ("projectname: d\nmaxqueuetime: 24856d\n",
         ["line 2", "walltime + maxqueuetime", "Shorten them."]),
        ("projectname: d\nmaxwaittime: 2147483648\n",
         ["line 2", "maxwaittime: it is 2147483648, but must be at most 2147483647 s"]),
        ("projectname: d\nconditions:\n  gpu:\n    count: 9223372036854775808\n",
         ["line 4", "at most 9223372036854775807"]),
        (f"projectname: d\nenv:\n  BIG: {BIG}\n",
         ["line 3", "env.BIG is 131076 bytes as BIG=value, but at most 131071", "cfs/data"]),
        ("projectname: d\nenv:\n" + "".join(f"  V{i}: {BIG[:100_000]}\n" for i in range(11)),
         ["line 2", "env is 1100034 bytes in all", "at most 1048576"]),
        ('projectname: d\nenv:\n  A: "a\\0b"\n', ["line 3", "env.A contains a NUL"]),
        ('projectname: d\nenvironment:\n  cmd: "python3\\0"\n',
         ["line 3", "environment.cmd contains a NUL character", "cannot store"]),
        ('projectname: d\nlabel: "a\\0"\n', ["line 2", "label contains a NUL"]),
        ('projectname: d\nconditions:\n  executorNames: ["a\\0"]\n',
         ["line 3", "conditions.executorNames[0] contains a NUL"]),
        (f"projectname: d\nenvironment:\n  init-cmd: {BIG}\n",
         ["environment.init-cmd and cmd are 131079 bytes together", "sh -c"]),
    ],
)  # fmt: skip
def test_values_the_official_server_or_executors_refuse(text: str, expected: list[str]) -> None:
    message = error(text)
    for part in expected:
        assert part in message


def test_the_largest_accepted_values() -> None:
    project = parse(
        "projectname: d\npriority: -50000\nmaxretries: 2147483647\nmaxwaittime: 2147483647\n"
        "maxqueuetime: 1\nconditions:\n  nodes: 127\n  processesPerNode: 127\n  cpu: 10m\n"
        "  mem: 8796093022207Mi\n  walltime: 2147483646\n"
        f"env:\n  A: {BIG[: 128 * 1024 - 3]}\n"
    )
    c = project.conditions
    assert (c.nodes, c.processes_per_node, c.cpu_millis, c.mem_bytes >> 20) == (
        127,
        127,
        10,
        8796093022207,
    )
    assert c.walltime + project.maxqueuetime == 2**31 - 1
    assert len(project.env["A"]) == 128 * 1024 - 3


def test_aliases_and_recursion_do_not_confuse_the_reader() -> None:
    project = parse(
        """\
        projectname: d
        conditions: &c
          nodes: 2
        environment:
          cmd: &cmd python3
          init-cmd: *cmd
        """
    )
    assert (project.conditions.nodes, project.environment.init_cmd) == (2, "python3")
    assert "label must be non-empty text, got a list" in error("label: &a [*a]\nprojectname: d\n")


# --- finding the file ----------------------------------------------------------------------


def write_project(root: Path, text: str = "projectname: demo\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text(text)
    return root


def test_found_upward_from_a_subdirectory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "proj")
    deep = root / "cfs" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert load_project(deep).root == root.resolve()
    monkeypatch.chdir(deep)
    assert load_project().root == root.resolve()


def test_the_nearest_project_wins(tmp_path: Path) -> None:
    write_project(tmp_path, "projectname: outer\n")
    inner = write_project(tmp_path / "inner", "projectname: inner\n")
    (inner / "cfs").mkdir()
    assert load_project(inner / "cfs").name == "inner"
    assert load_project(tmp_path).name == "outer"


def test_directory_is_used_as_is(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert load_project(directory=root).name == "demo"
    with pytest.raises(ProjectError, match=r"no project.yaml in .*sub.*-C"):
        load_project(directory=root / "sub")


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"No project.yaml in .* or any parent.*pollinator new"):
        load_project(tmp_path)


def test_project_yml_is_pointed_out(tmp_path: Path) -> None:
    (tmp_path / "project.yml").write_text("projectname: demo\n")
    with pytest.raises(ProjectError, match=r"Found .*project.yml.*rename"):
        load_project(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "project.yaml").write_bytes(b"projectname: d\xe9mo\n")
    with pytest.raises(ProjectError, match="not UTF-8"):
        load_project(tmp_path)


def test_error_names_the_real_file(tmp_path: Path) -> None:
    write_project(tmp_path, "projectname: demo\nconditions:\n  nodes: 0\n")
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    assert str(info.value).startswith(f"{tmp_path.resolve() / 'project.yaml'} line 3: ")


def test_every_key_is_in_the_reference() -> None:
    reference = (Path(__file__).parents[1] / "README.md").read_text()
    for section, keys in _SECTIONS.items():
        for key in keys:
            assert f"`{key}`" in reference or f".{key}`" in reference, (section, key)
