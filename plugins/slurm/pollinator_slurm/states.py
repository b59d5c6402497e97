"""What Slurm's answers mean: squeue lines to live states, scontrol and sacct records to
terminations, pending reasons to sentences.

What the test cluster (Slurm 22.05) reports for each way a job ends, and what it becomes:

=============  =================  ===================  ===========================
the job        sacct -X           scontrol             Termination
=============  =================  ===================  ===========================
exit 0         COMPLETED 0:0      COMPLETED 0:0        exit code 0
exit 3         FAILED 3:0         FAILED 3:0           exit code 3
exit 143       FAILED 15:0 (!)    FAILED 143:0         exit code 143 (SIGTERM)
over --mem     OUT_OF_MEMORY 0:125  OUT_OF_MEMORY      oom
over --time    TIMEOUT 0:0        TIMEOUT 0:15         walltime
node lost      NODE_FAIL          NODE_FAIL            node failure
scancel        CANCELLED by UID   CANCELLED            cancelled
=============  =================  ===================  ===========================

sacct of Slurm 22.05 reports an exit code above 128 modulo 128 (200 -> 72), so the exact code
comes from slurmctld (scontrol) while it still knows the job, and from the job's exit record.
A record is final only once its end time is known: after an outage of slurmdbd the final
state can arrive before the end record.
"""

from __future__ import annotations

import re

import attrs

from pollinator_core.api import JobState, Reason, SchedulerJob, Termination

from . import nodelist

#: states of a job that has not ended yet, by what they mean for us
PENDING_STATES = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
}
RUNNING_STATES = {
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESIZING",
    "POWER_UP_NODE",
}
#: squeue's format: id, state, reason, nodes (the nodes last: the reason may hold spaces)
SQUEUE_FORMAT = "%i|%T|%r|%N"
#: sacct's fields
SACCT_FIELDS = "JobIDRaw,State,ExitCode,End,NodeList"

#: pending reasons in words; "(Slurm: CODE)" follows
_REASONS = {
    "Priority": "other jobs come first (priority)",
    "Resources": "waiting for free resources (CPUs, memory, GPUs or nodes)",
    "Dependency": "waiting for a job it depends on",
    "BeginTime": "its start time has not come yet",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "a node it needs is not available (down, drained or reserved)",
    "NodeDown": "a node it needs is down",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "it asks for more time than the partition allows",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
    "BadConstraints": "no node satisfies its constraints",
    "Cleaning": "waiting for its last run to be cleaned up",
    "Prolog": "the node's prolog is running",
    "InvalidQOS": "its QOS is invalid for the account",
    "InvalidAccount": "its account is invalid",
    "launch failed requeued held": "its launch failed; Slurm requeued and held it",
}


def pending_reason(code: str) -> str:
    """A sentence for squeue's pending reason (``QOSMaxJobsPerUserLimit``...); "" for none."""
    code = code.strip()
    if code in ("", "None", "(null)"):
        return ""
    if code in _REASONS:
        text = _REASONS[code]
    elif code.startswith("QOS"):
        text = "a limit of its QOS is reached"
    elif code.startswith(("Assoc", "MaxJobs", "MaxCpu", "MaxNode", "MaxMem", "MaxGRES")):
        text = "a limit of its account is reached"
    else:
        text = "Slurm holds it back"
    return f"{text} (Slurm: {code})"


@attrs.frozen
class QueueEntry:
    """One line of squeue."""

    job_id: str
    state: str
    reason: str
    nodes: str

    def scheduler_job(self) -> SchedulerJob:
        if self.state in PENDING_STATES:
            waiting = pending_reason(self.reason)
            if self.state != "PENDING":
                waiting = f"{self.state.lower().replace('_', ' ')}; {waiting}".rstrip("; ")
            return SchedulerJob(JobState.PENDING, waiting=waiting)
        if self.state in RUNNING_STATES:
            return SchedulerJob(JobState.RUNNING)
        return SchedulerJob(JobState.ENDED)


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or not parts[0]:
            continue
        job_id, state, nodes = parts[0], parts[1].split()[0] if parts[1] else "", parts[-1]
        out[job_id] = QueueEntry(job_id, state, "|".join(parts[2:-1]), nodes)
    return out


def node_names(hostlist: str) -> list[str]:
    """The expanded node list; the text itself when it cannot be parsed."""
    if not hostlist or hostlist in ("(null)", "None assigned"):
        return []
    try:
        return nodelist.expand(hostlist)
    except ValueError:
        return [hostlist]


def verdict(
    state: str, exit_code: int, signal: int, *, evidence: str, nodes: str = ""
) -> Termination | None:
    """How a job in ``state`` with Slurm's ``exit_code:signal`` ended; None while it has not.

    The exit code is left out (None) where Slurm's own verdict is the reason (OOM, timeout,
    node failure, cancel): the job's exit record then supplies the code the payload had."""
    base = state.split()[0] if state else ""
    if not base or base in PENDING_STATES or base in RUNNING_STATES:
        return None
    where = f" on {nodes}" if nodes and nodes not in ("(null)", "None assigned") else ""
    if base in ("COMPLETED", "FAILED", "SPECIAL_EXIT"):
        code = 128 + signal if signal else exit_code
        return Termination.exited(code, evidence=[evidence])
    if base == "OUT_OF_MEMORY":
        return Termination(
            Reason.OOM, detail=f"killed for going over --mem{where}", evidence=(evidence,)
        )
    if base == "TIMEOUT":
        return Termination(
            Reason.WALLTIME, detail="Slurm's time limit (--time) ran out", evidence=(evidence,)
        )
    if base == "DEADLINE":
        return Termination(
            Reason.WALLTIME, detail="Slurm's --deadline passed", evidence=(evidence,)
        )
    if base in ("NODE_FAIL", "BOOT_FAIL"):
        what = "a node failed" if base == "NODE_FAIL" else "a node failed to boot"
        return Termination(Reason.NODE_FAILURE, detail=f"{what}{where}", evidence=(evidence,))
    if base == "CANCELLED":
        by = state.split(maxsplit=1)[1] if " " in state else ""
        detail = f"cancelled in Slurm ({by})" if by else "cancelled in Slurm"
        return Termination(Reason.CANCELLED, detail=detail, evidence=(evidence,))
    if base == "PREEMPTED":
        return Termination(Reason.INFRASTRUCTURE, detail="preempted by Slurm", evidence=(evidence,))
    return Termination(
        Reason.INFRASTRUCTURE, detail=f"Slurm ended it as {state}", evidence=(evidence,)
    )


_EXIT = re.compile(r"^(\d+):(\d+)$")


def _exit(text: str) -> tuple[int, int]:
    found = _EXIT.match(text.strip())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def parse_sacct(text: str) -> dict[str, Termination]:
    """Final verdicts from ``sacct -n -P -o SACCT_FIELDS`` (the jobs and their steps); a job
    whose record is not final yet (no End) is left out. A step that ran out of memory makes
    the job's verdict oom, whatever the batch script's exit: the wrapper outlives its step."""
    jobs: dict[str, list[str]] = {}
    oom: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        job_id, _, step = parts[0].partition(".")
        if not step:
            jobs[job_id] = parts[:5]
        elif parts[1].startswith("OUT_OF_MEMORY"):
            oom.setdefault(job_id, f"sacct: step {parts[0]} State={parts[1]} ExitCode={parts[2]}")
    out = {}
    for job_id, (_, state, exit_text, end, nodes) in jobs.items():
        if not end or end == "Unknown":
            continue
        code, sig = _exit(exit_text)
        seen = f"sacct: JobID={job_id} State={state} ExitCode={exit_text} NodeList={nodes}"
        found = verdict(state, code, sig, evidence=seen, nodes=nodes)
        if found is not None and job_id in oom and found.reason is not Reason.OOM:
            found = verdict("OUT_OF_MEMORY", 0, 0, evidence=oom[job_id], nodes=nodes)
            found = attrs.evolve(found, evidence=(*found.evidence, seen)) if found else None
        if found is not None:
            out[job_id] = found
    return out


_FIELD = re.compile(r"(?:^|\s)(JobId|JobState|ExitCode|EndTime|NodeList|Restarts)=(\S*)")


def parse_scontrol(text: str) -> Termination | None:
    """The verdict in ``scontrol -o show job ID``, once the job has ended."""
    fields = dict(_FIELD.findall(text))
    state, end = fields.get("JobState", ""), fields.get("EndTime", "")
    if not end or end == "Unknown":
        return None
    code, sig = _exit(fields.get("ExitCode", ""))
    nodes = fields.get("NodeList", "")
    seen = (
        f"scontrol: JobId={fields.get('JobId', '?')} JobState={state} "
        f"ExitCode={fields.get('ExitCode', '?')} NodeList={nodes}"
    )
    return verdict(state, code, sig, evidence=seen, nodes=nodes)
