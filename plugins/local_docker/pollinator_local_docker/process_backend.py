"""Run a job as a host process, for machines without a Docker engine.

The contract is a container's, as far as a process can keep it: the job gets its environment,
working directory, walltime, exit code, and is stopped as a whole (its own session and process
group, so children die with it, and leftovers die when the main process exits, as they would
with the container). What a process cannot do is mount: job paths under a mount target (``/cfs``)
are rewritten to the host directory behind it, in the command, the environment and the working
directory. The image, cpu, memory and GPU requests do not apply and are ignored; init-cmd is
skipped with a line saying so.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
from collections.abc import Iterator

import attrs

from pollinator_core.api import Job, JobState, JobStatus, Mount

from .base import DEFAULT_KILL_GRACE, LocalRuntime, job_env, shell_script

# The executor's own credentials must not leak into a job (the Slurm executors scrub them too).
_PRIVATE_PREFIXES = ("COLONIES_", "AWS_S3_", "AWS_SECRET", "AWS_ACCESS", "EXECUTOR_", "POLLINATOR_")
_READ_SIZE = 65536
_DRAIN_WAIT = 0.05


class PathRewriter:
    """Rewrites container paths (mount targets) to the host directories that back them."""

    def __init__(self, mounts: tuple[Mount, ...]) -> None:
        by_length = sorted(mounts, key=lambda m: len(m.target.rstrip("/")), reverse=True)
        self._sources = {m.target.rstrip("/"): m.source.rstrip("/") for m in by_length}
        targets = "|".join(re.escape(t) for t in self._sources if t)
        # Whole path components only: /cfs and /cfs/x match, /cfsx and /a/cfs do not.
        self._pattern = re.compile(rf"(?<![\w./-])({targets})(?=/|$|[^\w.-])") if targets else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._sources[m.group(1)], text)


def _host_env(job_vars: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
    env.update(job_vars)
    return env


class ProcessBackend(LocalRuntime):
    """Jobs as ``sh -c`` process groups on this machine; the handle is the group's pid."""

    runtime = "process"

    def __init__(self, kill_grace: float = DEFAULT_KILL_GRACE) -> None:
        super().__init__(kill_grace)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def submit(self, job: Job) -> str:
        preamble = ""
        if job.init_command:
            # init-cmd prepares a container image (pip install ...); on the host it would
            # change the user's own system, so it is skipped, visibly.
            preamble = f"pollinator: process runtime, init-cmd skipped: {job.init_command}\n"
            job = attrs.evolve(job, init_command="")
        rewrite = PathRewriter(job.mounts)
        env = _host_env({k: rewrite(v) for k, v in job_env(job).items()})
        cwd = rewrite(job.workdir) if job.workdir else None
        if cwd is None and job.mounts:
            cwd = job.mounts[0].source
        proc = subprocess.Popen(
            ["/bin/sh", "-c", rewrite(shell_script(job))],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, interleaved as a terminal would show it
            start_new_session=True,
        )
        handle = str(proc.pid)
        with self._lock:
            self._procs[handle] = proc
        self._started(handle, job.walltime, preamble.encode())
        return handle

    def _proc(self, handle: str) -> subprocess.Popen[bytes]:
        with self._lock:
            return self._procs[handle]

    def status(self, handle: str) -> JobStatus:
        code = self._proc(handle).poll()
        if code is None:
            return JobStatus(JobState.RUNNING)
        # A shell's convention for "killed by signal N" is 128 + N; Popen says -N.
        return self._finished(handle, code if code >= 0 else 128 - code, "")

    def logs(self, handle: str) -> Iterator[bytes]:
        proc = self._proc(handle)
        assert proc.stdout is not None
        preamble = self._take_preamble(handle)
        if preamble:
            yield preamble
        fd = proc.stdout.fileno()
        leftovers_killed = False
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                exited = proc.poll() is not None
                if not selector.select(_DRAIN_WAIT if exited else 0.5):
                    if exited and leftovers_killed:
                        return  # something outside the job's group holds the pipe
                    if exited:
                        # Background children may hold the pipe open; they end with the job.
                        self._signal(handle, kill=True)
                        leftovers_killed = True
                    continue
                chunk = os.read(fd, _READ_SIZE)
                if not chunk:
                    return
                yield chunk

    def _signal(self, handle: str, kill: bool) -> None:
        # An error means the group is gone (its leader's pid may even be someone else's now).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(handle), signal.SIGKILL if kill else signal.SIGTERM)

    def cleanup(self, handle: str) -> None:
        self._forget(handle)
        with self._lock:
            proc = self._procs.pop(handle, None)
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(handle, kill=True)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
