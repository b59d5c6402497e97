"""``pollinator new``: lay out a project that runs as it is, offline, on the local backend."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template

import attrs

from pollinator_core.errors import UsageError
from pollinator_core.project.loader import PROJECT_FILE

IGNORE_FILE = ".pollinatorignore"
HELLO = "Hello world!\n"
#: the longest file or directory name Linux file systems take, in bytes
NAME_MAX = 255
ORIGINAL_INIT_CMD = "pip3 install numpy"

_ADJECTIVES = (
    "amber", "brave", "busy", "calm", "clever", "eager", "fuzzy", "gentle", "golden", "happy",
    "humble", "jolly", "keen", "lively", "lucky", "merry", "nimble", "proud", "quick", "quiet",
    "rapid", "shiny", "sunny", "swift", "tidy", "warm", "wild", "witty", "zesty", "bold",
)  # fmt: skip
_NOUNS = (
    "bee", "bumblebee", "clover", "daisy", "field", "flower", "garden", "hive", "honey", "iris",
    "lavender", "lily", "meadow", "nectar", "orchard", "petal", "pollen", "poppy", "rose", "sage",
    "seed", "sunflower", "thistle", "tulip", "violet", "wasp", "willow", "bloom", "moth", "fern",
)  # fmt: skip


@attrs.frozen
class ScaffoldResult:
    root: Path
    name: str | None  # the new project's name; None when an existing project.yaml was kept
    created: tuple[Path, ...]
    skipped: tuple[Path, ...]  # already there, left as they were


def project_name(directory: Path) -> str:
    """``<dir>-<adjective>-<noun>-<4 hex>``: readable, unique, and valid in a Colonies label."""
    slug = re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-")[:24].strip("-")
    adjective, noun = secrets.choice(_ADJECTIVES), secrets.choice(_NOUNS)
    return f"{slug or 'project'}-{adjective}-{noun}-{secrets.token_hex(2)}"


def render_project_yaml(name: str, executor_names: Sequence[str]) -> str:
    """The commented project.yaml for a new project.

    No backend is written: the default (colonies when COLONIES_SERVER_HOST is set, else
    local) follows the user's environment. Without executor names the first run must work
    offline, on the local backend, so init-cmd is empty; with names it keeps the original's
    defaults.
    """
    if executor_names:
        backend = "# backend: colonies"
        init_cmd = f"  init-cmd: {ORIGINAL_INIT_CMD}  # runs before cmd, in the job"
    else:
        backend = "# backend: local"
        init_cmd = (
            "  # Runs before cmd, in the job. Empty so that the first run works offline; the\n"
            f'  # original default was "{ORIGINAL_INIT_CMD}".\n'
            '  init-cmd: ""'
        )
    return Template(_template("project.yaml.tmpl")).substitute(
        name=name,
        backend=backend,
        executor_names=json.dumps(list(executor_names)),
        init_cmd=init_cmd,
    )


def new_project(
    directory: Path, *, executor_names: Sequence[str] = (), force: bool = False
) -> ScaffoldResult:
    """Create the project files in ``directory`` (made if missing).

    Existing files are kept and reported as skipped unless ``force`` is set, so ``new`` can turn
    a folder that already holds code into a project.
    """
    for executor in executor_names:
        if not re.fullmatch(r"[^\s,]+", executor):
            raise UsageError(f"Executor name {executor!r} must be one word (no spaces or commas).")
    too_long = [p for p in directory.parts if len(os.fsencode(p)) > NAME_MAX]
    if too_long:
        raise UsageError(
            f"Cannot create a project in a directory named {too_long[0][:40]}... "
            f"({len(os.fsencode(too_long[0]))} bytes): a file or directory name may have at "
            f"most {NAME_MAX}. Choose a shorter name."
        )
    try:
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"{directory} is a file; give `pollinator new` a directory.")
        root = directory.resolve()
    except OSError as e:
        raise UsageError(f"Cannot create a project in {directory}: {e.strerror}.") from None
    name = project_name(root)
    files = {
        root / PROJECT_FILE: render_project_yaml(name, executor_names),
        root / IGNORE_FILE: _template("pollinatorignore"),
        root / "cfs" / "src" / "main.py": _template("main.py"),
        root / "cfs" / "data" / "hello.txt": HELLO,
    }
    _check_paths(root, [*files, root / "cfs" / "result"])
    created: list[Path] = []
    skipped: list[Path] = []
    try:
        for path, text in files.items():
            if path.exists() and not force:
                skipped.append(path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            created.append(path)
        result_dir = root / "cfs" / "result"
        if not result_dir.is_dir():
            result_dir.mkdir(parents=True)
            created.append(result_dir)
    except OSError as e:
        raise UsageError(f"Cannot create {e.filename}: {e.strerror}.") from None
    kept_yaml = root / PROJECT_FILE in skipped
    return ScaffoldResult(
        root=root, name=None if kept_yaml else name, created=tuple(created), skipped=tuple(skipped)
    )


def _check_paths(root: Path, paths: Sequence[Path]) -> None:
    """Refuse, before writing anything, a tree where a file stands for a directory or a
    directory for a file: a half-made project would be worse than none."""
    result_dir = paths[-1]
    for path in paths:
        for parent in path.relative_to(root).parents:
            if parent.parts and (root / parent).exists() and not (root / parent).is_dir():
                raise UsageError(
                    f"Cannot create the project: {root / parent} is a file where a directory "
                    "belongs. Move it aside and run `pollinator new` again."
                )
        if path != result_dir and path.exists() and not path.is_file():
            raise UsageError(
                f"Cannot create the project: {path} exists and is not a file. Move it aside "
                "and run `pollinator new` again."
            )
    if result_dir.exists() and not result_dir.is_dir():
        raise UsageError(
            f"Cannot create the project: {result_dir} is a file where a directory belongs. "
            "Move it aside and run `pollinator new` again."
        )


def _template(name: str) -> str:
    return resources.files("pollinator_core.project").joinpath("templates", name).read_text("utf-8")
