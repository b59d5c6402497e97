"""What an executor remembers about its processes across a restart.

One small JSON file per process under ``<fs_dir>/.journal/``: where its files are, whether its
job was handed to the runtime, and how many bytes of the job's output were forwarded to the
process log. An executor that starts again reads it to adopt its still-running jobs: the same
directory, no second submission, the output from where it stopped. Writes are atomic (a
temporary file, then a rename), so a crash leaves the old entry or the new one, never half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs


@attrs.define
class Entry:
    process_id: str
    root: str
    submitted: bool = False
    #: bytes of the job's output already in the process log
    offset: int = 0


class Journal:
    def __init__(self, fs_dir: Path) -> None:
        self._dir = fs_dir / ".journal"

    def _path(self, process_id: str) -> Path:
        return self._dir / f"{process_id}.json"

    def get(self, process_id: str) -> Entry | None:
        try:
            data = json.loads(self._path(process_id).read_text())
            return Entry(**data)
        except (OSError, ValueError, TypeError):
            return None

    def put(self, entry: Entry) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.process_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(attrs.asdict(entry)))
        os.replace(tmp, path)

    def remove(self, process_id: str) -> None:
        self._path(process_id).unlink(missing_ok=True)
