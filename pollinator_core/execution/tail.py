"""Follow a job's output file on a shared filesystem, byte-exact.

Batch schedulers write a job's output into a file the executor can read (Slurm's ``--output``
on the shared filesystem). :class:`FileTailer` reads it from a byte offset, so nothing is read
twice and an adopting executor resumes where the last one stopped; it notices a file replaced
or truncated (a requeued job starting over) and reads the new one from its start. Partial lines
are the caller's business: the executor loop holds them back until their newline, or until the
final drain.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

READ_SIZE = 1 << 20


class FileTailer:
    """Reads what was appended to ``path`` since the last read."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._inode: int | None = None
        #: set when the file was replaced or truncated since the last read
        self.restarted = False

    def read(self) -> bytes:
        """The new bytes (b"" when none, or while the file does not exist yet)."""
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                replaced = self._inode is not None and info.st_ino != self._inode
                if replaced or info.st_size < self.offset:
                    self.restarted = True
                    self.offset = 0
                self._inode = info.st_ino
                f.seek(self.offset)
                data = f.read(READ_SIZE)
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data

    def follow(
        self,
        ended: Callable[[], bool],
        *,
        interval: float = 0.2,
        max_interval: float = 1.0,
        settle: float = 0.5,
        idle: bool = False,
    ) -> Iterator[bytes]:
        """Yield new bytes until ``ended()`` is true, then drain what is left.

        ``ended`` is asked *before* each read, so the read after it turned true still sees the
        job's last bytes; ``settle`` then waits once more for a shared filesystem that shows a
        file's end late (NFS attribute caches). With ``idle``, a quiet poll yields ``b""``, so
        the caller gets control back while the job prints nothing."""
        wait = interval
        while True:
            finished = ended()
            data = self.read()
            while data:
                yield data
                wait = interval
                data = self.read()
            if finished:
                time.sleep(settle)
                data = self.read()
                while data:
                    yield data
                    data = self.read()
                return
            if idle:
                yield b""
            time.sleep(wait)
            wait = min(wait * 1.5, max_interval)
