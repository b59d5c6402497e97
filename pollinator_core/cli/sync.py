"""``pollinator sync``: show and apply the sync plan of cfs/src, cfs/data and cfs/result."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from pollinator_core.cli.context import load
from pollinator_core.sync import TREES, Action, Kind, SyncOptions, SyncReport

_DIR_KINDS = (Kind.MARK, Kind.UNMARK, Kind.MKDIR)
_OPS = {
    Kind.UPLOAD: "upload",
    Kind.DOWNLOAD: "download",
    Kind.REMOVE: "remove",
    Kind.MARK: "upload",
    Kind.UNMARK: "remove",
    Kind.MKDIR: "mkdir",
}


@click.command()
@click.argument("dirs", nargs=-1, type=click.Choice(list(TREES)))
@click.option(
    "--dry-run", is_flag=True, help="List what would move or be removed, and why; change nothing."
)
@click.option(
    "--checksum",
    is_flag=True,
    help="Re-hash every local file and re-list every remote directory instead of trusting "
    "the index.",
)
@click.option("--delete", is_flag=True, help="data: also remove remote files deleted locally.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("--backend", metavar="NAME", help="Where the files go (default: as for run).")
@click.pass_context
def sync(
    ctx: click.Context,
    dirs: tuple[str, ...],
    dry_run: bool,
    checksum: bool,
    delete: bool,
    quiet: bool,
    backend: str | None,
) -> None:
    """Sync the project's files: src mirrors up, data goes up, result comes down.

    DIRS picks some of src, data and result (default: all three). src becomes exactly the
    local tree (local deletes and renames propagate); data uploads new and changed files and
    removes remote ones only with --delete; result downloads new and changed files and never
    overwrites a file you changed: the remote version is saved beside it.
    """
    from pollinator_core.runs.backends import default_backend, get_backend
    from pollinator_core.runs.submit import project_lock
    from pollinator_core.sync import sync_project
    from pollinator_core.sync.progress import make_progress

    project = load(ctx)
    connection = get_backend(backend or default_backend(project)).connect(project)
    try:
        with project_lock(project):  # not while `pollinator clean` looks for garbage
            reports = sync_project(
                connection.client,
                connection.colony,
                project,
                connection.storage,
                dirs or tuple(TREES),
                options=SyncOptions(dry_run=dry_run, checksum=checksum, delete=delete),
                progress=make_progress(quiet or dry_run),
            )
    finally:
        connection.close()
    show_reports(reports, project.root, quiet=quiet)


def show_reports(reports: Iterable[SyncReport], project_root: Path, *, quiet: bool) -> None:
    """Print what a sync did (or, for a dry run, would do). Conflicts are always shown."""
    for report in reports:
        base = _rel(report.local_dir, project_root)
        dry = report.dry_run
        for rel, why in report.skipped:
            if not quiet:
                click.echo(f"skipped  {base}/{shown(rel)}: {why}", err=True)
        for a in report.plan.actions:
            if not _shown(a):
                continue
            path = f"{base}/{shown(a.rel)}" + ("/" if a.kind in _DIR_KINDS else "")
            if a.reason == "conflict":
                saved = f"{base}/{shown(a.target or '')}"
                verb = "would be saved" if dry else "saved"
                click.echo(
                    f"conflict {path}: changed locally and remotely; yours is kept, the remote "
                    f"version {verb} as {saved}",
                    err=True,
                )
            elif dry:
                click.echo(f"{_OPS[a.kind]:<9}{a.reason:<9}{path}")
        if report.plan.kept_remote and not quiet:
            click.echo(
                f"{base}: {report.plan.kept_remote} remote file(s) not present locally were "
                "kept (--delete removes them)",
                err=True,
            )
        if not quiet and not dry:
            click.echo(_summary(base, report), err=True)


def shown(path: str) -> str:
    """A path as one line of plain text: control and invisible characters (a newline in a file
    name, an escape sequence), and bytes that are not UTF-8, written as escapes."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in path)


def _shown(a: Action) -> bool:
    """Bookkeeping is not listed: the root's marker, and a marker whose directory now has
    files to stand for it."""
    if a.kind in _DIR_KINDS and a.rel == "":
        return False
    return not (a.kind is Kind.UNMARK and a.reason == "not empty")


def _summary(base: str, report: SyncReport) -> str:
    done = report.done
    if done is None or not report.plan.actions:
        return f"{base}: up to date ({report.seconds:.2f} s)"
    parts = []
    if done.uploaded:
        parts.append(f"{len(done.uploaded)} up ({_size(done.bytes_up)})")
    if done.downloaded:
        parts.append(f"{len(done.downloaded)} down ({_size(done.bytes_down)})")
    if done.removed:
        parts.append(f"{len(done.removed)} removed")
    dirs = len([d for d in (*done.marked, *done.mkdirs) if d])
    if dirs:
        parts.append(f"{dirs} empty dir(s)")
    return f"{base}: {', '.join(parts) or 'up to date'} ({report.seconds:.2f} s)"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value, unit = n / 1000, "kB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
