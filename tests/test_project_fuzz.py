"""Whatever is in project.yaml, loading ends in a Project or a ProjectError, nothing else.

Random text, random YAML structures, and mutations (of characters and of structure) of valid
files. Every project that loads must also give a function spec that serialises.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_project import EVERY_KEY, ORIGINAL

from pollinator_core.colonies.models import dumps
from pollinator_core.errors import ProjectError
from pollinator_core.project.funcspec import build_function_spec
from pollinator_core.project.loader import parse_project

FILE = Path("/work/fuzz/project.yaml")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = [
    "projectname", "conditions", "environment", "tunnel", "priority", "maxretries",
    "maxwaittime", "label", "env", "backend", "local", "executorNames", "nodes",
    "processesPerNode", "cpu", "mem", "walltime", "gpu", "count", "name", "docker",
    "rebuildImage", "init-cmd", "cmd", "source", "runtime", "<<",
]  # fmt: skip
VALID = [yaml.safe_load(ORIGINAL), yaml.safe_load(EVERY_KEY)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["500m", "4Gi", "1h30m", "-1", "0", "main.py", "", "auto", "1e999"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12), st.integers(-3, 3), st.none())
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=20,
)


def outcome(text: str) -> None:
    try:
        project = parse_project(text, FILE)
    except ProjectError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert dumps(build_function_spec(project, "snap", "colony"))


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    outcome(text)


@SETTINGS
@given(values)
def test_random_structures(data: Any) -> None:
    outcome(yaml.safe_dump(data))


@SETTINGS
@given(st.sampled_from([ORIGINAL, EVERY_KEY]), st.data())
def test_character_mutations(text: str, data: st.DataObject) -> None:
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(chars)))
        edit = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(st.sampled_from(list(":-[]{}#&*!|>'\"\t\n ,0a%@`")) | st.characters())
        if edit == "insert":
            chars.insert(at, char)
        elif chars and at < len(chars):
            chars[at : at + 1] = [] if edit == "delete" else [char]
    outcome("".join(chars))


@SETTINGS
@given(st.sampled_from(range(len(VALID))), st.data())
def test_structure_mutations(which: int, data: st.DataObject) -> None:
    doc = copy.deepcopy(VALID[which])
    for _ in range(data.draw(st.integers(1, 3))):
        node = doc
        # walk down a random path of mappings, then change something there
        while isinstance(node, dict) and node and data.draw(st.booleans()):
            child = node[data.draw(st.sampled_from(sorted(node, key=str)))]
            if not isinstance(child, dict):
                break
            node = child
        if not isinstance(node, dict):
            continue
        edit = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if edit == "add" or not node:
            node[data.draw(keys)] = data.draw(values)
        else:
            key = data.draw(st.sampled_from(sorted(node, key=str)))
            if edit == "delete":
                del node[key]
            else:
                node[key] = data.draw(values)
    outcome(yaml.safe_dump(doc))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    outcome("projectname: d\nlabel: " + "[" * 5000 + "]" * 5000 + "\n")
    outcome("projectname: d\nlabel: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")


def test_alias_bombs_stay_cheap() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    outcome("\n".join(lines) + "\nprojectname: d\n")
