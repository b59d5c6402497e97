"""Jobs as Slurm batch jobs running Apptainer, on the batch-scheduler base.

Per cycle of the base's poller, for all jobs at once: one ``squeue`` (live states, pending
reasons, and final states while slurmctld remembers the job). Jobs that ended are settled by
one ``sacct`` for all of them (job and steps: a step killed for its memory is an oom), and,
for a job accounting cannot settle yet (slurmdbd down, accounting disabled, its record a moment
behind), by slurmctld's own record (``scontrol show job``, which also has the exact exit code
that sacct 22.05 reports modulo 128); both combined with the exit record the job's wrapper
wrote. The wrapper's record appearing wakes the poller, so a job's end is seen at once, not a
cycle later.

Slurm outages: squeue failing pauses (the base says so in the job's log, rate-limited);
accounting that is down or disabled costs nothing but the sacct call.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pollinator_core.api import (
    BatchRuntime,
    InfraError,
    Job,
    JobFailed,
    JobState,
    Polling,
    Reason,
    SchedulerJob,
    Termination,
    UsageError,
    read_exit_record,
)

from . import script, states
from .commands import ACCOUNTING_DISABLED, UNKNOWN_JOB, SlurmCommands, SlurmRefused
from .images import ImageCache
from .settings import SlurmSettings

log = logging.getLogger("pollinator.slurm")

#: seconds to wait for the exit record of a job Slurm says exited (a shared filesystem may
#: show the file late); the record may say walltime or cancelled where Slurm only saw an exit
RECORD_WAIT = 10.0
#: lines of Slurm's and the wrapper's own messages put into the process log at most
MESSAGES = 50
#: how far back sacct looks for a job by name
LOOKUP_WINDOW = "now-7days"
#: squeue may fail this long (doubling waits) while the executor looks for a job
LOOKUP_PATIENCE = 60.0


class SlurmRuntime(BatchRuntime):
    """Runs each job as one Slurm batch job; handles are Slurm job ids."""

    type = "slurm"

    def __init__(self, settings: SlurmSettings, commands: SlurmCommands | None = None) -> None:
        super().__init__(
            Polling(
                min_interval=settings.poll_interval,
                max_interval=max(settings.poll_max_interval, settings.poll_interval),
                lost_after=settings.lost_after,
                cancel_confirm=settings.grace + 30,
            )
        )
        self.settings = settings
        self.commands = commands or SlurmCommands()
        self.images = ImageCache(
            Path(settings.image_dir).expanduser(), settings.container, settings.image_source
        )
        self._guard = threading.Lock()
        self._files: dict[str, script.JobFiles] = {}  # job id -> its files
        self._ended_at: dict[str, float] = {}  # job id -> when squeue first showed it ended
        self._seen_running: set[str] = set()
        self._early: dict[str, list[str]] = {}  # job name -> notices from before submission
        self._doubtful: set[str] = set()  # job names whose sbatch may have gone through
        self._accounting = True

    # --- starting -----------------------------------------------------------------------

    def preflight(self) -> None:
        """``sbatch --test-only`` with the site's options: UsageError with Slurm's message when
        it refuses them, InfraError when Slurm does not answer."""
        probe = Job(process_id="preflight", image="", command="true", walltime=60)
        options = script.sbatch_options(probe, self.settings, script.JobFiles(Path("/tmp")))
        kept = [o for o in options if not o.startswith(_PREFLIGHT_SKIP)]
        argv = ["sbatch", "--test-only", *kept, "--wrap=true"]
        try:
            self.commands.run(argv)
        except SlurmRefused as exc:
            raise UsageError(
                f"Slurm refuses this executor's settings: {exc.message} (sbatch --test-only "
                f"{' '.join(kept)}). Check the slurm settings: partition "
                f"{self.settings.partition or '(default)'}, account "
                f"{self.settings.account or '(default)'}, qos {self.settings.qos or '(default)'}"
                f", reservation {self.settings.reservation or '(none)'}, sbatch_options."
            ) from None

    def describe(self) -> str:
        where = f"partition {self.settings.partition}" if self.settings.partition else "Slurm"
        return f"Slurm batch jobs ({where}) in {self.settings.container}"

    def files(self, job: Job) -> script.JobFiles:
        return script.job_files(job, self.settings)

    def submit(self, job: Job) -> str:
        try:
            handle = super().submit(job)
        finally:
            with self._guard:
                early = self._early.pop(job.name, [])
        for line in early:
            self._announce(handle, line)
        return handle

    def _submit(self, job: Job) -> str:
        early: list[str] = []
        with self._guard:
            self._early[job.name] = early
            doubtful = job.name in self._doubtful
        if doubtful:
            # The last sbatch for this job failed on the way back: it may have gone through.
            found = self._lookup(job)
            if found is not None:
                return self._remember(job, found)
        sif = self.images.sif(job.image, rebuild=job.rebuild_image, say=early.append)
        files = self.files(job)
        rendered = script.render(job, self.settings, files, str(sif))
        _write(files, rendered)
        try:
            out = self.commands.run(script.sbatch_argv(files))
        except InfraError:
            with self._guard:
                self._doubtful.add(job.name)
            raise
        except SlurmRefused as exc:
            raise JobFailed(f"Slurm refused the job: {exc.message}") from None
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise JobFailed(f"sbatch answered {out.strip()!r}, not a job id")
        early.append(f"submitted as Slurm job {job_id} ({files.job_script})")
        return self._remember(job, job_id)

    def _remember(self, job: Job, job_id: str) -> str:
        with self._guard:
            self._files[job_id] = self.files(job)
            self._doubtful.discard(job.name)
        return job_id

    # --- following ----------------------------------------------------------------------

    def _poll(self, ids: Sequence[str]) -> dict[str, SchedulerJob]:
        argv = ["squeue", "-h", "--states=all", f"--jobs={','.join(ids)}"]
        try:
            out = self.commands.run([*argv, "-o", states.SQUEUE_FORMAT])
        except SlurmRefused as exc:
            if UNKNOWN_JOB.search(exc.message):
                return {}  # none of them is known any more (squeue says so only for one)
            raise InfraError(f"squeue: {exc.message}") from None
        entries = states.parse_squeue(out)
        now = time.monotonic()
        live = {}
        for job_id, entry in entries.items():
            seen = entry.scheduler_job()
            live[job_id] = seen
            if seen.state is JobState.ENDED:
                with self._guard:
                    self._ended_at.setdefault(job_id, now)
            elif seen.state is JobState.RUNNING and self._first_run(job_id):
                nodes = states.node_names(entry.nodes)
                where = ", ".join(nodes) if nodes else "(nodes not known yet)"
                self._announce(job_id, f"Slurm job {job_id} running on {where}")
        return live

    def _first_run(self, job_id: str) -> bool:
        with self._guard:
            first = job_id not in self._seen_running
            self._seen_running.add(job_id)
        return first

    def _final(self, ids: Sequence[str]) -> dict[str, Termination]:
        verdicts: dict[str, Termination] = {}
        failure = ""
        if self._accounting:
            try:
                verdicts.update(self._sacct(ids))
            except InfraError as exc:
                failure = str(exc)
        now = time.monotonic()
        with self._guard:
            ended = {i: self._ended_at.get(i) for i in ids}
        for job_id in ids:
            since = ended[job_id]
            if job_id in verdicts or since is None:
                continue  # settled, or slurmctld has forgotten it too
            # Accounting is down, off, or a moment behind slurmctld, which knows the end.
            found = self._scontrol(job_id)
            if found is not None:
                verdicts[job_id] = found
        for job_id, found in list(verdicts.items()):
            # Slurm says the job exited; its wrapper's record (walltime? cancelled? oom?) may
            # not be visible on this node yet.
            waited = now - (ended[job_id] or now)
            if (
                found.reason is Reason.EXIT
                and waited < RECORD_WAIT
                and self._missing_record(job_id)
            ):
                del verdicts[job_id]
        if failure and not verdicts:
            raise InfraError(failure)
        return verdicts

    def _scontrol(self, job_id: str) -> Termination | None:
        try:
            return states.parse_scontrol(
                self.commands.run(["scontrol", "-o", "show", "job", job_id])
            )
        except (InfraError, SlurmRefused) as exc:
            log.debug("scontrol show job %s: %s", job_id, exc)
            return None

    def _sacct(self, ids: Sequence[str]) -> dict[str, Termination]:
        # With the steps: a step killed for its memory makes the job's verdict oom.
        argv = ["sacct", "-n", "-P", f"--jobs={','.join(ids)}", "-o", states.SACCT_FIELDS]
        try:
            return states.parse_sacct(self.commands.run(argv))
        except SlurmRefused as exc:
            if ACCOUNTING_DISABLED.search(exc.message):
                log.info("this cluster keeps no accounting: exit records settle its jobs")
                self._accounting = False
                raise InfraError("Slurm accounting storage is disabled") from None
            raise InfraError(f"sacct: {exc.message}") from None

    def _missing_record(self, job_id: str) -> bool:
        with self._guard:
            files = self._files.get(job_id)
        return files is not None and read_exit_record(files.record) is None

    def _output(self, job: Job) -> Path | None:
        return self.files(job).output

    def logs(self, handle: str, offset: int = 0) -> Iterator[bytes | str]:
        yield from super().logs(handle, offset)
        with self._guard:
            files = self._files.get(handle)
        if files is not None:
            yield from _messages(files.messages)

    # --- stopping -----------------------------------------------------------------------

    def _cancel(self, external: str, kill: bool) -> None:
        # Politely: TERM to the batch shell only; the wrapper stops the tasks (TERM, the
        # grace, KILL) and writes the record. At once (pending, or insisting): Slurm's own
        # cancel, TERM to every step and KILL after its KillWait.
        argv = ["scancel", external] if kill else ["scancel", "--batch", "--signal=TERM", external]
        try:
            self.commands.run(argv)
        except SlurmRefused as exc:
            if "pending" in exc.message.lower() and not kill:
                self._cancel(external, True)
            elif not re.search(r"invalid job id|already completing|completed", exc.message, re.I):
                log.warning("scancel %s: %s", external, exc.message)
        except InfraError as exc:
            # The base asks again (kill) if the job is still there after its grace.
            log.warning("scancel %s: %s; trying again later", external, exc)

    # --- finding jobs again -------------------------------------------------------------

    def _lookup(self, job: Job) -> str | None:
        argv = ["squeue", "-h", "--states=all", f"--name={job.name}", "-o", "%i|%k"]
        delay = 2.0
        while True:
            try:
                out = self.commands.run(argv)
                break
            except SlurmRefused as exc:
                raise InfraError(f"squeue: {exc.message}") from None
            except InfraError as exc:
                # The job may exist: without squeue's word it must not be submitted again.
                if delay > LOOKUP_PATIENCE:
                    raise
                log.warning("cannot look for job %s (%s); trying again", job.name, exc)
                time.sleep(delay)
                delay *= 2
        ids = [
            int(parts[0])
            for parts in (line.split("|", 1) for line in out.splitlines())
            if len(parts) == 2 and parts[0].strip().isdigit() and parts[1].strip() == job.process_id
        ]
        if not ids and self._accounting:
            ids = self._lookup_accounting(job)
        if not ids:
            return None
        return self._remember(job, str(max(ids)))

    def _lookup_accounting(self, job: Job) -> list[int]:
        argv = [
            "sacct",
            "-X",
            "-n",
            "-P",
            f"--name={job.name}",
            "-S",
            LOOKUP_WINDOW,
            "-o",
            "JobIDRaw",
        ]
        try:
            out = self.commands.run(argv)
        except (InfraError, SlurmRefused) as exc:
            # squeue has answered: a job ended more than MinJobAge ago is what sacct would add.
            log.warning("sacct cannot look for job %s (%s); relying on squeue", job.name, exc)
            return []
        return [int(line) for line in (x.strip() for x in out.splitlines()) if line.isdigit()]

    def cleanup(self, handle: str) -> None:
        with self._guard:
            files = self._files.pop(handle, None)
            self._ended_at.pop(handle, None)
            self._seen_running.discard(handle)
        super().cleanup(handle)
        if files is not None and Path(self.settings.job_dir).expanduser() in files.dir.parents:
            shutil.rmtree(files.dir, ignore_errors=True)


#: options that describe one job, not the site: left out of the preflight
_PREFLIGHT_SKIP = ("--job-name", "--comment", "--chdir", "--output", "--open-mode")


def _messages(path: Path) -> list[str]:
    """What the wrapper, srun and slurmstepd said about the job (its batch shell's stderr),
    as notices: the last MESSAGES lines."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.strip()][-MESSAGES:]
    return [
        f"{line}\n" if line.startswith("pollinator: ") else f"pollinator: slurm: {line}\n"
        for line in lines
    ]


def _write(files: script.JobFiles, rendered: dict[str, str]) -> None:
    """The job's files, readable by their owner alone (the job runs as the executor's user;
    the environment is the project's business, not the other users' of the cluster)."""
    try:
        files.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.dir.chmod(0o700)
        for name, text in rendered.items():
            path = files.dir / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o700 if name == "job.sh" else 0o600)
            tmp.replace(path)
    except OSError as exc:
        raise JobFailed(f"cannot write the job's files in {files.dir}: {exc}") from None
