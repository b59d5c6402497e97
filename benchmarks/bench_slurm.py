"""The Slurm executor against the cluster of tests/infra/slurm_up.sh: how hard it works the
scheduler, and what it adds to a job's time.

    python benchmarks/bench_slurm.py [--jobs 1 10 50] [--window 60] [--repeat 5] [--json]

- scheduler commands per minute at steady state: N jobs submitted at once (on this 2-CPU node
  two run and the rest wait in the queue, as on a busy cluster), then, --settle seconds later,
  every Slurm command the runtime issues during --window seconds is counted (squeue, sacct,
  scontrol, scancel; the sbatch calls are timed apart). The original HPC executor ran one
  ``scontrol show job`` per job per second: 60 N a minute.
- submit to first output line: from the runtime's submit() to the job's first line coming out
  of its logs(), against a bare ``sbatch`` of the same command whose output file is polled
  every 50 ms;
- end to end, hello world: submit, follow and settle (the termination record, exit code
  included) through the runtime, against a bare ``sbatch --wait`` of the same command; and
  ``pollinator run --backend slurm --follow`` of the generated example (its agent warm).

Every job runs ``apptainer exec --containall --cleanenv`` of the test SIF. Targets (DESIGN.md):
a few scheduler commands per minute whatever N; under a second added against ``sbatch --wait``.
Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pollinator_slurm.commands import SlurmCommands
from pollinator_slurm.runtime import SlurmRuntime
from pollinator_slurm.settings import SlurmSettings

from pollinator_core.api import Job, Mount, Reason, Termination

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))
ENV_FILE = Path("/tmp/pollinator-ci/slurm.env")
#: steady-state target: scheduler commands per minute, whatever the number of jobs
COMMANDS_TARGET = 6.0
#: end-to-end target: seconds added to a hello world against a bare sbatch --wait
OVERHEAD_TARGET = 1.0
#: seconds between measured jobs: each starts on a node done with the last one's cleanup
#: (a job submitted the moment another ended waits for the next scheduling pass)
PAUSE = 3.0


class CountingCommands(SlurmCommands):
    """Slurm's commands, counted by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def run(self, argv: list[str]) -> str:
        with self._lock:
            self.counts[argv[0]] += 1
        return super().run(argv)


def cluster() -> dict[str, str]:
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key] = value
    return values


def make_job(root: Path, sif: str, command: str, *, cpu: int = 1000, mem: int = 64) -> Job:
    work = root / uuid.uuid4().hex[:8]
    work.mkdir(parents=True)
    return Job(
        process_id=uuid.uuid4().hex * 2,
        image=sif,
        command=command,
        mounts=(Mount(str(work), "/cfs"),),
        workdir="/cfs",
        cpu_millis=cpu,
        mem_bytes=mem * 2**20,
        walltime=1200,
    )


def steady_state(
    settings: SlurmSettings, sif: str, jobs: int, settle: float, window: float, root: Path
) -> dict[str, Any]:
    commands = CountingCommands()
    runtime = SlurmRuntime(settings, commands)
    handles = []
    try:
        started = time.perf_counter()
        for _ in range(jobs):
            handles.append(runtime.submit(make_job(root, sif, "sleep 1200")))
        submitting = time.perf_counter() - started
        time.sleep(settle)  # past the quick polls that follow the submissions
        before = collections.Counter(commands.counts)
        time.sleep(window)
        during = collections.Counter(commands.counts)
        during.subtract(before)
    finally:
        why = Termination(Reason.CANCELLED, detail="benchmark over")
        for handle in handles:
            runtime.cancel(handle, why)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all(runtime.status(h).finished for h in handles):
            time.sleep(1)
        runtime.close()
    per_minute = {k: round(v * 60 / window, 2) for k, v in sorted(during.items()) if v}
    total = round(sum(during.values()) * 60 / window, 2)
    return {
        "jobs": jobs,
        "sbatch_seconds": round(submitting, 2),
        "commands_per_minute": total,
        "by_command": per_minute,
        "original_per_minute": 60 * jobs,
    }


def paired(ours: Callable[[], float], bare: Callable[[], float]) -> tuple[float, float]:
    """Time both at once. Slurm starts a batch job at its next scheduling pass (at most one per
    ``batch_sched_delay``, 3 s by default), so a job's wait depends on when the last pass ran;
    submitted together, the two jobs share one pass and the difference is what each side adds."""
    times: dict[str, float] = {}
    gate = threading.Barrier(2)

    def timed(name: str, measure: Callable[[], float]) -> None:
        gate.wait()
        times[name] = measure()

    threads = [
        threading.Thread(target=timed, args=("ours", ours)),
        threading.Thread(target=timed, args=("bare", bare)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times["ours"], times["bare"]


def first_line(settings: SlurmSettings, sif: str, root: Path, repeat: int) -> dict[str, Any]:
    ours, bare = [], []
    command = "echo first-line"

    def runtime_first_line() -> float:
        runtime = SlurmRuntime(settings)
        job = make_job(root, sif, command)
        start = time.perf_counter()
        handle = runtime.submit(job)
        seen = None
        for item in runtime.logs(handle):
            if seen is None and isinstance(item, bytes) and b"first-line" in item:
                seen = time.perf_counter() - start
        runtime.close()
        assert seen is not None, "no first line"
        return seen

    for _ in range(repeat):
        time.sleep(PAUSE)
        mine, theirs = paired(
            runtime_first_line, lambda: bare_first_line(root, sif, command, settings)
        )
        ours.append(mine)
        bare.append(theirs)
    return {
        "runtime_median_s": round(statistics.median(ours), 2),
        "bare_sbatch_median_s": round(statistics.median(bare), 2),
        "runtime_s": [round(x, 2) for x in ours],
        "bare_sbatch_s": [round(x, 2) for x in bare],
    }


def bare_script(root: Path, sif: str, command: str) -> Path:
    script = root / f"bare-{uuid.uuid4().hex[:8]}.sh"
    argv = ["apptainer", "exec", "--containall", "--cleanenv", sif, "sh", "-c", command]
    script.write_text(f"#!/bin/sh\nexec {shlex.join(argv)}\n")
    return script


def bare_first_line(root: Path, sif: str, command: str, settings: SlurmSettings) -> float:
    script = bare_script(root, sif, command)
    out = script.with_suffix(".out")
    start = time.perf_counter()
    subprocess.run(
        ["sbatch", "--parsable", f"--partition={settings.partition}", f"--output={out}",
         "--mem=64M", "--time=5", str(script)],
        check=True, capture_output=True,
    )  # fmt: skip
    while not (out.is_file() and b"first-line" in out.read_bytes()):
        time.sleep(0.05)
    return time.perf_counter() - start


def end_to_end(settings: SlurmSettings, sif: str, root: Path, repeat: int) -> dict[str, Any]:
    ours, bare = [], []
    command = "echo hello world"

    def runtime_hello() -> float:
        runtime = SlurmRuntime(settings)
        start = time.perf_counter()
        handle = runtime.submit(make_job(root, sif, command))
        for _ in runtime.logs(handle):
            pass
        status = runtime.status(handle)
        while not status.finished:
            time.sleep(0.01)
            status = runtime.status(handle)
        took = time.perf_counter() - start
        runtime.close()
        assert status.termination is not None and status.termination.succeeded
        return took

    def bare_hello() -> float:
        script = bare_script(root, sif, command)
        start = time.perf_counter()
        subprocess.run(
            ["sbatch", "--wait", "--parsable", f"--partition={settings.partition}",
             f"--output={script.with_suffix('.out')}", "--mem=64M", "--time=5", str(script)],
            check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - start

    for _ in range(repeat):
        time.sleep(PAUSE)
        mine, theirs = paired(runtime_hello, bare_hello)
        ours.append(mine)
        bare.append(theirs)
    overhead = statistics.median(ours) - statistics.median(bare)
    return {
        "runtime_median_s": round(statistics.median(ours), 2),
        "bare_sbatch_wait_median_s": round(statistics.median(bare), 2),
        "overhead_s": round(overhead, 2),
        "runtime_s": [round(x, 2) for x in ours],
        "bare_sbatch_wait_s": [round(x, 2) for x in bare],
    }


def cli_hello(sif: str, partition: str, root: Path, repeat: int) -> dict[str, Any]:
    project = root / "demo"
    subprocess.run([POLLINATOR, "new", str(project)], check=True, capture_output=True)
    path = project / "project.yaml"
    text = path.read_text().replace("python:3.12-rc-bookworm", sif)
    path.write_text(text + f"slurm:\n  partition: {partition}\n  image_dir: {root / 'sif'}\n")
    args = [POLLINATOR, "run", "--follow", "--backend", "slurm"]
    times = []
    try:
        for attempt in range(repeat + 1):  # the first also starts the agent
            start = time.perf_counter()
            done = subprocess.run(args, cwd=project, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"pollinator run failed:\n{done.stderr}")
            if attempt:
                times.append(time.perf_counter() - start)
    finally:
        subprocess.run([POLLINATOR, "executor", "stop", "--backend", "slurm"], cwd=project,
                       capture_output=True)  # fmt: skip
    return {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--settle", type=float, default=30.0, help="seconds before counting")
    parser.add_argument("--window", type=float, default=60.0, help="seconds counted")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not ENV_FILE.is_file():
        raise SystemExit(f"no Slurm cluster ({ENV_FILE}): start it with tests/infra/slurm_up.sh")
    found = cluster()
    sif, partition = found["POLLINATOR_SLURM_TEST_SIF"], found["POLLINATOR_SLURM_PARTITION"]
    settings = SlurmSettings(partition=partition, grace=2.0)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(
        prefix="bench-slurm-", dir=found.get("POLLINATOR_SLURM_SHARED_DIR")
    ) as tmp:
        root = Path(tmp)
        report["steady_state"] = [
            steady_state(settings, sif, n, args.settle, args.window, root) for n in args.jobs
        ]
        report["first_line"] = first_line(settings, sif, root, args.repeat)
        report["hello_world"] = end_to_end(settings, sif, root, args.repeat)
        report["cli_hello_world"] = cli_hello(sif, partition, root, min(args.repeat, 3))
    worst = max(r["commands_per_minute"] for r in report["steady_state"])
    ok = worst <= COMMANDS_TARGET and report["hello_world"]["overhead_s"] < OVERHEAD_TARGET
    report["targets_met"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in report["steady_state"]:
            print(
                f"{row['jobs']:3d} jobs: {row['commands_per_minute']:5.2f} scheduler commands/min "
                f"{row['by_command']} (the original: {row['original_per_minute']}/min); "
                f"{row['jobs']} sbatch in {row['sbatch_seconds']} s"
            )
        fl, hw = report["first_line"], report["hello_world"]
        print(f"submit -> first output line: {fl['runtime_median_s']} s "
              f"(bare sbatch: {fl['bare_sbatch_median_s']} s)")  # fmt: skip
        print(f"hello world end to end: {hw['runtime_median_s']} s (bare sbatch --wait: "
              f"{hw['bare_sbatch_wait_median_s']} s; overhead {hw['overhead_s']} s)")  # fmt: skip
        print(f"pollinator run --backend slurm --follow: {report['cli_hello_world']['median_s']} s")
        print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
