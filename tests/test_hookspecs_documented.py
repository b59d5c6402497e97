"""Every hook is typed, has a docstring, a section in docs/plugins.md and a test (datasette)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from pollinator_core.plugins import hookspecs

TESTS = Path(__file__).parent
PLUGIN_GUIDE = TESTS.parent / "docs" / "plugins.md"
HOOKSPECS = sorted(
    name
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")
)


def test_hookspecs_are_found() -> None:
    assert "pollinator_storage" in HOOKSPECS and len(HOOKSPECS) >= 4


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_is_typed_and_has_a_docstring(name: str) -> None:
    function = getattr(hookspecs, name)
    doc = inspect.getdoc(function) or ""
    assert len(doc) > 80, f"hookspecs.{name} needs a docstring a plugin author can work from"
    annotations = function.__annotations__
    assert set(inspect.signature(function).parameters) | {"return"} <= set(annotations), name


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_is_documented(name: str) -> None:
    headings = re.findall(r"^#+ +`?(\w+)`?\s*$", PLUGIN_GUIDE.read_text(), flags=re.MULTILINE)
    assert name in headings, f"docs/plugins.md needs a section headed `### {name}`"


@pytest.mark.parametrize("name", HOOKSPECS)
def test_hookspec_has_a_test(name: str) -> None:
    tests = {
        node.name
        for path in TESTS.glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    assert f"test_hook_{name}" in tests, f"add a test named test_hook_{name} under tests/"
