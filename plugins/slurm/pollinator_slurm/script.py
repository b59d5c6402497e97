"""The files a Slurm job is made of, rendered from the :class:`Job` alone (pure functions: the
dry run and the golden tests see exactly what the executor writes).

Five files in the job's directory, each with one job:

- ``job.sh``: the batch script. ``#SBATCH`` lines (every value checked, then double-quoted),
  then a POSIX ``sh`` wrapper that runs one ``srun`` step, enforces the walltime to the second
  (its own timer; Slurm's ``--time`` is the backstop), turns the walltime pre-signal and a
  cancel into SIGTERM for the job's processes, and writes the exit record on every path.
- ``task.sh``: what ``srun`` starts on each node, once per task: ``apptainer exec
  --containall --cleanenv`` with the process directory bound at the spec's mount.
- ``container.sh``: the first program in the container: loads the environment, exports the
  task's rank, runs the command, and on SIGTERM stops every process of the task (TERM, the
  grace, KILL) inside the container's own PID namespace.
- ``env.sh``: the job's environment as ``export NAME='value'`` lines, read by ``sh`` inside
  the container. Not Apptainer's ``--env-file`` or ``APPTAINERENV_*``: Apptainer evaluates those
  again inside the container, so a ``$`` or a backtick in a value would run as shell code.
- ``cmd.sh``: the user's command (``init-cmd``, then ``cmd`` with its arguments quoted).

No user text is ever spliced into shell text: values are single-quoted with ``shlex.quote``
(which POSIX ``sh`` reads back byte for byte), and the command sits in a file of its own.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import attrs

from pollinator_core.api import (
    RECORD_FILE,
    RECORD_FUNCTION,
    Job,
    JobFailed,
    job_env,
    scrubbed,
    shell_script,
)

from .settings import MODULE, NAME, SlurmSettings, gpu_request

#: where the job's directory appears inside the container (read-only)
CONTAINER_DIR = "/.pollinator"
#: the signal Slurm sends the batch shell before its time limit, and the wrapper sends srun to
#: stop the tasks (srun turns TERM into an immediate kill, and NCCL takes USR1 for itself)
STOP_SIGNAL = "USR2"
#: Linux refuses to start a program with an environment string (NAME=value) longer than this
#: (MAX_ARG_STRLEN, 32 pages), whatever carries it
MAX_VARIABLE = 128 * 1024
#: and with an environment much over this (ARG_MAX is commonly 2 MiB for argv + environment)
MAX_ENVIRONMENT = 1024 * 1024
#: seconds between the pre-signal and Slurm's limit, on top of the grace: to write the record
SIGNAL_MARGIN = 30

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROCESS_ID = re.compile(r'[^"\\\x00-\x1f\x7f]+')
#: characters a path in an #SBATCH line or an apptainer --bind cannot hold
_BAD_PATH = re.compile(r'["\\%\x00-\x1f\x7f]')
_BAD_BIND = re.compile(r"[,:]")


@attrs.frozen
class JobFiles:
    """Where one job's files live: a directory on the filesystem the compute nodes share."""

    dir: Path

    @property
    def job_script(self) -> Path:
        return self.dir / "job.sh"

    @property
    def output(self) -> Path:
        return self.dir / "output.log"

    @property
    def record(self) -> Path:
        return self.dir / RECORD_FILE

    @property
    def messages(self) -> Path:
        """The batch shell's stderr: the wrapper's, srun's and slurmstepd's own lines, which
        reach the process log as notices, apart from what the job printed."""
        return self.dir / "slurm.log"


def job_files(job: Job, settings: SlurmSettings) -> JobFiles:
    """Where the job's scripts, output and exit record go: in its process directory (on the
    shared filesystem, like the executor's fs dir), else under the ``job_dir`` setting."""
    if job.mounts:
        return JobFiles(Path(job.mounts[0].source) / ".pollinator-slurm")
    return JobFiles(Path(settings.job_dir).expanduser() / job.name)


def time_limit(walltime: int, grace: float) -> int:
    """Slurm's ``--time`` in minutes for a job whose own limit is ``walltime`` seconds: the
    walltime and the grace, rounded up to whole minutes, plus one minute, so that Slurm's
    limit (checked every 30 s, its pre-signal up to that much early) never cuts the job before
    the wrapper's own timer and the grace have had their turn."""
    return math.ceil((walltime + grace) / 60) + 1


def signal_lead(grace: float) -> int:
    """Seconds before Slurm's limit that the batch shell gets the stop signal."""
    return math.ceil(grace) + SIGNAL_MARGIN


def render(job: Job, settings: SlurmSettings, files: JobFiles, sif: str) -> dict[str, str]:
    """The job's files by name (``job.sh``, ``task.sh``, ...). JobFailed for a job that
    cannot be written safely (a path Slurm or Apptainer cannot take, an environment Linux would
    refuse)."""
    return {
        "job.sh": batch_script(job, settings, files),
        "task.sh": task_script(job, settings, files, sif),
        "container.sh": container_script(settings),
        "env.sh": env_file(job),
        "cmd.sh": command_file(job),
    }


def sbatch_argv(files: JobFiles) -> list[str]:
    return ["sbatch", "--parsable", str(files.job_script)]


# --- job.sh ----------------------------------------------------------------------------------


def sbatch_options(job: Job, settings: SlurmSettings, files: JobFiles) -> list[str]:
    """The batch script's options, each ``--name`` or ``--name=value``, values checked."""
    if not _PROCESS_ID.fullmatch(job.process_id):
        raise JobFailed(f"process id {job.process_id!r} cannot name a Slurm job")
    options = [
        f"--job-name={job.name}",
        f"--comment={job.process_id}",
        f"--chdir={_path(files.dir)}",
        f"--output={_path(files.output)}",
        f"--error={_path(files.messages)}",
        "--open-mode=append",
        "--export=ALL",  # of the environment sbatch runs with: see commands.command_env
        "--requeue" if settings.requeue else "--no-requeue",
        f"--signal=B:{STOP_SIGNAL}@{signal_lead(settings.grace)}",
        f"--nodes={job.nodes}",
        f"--ntasks-per-node={job.processes_per_node}",
    ]
    if job.walltime > 0:
        options.append(f"--time={time_limit(job.walltime, settings.grace)}")
    if job.cpu_millis > 0:
        options.append(f"--cpus-per-task={max(1, math.ceil(job.cpu_millis / 1000))}")
    if job.mem_bytes > 0:
        per_node = job.mem_bytes * job.processes_per_node
        options.append(f"--mem={math.ceil(per_node / 2**20)}M")
    if job.gpu_count > 0:
        options.append(gpu_request(settings.gpu_style, job.gpu_count, job.gpu_name))
    for key in ("partition", "account", "qos", "reservation"):
        value = getattr(settings, key)
        if value:
            if not NAME.fullmatch(value):  # checked when loaded; a constructed one too
                raise JobFailed(f"slurm.{key} {value!r} is not a valid name")
            options.append(f"--{key}={value}")
    options.extend(settings.sbatch_options)
    return options


def _directive(option: str) -> str:
    name, eq, value = option.partition("=")
    return f'#SBATCH {name}="{value}"' if eq else f"#SBATCH {name}"


def _path(path: Path) -> str:
    text = str(path)
    if _BAD_PATH.search(text):
        raise JobFailed(
            f"the job directory {text!r} holds a character Slurm cannot take in a path "
            '(", \\, % or a control character); give the executor another --fs-dir'
        )
    return text


def batch_script(job: Job, settings: SlurmSettings, files: JobFiles) -> str:
    grace = _seconds(settings.grace)
    record = shlex.quote(str(files.record))
    task = shlex.quote(str(files.dir / "task.sh"))
    messages = shlex.quote(str(files.messages))
    srun = ["srun", "--quiet", "--export=ALL", "--kill-on-bad-exit=1"]
    if job.nodes * job.processes_per_node > 1:
        srun.append("--label")  # each line starts with its task's rank: "1: ..."
    stopping = f"(SIGTERM, then SIGKILL after {grace} s)"
    limit = (
        f"walltime of {job.walltime} s reached"
        if job.walltime > 0
        else "Slurm's time limit is near"
    )
    lines = [
        "#!/bin/sh",
        *(_directive(o) for o in sbatch_options(job, settings, files)),
        "# Written by Pollinator for the Colonies process in --comment. The command is in",
        "# cmd.sh, its environment in env.sh; srun runs task.sh on each node, which runs",
        "# container.sh in the container.",
        "",
        RECORD_FUNCTION.rstrip("\n"),
        f"POLLINATOR_EXIT_RECORD={record}",
        'rm -f "$POLLINATOR_EXIT_RECORD"  # a requeued job starts without the last record',
        "reason=",
        "interrupted=",
        "step=",
        "pollinator_stop() {",
        "  interrupted=1",
        '  [ -n "$reason" ] && return',
        "  reason=$1",
        '  echo "pollinator: $2" >&2',
        f'  [ -n "$step" ] && kill -{STOP_SIGNAL} "$step" 2>/dev/null',
        "}",
        "pollinator_give_up() {",
        '  echo "pollinator: $2" >&2',
        '  pollinator_exit_record "$1"',
        '  exit "$1"',
        "}",
        f"on_walltime={shlex.quote(f'{limit}: stopping the job {stopping}')}",
        f"on_cancel={shlex.quote(f'cancelled: stopping the job {stopping}')}",
        f"trap 'pollinator_stop walltime \"$on_walltime\"' {STOP_SIGNAL}",
        "trap 'pollinator_stop cancelled \"$on_cancel\"' TERM INT",
    ]
    if settings.modules:
        lines.append(
            "if ! command -v module >/dev/null 2>&1; then . /etc/profile >/dev/null 2>&1; fi"
        )
        for module in settings.modules:
            if not MODULE.fullmatch(module):  # checked when loaded; a constructed one too
                raise JobFailed(f"slurm.modules: {module!r} is not a module name")
            lines.append(
                f"module load {shlex.quote(module)} || "
                f'pollinator_give_up 1 "module load {module} failed on $(hostname)"'
            )
    container = shlex.quote(settings.container)
    lines += [
        f"command -v {container} >/dev/null 2>&1 || pollinator_give_up 127 "
        f'"{settings.container} is not on PATH on $(hostname); load its module (the slurm '
        'modules setting)"',
        'POLLINATOR_MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-}" '
        "2>/dev/null | head -n 1)",
        ': "${POLLINATOR_MASTER_ADDR:=${SLURMD_NODENAME:-$(hostname)}}"',
        "export POLLINATOR_MASTER_ADDR",
        "timer=",
    ]
    if job.walltime > 0:
        lines += [
            "# The walltime, to the second, from the job's start.",
            "(",
            "  trap 'kill \"$s\" 2>/dev/null; exit 0' TERM",
            f"  sleep {job.walltime} &",
            "  s=$!",
            f'  wait "$s" && kill -{STOP_SIGNAL} $$',
            ") &",
            "timer=$!",
        ]
    lines += [
        f"{shlex.join(srun)} /bin/sh {task} &",
        "step=$!",
        f'[ -n "$reason" ] && kill -{STOP_SIGNAL} "$step" 2>/dev/null',
        "# wait returns early when a signal is trapped: wait again until the step has ended.",
        "while :; do",
        "  interrupted=",
        '  wait "$step"',
        "  rc=$?",
        '  [ -z "$interrupted" ] && break',
        "done",
        '[ -n "$timer" ] && kill "$timer" 2>/dev/null',
        "# slurmstepd says so when the kernel killed a task for its memory.",
        f'[ -z "$reason" ] && tail -c 65536 {messages} 2>/dev/null |',
        '  grep -Eq "oom-kill event.*(StepId=|step )${SLURM_JOB_ID:-none}\\." && reason=oom',
        'pollinator_exit_record "$rc" "$reason"',
        'exit "$rc"',
    ]
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    """``30``, ``0.5``: a number ``sleep`` takes (no exponent)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


# --- task.sh, container.sh -------------------------------------------------------------------


def task_script(job: Job, settings: SlurmSettings, files: JobFiles, sif: str) -> str:
    argv = [settings.container, "exec", "--containall", "--cleanenv"]
    if job.gpu_count > 0:
        argv.append("--nv" if settings.gpu_vendor == "nvidia" else "--rocm")
    if job.workdir:
        argv += ["--pwd", job.workdir]
    for mount in job.mounts:
        argv += ["--bind", _bind(mount.source, mount.target, mount.read_only)]
    argv += ["--bind", _bind(str(files.dir), CONTAINER_DIR, True)]
    argv += [sif, "/bin/sh", f"{CONTAINER_DIR}/container.sh"]
    ranks = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_NODEID")
    variables = " ".join(f'"${v}"' for v in (*ranks, "POLLINATOR_MASTER_ADDR", "SLURM_JOB_ID"))
    return (
        "#!/bin/sh\n"
        "# One task of the job: srun starts this on each node, once per task; the task's\n"
        "# rank goes into the container as container.sh's arguments. One stream: Apptainer's\n"
        "# own errors belong with the job's output.\n"
        "exec 2>&1\n"
        f"exec {shlex.join(argv)} {variables}\n"
    )


def _bind(source: str, target: str, read_only: bool) -> str:
    for path in (source, target):
        if _BAD_BIND.search(path) or _BAD_PATH.search(path):
            raise JobFailed(
                f"{path!r} cannot be bound into the container: Apptainer's --bind takes no "
                ", or : in a path (nor quotes, backslashes, % or control characters); give "
                "the executor another --fs-dir or the spec another fs.mount"
            )
    return f"{source}:{target}:ro" if read_only else f"{source}:{target}"


def container_script(settings: SlurmSettings) -> str:
    grace = _seconds(settings.grace)
    return f"""\
#!/bin/sh
# The first program in the container, once per task. Arguments: the task's rank, local rank,
# the number of tasks, the node's rank, the first node's name and the Slurm job id.
. {CONTAINER_DIR}/env.sh
RANK=$1 LOCAL_RANK=$2 WORLD_SIZE=$3 NODE_RANK=$4 MASTER_ADDR=$5 SLURM_JOB_ID=$6
export RANK LOCAL_RANK WORLD_SIZE NODE_RANK MASTER_ADDR SLURM_JOB_ID
stopping=
interrupted=
# Stop every process of the task: the container has a PID namespace of its own
# (--containall), so kill -1 reaches exactly the job's processes.
pollinator_stop() {{
  interrupted=1
  [ -n "$stopping" ] && return
  stopping=1
  kill -TERM -1 2>/dev/null
  ( sleep {grace}; kill -KILL -1 2>/dev/null ) &
}}
trap pollinator_stop TERM {STOP_SIGNAL} INT
# One stream, in the order the job wrote it; this shell's own words ("Killed") are not the
# job's output.
/bin/sh {CONTAINER_DIR}/cmd.sh 2>&1 &
child=$!
exec 2>/dev/null
while :; do
  interrupted=
  wait "$child"
  rc=$?
  [ -z "$interrupted" ] && break
done
exit "$rc"
"""


# --- env.sh, cmd.sh --------------------------------------------------------------------------


def environment(job: Job) -> dict[str, str]:
    """The job's variables: the executor's private ones (keys, S3 credentials) never."""
    return scrubbed(job_env(job))


def env_file(job: Job) -> str:
    lines = ["# The job's environment, read by sh in the container (written by Pollinator)."]
    total = 0
    for name, value in environment(job).items():
        if not _VARIABLE.fullmatch(name):
            raise JobFailed(f"environment variable name {name!r} is not a shell name")
        if "\x00" in value:
            raise JobFailed(f"environment variable {name} holds a NUL byte, which no program sees")
        size = len(name.encode()) + 1 + len(value.encode()) + 1
        if size > MAX_VARIABLE:
            raise JobFailed(
                f"environment variable {name} is {size} bytes; Linux starts no program with a "
                f"variable over {MAX_VARIABLE} bytes (MAX_ARG_STRLEN). Put the value in a file "
                "under cfs/data and read it from $PROJECT_DIR/data instead."
            )
        total += size
        lines.append(f"{name}={shlex.quote(value)}")
        lines.append(f"export {name}")
    if total > MAX_ENVIRONMENT:
        raise JobFailed(
            f"the job's environment is {total} bytes; programs may refuse to start with more "
            f"than {MAX_ENVIRONMENT} (ARG_MAX). Put large values in files under cfs/data."
        )
    return "\n".join(lines) + "\n"


def command_file(job: Job) -> str:
    return shell_script(job) + "\n"
