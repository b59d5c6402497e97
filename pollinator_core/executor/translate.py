"""Translate an assigned Colonies process into the runtime-neutral :class:`Job`.

The kwargs are the official executors' (``cmd``, ``args``, ``docker-image``, ``init-cmd``,
``rebuild-image``), plus Pollinator's ``walltime``: the job's own limit, counted from its start,
where ``conditions.walltime`` (= maxexectime) also covers staging and a scheduler's queue (see
the README, "Time limits"). A spec without it (the original's, pycolonies') uses the
conditions' walltime. Unlike the official executors, an argument that is not a string does
not crash the executor: it is passed as its JSON text (``3``, ``true``, ``{"a": 1}``).
``cmd`` is shell text, as in the official executors; each argument is shell-quoted, so an
argument is always one argument.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

from pollinator_core.colonies.models import FunctionSpec, Process
from pollinator_core.errors import JobFailed
from pollinator_core.execution.job import Job, Mount
from pollinator_core.project import units
from pollinator_core.project.funcspec import FUNCNAME, STAGE_FUNCNAME, substitute


def host_path(root: Path, spec_dir: str) -> Path:
    """Where a spec directory (``/pollinator/p/result``) lives under the process's host root."""
    relative = PurePosixPath(spec_dir.lstrip("/"))
    if ".." in relative.parts:
        raise JobFailed(f"the spec directory {spec_dir!r} climbs out of the executor's storage")
    return root.joinpath(*relative.parts)


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _string_kwarg(kwargs: dict[str, Any], key: str, *, required: bool) -> str:
    value = kwargs.get(key)
    if value is None or value == "":
        if required:
            raise JobFailed(f"the function spec's kwargs have no {key!r}, which 'execute' needs")
        return ""
    if not isinstance(value, str):
        raise JobFailed(f"kwargs {key!r} must be a string, not {json.dumps(value)}")
    return value


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _quantity(spec: FunctionSpec, key: str, parse: Any) -> int:
    text = getattr(spec.conditions, key)
    if not text:
        return 0
    try:
        return int(parse(text))
    except ValueError as exc:
        raise JobFailed(f"conditions.{key}: {exc}") from exc


def job_from_process(process: Process, root: Path) -> Job:
    """The Job for ``process``, with its storage at host directory ``root``.

    Raises JobFailed (the process is then closed as failed) for a spec this executor cannot run.
    """
    spec = process.spec
    pid = process.processid
    if spec.funcname not in (FUNCNAME, STAGE_FUNCNAME):
        raise JobFailed(
            f"unsupported funcname {spec.funcname!r}: this executor runs {FUNCNAME!r} "
            f"and stages data for {STAGE_FUNCNAME!r}"
        )
    kwargs = spec.kwargs
    raw_args = kwargs.get("args") or []
    if not isinstance(raw_args, list):
        raw_args = [raw_args]
    args = [shlex.quote(substitute(_arg_text(a), pid)) for a in raw_args]
    command = " ".join([_string_kwarg(kwargs, "cmd", required=True), *args])
    mount = spec.fs.mount
    mounts = (Mount(source=str(root), target=mount),) if mount else ()
    snapshot_dir = substitute(spec.fs.snapshots[0].dir, pid) if spec.fs.snapshots else ""
    env = {k: _arg_text(v) for k, v in spec.env.items()}
    env["COLONIES_PROCESS_ID"] = pid
    gpu = spec.conditions.gpu
    return Job(
        process_id=pid,
        image=_string_kwarg(kwargs, "docker-image", required=False),
        command=command,
        init_command=_string_kwarg(kwargs, "init-cmd", required=False),
        env=env,
        mounts=mounts,
        # The src snapshot, so relative paths behave as in `cd cfs/src && python main.py`.
        workdir=f"{mount.rstrip('/')}{snapshot_dir}" if mount and snapshot_dir else "",
        cpu_millis=_quantity(spec, "cpu", units.parse_cpu),
        mem_bytes=_quantity(spec, "mem", units.parse_memory),
        gpu_count=max(gpu.count, 0),
        gpu_name=gpu.name,
        nodes=max(spec.conditions.nodes, 1),
        processes_per_node=max(spec.conditions.processespernode, 1),
        walltime=_walltime(spec),
        rebuild_image=_flag(kwargs.get("rebuild-image")),
        build_context=str(host_path(root, snapshot_dir)) if mount and snapshot_dir else "",
    )


def _walltime(spec: FunctionSpec) -> int:
    value = spec.kwargs.get("walltime")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        limit = spec.conditions.walltime
        return min(value, limit) if limit > 0 else value
    return max(spec.conditions.walltime, 0)
