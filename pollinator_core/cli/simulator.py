"""``pollinator simulator serve``: a local stand-in for a Colonies server."""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from pathlib import Path

import click

from pollinator_core.errors import UsageError


@click.group()
def simulator() -> None:
    """A local, Colonies-compatible server for offline use and tests."""


@simulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=50080, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep state in this SQLite file; a restart then loses nothing acknowledged. "
    "Default: in memory.",
)
@click.option(
    "--allow-remote", is_flag=True, help="Allow listening on an address beyond this machine."
)
def serve(host: str, port: int, db: Path | None, allow_remote: bool) -> None:
    """Serve the Colonies protocol on HOST:PORT until SIGTERM or Ctrl-C.

    With COLONIES_SERVER_PRVKEY, COLONIES_COLONY_NAME, COLONIES_COLONY_PRVKEY and
    COLONIES_PRVKEY set, that colony is created (if missing) with COLONIES_PRVKEY as a member.
    With none set, development keys are generated (and reused on restart with --db) and the
    `export` lines a shell needs are printed to stdout.
    """
    if db is not None:
        check_database(db)
    # Imported on use (aiohttp is not needed for --help), by name: mypy cannot map the
    # pollinator_simulator package onto its simulator/ directory.
    service = importlib.import_module("pollinator_simulator.service")
    try:
        service.run(host, port, db, allow_remote, os.environ, sys.stdout)
    except sqlite3.DatabaseError as exc:  # damaged, locked, or lost from under us
        raise UsageError(f"--db {db}: the database cannot be used: {exc}.") from None


#: how every SQLite database file begins
SQLITE_HEADER = b"SQLite format 3\x00"


def check_database(db: Path) -> None:
    """Refuse, before the server starts, a --db that is no SQLite file or cannot be made."""
    if db.exists():
        try:
            with open(db, "rb") as f:
                header = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise UsageError(f"--db {db} cannot be read: {exc.strerror or exc}.") from None
        if header and header != SQLITE_HEADER:
            raise UsageError(
                f"--db {db} is not a simulator database (not an SQLite file). Name a new file, "
                "or one an earlier `pollinator simulator serve --db` wrote."
            )
        return
    folder = db.absolute().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"--db {db} cannot be created: {folder} is not a directory this user may write to."
        )
