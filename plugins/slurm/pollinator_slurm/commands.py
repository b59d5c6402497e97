"""Running the Slurm commands: argv lists, a timeout, a clean environment, and failures sorted
into "Slurm is not reachable now" (:class:`~pollinator_core.api.InfraError`: wait and try
again) and "Slurm refuses this" (:class:`SlurmRefused`, with Slurm's own message).

The commands run with the executor's environment minus what would change their behaviour
behind our back: ``SBATCH_*``/``SQUEUE_*``/``SACCT_*`` input variables (they override the
options Pollinator writes), ``SLURM_*`` except ``SLURM_CONF`` (an executor started inside a job
would otherwise pass that job's allocation on), and the executor's private variables (keys,
S3 credentials). Times are asked for in Slurm's standard format.
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


def command_env() -> dict[str, str]:
    env = {
        k: v for k, v in scrubbed(os.environ).items() if not k.startswith(_STEERING) or k in _KEEP
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
                env=command_env(),
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
