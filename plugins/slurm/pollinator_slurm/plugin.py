"""Hook implementations of the built-in Slurm plugin.

It registers executor type ``slurm`` (``pollinator executor start --type slurm``, on a login or
service node), the ``--backend slurm`` choice (a local simulator with this executor, for a user
on a login node without a Colonies server), and the ``slurm`` settings section (project.yaml
``slurm:``, ``POLLINATOR_SLURM_*``, ``-s``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pollinator_core.api import (
    Backend,
    ExecutorType,
    Job,
    LocalBackend,
    Runtime,
    SettingsSection,
    hookimpl,
)

from .settings import SECTION, SlurmSettings


def make_runtime(settings: SlurmSettings) -> Runtime:
    """The runtime, once ``sbatch --test-only`` has accepted the site's settings."""
    from .runtime import SlurmRuntime

    runtime = SlurmRuntime(settings)
    runtime.preflight()
    return runtime


def render(settings: SlurmSettings, job: Job) -> dict[str, str]:
    """What the dry run shows: the sbatch command and the job's files, as the executor would
    write them (the SIF's name carries the image's digest once the executor converts it)."""
    from . import images, script

    files = script.job_files(job, settings)
    if job.image.endswith(".sif"):
        sif = job.image
    else:
        source = images.planned_source(job.image, settings.image_source)
        sif = str(Path(settings.image_dir).expanduser() / images.sif_name(source))
    rendered = {"sbatch": shlex.join(script.sbatch_argv(files)) + "\n"}
    rendered.update(script.render(job, settings, files, sif))
    return rendered


@hookimpl
def pollinator_register_settings(register: Callable[[SettingsSection[Any]], None]) -> None:
    register(SECTION)


@hookimpl
def pollinator_register_executors(register: Callable[[ExecutorType], None]) -> None:
    register(
        ExecutorType(
            "slurm", make_runtime, SECTION.name, "Slurm batch jobs in Apptainer/Singularity", render
        )
    )


@hookimpl
def pollinator_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        LocalBackend(
            "slurm",
            "slurm",
            "This login node's Slurm cluster, without a Colonies server: a local simulator and "
            "a Slurm executor, state in .pollinator/slurm/ (on the shared filesystem).",
        )
    )
