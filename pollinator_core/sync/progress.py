"""Transfer progress: a rich bar (files, bytes, rate, ETA) on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol


class Progress(Protocol):
    def start(self, title: str, files: int, nbytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, title: str, files: int, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    """One task per phase; ``advance`` is called from worker threads (rich is thread-safe,
    the file counter here is guarded by a lock)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}/{task.fields[files]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._lock = threading.Lock()
        self._task: Any = None
        self._done = 0

    def start(self, title: str, files: int, nbytes: int) -> None:
        self._done = 0
        if self._task is None:
            self._bar.start()
        else:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(title, total=max(nbytes, 1), files=files, done=0)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        self._bar.update(self._task, advance=nbytes, done=done)

    def stop(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._bar.stop()
            self._task = None


def make_progress(quiet: bool) -> Progress:
    """A bar when stderr is a terminal and ``quiet`` is off."""
    if quiet or not sys.stderr.isatty():
        return NoProgress()
    return RichProgress()
