"""The ``slurm`` settings section and the checks that make each value safe to write into a
batch script.

Nothing is guessed: what a site needs (partition, account, QOS, reservation, modules, extra
sbatch options) is configured, checked here for its form, and checked by Slurm itself with
``sbatch --test-only`` when the executor starts. Every value that reaches an ``#SBATCH`` line is
matched against a pattern with no whitespace, quotes, backslashes or control characters (then
written in double quotes, which Slurm strips); extra sbatch options must be long options from
:data:`EXTRA_OPTIONS`: the ones Pollinator sets from the job are refused with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from pollinator_core.api import JobFailed, SettingsSection, setting

#: characters of a partition, account, QOS or reservation name (partition may be a list)
NAME = re.compile(r"[A-Za-z0-9_.+@-]+(,[A-Za-z0-9_.+@-]+)*")
#: characters of an environment module name (``gcc/12.2``, ``apptainer``)
MODULE = re.compile(r"[A-Za-z0-9_.+@/-]+")
#: characters of an extra option's value: constraint expressions, node lists, sizes, mail
VALUE = re.compile(r"[A-Za-z0-9_.,:@+%=/\[\]()&|!*^~-]+")
#: GPU model names in a gres or gpus request
GPU_NAME = re.compile(r"[A-Za-z0-9_.-]+")

#: extra sbatch options a site may add, by long name: True when the option needs a value
EXTRA_OPTIONS: dict[str, bool] = {
    "acctg-freq": True,
    "cluster-constraint": True,
    "constraint": True,
    "contiguous": False,
    "core-spec": True,
    "cores-per-socket": True,
    "cpu-freq": True,
    "cpus-per-gpu": True,
    "delay-boot": True,
    "distribution": True,
    "exclude": True,
    "exclusive": False,
    "gpu-bind": True,
    "gpu-freq": True,
    "gpus-per-task": True,
    "gres-flags": True,
    "hint": True,
    "licenses": True,
    "mail-type": True,
    "mail-user": True,
    "mcs-label": True,
    "mem-bind": True,
    "mem-per-gpu": True,
    "mincpus": True,
    "network": True,
    "nice": True,
    "nodelist": True,
    "ntasks-per-core": True,
    "ntasks-per-gpu": True,
    "ntasks-per-socket": True,
    "prefer": True,
    "profile": True,
    "reboot": False,
    "sockets-per-node": True,
    "spread-job": False,
    "switches": True,
    "thread-spec": True,
    "threads-per-core": True,
    "tmp": True,
    "use-min-nodes": False,
    "wckey": True,
}

#: options Pollinator sets itself, and where a site configures them instead
OWN_OPTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "job-name",
            "comment",
            "chdir",
            "output",
            "error",
            "open-mode",
            "export",
            "parsable",
            "wait",
            "wrap",
            "test-only",
            "array",
            "dependency",
            "hold",
            "uid",
            "gid",
            "container",
            "signal",
            "kill-on-invalid-dep",
        ),
        "Pollinator sets it for every job",
    ),
    **dict.fromkeys(
        (
            "time",
            "time-min",
            "nodes",
            "ntasks",
            "ntasks-per-node",
            "cpus-per-task",
            "mem",
            "mem-per-cpu",
        ),
        "it comes from the job's conditions (walltime, nodes, processesPerNode, cpu, mem)",
    ),
    **dict.fromkeys(
        ("gres", "gpus", "gpus-per-node", "gpus-per-socket"),
        "it comes from the job's conditions.gpu; the gpu_style setting chooses the form",
    ),
    "partition": "use the partition setting",
    "account": "use the account setting",
    "qos": "use the qos setting",
    "reservation": "use the reservation setting",
    "requeue": "use the requeue setting",
    "no-requeue": "use the requeue setting",
}


def _names(what: str, pattern: re.Pattern[str]) -> Callable[[object], object]:
    def parse(value: object) -> object:
        text = value if isinstance(value, str) else None
        if text is None:
            raise ValueError(f"must be text, got {value!r}; quote it")
        if text and not pattern.fullmatch(text):
            raise ValueError(
                f"{text!r} is not a {what}: letters, digits and {_punctuation(pattern)} only"
            )
        return text

    return parse


def _punctuation(pattern: re.Pattern[str]) -> str:
    return {NAME: "_ . + @ - ,", MODULE: "_ . + @ / -", GPU_NAME: "_ . -"}.get(pattern, "")


def _modules(value: object) -> object:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"must be a list of module names, got {value!r}")
    names = tuple(i.strip() for i in items if i.strip())
    for name in names:
        if not MODULE.fullmatch(name):
            raise ValueError(f"{name!r} is not a module name: letters, digits and _ . + @ / -")
    return names


def _extra_options(value: object) -> object:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"must be a list of sbatch options, got {value!r}")
    return tuple(check_option(item) for item in items)


def check_option(text: str) -> str:
    """``text`` when it is an allowed extra sbatch option (``--constraint=a100``), else
    ValueError saying why."""
    if not text.startswith("--"):
        raise ValueError(f"{text!r}: write extra sbatch options in long form, --name=value")
    name, eq, value = text[2:].partition("=")
    if name in OWN_OPTIONS:
        raise ValueError(f"{text!r}: --{name} is not an extra option ({OWN_OPTIONS[name]})")
    if name not in EXTRA_OPTIONS:
        raise ValueError(
            f"{text!r}: --{name} is not an sbatch option Pollinator passes through. Allowed: "
            + ", ".join(f"--{n}" for n in EXTRA_OPTIONS)
        )
    if EXTRA_OPTIONS[name] and not eq:
        raise ValueError(f"{text!r}: --{name} needs a value (--{name}=...)")
    if eq and not VALUE.fullmatch(value):
        raise ValueError(
            f"{text!r}: the value may hold letters, digits and _ . , : @ + % = / [ ] ( ) & | ! "
            "* ^ ~ - only (no spaces, quotes or $)"
        )
    return text


def _positive(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"must be more than 0 seconds, got {value!r}")
    return number


@attrs.frozen
class SlurmSettings:
    partition: str = setting(
        "", "Partition (-p); empty: the cluster's default.", parse=_names("partition", NAME)
    )
    account: str = setting(
        "", "Account to charge (-A); empty: your default account.", parse=_names("account", NAME)
    )
    qos: str = setting(
        "", "Quality of service (--qos); empty: the default.", parse=_names("QOS", NAME)
    )
    reservation: str = setting(
        "", "Reservation (--reservation); empty: none.", parse=_names("reservation", NAME)
    )
    sbatch_options: tuple[str, ...] = setting(
        (),
        "Extra sbatch options in long form (--constraint=a100 --exclusive), from an "
        "allowlist (an option not on it is refused with the list).",
        parse=_extra_options,
    )
    modules: tuple[str, ...] = setting(
        (), "Environment modules the job loads before srun (module load NAME).", parse=_modules
    )
    image_dir: str = setting(
        "~/.cache/pollinator/sif",
        "Where image SIFs are converted and cached: a directory the compute nodes can read.",
    )
    job_dir: str = setting(
        "~/.cache/pollinator/slurm-jobs",
        "Where the scripts and output of a job whose spec has no fs.mount go (on the shared "
        "filesystem); other jobs use their process directory.",
    )
    image_source: str = setting(
        "auto",
        "Where a plain image name (python:3.12) is converted from: the local Docker engine "
        "(docker-daemon), a registry (docker), or auto: the engine when it has the image.",
        choices=("auto", "docker-daemon", "docker"),
    )
    container: str = setting(
        "apptainer",
        "The container command on the compute nodes.",
        choices=("apptainer", "singularity"),
    )
    gpu_style: str = setting(
        "gres",
        "How GPUs are asked for: --gres=gpu[:name]:N, or --gpus-per-node=[name:]N.",
        choices=("gres", "gpus-per-node"),
    )
    gpu_vendor: str = setting(
        "nvidia",
        "The container's GPU flag when GPUs are asked for: --nv (nvidia) or --rocm (amd).",
        choices=("nvidia", "amd"),
    )
    requeue: bool = setting(
        False, "Let Slurm requeue the job after a node failure or preemption (--requeue)."
    )
    grace: float = setting(
        30.0,
        "Seconds a stopped job (walltime, cancel) gets between SIGTERM and SIGKILL.",
        parse=_positive,
    )
    poll_interval: float = setting(
        2.0, "Seconds between squeue calls right after a change.", parse=_positive
    )
    poll_max_interval: float = setting(
        60.0,
        "Seconds between squeue calls when nothing changes (keep under MinJobAge / 2).",
        parse=_positive,
    )
    lost_after: float = setting(
        300.0,
        "Seconds a job that left squeue may go without an outcome (no accounting record, no "
        "exit record) before it is reported lost.",
        parse=_positive,
    )


SECTION = SettingsSection(
    "slurm", SlurmSettings, "`pollinator executor start --type slurm` and the slurm backend."
)


def gpu_request(style: str, count: int, name: str) -> str:
    """The sbatch option for ``count`` GPUs per node (``--gres=gpu:a100:2``)."""
    if name and not GPU_NAME.fullmatch(name):
        raise JobFailed(
            f"conditions.gpu.name {name!r} is not a GPU model name: letters, digits and _ . - only"
        )
    if style == "gres":
        return f"--gres=gpu:{name}:{count}" if name else f"--gres=gpu:{count}"
    return f"--gpus-per-node={name}:{count}" if name else f"--gpus-per-node={count}"
