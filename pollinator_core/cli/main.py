"""The ``pollinator`` command line.

Commands live in :data:`COMMANDS` as import strings and are imported only when they run, so
``pollinator --help`` and shell completion stay fast (no docker, kubernetes, s3fs, aiohttp or
rich). Errors the user can act on (:class:`PollinatorError`) print one ``Error:`` paragraph and
exit with their code; a traceback appears only with ``-vv`` or for a genuine bug.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from pollinator_core import __version__
from pollinator_core.cli.context import CliContext
from pollinator_core.errors import (
    InfraError,
    PollinatorError,
    SignalInterrupt,
    interrupt_exit_code,
)

#: name -> ("module:attribute" of the click command, the one line `pollinator --help` shows).
#: Adding a command is one line here; its module is imported only when that command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("pollinator_core.cli.new:new", "Create a project in a directory."),
    "run": ("pollinator_core.cli.run:run", "Run the project; --dry-run shows the job."),
    "plugins": ("pollinator_core.cli.plugins:plugins", "List plugins and their hooks."),
    "logs": ("pollinator_core.cli.logs:logs", "Print a run's output; -f follows it."),
    "status": ("pollinator_core.cli.status:status", "Show how a run is doing."),
    "ps": ("pollinator_core.cli.ps:ps", "List this project's runs."),
    "cancel": ("pollinator_core.cli.cancel:cancel", "Cancel a run."),
    "results": ("pollinator_core.cli.results:results", "Fetch a run's results."),
    "clean": (
        "pollinator_core.cli.clean:clean",
        "Remove old runs and unused objects; --dry-run lists them.",
    ),
    "executors": ("pollinator_core.cli.executors:executors", "List the colony's executors."),
    "executor": ("pollinator_core.cli.executor:executor", "Run an executor daemon."),
    "sync": (
        "pollinator_core.cli.sync:sync",
        "Sync cfs/src, data and result; --dry-run shows the plan.",
    ),
    "simulator": (
        "pollinator_core.cli.simulator:simulator",
        "Serve a local Colonies simulator for development.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, from ``lazy_commands``."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, tuple[str, str]], **kw: Any):
        super().__init__(*args, **kw)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self.lazy_commands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name][0]} is not a click command")
        return command

    def _short_help(self, ctx: click.Context, name: str) -> str:
        if name in self.lazy_commands:
            return self.lazy_commands[name][1]
        command = super().get_command(ctx, name)
        return command.get_short_help_str() if command else ""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self._short_help(ctx, name)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        items = [
            CompletionItem(name, help=self._short_help(ctx, name))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as e:  # suggest lazy names too ("Did you mean 'run'?")
            raise click.NoSuchCommand(
                e.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="pollinator")
@click.option(
    "-v", "--verbose", count=True, help="More output: -v progress, -vv debug and tracebacks."
)
@click.option(
    "-C",
    "directory",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The project directory (holding project.yaml). Default: the nearest one above the "
    "current directory.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, directory: Path | None) -> None:
    """Run one project folder, unchanged, on Slurm, Kubernetes or Docker through Colonies.

    Start with `pollinator new DIR`, then `pollinator run` inside it.

    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_POLLINATOR_COMPLETE=bash_source pollinator)"
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    # urllib3 (under the Docker SDK) logs each connection retry as a WARNING with its exception
    # text; the command's own error already says what failed, so those lines show only with -v.
    logging.getLogger("urllib3").setLevel(logging.ERROR if verbose == 0 else logging.NOTSET)
    ctx.obj = CliContext(directory=directory, verbose=verbose)


#: signals a command treats as Ctrl-C: a closed terminal (SIGHUP), a polite kill (SIGTERM)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise SignalInterrupt(signum)


@contextlib.contextmanager
def _stop_signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`SignalInterrupt` (a KeyboardInterrupt) while the
    command runs, instead of killing it mid-way without a word."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (tests call main() from threads)
        return
    previous = {
        sig: signal.signal(sig, _raise_interrupt)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN  # nohup's choice stands
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupted(exc: BaseException | None) -> int:
    what = f"by {signal.Signals(exc.signum).name}" if isinstance(exc, SignalInterrupt) else ""
    with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
        click.echo(f"Interrupted{' ' + what if what else ''}.", err=True)
    return interrupt_exit_code(exc)


# How the Colonies server says a colony does not exist (a 403, or a 400 from some calls).
_NO_COLONY = re.compile(r"[Cc]olony with name <([^>]*)> (?:does not exists?|not found)")


def _explained(e: PollinatorError) -> str:
    """The error's message, or a plainer one where the server's words mislead: a colony that
    does not exist reads as a refused key, under the name of an internal call."""
    missing = _NO_COLONY.search(getattr(e, "server_message", "") or "")
    if missing:
        return (
            f"The Colonies server has no colony named {missing.group(1)!r}. Check "
            "COLONIES_COLONY_NAME: the colony must exist on the server, and the key in "
            "COLONIES_PRVKEY must belong to one of its members."
        )
    return str(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (the console script passes it to sys.exit)."""
    try:
        with _stop_signals_as_interrupts():
            result = cli.main(args=argv, prog_name="pollinator", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort as e:  # click's form of Ctrl-C (and of EOF at a prompt)
        if isinstance(e.__context__, KeyboardInterrupt):
            return _interrupted(e.__context__)
        click.echo("Aborted.", err=True)
        return 1
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except PollinatorError as e:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        click.echo(f"Error: {_explained(e)}", err=True)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        # This machine's own disk refused (read-only, not ours, full): infrastructure, not a
        # bug, and the user can act on it. Commands say more where they know more.
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        advice = (
            f": {e.filename}. Check that it can be read and written (permissions, a read-only "
            "mount, free space) and run the command again."
            if e.filename
            else "."
        )
        click.echo(f"Error: {e.strerror or e}{advice}", err=True)
        return InfraError.exit_code
    # ctx.exit(n) comes back as n; commands otherwise return None (0).
    return result if isinstance(result, int) else 0
