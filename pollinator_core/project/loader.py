"""project.yaml: find it, read it strictly, and expose the project as typed values.

The original Pollinator's keys are read unchanged; the README's reference lists every key. Unlike
the original (non-strict yaml.v2, no validation), every mistake is refused before anything
touches the network, with the key path, the line and the fix in one paragraph.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs
import yaml

from pollinator_core.errors import ProjectError
from pollinator_core.project import units

PROJECT_FILE = "project.yaml"
#: set by Pollinator and the executors for every run; a project may not override them
RESERVED_ENV = ("PROJECT_DIR", "COLONIES_PROCESS_ID")

# What the official Colonies server (v1.9.12, v1.8.7) and executors accept; docs/running.md
# ("Limits") gives the reasons. A value beyond them is refused here, before any upload.
#: maxexectime (walltime + maxqueuetime), maxwaittime and maxretries: 32-bit database columns
INT32_MAX = 2**31 - 1
#: cpu and memory: 64-bit integers on the server and in the executors
INT64_MAX = 2**63 - 1
#: the server refuses priorities outside +-50000
PRIORITY_LIMIT = 50_000
#: the server's scheduler never assigns a process asking for more (it passes math.MaxInt8)
MAX_PER_PROCESS = 127
#: the official executors refuse a cpu written with fewer than three characters ("5m")
MIN_CPU_MILLIS = 10
#: mem goes out in whole Mi, which the server converts to bytes in an int64
MAX_MEM_BYTES = (INT64_MAX >> 20) << 20
#: one NAME=value in a program's environment: Linux's MAX_ARG_STRLEN (128 KiB) less its NUL
ENV_ENTRY_MAX = 128 * 1024 - 1
#: all env entries together: half of Linux's usual 2 MiB for arguments and environment (the
#: runtime adds its own variables), and below Kubernetes' 1.5 MiB for a whole Job object
ENV_TOTAL_MAX = 1024 * 1024
#: init-cmd and cmd become one argument of `sh -c` (the official executors join them), and
#: Linux passes at most 128 KiB in one argument; 2 KiB are left for the source's path
MAX_COMMAND = 126 * 1024
_DATABASE = "the Colonies server stores it in a 32-bit integer"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_BACKEND_RE = re.compile(r"[a-z][a-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "": (
        "projectname",
        "conditions",
        "environment",
        "tunnel",
        "priority",
        "maxretries",
        "maxwaittime",
        "label",
        "env",
        "backend",
        "maxqueuetime",
    ),
    "conditions": (
        "executorNames",
        "nodes",
        "processesPerNode",
        "cpu",
        "mem",
        "walltime",
        "gpu",
    ),
    "conditions.gpu": ("count", "name"),
    "environment": ("docker", "rebuildImage", "init-cmd", "cmd", "source"),
}

KeyPath = tuple[str | int, ...]  # a key path inside the document: ("conditions", "nodes")


@attrs.frozen
class GpuRequest:
    count: int = 0
    name: str = ""


@attrs.frozen
class ProjectConditions:
    executor_names: tuple[str, ...] = ()
    nodes: int = 1
    processes_per_node: int = 1
    cpu_millis: int = 1000
    mem_bytes: int = 1000 * 1024**2
    walltime: int = 600  # seconds
    gpu: GpuRequest = GpuRequest()


@attrs.frozen
class ProjectEnvironment:
    docker: str = "python:3.12-rc-bookworm"
    rebuild_image: bool = False
    init_cmd: str = "pip3 install numpy"
    cmd: str = "python3"
    source: str = "main.py"  # relative to cfs/src; "" runs cmd without arguments


@attrs.frozen
class Section:
    """A plugin's section of project.yaml (``slurm:``), kept as written: the plugin layer checks
    it against the plugin's declared settings, with the line of each key for its messages."""

    name: str
    values: Mapping[str, object]
    file: Path
    lines: Mapping[str, int] = attrs.field(factory=dict)

    def where(self, key: str) -> str:
        return f"{self.file} line {self.lines.get(key, 1)}"


@attrs.frozen
class Project:
    """A loaded project: where it lives and what project.yaml asks for."""

    root: Path
    name: str
    conditions: ProjectConditions = ProjectConditions()
    environment: ProjectEnvironment = ProjectEnvironment()
    priority: int = 5
    maxretries: int = 3
    maxwaittime: int = -1  # seconds in the queue; -1 waits forever
    label: str | None = None  # the function spec's label; None means the project name
    env: Mapping[str, str] = attrs.field(factory=dict)
    backend: str | None = None  # None: the CLI decides (a configured server, else local)
    #: seconds a job may wait at its executor before it starts (staging, a scheduler's queue)
    maxqueuetime: int = 3600
    #: plugins' sections (``local:``, ``slurm:``), checked by the plugin layer
    sections: Mapping[str, Section] = attrs.field(factory=dict)
    #: arguments for this run after the source file (``pollinator run -- ARGS``); not a key
    args: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def cfs_dir(self) -> Path:
        return self.root / "cfs"

    @property
    def src_dir(self) -> Path:
        return self.cfs_dir / "src"

    @property
    def data_dir(self) -> Path:
        return self.cfs_dir / "data"

    @property
    def result_dir(self) -> Path:
        return self.cfs_dir / "result"

    @property
    def state_dir(self) -> Path:
        return self.root / ".pollinator"

    @property
    def label_prefix(self) -> str:
        return f"/pollinator/{self.name}"


# --- finding and reading -------------------------------------------------------------------


def load_project(
    start: Path | None = None,
    *,
    directory: Path | None = None,
    sections: Collection[str] = (),
) -> Project:
    """Load the project whose project.yaml is in ``directory``, or in ``start`` (default: the
    current directory) or the nearest parent of it, as git finds its repository.

    ``sections`` names the plugins' settings sections project.yaml may hold (``local``,
    ``slurm``); any other unknown key is an error."""
    if directory is not None:
        path = directory.resolve() / PROJECT_FILE
        _refuse_non_file(path)
        if not path.is_file():
            raise ProjectError(
                f"There is no {PROJECT_FILE} in {directory}. Pass the directory that holds "
                f"{PROJECT_FILE} to -C, or create a project with `pollinator new {directory}`."
            )
    else:
        path = find_project_file(start or Path.cwd())
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ProjectError(f"Cannot read {path}: {e.strerror}.") from None
    except UnicodeDecodeError as e:
        raise ProjectError(
            f"{path} is not UTF-8 text (byte {e.start}). Save it as UTF-8."
        ) from None
    return parse_project(text, path, sections)


def find_project_file(start: Path) -> Path:
    """The nearest ``project.yaml`` in ``start`` or its parents."""
    start = start.resolve()
    misnamed = None
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory / PROJECT_FILE
        _refuse_non_file(directory / PROJECT_FILE)  # never skip it for a parent's project
        if misnamed is None and (directory / "project.yml").is_file():
            misnamed = directory / "project.yml"
    if misnamed is not None:
        raise ProjectError(
            f"Found {misnamed}, but Pollinator reads {PROJECT_FILE}; rename the file "
            f"(mv {misnamed} {misnamed.with_suffix('.yaml')})."
        )
    raise ProjectError(
        f"No {PROJECT_FILE} in {start} or any parent directory. Run the command inside a "
        "project, pass its directory with -C DIR, or create one with `pollinator new`."
    )


def _refuse_non_file(path: Path) -> None:
    """A project.yaml that exists but is no file (a directory, a dangling link ...)."""
    if path.is_file() or not os.path.lexists(path):
        return
    what = "a directory" if path.is_dir() else "not a regular file"
    if path.is_symlink() and not path.exists():
        what = "a symbolic link to nothing"
    raise ProjectError(
        f"{path} is {what}; {PROJECT_FILE} must be a file. Move it aside and create the file "
        "(`pollinator new` writes a complete one)."
    )


def parse_project(text: str, path: Path, sections: Collection[str] = ()) -> Project:
    """Validate the text of a project.yaml found at ``path`` (which sets the project root)."""
    reader = _Reader(path, sections)
    data = reader.parse(text)
    return reader.project(data, path.parent.resolve())


# --- validation ----------------------------------------------------------------------------


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


_KINDS: dict[type, str] = {
    bool: "true/false",
    int: "a whole number",
    float: "a decimal number",
    str: "text",
    dict: "a mapping",
    list: "a list",
}


def _kind(value: object) -> str:
    return "nothing (null)" if value is None else _KINDS.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """What the user wrote: its kind, and the value itself unless it is a container or null."""
    scalar = isinstance(value, str | int | float)
    return f"{_kind(value)} ({value!r})" if scalar else _kind(value)


def _quote_hint(key: str, value: object) -> str:
    """How to write a scalar as text; containers and null cannot be fixed by quoting."""
    if isinstance(value, bool):
        return f' Quote it: `{key}: "{str(value).lower()}"`.'
    if isinstance(value, int | float):
        return f' Quote it: `{key}: "{value}"`.'
    return ""


class _Reader:
    def __init__(self, file: Path, sections: Collection[str] = ()) -> None:
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.plugin_sections = frozenset(sections)

    # --- reporting ---

    def where(self, path: KeyPath) -> str:
        while path and path not in self.lines:
            path = path[:-1]
        return f"{self.file} line {self.lines.get(path, 1)}"

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        raise ProjectError(f"{self.where(path)}: {message}")

    # --- YAML ---

    def parse(self, text: str) -> Any:
        try:
            return self._load(text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = f" line {mark.line + 1}" if mark else ""
            problem = " ".join(filter(None, [e.context, e.problem]))
            raise ProjectError(
                f"{self.file}{line}: invalid YAML: {problem}. Check the indentation (spaces, "
                "not tabs) and quote values that contain ': ', '#' or start with a symbol."
            ) from None
        except yaml.reader.ReaderError as e:
            line_no = text.count("\n", 0, e.position) + 1
            raise ProjectError(
                f"{self.file} line {line_no}: invalid YAML: character #x{e.character:04x} is not "
                "allowed (control characters cannot appear even in quotes). Delete it."
            ) from None
        except (yaml.YAMLError, ValueError, OverflowError) as e:
            # The constructor refuses impossible dates such as 2024-13-01.
            problem = " ".join(str(e).split())
            raise ProjectError(
                f"{self.file}: invalid YAML: {problem}. Quote the value if it is meant as text."
            ) from None
        except RecursionError:
            raise ProjectError(f"{self.file}: the YAML is nested too deeply.") from None

    def _load(self, text: str) -> Any:
        loader = yaml.SafeLoader(text)  # the reader already refuses control characters here
        try:
            node = loader.get_single_node()
            if node is None:
                raise ProjectError(
                    f"{self.file} is empty. It needs at least `projectname: <name>`; "
                    "`pollinator new` writes a complete, commented one."
                )
            self._index(node, (), set())
            return loader.construct_document(node)
        finally:
            loader.dispose()

    def _index(self, node: yaml.Node, path: KeyPath, seen: set[int]) -> None:
        """Record the line of every key path and refuse duplicate keys (yaml keeps the last)."""
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:  # an alias: already indexed (and possibly recursive)
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in keys:
                    where = _dotted((*path, key))
                    raise ProjectError(
                        f"{self.file} line {line}: {where} appears twice; YAML would silently "
                        "keep the last one. Delete one of them."
                    )
                keys.add(key)
                self.lines.setdefault((*path, key), line)
                self._index(value_node, (*path, key), seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index(item, (*path, i), seen)

    # --- generic readers ---

    def section(self, data: object, path: KeyPath) -> dict[str, Any]:
        """A mapping with only known keys; null or absent is an empty section."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            what = _dotted(path) or "The top level"
            self.fail(path, f"{what} must be a mapping of keys to values, got {_kind(data)}.")
        allowed = _SECTIONS[_dotted(path)]
        if not path:
            allowed = (*allowed, *sorted(self.plugin_sections))
        for key in data:
            if not isinstance(key, str):
                self.fail(path, f"key {key!r} in {_dotted(path) or 'the top level'} must be text.")
            if key not in allowed:
                self.fail((*path, key), self._unknown(path, key, allowed))
        return data

    def _unknown(self, path: KeyPath, key: str, allowed: Collection[str]) -> str:
        where = f"in {_dotted(path)}" if path else "at the top level"
        message = f"unknown key {key!r} {where}."
        by_lower = {a.lower(): a for a in allowed}
        close = [by_lower[key.lower()]] if key.lower() in by_lower else []
        close = close or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return f"{message} Did you mean {close[0]!r}?"
        elsewhere = [
            f"{section}.{k}" if section else k
            for section, keys in _SECTIONS.items()
            for k in keys
            if k.lower() == key.lower() and section != _dotted(path)
        ]
        if elsewhere:
            return f"{message} It belongs under {elsewhere[0]!r}; move it there."
        return f"{message} Known keys here: {', '.join(allowed)}."

    def integer(
        self,
        data: dict[str, Any],
        path: KeyPath,
        key: str,
        default: int,
        minimum: int | None,
        maximum: int | None = None,
        *,
        why_low: str = "",
        why_high: str = "",
    ) -> int:
        """A whole number within ``minimum``..``maximum``; ``why_low`` and ``why_high`` say
        where a bound comes from (the server or the official executors)."""
        if key not in data:
            return default
        value = data[key]
        where = _dotted((*path, key))
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(
                (*path, key),
                f"{where} must be a whole number, got {_show(value)}. "
                f"Write a number without quotes, e.g. `{key}: {default}`.",
            )
        if minimum is not None and value < minimum:
            reason = f": {why_low}" if why_low else ""
            self.fail(
                (*path, key),
                f"{where} is {value}, but must be at least {minimum}{reason}; set it to "
                f"{minimum} or more.",
            )
        if maximum is not None and value > maximum:
            reason = f": {why_high}" if why_high else ""
            self.fail(
                (*path, key),
                f"{where} is {value}, but must be at most {maximum}{reason}; set it to "
                f"{maximum} or less.",
            )
        return value

    def boolean(self, data: dict[str, Any], path: KeyPath, key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.fail(
                (*path, key),
                f"{_dotted((*path, key))} must be true or false, got {_show(value)}. "
                "Write true or false without quotes.",
            )
        return value

    def string(
        self, data: dict[str, Any], path: KeyPath, key: str, default: str, *, required: bool
    ) -> str:
        """Text; for optional text, null means empty. ``required`` text must not be empty."""
        value = data.get(key, default)
        where = _dotted((*path, key))
        if value is None and not required:
            return ""
        if value is None:
            self.fail(
                (*path, key),
                f"{where} has no value. Set it, or remove the key to use the default {default!r}.",
            )
        if not isinstance(value, str):
            self.fail(
                (*path, key),
                f"{where} must be text, got {_kind(value)}.{_quote_hint(key, value)}",
            )
        if required and not value.strip():
            self.fail((*path, key), f"{where} must not be empty; the default is {default!r}.")
        self.no_nul((*path, key), value)
        return value

    def no_nul(self, path: KeyPath, value: str) -> None:
        """Refuse a NUL character (YAML's "\\0" escape): PostgreSQL refuses it in text, and
        the server then refuses the submission, or, for env, queues the process without env."""
        if "\x00" in value:
            self.fail(
                path,
                f"{_dotted(path)} contains a NUL character (\\0), which the Colonies server "
                "cannot store. Remove it.",
            )

    def quantity(
        self,
        data: dict[str, Any],
        path: KeyPath,
        key: str,
        default: int,
        parse: Callable[[object], int],
        *,
        positive: bool,
        minimum: tuple[int, str] | None = None,
        maximum: tuple[int, str] | None = None,
    ) -> int:
        """A value in a unit (cpu, memory, duration); ``minimum`` and ``maximum`` are a bound
        and its explanation, naming the bound as the user would write it."""
        if key not in data:
            return default
        where = _dotted((*path, key))
        written = data[key]
        try:
            value = parse(written)
        except ValueError as e:
            problem = str(e)
        else:
            if minimum is not None and value < minimum[0]:
                problem = f"it is {written!r}, but must be at least {minimum[1]}"
            elif maximum is not None and value > maximum[0]:
                problem = f"it is {written!r}, but must be at most {maximum[1]}"
            elif value > 0 or not positive:
                return value
            else:
                problem = f"it is {written!r}, but must be more than zero"
        self.fail((*path, key), f"{where}: {problem}.")

    def string_list(self, data: dict[str, Any], path: KeyPath, key: str) -> tuple[str, ...]:
        value = data.get(key)
        where = _dotted((*path, key))
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail((*path, key), f"{where} must be a list, e.g. `{key}: [name]`.")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(
                    (*path, key, i), f"{where}[{i}] must be a non-empty name, got {_show(item)}."
                )
            self.no_nul((*path, key, i), item)
        return tuple(value)

    # --- the schema ---

    def project(self, data: object, root: Path) -> Project:
        top = self.section(data, ())
        if "projectname" not in top:
            self.fail((), "projectname is missing. Add `projectname: <name>` (letters, digits, -).")
        name = top["projectname"]
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            self.fail(
                ("projectname",),
                "projectname must be up to 128 letters, digits, '-', '_' or '.', starting with "
                "a letter or digit (it becomes the Colonies label /pollinator/<projectname>), "
                f"got {_show(name)}.",
            )
        if top.get("tunnel") is not None:
            self.fail(
                ("tunnel",),
                "tunnel is not supported yet by this Pollinator. Remove it or write "
                "`tunnel: null`.",
            )
        label = top.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            self.fail(("label",), f"label must be non-empty text, got {_show(label)}.")
        if label is not None:
            self.no_nul(("label",), label)
        backend = top.get("backend")
        if backend is not None and (
            not isinstance(backend, str) or not _BACKEND_RE.fullmatch(backend)
        ):
            self.fail(
                ("backend",),
                f"backend must be a backend name such as local, colonies, slurm or k8s, "
                f"got {_show(backend)}.",
            )
        conditions = self.conditions(top.get("conditions"))
        maxqueuetime = self.quantity(
            top, (), "maxqueuetime", 3600, units.parse_duration, positive=True
        )
        self.server_deadline(top, conditions.walltime, maxqueuetime)
        return Project(
            root=root,
            name=name,
            conditions=conditions,
            environment=self.environment(top.get("environment")),
            priority=self.integer(
                top,
                (),
                "priority",
                5,
                -PRIORITY_LIMIT,
                PRIORITY_LIMIT,
                why_low="the Colonies server refuses lower priorities",
                why_high="the Colonies server refuses higher priorities",
            ),
            maxretries=self.integer(
                top,
                (),
                "maxretries",
                3,
                1,
                INT32_MAX,
                why_low="the official Colonies executors fail a job with maxretries 0 at once",
                why_high=_DATABASE,
            ),
            maxwaittime=self.maxwaittime(top),
            label=label,
            env=self.env(top.get("env")),
            backend=backend,
            maxqueuetime=maxqueuetime,
            sections=self.plugin_section_values(top),
        )

    def server_deadline(self, top: dict[str, Any], walltime: int, maxqueuetime: int) -> None:
        """The server's deadline, maxexectime = walltime + maxqueuetime, is a 32-bit column."""
        if walltime + maxqueuetime <= INT32_MAX:
            return
        conditions = top.get("conditions")
        key: KeyPath = ("maxqueuetime",)
        if isinstance(conditions, dict) and "walltime" in conditions and walltime > maxqueuetime:
            key = ("conditions", "walltime")
        self.fail(
            key,
            f"walltime + maxqueuetime is {walltime + maxqueuetime} s, but the server's "
            f"deadline (maxexectime, their sum) must be at most {INT32_MAX} s (68 years): "
            f"{_DATABASE}. Shorten them.",
        )

    def plugin_section_values(self, top: dict[str, Any]) -> dict[str, Section]:
        found = {}
        for name in sorted(self.plugin_sections & set(top)):
            values = self.section_mapping(top[name], (name,))
            lines = {k: self.lines.get((name, k), 1) for k in values}
            found[name] = Section(name, values, self.file, lines)
        return found

    def section_mapping(self, data: object, path: KeyPath) -> dict[str, Any]:
        """A plugin's section: a mapping of text keys (its plugin knows which)."""
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            self.fail(
                path, f"{_dotted(path)} must be a mapping of setting: value, got {_kind(data)}."
            )
        return data

    def conditions(self, data: object) -> ProjectConditions:
        path: KeyPath = ("conditions",)
        section = self.section(data, path)
        gpu = self.section(section.get("gpu"), (*path, "gpu"))
        never = "the Colonies server never assigns a process that asks for more"
        return ProjectConditions(
            executor_names=self.string_list(section, path, "executorNames"),
            nodes=self.integer(section, path, "nodes", 1, 1, MAX_PER_PROCESS, why_high=never),
            processes_per_node=self.integer(
                section, path, "processesPerNode", 1, 1, MAX_PER_PROCESS, why_high=never
            ),
            cpu_millis=self.quantity(
                section,
                path,
                "cpu",
                1000,
                units.parse_cpu,
                positive=True,
                minimum=(
                    MIN_CPU_MILLIS,
                    f"{MIN_CPU_MILLIS}m, the least the official Colonies executors accept",
                ),
                maximum=(INT64_MAX, f"{INT64_MAX}m, the most the Colonies server can hold"),
            ),
            mem_bytes=self.quantity(
                section,
                path,
                "mem",
                1000 * 1024**2,
                units.parse_memory,
                positive=True,
                maximum=(
                    MAX_MEM_BYTES,
                    f"{MAX_MEM_BYTES >> 20}Mi, the most the Colonies server can hold",
                ),
            ),
            walltime=self.quantity(
                section, path, "walltime", 600, units.parse_duration, positive=True
            ),
            gpu=GpuRequest(
                count=self.integer(
                    gpu,
                    (*path, "gpu"),
                    "count",
                    0,
                    0,
                    INT64_MAX,
                    why_high="the Colonies server holds a 64-bit integer",
                ),
                name=self.string(gpu, (*path, "gpu"), "name", "", required=False),
            ),
        )

    def environment(self, data: object) -> ProjectEnvironment:
        path: KeyPath = ("environment",)
        section = self.section(data, path)
        defaults = ProjectEnvironment()
        source = self.string(section, path, "source", defaults.source, required=False)
        if source.startswith("/") or ".." in Path(source).parts:
            self.fail(
                (*path, "source"),
                f"environment.source {source!r} must be a path inside cfs/src, such as main.py.",
            )
        init_cmd = self.string(section, path, "init-cmd", defaults.init_cmd, required=False)
        cmd = self.string(section, path, "cmd", defaults.cmd, required=True)
        size = len(init_cmd.encode()) + len(cmd.encode())
        if size > MAX_COMMAND:
            self.fail(
                (*path, "cmd"),
                f"environment.init-cmd and cmd are {size} bytes together, but at most "
                f"{MAX_COMMAND} fit: executors run them as one argument of `sh -c`, and Linux "
                "passes at most 128 KiB in one argument. Put the commands in a script under "
                "cfs/src and run that.",
            )
        return ProjectEnvironment(
            docker=self.string(section, path, "docker", defaults.docker, required=True),
            rebuild_image=self.boolean(section, path, "rebuildImage", defaults.rebuild_image),
            init_cmd=init_cmd,
            cmd=cmd,
            source=source,
        )

    def maxwaittime(self, top: dict[str, Any]) -> int:
        if type(top.get("maxwaittime")) is int and top["maxwaittime"] == -1:
            return -1
        return self.quantity(
            top,
            (),
            "maxwaittime",
            -1,
            units.parse_duration,
            positive=False,
            maximum=(INT32_MAX, f"{INT32_MAX} s (68 years): {_DATABASE}"),
        )

    def env(self, data: object) -> dict[str, str]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail(("env",), f"env must be a mapping of NAME: value, got {_kind(data)}.")
        env: dict[str, str] = {}
        for key, value in data.items():
            path: KeyPath = ("env", str(key))
            if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
                self.fail(
                    path,
                    f"env name {key!r} is not a valid environment variable name "
                    "(letters, digits and _, not starting with a digit).",
                )
            if key in RESERVED_ENV:
                self.fail(path, f"env.{key} is set by Pollinator for every run; remove it.")
            if isinstance(value, bool) or not isinstance(value, str | int):
                self.fail(
                    path, f"env.{key} must be text, got {_kind(value)}.{_quote_hint(key, value)}"
                )
            text = str(value)
            self.no_nul(path, text)
            size = len(key.encode()) + 1 + len(text.encode())
            if size > ENV_ENTRY_MAX:
                self.fail(
                    path,
                    f"env.{key} is {size} bytes as {key}=value, but at most {ENV_ENTRY_MAX} fit "
                    "in one environment variable of a program on Linux (128 KiB), so no "
                    "runtime could start the job. Put the value in a file under cfs/data "
                    "and read it from $PROJECT_DIR/data.",
                )
            env[key] = text
        total = sum(len(k.encode()) + 1 + len(v.encode()) for k, v in env.items())
        if total > ENV_TOTAL_MAX:
            self.fail(
                ("env",),
                f"env is {total} bytes in all (NAME=value), but at most {ENV_TOTAL_MAX} (1 MiB) "
                "are allowed: a program's arguments and environment share 2 MiB on Linux, "
                "and a Kubernetes Job must stay under 1.5 MiB. Put large values in files "
                "under cfs/data.",
            )
        return env


# --- per-run overrides ---------------------------------------------------------------------

#: the run options that stand for project.yaml keys, by key path (for their messages)
OPTIONS: dict[KeyPath, str] = {
    ("conditions", "walltime"): "--walltime",
    ("conditions", "cpu"): "--cpu",
    ("conditions", "mem"): "--mem",
    ("conditions", "gpu", "count"): "--gpus",
    ("env",): "--env",
}


class _OptionReader(_Reader):
    """project.yaml's readers for values from the command line: the same checks and the same
    messages, which name the option instead of a line."""

    def where(self, path: KeyPath) -> str:
        for length in range(len(path), 0, -1):
            option = OPTIONS.get(path[:length])
            if option is not None:
                return option
        return "the command line"


def override(
    project: Project,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    walltime: str | None = None,
    cpu: str | None = None,
    mem: str | None = None,
    gpus: str | None = None,
) -> Project:
    """``project`` with one run's overrides from the command line, each checked as the
    project.yaml key it stands for (``--walltime`` as ``conditions.walltime``...), by the very
    reader of that key, bounds included; ``env`` entries are added to project.yaml's ``env``,
    ``args`` follow the source file."""
    reader = _OptionReader(project.path)
    now = project.conditions
    # The conditions as project.yaml would say them, with this run's values written over.
    data: dict[str, Any] = {
        "executorNames": list(now.executor_names),
        "nodes": now.nodes,
        "processesPerNode": now.processes_per_node,
        "cpu": f"{now.cpu_millis}m",
        "mem": now.mem_bytes,
        "walltime": now.walltime,
        "gpu": {"count": now.gpu.count, "name": now.gpu.name},
    }
    for key, value in (("walltime", walltime), ("cpu", cpu), ("mem", mem)):
        if value is not None:
            data[key] = value
    if gpus is not None:
        data["gpu"]["count"] = int(gpus) if re.fullmatch(r"-?[0-9]+", gpus.strip()) else gpus
    conditions = reader.conditions(data)
    reader.server_deadline({"conditions": data}, conditions.walltime, project.maxqueuetime)
    return attrs.evolve(
        project,
        conditions=conditions,
        env=reader.env({**project.env, **(env or {})}) if env else project.env,
        args=tuple(args),
    )
