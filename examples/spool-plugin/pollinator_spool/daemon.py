"""pollinator-spoold: a tiny batch scheduler. Jobs are directories in a spool; the daemon runs
them as process groups on this machine, a few at a time, and says how each ended.

This is the scheduler, not the plugin: it knows nothing of Pollinator (the standard library
only), as Slurm knows nothing of it. The plugin (``pollinator_spool.runtime``) talks to it
through files only:

``jobs/<id>/``
    ``job.json`` (environment, working directory, walltime), ``wrapper.sh`` (what the daemon
    runs, with ``sh``), ``command.sh`` (what the wrapper runs), written by whoever submits;
    ``output.log`` (the job's stdout and stderr), ``exit.json`` (written by the wrapper) and
    ``accounting.json`` (written by the daemon once the job ended: exit code, and a reason:
    ``exit``, ``walltime``, ``cancelled``, or ``start-failed`` with a detail).
``queue/<id>``
    An empty file: the job is submitted (created last, once its directory is complete).
``jobs/<id>/cancel``
    ``term`` or ``kill``: a request to stop the job (``term``: SIGTERM, then SIGKILL after the
    grace; a queued job is dropped).
``status.json``
    The live view, rewritten every cycle: the daemon's pid, the time (a heartbeat), and each
    queued or running job with its state (and, when queued, why it waits).

A job runs as its own process group (its own session), with a small environment (PATH, HOME,
LANG ...) plus its own variables and ``SPOOL_JOB_ID``. It ends when its main process does: what
it left in the background is killed then, as a batch scheduler ends a job's step. Walltime
counts from the job's start: SIGTERM, then SIGKILL after the grace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: variables of the daemon's own environment a job inherits; nothing else (no secrets)
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Running:
    """A started job: its process group, its limits, why we stopped it."""

    def __init__(self, job_id: str, proc: subprocess.Popen[bytes], walltime: int) -> None:
        self.id = job_id
        self.proc = proc
        self.started = time.monotonic()
        self.walltime = walltime
        self.reason = "exit"
        self.kill_at: float | None = None

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, reason: str, grace: float, *, kill: bool = False) -> None:
        if self.kill_at is None:
            self.reason = reason
            self.kill_at = time.monotonic() + grace
            self.signal(signal.SIGTERM)
        if kill:
            self.signal(signal.SIGKILL)


class Spool:
    def __init__(self, root: Path, slots: int, grace: float) -> None:
        self.root = root
        self.jobs = root / "jobs"
        self.queue = root / "queue"
        self.slots = slots
        self.grace = grace
        self.running: dict[str, Running] = {}
        for path in (self.jobs, self.queue):
            path.mkdir(parents=True, exist_ok=True)

    def cycle(self) -> None:
        for job in list(self.running.values()):
            self._check(job)
        waiting = {}
        for entry in sorted(self.queue.iterdir(), key=lambda p: p.stat().st_mtime_ns):
            job_id = entry.name
            if (self.jobs / job_id / "cancel").exists():
                self._account(job_id, None, "cancelled")
                entry.unlink()
            elif len(self.running) < self.slots:
                self._start(job_id)
                entry.unlink()
            else:
                waiting[job_id] = f"all {self.slots} slots are busy"
        live: dict[str, Any] = {i: {"state": "pending", "waiting": w} for i, w in waiting.items()}
        live.update({i: {"state": "running"} for i in self.running})
        write_json(
            self.root / "status.json", {"pid": os.getpid(), "time": time.time(), "jobs": live}
        )

    def _start(self, job_id: str) -> None:
        where = self.jobs / job_id
        try:
            spec = json.loads((where / "job.json").read_text())
            env = {k: os.environ[k] for k in INHERITED if k in os.environ}
            env.update(spec.get("env") or {})
            env["SPOOL_JOB_ID"] = job_id
            with open(where / "output.log", "ab") as output:
                proc = subprocess.Popen(
                    ["/bin/sh", str(where / "wrapper.sh")],
                    cwd=spec.get("workdir") or where,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except (OSError, ValueError, TypeError) as exc:  # a missing workdir, a broken job.json
            self._account(job_id, None, "start-failed", f"{type(exc).__name__}: {exc}")
            return
        self.running[job_id] = Running(job_id, proc, int(spec.get("walltime") or 0))

    def _check(self, job: Running) -> None:
        code = job.proc.poll()
        if code is not None:
            job.signal(signal.SIGKILL)  # what it left in the background ends with it
            del self.running[job.id]
            self._account(job.id, code if code >= 0 else 128 - code, job.reason)
            return
        now = time.monotonic()
        try:
            request = (self.jobs / job.id / "cancel").read_text().strip()
        except OSError:
            request = ""
        if request:
            job.stop("cancelled", self.grace, kill=request == "kill")
        if job.walltime and now - job.started > job.walltime:
            job.stop("walltime", self.grace)
        if job.kill_at is not None and now >= job.kill_at:
            job.signal(signal.SIGKILL)

    def _account(self, job_id: str, exit_code: int | None, reason: str, detail: str = "") -> None:
        """The verdict: ``reason`` is exit, walltime, cancelled or start-failed."""
        where = self.jobs / job_id
        if where.is_dir():  # removed meanwhile: nobody waits for the verdict
            verdict = {"exit_code": exit_code, "reason": reason, "detail": detail}
            write_json(where / "accounting.json", verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pollinator-spoold", description=__doc__.split("\n")[0])
    parser.add_argument("--spool", type=Path, required=True, help="the spool directory")
    parser.add_argument("--slots", type=int, default=4, help="jobs at once (default 4)")
    parser.add_argument(
        "--grace", type=float, default=3.0, help="seconds between SIGTERM and SIGKILL (3)"
    )
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between cycles (0.2)")
    args = parser.parse_args(argv)
    spool = Spool(args.spool.absolute(), args.slots, args.grace)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"spoold: serving {spool.root} with {args.slots} slots", file=sys.stderr, flush=True)
    while not stop:
        spool.cycle()
        time.sleep(args.interval)
    # Running jobs go on without the daemon, as a scheduler's jobs outlive its controller.
    (spool.root / "status.json").unlink(missing_ok=True)
    print("spoold: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
