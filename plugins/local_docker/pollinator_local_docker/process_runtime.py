"""Run a job as a host process, for machines without a Docker engine.

The contract is a container's, as far as a process can keep it: the job gets its environment,
working directory, walltime, exit code, and is stopped as a whole (its own session and process
group, so children die with it, and leftovers die when the main process exits, as they would
with the container). What a process cannot do is mount: job paths under a mount target (``/cfs``)
are rewritten to the host directory behind it, in the command, the environment and the working
directory. The image, cpu, memory and GPU requests do not apply and are ignored; init-cmd is
skipped with a line saying so.

The command is shell text, so a host directory whose path a shell would split or interpret
(``/tmp/my proj``, ``semi;echo x``, ``$HOME``, quotes, non-ASCII letters) is never spliced into
it: the job reaches such a directory through a symbolic link at a plain path in a private
directory of the user's (``/tmp/pollinator-<uid>/cfs-<hash>``; see ``PathRewriter``), removed
when the job is done.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
from collections.abc import Iterator

import attrs

from pollinator_core.api import (
    DEFAULT_KILL_GRACE,
    Job,
    JobState,
    JobStatus,
    PathRewriter,
    SupervisedRuntime,
    job_env,
    scrubbed,
    shell_script,
)

_READ_SIZE = 65536
_DRAIN_WAIT = 0.05


class ProcessRuntime(SupervisedRuntime):
    """Jobs as ``sh -c`` process groups on this machine; the handle is the group's pid."""

    type = "docker"

    def __init__(self, kill_grace: float = DEFAULT_KILL_GRACE, why: str = "") -> None:
        super().__init__(kill_grace)
        #: why jobs run as host processes, when it was not asked for (no engine)
        self.why = why
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._rewriters: dict[str, PathRewriter] = {}

    def describe(self) -> str:
        return f"host processes ({self.why})" if self.why else "host processes"

    @staticmethod
    def _prepared(job: Job) -> tuple[Job, list[str]]:
        if not job.init_command:
            return job, []
        # init-cmd prepares a container image (pip install ...); on the host it would change
        # the user's own system, so it is skipped, visibly.
        notice = f"pollinator: process runtime, init-cmd skipped: {job.init_command}\n"
        return attrs.evolve(job, init_command=""), [notice]

    @staticmethod
    def _cwd(job: Job, rewrite: PathRewriter) -> str | None:
        if job.workdir:
            return rewrite(job.workdir)
        return job.mounts[0].source if job.mounts else None

    def submit(self, job: Job) -> str:
        job, notices = self._prepared(job)
        rewrite = PathRewriter(job.mounts)
        rewrite.make_links()
        env = scrubbed(os.environ if job.host_env is None else job.host_env)
        env.update({k: rewrite(v) for k, v in job_env(job).items()})
        cwd = self._cwd(job, rewrite)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", rewrite(shell_script(job))],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # one stream, interleaved as a terminal would show it
                start_new_session=True,
            )
        except BaseException:
            rewrite.remove_links()
            raise
        handle = str(proc.pid)
        with self._lock:
            self._procs[handle] = proc
            self._rewriters[handle] = rewrite
        self._started(handle, job.walltime, notices)
        return handle

    def _proc(self, handle: str) -> subprocess.Popen[bytes]:
        with self._lock:
            return self._procs[handle]

    def status(self, handle: str) -> JobStatus:
        code = self._proc(handle).poll()
        if code is None:
            return JobStatus(JobState.RUNNING)
        # A shell's convention for "killed by signal N" is 128 + N; Popen says -N.
        return self._ended(handle, code if code >= 0 else 128 - code)

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        # A host process cannot be adopted: its output is only ever read once, from the start.
        proc = self._proc(handle)
        assert proc.stdout is not None
        yield from self._take_notices(handle)
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
            rewrite = self._rewriters.pop(handle, None)
        if rewrite is not None:
            rewrite.remove_links()
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(handle, kill=True)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def render(job: Job) -> dict[str, str]:
    """The command a job runs, as a shell script would run it."""
    import shlex

    job, notices = ProcessRuntime._prepared(job)
    rewrite = PathRewriter(job.mounts)
    lines = [f"# {n.removeprefix('pollinator: ').rstrip()}" for n in notices]
    lines += [f"ln -sfn {shlex.quote(target)} {link}" for link, target in rewrite.links.items()]
    cwd = ProcessRuntime._cwd(job, rewrite)
    if cwd:
        lines.append(f"cd {shlex.quote(cwd)}")
    env = [f"{k}={rewrite(v)}" for k, v in job_env(job).items()]
    lines.append(shlex.join(["env", *env, "/bin/sh", "-c", rewrite(shell_script(job))]))
    return {"command.sh": "\n".join(lines) + "\n"}
