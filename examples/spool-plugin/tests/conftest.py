"""A spool daemon for the tests: ``pollinator-spoold`` on a fresh spool directory, stopped by
its PID afterwards. (The kit's fixtures, ``pollinator_sim`` and ``pollinator_executor``, come
with Pollinator itself: its pytest plugin is installed with it.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Spool:
    root: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    root = tmp_path / "spool"
    daemon = shutil.which("pollinator-spoold")
    argv = [daemon] if daemon else [sys.executable, "-m", "pollinator_spool.daemon"]
    process = subprocess.Popen([*argv, "--spool", str(root), "--grace", "1"])
    deadline = time.monotonic() + 10
    while not (root / "status.json").exists():
        assert process.poll() is None, "pollinator-spoold exited at start"
        assert time.monotonic() < deadline, "pollinator-spoold wrote no status in 10 s"
        time.sleep(0.05)
    yield Spool(root, process)
    os.kill(process.pid, signal.SIGTERM)
    process.wait(10)
