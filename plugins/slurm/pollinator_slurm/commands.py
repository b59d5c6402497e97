"""Running the Slurm commands: argv lists, a timeout, a clean environment, and failures sorted
into "Slurm is not reachable now" (:class:`~pollinator_core.api.InfraError`: wait and try
again) and "Slurm refuses this" (:class:`SlurmRefused`, with Slurm's own message).

The commands run with the executor's environment minus what would change their behaviour
behind our back: ``SBATCH_*``/``SQUEUE_*``/``SACCT_*`` input variables (they override the
options Pollinator writes), ``SLURM_*`` except ``SLURM_CONF`` (an executor started inside a job
would otherwise pass that job's allocation on), and the executor's private variables (keys,
S3 credentials). Times are asked for in Slurm's standard format.

sbatch gets less: its environment becomes the batch job's (``--export=ALL``), so it is only
what the batch shell needs to find and run ``srun`` and the container tool (:data:`BATCH_NAMES`,
:data:`BATCH_PREFIXES`). ``--export=NONE`` would keep the executor's environment out too, but
Slurm then holds every batch launch back after the allocation (0.2 to 1.2 s, median 1.2 s on
Slurm 22.05, ``NIL`` alike); the job's own environment is ``env.sh`` in any case.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess

from pollinator_core.api import InfraError, PollinatorError, scrubbed

log = logging.getLogger("pollinator.slurm")

#: seconds one Slurm command may take
TIMEOUT = 60.0
#: variables that steer the Slurm commands and must come from Pollinator's argv only
_STEERING = ("SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_", "SCANCEL_", "SCONTROL_", "SLURM_")
_KEEP = ("SLURM_CONF",)

#: Slurm messages that mean "not now", not "never"
_OUTAGE = re.compile(
    r"unable to contact slurm controller|socket timed out|connection refused|connection timed"
    r" out|zero bytes were transmitted|communication connection failure|temporarily unable|"
    r"resource temporarily unavailable|transport endpoint|problem talking to the database|"
    r"slurmdbd|backup controller|not responding|job submit limit|MaxSubmitJob",
    re.IGNORECASE,
)
#: what sacct says on a cluster that keeps no accounting
ACCOUNTING_DISABLED = re.compile(r"accounting storage is disabled", re.IGNORECASE)
#: the job is unknown to slurmctld (never was, or purged after MinJobAge)
UNKNOWN_JOB = re.compile(r"invalid job id", re.IGNORECASE)


class SlurmRefused(PollinatorError):
    """A Slurm command said no for a reason that waiting does not fix."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        self.message = message
        super().__init__(f"{command}: {message}")


#: what the batch shell keeps of the executor's environment: where programs and libraries are,
#: who and where it is, the locale, Slurm's configuration, the module system and Apptainer
BATCH_NAMES = frozenset(
    {"PATH", "LD_LIBRARY_PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
     "SLURM_CONF", "MODULEPATH", "MODULESHOME"}
)  # fmt: skip
BATCH_PREFIXES = ("LC_", "LMOD_", "APPTAINER_", "SINGULARITY_")
#: never passed on, whatever the name's prefix (an Apptainer registry password, say)
_SECRET_WORDS = re.compile(r"PASS|TOKEN|SECRET|KEY|AUTH|CRED", re.IGNORECASE)


def command_env(command: str = "") -> dict[str, str]:
    """The environment ``command`` runs with; sbatch's is the batch job's."""
    env = {
        k: v for k, v in scrubbed(os.environ).items() if not k.startswith(_STEERING) or k in _KEEP
    }
    if command == "sbatch":
        return {
            k: v
            for k, v in env.items()
            if (k in BATCH_NAMES or k.startswith(BATCH_PREFIXES)) and not _SECRET_WORDS.search(k)
        }
    env["SLURM_TIME_FORMAT"] = "standard"
    return env


class SlurmCommands:
    """Runs Slurm's commands; one instance per runtime."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout

    def run(self, argv: list[str]) -> str:
        """stdout of ``argv``; InfraError when Slurm cannot be reached, SlurmRefused when it
        answers no."""
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                env=command_env(argv[0]),
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise InfraError(
                f"{argv[0]} is not on PATH: the Slurm executor runs on a login or service node "
                "with the Slurm commands (sbatch, squeue, sacct, scancel, scontrol)"
            ) from None
        except subprocess.TimeoutExpired:
            raise InfraError(f"{argv[0]} did not answer in {self.timeout:.0f} s") from None
        if done.returncode != 0:
            message = _message(done.stderr or done.stdout) or f"exit code {done.returncode}"
            log.debug("%s failed: %s", argv, message)
            if _OUTAGE.search(message):
                raise InfraError(f"{argv[0]}: {message}")
            raise SlurmRefused(argv[0], message)
        return done.stdout


def _message(text: str) -> str:
    """Slurm's words, without the repeated "sbatch: error:" prefixes."""
    lines = []
    for line in text.strip().splitlines():
        line = re.sub(r"^\s*\w+: (error|fatal): ", "", line.strip())
        if line:
            lines.append(line)
    return "; ".join(lines)
