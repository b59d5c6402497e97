"""Which environment a host-process job on a local backend gets: the one of the command that
submitted it, not the one of the shell that happened to start the background agent.

The local agent outlives the command that started it, so its own environment is stale for every
later run (``MY_TOKEN=second pollinator run`` printed ``first``; PATH, conda and
CUDA_VISIBLE_DEVICES likewise). So the submitting command hands its environment over: it writes
it, without Pollinator's and Colonies' credentials (see ``execution.script.is_private``), to a
file of its own (mode 0600) in the agent's directory and names the file in the spec's env; the
agent reads and deletes the file just before it starts the job, and the job starts from that
environment (``Job.host_env``), with project.yaml's ``env`` on top. Jobs in containers never see
it: they get their image's environment and project.yaml's ``env`` only. The spec, the server's
database and the logs hold only the file's random name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

import attrs

from pollinator_core.colonies.models import FunctionSpec
from pollinator_core.execution.job import Job
from pollinator_core.execution.script import scrubbed

#: the spec env entry naming the handed-over environment (a POLLINATOR_ variable: never
#: passed on to a job, whatever runs it)
REFERENCE = "POLLINATOR_SUBMIT_ENV"
_TOKEN_RE = re.compile(r"[0-9a-f]{32}")

log = logging.getLogger("pollinator.local")


def hand_over(env_dir: Path, spec: FunctionSpec, environ: Mapping[str, str]) -> None:
    """Leave ``environ`` (credentials removed) for the agent, and name it in ``spec``."""
    env_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    fd = os.open(env_dir / f"{token}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(scrubbed(environ), f)
    spec.env[REFERENCE] = token


def take_over(env_dir: Path, job: Job) -> Job:
    """``job`` with the environment its submitter handed over (read once, then deleted); the
    executor's own environment when there is none (a spec from elsewhere, or a second
    attempt after the agent restarted)."""
    token = job.env.get(REFERENCE)
    if token is None:
        return job
    env = {k: v for k, v in job.env.items() if k != REFERENCE}
    host_env = None
    if _TOKEN_RE.fullmatch(token):
        path = env_dir / f"{token}.json"
        try:
            with open(path) as f:
                loaded = json.load(f)
            path.unlink()
            if isinstance(loaded, dict) and all(isinstance(v, str) for v in loaded.values()):
                host_env = scrubbed(loaded)
        except (OSError, ValueError) as exc:
            log.warning("process %s: the submitter's environment is gone (%s)", job.process_id, exc)
    return attrs.evolve(job, env=env, host_env=host_env)
