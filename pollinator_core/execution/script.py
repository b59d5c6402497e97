"""What every runtime does the same way with a job: the shell text it runs, its environment,
and container paths rewritten for runtimes that cannot mount.

One semantics for every runtime: ``init-cmd`` runs first in the same shell (so an ``export``
in it reaches the command), and a failing ``init-cmd`` ends the job with its exit code and a
line saying so; the official executors run ``init;cmd`` and ignore the failure, which hides a
broken setup behind a confusing later error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from pollinator_core.errors import InfraError
from pollinator_core.execution.job import Job, Mount

#: variables an executor's own environment may hold that must never reach a job: keys,
#: S3 credentials, the executor's settings
PRIVATE_PREFIXES = (
    "COLONIES_",
    "AWS_",
    "EXECUTOR_",
    "POLLINATOR_",
    "KUBECONFIG",
)
#: set by the core in every job; a project cannot override them
CORE_VARIABLES = ("PROJECT_DIR", "COLONIES_PROCESS_ID")


def shell_script(job: Job) -> str:
    """The ``sh -c`` text: ``init-cmd`` (whose failure ends the job), then the command."""
    if not job.init_command:
        return job.command
    return (
        f"{{ {job.init_command}\n}}\n"
        "rc=$?\n"
        'if [ "$rc" -ne 0 ]; then\n'
        '  echo "pollinator: init-cmd failed with exit code $rc" >&2\n'
        '  exit "$rc"\n'
        "fi\n"
        f"{job.command}\n"
    )


def job_env(job: Job) -> dict[str, str]:
    """The job's environment: Python output unbuffered (lines stream as they are printed), then
    the job's own variables."""
    env = {"PYTHONUNBUFFERED": "1"}
    env.update(job.env)
    return env


def is_private(name: str) -> bool:
    """True for a variable of the executor's that a job must not inherit.

    ``COLONIES_PROCESS_ID`` is the one exception: the core sets it for the job."""
    return name.startswith(PRIVATE_PREFIXES) and name != "COLONIES_PROCESS_ID"


def scrubbed(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the executor's private variables."""
    return {k: v for k, v in env.items() if not is_private(k)}


#: what a path may hold to be spliced into shell text as it is, in any quoting context
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def shell_safe(path: str) -> bool:
    """True when ``path`` means the same in shell text quoted or not: no space, quote, ``;``,
    ``$``, glob character or non-ASCII letter."""
    return bool(_SHELL_SAFE.fullmatch(path))


def link_dir() -> Path:
    """Where :class:`PathRewriter` puts its links: a directory of this user's only
    (``/tmp/pollinator-<uid>``), at a path that is itself shell-safe."""
    base = tempfile.gettempdir()
    return Path(base if shell_safe(base) else "/tmp") / f"pollinator-{os.getuid()}"


class PathRewriter:
    """Rewrites container paths (mount targets) to the host directories behind them, for
    runtimes that run the job on the host (no mounts).

    The command is shell text, and a path may sit inside quotes or outside them, so a host
    directory is spliced in only when it is :func:`shell_safe`. Any other one (a project in
    ``/tmp/my proj``, ``semi;echo x``, ``$HOME``) is reached through a symbolic link at a plain
    path in :func:`link_dir` instead: call :meth:`make_links` before the job starts and
    :meth:`remove_links` once it is done (a job started without them finds no such directory,
    which fails it; nothing in a name ever runs).
    """

    def __init__(self, mounts: tuple[Mount, ...]) -> None:
        #: link -> the host directory it leads to, for the unsafe ones
        self.links: dict[Path, str] = {}
        by_length = sorted(mounts, key=lambda m: len(m.target.rstrip("/")), reverse=True)
        self._sources = {m.target.rstrip("/"): self._reachable(m.source) for m in by_length}
        targets = "|".join(re.escape(t) for t in self._sources if t)
        # Whole path components only: /cfs and /cfs/x match, /cfsx and /a/cfs do not.
        self._pattern = re.compile(rf"(?<![\w./-])({targets})(?=/|$|[^\w.-])") if targets else None

    def _reachable(self, source: str) -> str:
        source = source.rstrip("/")
        if shell_safe(source):
            return source
        link = link_dir() / f"cfs-{hashlib.sha256(source.encode()).hexdigest()[:16]}"
        self.links[link] = source
        return str(link)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._sources[m.group(1)], text)

    def make_links(self) -> None:
        """Create the links (replacing any a crashed executor left) in the private directory,
        which is made, or refused when it is not this user's alone."""
        if not self.links:
            return
        directory = link_dir()
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise InfraError(
                f"{directory} is not a private directory of this user (Pollinator keeps links to "
                "job directories there); remove it, and Pollinator makes it again."
            )
        for link, target in self.links.items():
            tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
            tmp.symlink_to(target, target_is_directory=True)
            os.replace(tmp, link)  # never follows what stood there

    def remove_links(self) -> None:
        for link in self.links:
            link.unlink(missing_ok=True)
