"""The user side of a run: sync up, snapshot, submit, remember, and bring results down.

Each run is remembered in ``.pollinator/runs/<processid>.json`` (backend, colony, server), so
``logs``, ``status``, ``cancel`` and ``results`` find it by an ID prefix, or take the latest run.

Results of a run land in ``cfs/result/<processid>/`` (the executor uploads them under the label
``<prefix>/result/<processid>``, so this is the label tree as `pollinator sync` lays it out),
and ``cfs/result/latest`` points at the run pulled last. Concurrent runs never share a directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs

from pollinator_core.colonies.models import FunctionSpec, Process
from pollinator_core.errors import InfraError, ProjectError, UsageError
from pollinator_core.plugins.backend import Connection
from pollinator_core.plugins.manager import hooks
from pollinator_core.project.funcspec import PROCESS_ID, build_function_spec, substitute
from pollinator_core.project.loader import Project, load_project
from pollinator_core.runs.backends import get_backend

LATEST = "latest"
SHORT = 12


@attrs.frozen
class RunRecord:
    process_id: str
    backend: str
    colony: str
    server: str
    submitted: float  # unix time
    snapshot_id: str = ""
    #: the run's name (``run --name``), shown by ps; "" for none
    name: str = ""

    @property
    def short_id(self) -> str:
        return self.process_id[:SHORT]


class RunBook:
    """The runs started from this project directory."""

    def __init__(self, project: Project) -> None:
        self._dir = project.state_dir / "runs"

    def add(self, record: RunRecord) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f".{record.process_id}.tmp"
        tmp.write_text(json.dumps(attrs.asdict(record)))
        os.replace(tmp, self._dir / f"{record.process_id}.json")

    def forget(self, record: RunRecord) -> None:
        (self._dir / f"{record.process_id}.json").unlink(missing_ok=True)

    def all(self) -> list[RunRecord]:
        """Newest first."""
        records = []
        for path in self._dir.glob("*.json") if self._dir.is_dir() else ():
            try:
                records.append(RunRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue  # a damaged record hides one run, not the others
        return sorted(records, key=lambda r: r.submitted, reverse=True)

    def find(self, run_id: str | None) -> RunRecord:
        """The run whose ID starts with ``run_id``; the latest run when None."""
        records = self.all()
        if run_id is None:
            if not records:
                raise UsageError("This project has no runs yet: start one with `pollinator run`.")
            return records[0]
        matches = [r for r in records if r.process_id.startswith(run_id.lower())]
        if len(matches) > 1:
            ids = ", ".join(r.short_id for r in matches[:5])
            raise UsageError(f"{run_id!r} matches several runs ({ids}); give more of the ID.")
        if not matches:
            raise UsageError(
                f"No run of this project has an ID starting with {run_id!r}; "
                "`pollinator ps` lists them."
            )
        return matches[0]


def connect_for(project: Project, record: RunRecord) -> Connection:
    """Reconnect to where ``record`` ran."""
    return get_backend(record.backend).connect(project)


@contextlib.contextmanager
def project_lock(project: Project) -> Iterator[None]:
    """Held while this project's files go up (a run's sync and snapshot, ``pollinator sync``)
    and while ``pollinator clean`` decides what is garbage: no upload is ever half-seen."""
    project.state_dir.mkdir(parents=True, exist_ok=True)
    with open(project.state_dir / "submit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def submit_run(
    project: Project, conn: Connection, *, quiet: bool = False, name: str = ""
) -> RunRecord:
    """Sync src and data up, snapshot src, submit the spec; record and return the run."""
    from pollinator_core.sync.progress import make_progress
    from pollinator_core.sync.project import sync_project, tree_label

    # One run at a time from sync to snapshot: concurrent runs of the project wait here instead
    # of failing on the sync lock, and each snapshot is exactly the tree its own run synced.
    with project_lock(project):
        sync_project(
            conn.client, conn.colony, project, conn.storage, ("src", "data"),
            progress=make_progress(quiet),
        )  # fmt: skip
        snapshot_name = f"{project.name}-{uuid.uuid4().hex[:12]}"
        snapshot = conn.client.create_snapshot(
            conn.colony, tree_label(project, "src"), snapshot_name
        )
    spec = final_function_spec(project, snapshot.snapshotid, conn.colony)
    if conn.prepare_spec is not None:
        conn.prepare_spec(spec)
    process = conn.client.submit(spec)
    record = RunRecord(
        process.processid,
        conn.backend,
        conn.colony,
        conn.server,
        time.time(),
        snapshot.snapshotid,
        name,
    )
    RunBook(project).add(record)
    return record


def result_label(project: Project, process: Process) -> str:
    """Where the executor put the run's results: the spec's ``{processid}`` dir label."""
    for entry in process.spec.fs.dirs:
        if PROCESS_ID in entry.label:
            return substitute(entry.label, process.processid)
    return f"{project.label_prefix}/result/{process.processid}"


class ResultsNotWritten(InfraError):
    """The run's results could not be written locally; they are still on the server."""


@attrs.frozen
class Pulled:
    """What fetching a run's results did."""

    directory: Path
    #: files that came down (a conflict's saved copy is not counted)
    new: int
    #: (a file you changed, where the run's version of it was saved instead), relative to
    #: ``directory``
    conflicts: tuple[tuple[str, str], ...] = ()

    def describe(self, root: Path) -> list[str]:
        """What to tell the user: the directory and count, then each conflict."""
        where = self.directory.relative_to(root)
        lines = [f"results: {where}/ ({self.new} new file{'s' if self.new != 1 else ''})"]
        lines += [
            f"conflict {where}/{rel}: you changed it; yours is kept, the run's version is "
            f"saved as {where}/{saved}"
            for rel, saved in self.conflicts
        ]
        return lines


def pull_results(project: Project, conn: Connection, process: Process) -> Pulled:
    """Download the run's results into cfs/result/<processid>/.

    A file the user changed there since is kept, the remote version saved beside it. A
    directory that cannot be written (read-only, not ours, a full disk) is a
    :class:`ResultsNotWritten` that says so: the results stay on the server to fetch later.
    """
    from pollinator_core.sync.engine import sync_tree
    from pollinator_core.sync.plan import Mode

    short = process.processid[:SHORT]
    target = project.result_dir / process.processid
    where = target.relative_to(project.root)
    try:
        target.mkdir(parents=True, exist_ok=True)
        # A directory we cannot write would fail file by file, after the downloads.
        with tempfile.TemporaryFile(dir=target):
            pass
    except (FileExistsError, NotADirectoryError):
        raise UsageError(
            f"Cannot fetch the results of process {short} into {where}/: a file stands where "
            f"that directory (or cfs/result) should be. Move it aside and run "
            f"`pollinator results {short}`."
        ) from None
    except OSError as exc:
        raise ResultsNotWritten(
            f"Cannot write the results of process {short} into {where}/: "
            f"{exc.strerror or exc}. They stay on the server: make cfs/result writable and run "
            f"`pollinator results {short}`."
        ) from None
    report = sync_tree(
        conn.client,
        conn.colony,
        target,
        result_label(project, process),
        conn.storage,
        Mode.PULL,
        boundary=project.root,
        project_root=project.root,
    )
    try:
        point_latest(project, process.processid)
    except OSError as exc:
        raise ResultsNotWritten(
            f"The results of process {short} are in {where}/, but cfs/result/{LATEST} could not "
            f"point there: {exc.strerror or exc}."
        ) from None
    done = report.done.downloaded if report.done else {}
    conflicts = tuple(
        (a.rel, a.target)
        for a in report.plan.actions
        if a.reason == "conflict" and a.target in done
    )
    return Pulled(target, len(done) - len(conflicts), conflicts)


def check_state_dir(project: Project) -> None:
    """Refuse, before anything touches the network, a project whose ``.pollinator`` cannot be
    written: its runs, sync index and local backend live there."""
    try:
        project.state_dir.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=project.state_dir):
            pass
    except OSError as exc:
        raise InfraError(
            f"Cannot write {project.state_dir}: {exc.strerror or exc}. Pollinator keeps this "
            "project's runs, sync index and local backend there; make it writable and run the "
            "command again."
        ) from None


def point_latest(project: Project, name: str) -> None:
    """Point cfs/result/latest at run ``name``'s results unless it points at a newer run's:
    fetching an old run's results again does not make it the latest."""
    result_dir = project.result_dir
    link = result_dir / LATEST
    if link.exists() and not link.is_symlink():
        return  # the user's own file or directory: leave it alone
    current = os.readlink(link) if link.is_symlink() else ""
    if current not in ("", name) and (result_dir / current).is_dir():
        submitted = {r.process_id: r.submitted for r in RunBook(project).all()}
        if submitted.get(current, 0.0) > submitted.get(name, 0.0):
            return
    tmp = result_dir / f".{LATEST}.{uuid.uuid4().hex[:8]}"
    tmp.symlink_to(name, target_is_directory=True)
    os.replace(tmp, link)  # atomic: a concurrent run never sees it missing


def forget_snapshot(conn: Connection, record: RunRecord) -> None:
    """Remove the run's src snapshot once the run has ended (the original leaked them all)."""
    from pollinator_core.colonies.client import ColoniesError

    if record.snapshot_id:
        # Failing means already gone, or not ours to remove: harmless either way.
        with contextlib.suppress(ColoniesError):
            conn.client.remove_snapshot(conn.colony, snapshot_id=record.snapshot_id)


def check_sources(project: Project) -> None:
    """Refuse, before anything touches the network, a run whose files cannot work: no
    cfs/src, or an ``environment.source`` that is not a file in it (the job would only fail)."""
    if not project.src_dir.is_dir():
        raise ProjectError(
            f"{project.src_dir} does not exist: create it (it may stay empty); "
            "the job runs a snapshot of it."
        )
    source = project.environment.source
    if source and not (project.src_dir / source).is_file():
        raise ProjectError(
            f"{project.path}: environment.source is {source!r}, but cfs/src/{source} is not a "
            'file. Create it, or name the file to run (or "" to run cmd alone).'
        )


def check_options(options: dict[str, dict[str, str]]) -> None:
    """Every ``-s`` names a known section and setting, with a valid value."""
    sections = hooks().settings()
    for name, values in options.items():
        if name not in sections:
            known = ", ".join(sorted(sections)) or "none"
            raise UsageError(
                f"-s {name}.*: no plugin has a settings section {name!r} (known: {known})."
            )
        sections[name].load(None, values, env={})


def open_project(directory: Path | None = None) -> Project:
    """The project in ``directory`` (else found upward from the current directory), with its
    plugin sections (``local:``, ``slurm:``) checked against the plugins' settings."""
    sections = hooks().settings()
    project = load_project(directory=directory, sections=sections)
    for name, section in project.sections.items():
        sections[name].load(section, env={})
    return project


def final_function_spec(project: Project, snapshot_id: str, colony_name: str) -> FunctionSpec:
    """:func:`build_function_spec`, then adjusted by plugins' ``pollinator_function_spec``."""
    spec = build_function_spec(project, snapshot_id, colony_name)
    hooks().adjust_spec(project, spec)
    return spec
