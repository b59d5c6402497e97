"""The function spec: the original's shape, with the documented departures, and golden files.

Regenerate the golden files after an intended change with
``POLLINATOR_REGEN_GOLDEN=1 pytest tests/test_funcspec.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
from test_project import EVERY_KEY

from pollinator_core.colonies.models import FunctionSpec, dumps, from_dict, to_dict
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import Project, parse_project
from pollinator_core.project.scaffold import render_project_yaml

GOLDEN = Path(__file__).parent / "golden"
REGEN_ENV = "POLLINATOR_REGEN_GOLDEN"
FILE = Path("/work/demo/project.yaml")
# What `run --dry-run` puts where the real values go.
SNAPSHOT, COLONY = "<snapshot-id>", "<colony-name>"


def check_golden(name: str, spec: FunctionSpec) -> None:
    path = GOLDEN / name
    text = dumps(spec, indent=2) + "\n"
    if os.environ.get(REGEN_ENV):
        path.write_text(text)
    expected = path.read_text() if path.exists() else ""
    assert text == expected, (
        f"the spec differs from {path}. If the change is intended, regenerate with "
        f"{REGEN_ENV}=1 pytest tests/test_funcspec.py and review the diff."
    )


def project(text: str) -> Project:
    return parse_project(text, FILE, sections={"local"})


def test_golden_default_project() -> None:
    check_golden(
        "funcspec_default.json",
        build_function_spec(project("projectname: demo\n"), SNAPSHOT, COLONY),
    )


def test_golden_every_key() -> None:
    check_golden(
        "funcspec_every_key.json", build_function_spec(project(EVERY_KEY), "snap-1", "dev")
    )


def test_golden_new_project() -> None:
    """The spec of a project `pollinator new` makes (test_cli compares `run --dry-run` to it)."""
    spec = build_function_spec(project(render_project_yaml("demo", [])), SNAPSHOT, COLONY)
    check_golden("funcspec_new.json", spec)


def test_the_original_shape_with_the_documented_departures() -> None:
    """The spec the original printed (reference §2), changed only where the README
    says so: the result label per process, the label, maxexectime and walltime."""
    original: dict[str, Any] = {
        "nodename": "", "funcname": "execute", "args": [],
        "kwargs": {"args": ["/cfs/pollinator/demo/SNAP/src/main.py"], "cmd": "python3",
                   "docker-image": "python:3.12-rc-bookworm", "init-cmd": "pip3 install numpy",
                   "rebuild-image": False},
        "priority": 5, "maxwaittime": -1, "maxexectime": 599, "maxretries": 3,
        "conditions": {"colonyname": "col", "executornames": ["ex"],
                       "executortype": "container-executor", "dependencies": [], "nodes": 1,
                       "cpu": "1000m", "processes": 0, "processespernode": 1, "mem": "1000Mi",
                       "storage": "", "gpu": {"name": "", "mem": "", "count": 0, "nodecount": 0},
                       "walltime": 600},
        "label": "test_label",
        "fs": {"mount": "/cfs",
               "snapshots": [{"snapshotid": "SNAP", "label": "/pollinator/demo/src",
                              "dir": "/pollinator/demo/SNAP/src", "keepfiles": True,
                              "keepsnapshot": True}],
               "dirs": [{"label": "/pollinator/demo/result", "dir": "/pollinator/demo/result",
                         "keepfiles": False,
                         "onconflicts": {"onstart": {"keeplocal": False},
                                         "onclose": {"keeplocal": True}}},
                        {"label": "/pollinator/demo/data", "dir": "/pollinator/demo/data",
                         "keepfiles": True,
                         "onconflicts": {"onstart": {"keeplocal": False},
                                         "onclose": {"keeplocal": False}}}]},
        "env": {"PROJECT_DIR": "/cfs/pollinator/demo"},
    }  # fmt: skip
    original["label"] = "demo"  # (b) the project name, not "test_label"
    # (c) the server's deadline covers walltime + maxqueuetime (1 h by default), not walltime
    # - 1, and conditions.walltime with it (official executors want it >= maxexectime); the
    # job's own limit travels in kwargs
    original["maxexectime"] = original["conditions"]["walltime"] = 600 + 3600
    original["kwargs"]["walltime"] = 600
    original["fs"]["dirs"][0]["label"] = "/pollinator/demo/result/{processid}"  # (a)
    # (d) every directory of a run under its snapshot id, so overlapping runs never share one
    # on an executor that keeps one tree; the executor removes the snapshot when done
    original["fs"]["dirs"][0]["dir"] = "/pollinator/demo/SNAP/result"
    original["fs"]["dirs"][1]["dir"] = "/pollinator/demo/SNAP/data"
    original["fs"]["dirs"][1]["keepfiles"] = False
    original["fs"]["snapshots"][0]["keepfiles"] = False
    original["fs"]["snapshots"][0]["keepsnapshot"] = False
    original["env"]["PROJECT_DIR"] = "/cfs/pollinator/demo/SNAP"
    text = "projectname: demo\nconditions:\n  executorNames: [ex]\n"
    assert to_dict(build_function_spec(project(text), "SNAP", "col")) == original


def test_the_official_decoders_read_it_back() -> None:
    spec = build_function_spec(project(EVERY_KEY), "s", "c")
    assert from_dict(FunctionSpec, to_dict(spec)) == spec


def test_project_keys_override_the_defaults() -> None:
    spec = build_function_spec(project(EVERY_KEY), "s", "c")
    assert (spec.priority, spec.maxretries, spec.maxwaittime) == (7, 1, 3600)
    assert spec.kwargs["walltime"] == 5400
    assert spec.maxexectime == spec.conditions.walltime == 5400 + 3600
    assert spec.label == "nightly"
    assert spec.env == {
        "PROJECT_DIR": "/cfs/pollinator/full/s",
        "OMP_NUM_THREADS": "4",
        "MODE": "fast",
    }
    assert spec.conditions.cpu == "1500m" and spec.conditions.mem == "4096Mi"
    assert spec.conditions.gpu.count == 8 and spec.conditions.gpu.name == "a100"
    assert spec.kwargs["args"] == ["/cfs/pollinator/full/s/src/jobs/train.py"]


def test_source_paths() -> None:
    empty = build_function_spec(project("projectname: d\nenvironment: {source: ''}\n"), "s", "c")
    assert empty.kwargs["args"] == []  # the original: cmd alone
    dotted = build_function_spec(
        project("projectname: d\nenvironment: {source: ./a/b.py}\n"), "s", "c"
    )
    assert dotted.kwargs["args"] == ["/cfs/pollinator/d/s/src/a/b.py"]


def test_pure() -> None:
    p = project(EVERY_KEY)
    before = attrs.evolve(p)
    first, second = build_function_spec(p, "s", "c"), build_function_spec(p, "s", "c")
    assert first == second and first is not second
    first.env["X"] = "1"
    assert "X" not in p.env and p == before
