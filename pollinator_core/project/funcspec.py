"""The Colonies function spec of a run, in the shape the official executors understand.

The shape is the original Pollinator's (funcname ``execute``, kwargs ``cmd``/``args``/
``docker-image``/``init-cmd``/``rebuild-image``, executor type ``container-executor``, the ``fs``
section, env ``PROJECT_DIR``), so official executors run our jobs and ours run theirs. The
deliberate departures are listed in the README ("Differences from the original").
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pollinator_core.colonies.models import (
    Conditions,
    ConflictPolicy,
    Fs,
    FunctionSpec,
    Gpu,
    OnConflicts,
    SnapshotMount,
    SyncDir,
)
from pollinator_core.project import units
from pollinator_core.project.loader import Project

FUNCNAME = "execute"
#: the original's data-staging function: the executor syncs the spec's files and closes
STAGE_FUNCNAME = "sync"
EXECUTOR_TYPE = "container-executor"
MOUNT = "/cfs"
#: executors replace it by the process id in labels, directories and arguments
PROCESS_ID = "{processid}"


def substitute(text: str, process_id: str) -> str:
    """``{processid}`` in a path, label or argument replaced by the process's ID."""
    return text.replace(PROCESS_ID, process_id)


def build_function_spec(project: Project, snapshot_id: str, colony_name: str) -> FunctionSpec:
    """The spec for running ``project`` from its src snapshot ``snapshot_id``. Pure."""
    prefix = project.label_prefix
    # Every directory of a run lives under the run's own snapshot id (each run snapshots its
    # src anew): executors that keep one directory tree for all processes (the official HPC,
    # Kubernetes and parallel Docker executors) never mix the files of overlapping runs, and
    # $PROJECT_DIR/result and $PROJECT_DIR/data mean the same for every job.
    run_dir = f"{prefix}/{snapshot_id}"
    src_dir = f"{run_dir}/src"
    source = project.environment.source
    args = [f"{MOUNT}{src_dir}/{PurePosixPath(source)}"] if source else []
    args += project.args
    conditions = project.conditions
    limit = conditions.walltime + project.maxqueuetime
    return FunctionSpec(
        funcname=FUNCNAME,
        kwargs={
            "args": args,
            "cmd": project.environment.cmd,
            "docker-image": project.environment.docker,
            "init-cmd": project.environment.init_cmd,
            "rebuild-image": project.environment.rebuild_image,
            # The job's own limit, from its start; Pollinator's executors read it.
            "walltime": conditions.walltime,
        },
        priority=project.priority,
        maxwaittime=project.maxwaittime,
        # The server's clock starts at assignment, before staging and a scheduler's queue: it
        # gets maxqueuetime on top of the job's walltime, so a job waiting in a Slurm queue is
        # not requeued under it (the original's walltime-1 was: reference bug 10). The official
        # executors require conditions.walltime >= maxexectime, so that carries the sum too;
        # the job's own limit travels in kwargs["walltime"].
        maxexectime=limit,
        maxretries=project.maxretries,
        conditions=Conditions(
            colonyname=colony_name,
            executornames=list(conditions.executor_names),
            executortype=EXECUTOR_TYPE,
            nodes=conditions.nodes,
            cpu=units.format_cpu(conditions.cpu_millis),
            processespernode=conditions.processes_per_node,
            mem=units.format_memory(conditions.mem_bytes),
            gpu=Gpu(name=conditions.gpu.name, count=conditions.gpu.count),
            walltime=limit,
        ),
        label=project.label or project.name,
        fs=Fs(
            mount=MOUNT,
            snapshots=[
                # Removed by the executor once the process is done: no run leaks its snapshot,
                # followed to the end or not.
                SnapshotMount(
                    snapshotid=snapshot_id,
                    label=f"{prefix}/src",
                    dir=src_dir,
                    keepfiles=False,
                    keepsnapshot=False,
                )
            ],
            dirs=[
                # Executors replace {processid}: each run's results get their own label.
                SyncDir(
                    label=f"{prefix}/result/{{processid}}",
                    dir=f"{run_dir}/result",
                    keepfiles=False,
                    onconflicts=_on_conflicts(onstart=False, onclose=True),
                ),
                SyncDir(
                    label=f"{prefix}/data",
                    dir=f"{run_dir}/data",
                    keepfiles=False,
                    onconflicts=_on_conflicts(onstart=False, onclose=False),
                ),
            ],
        ),
        env={"PROJECT_DIR": f"{MOUNT}{run_dir}", **project.env},
    )


def _on_conflicts(*, onstart: bool, onclose: bool) -> OnConflicts:
    return OnConflicts(
        onstart=ConflictPolicy(keeplocal=onstart), onclose=ConflictPolicy(keeplocal=onclose)
    )
