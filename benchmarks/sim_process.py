"""A simulator in a process of its own, as a benchmark's server (shared by the benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def simulator_process(
    db: Path | None = None,
) -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    """Start `python -m pollinator_simulator` on a free port with generated development keys;
    yield the COLONIES_* variables it prints and the process. Stopped (SIGTERM) on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    cmd = [sys.executable, "-m", "pollinator_simulator", "--port", "0"]
    if db is not None:
        cmd += ["--db", str(db)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    exports: dict[str, str] = {}
    assert proc.stdout is not None
    try:
        while "COLONIES_PRVKEY" not in exports:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the simulator exited before printing its keys")
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
        yield exports, proc
    finally:
        proc.terminate()
        proc.wait(10)
