"""Staging on the local backend, as a user sees it: a 5,000-file, 200 MB project, run twice.

    python benchmarks/bench_staging.py [--files 5000] [--mb 200] [--runtime process]
                                       [--pollinator PATH] [--json]

A fresh project from ``pollinator new`` gets --files files of random bytes (--mb in all) in 50
directories of cfs/data, and a main.py that prints one line and ends. It is run with
``pollinator run --follow`` twice, unchanged; for each run:

- staging: from the CLI's "submitted process" line to the job's first line of output: the
  executor's assignment, downloading src and data into the job's directory, starting it;
- executor: pre-sync alone, as the executor logs it (in the agent's log; not logged before
  issue 13);
- total: the whole command (sync up, submit, staging, the job, results down).

The second run is the one issue 13 (item 6) is about: an executor that already staged the same
bytes must not copy them again (target: staging well under a second). --pollinator names
another installation's command, to measure a checkout from before the change beside this one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))
MAIN = 'print("started", flush=True)\n'
#: what the executor logs once a process's files are in place (absent before issue 13)
STAGED = re.compile(r"staged \d+ files \(\d+ cached\) in ([0-9.]+) s")
TARGET = 1.0


def make_project(pollinator: str, root: Path, env: dict[str, str], files: int, mb: int) -> None:
    subprocess.run([pollinator, "new", str(root)], env=env, check=True, capture_output=True)
    (root / "cfs" / "src" / "main.py").write_text(MAIN)
    size = mb * 2**20 // files
    for i in range(files):
        directory = root / "cfs" / "data" / f"d{i % 50:02d}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def run_once(pollinator: str, root: Path, env: dict[str, str], runtime: str) -> dict[str, float]:
    """One ``run --follow``: seconds of staging and in all."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [pollinator, "run", "--follow", "--runtime", runtime],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: dict[str, float] = {}
    errors: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)
            if "submitted process" in line:
                seen.setdefault("submitted", time.perf_counter())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            seen.setdefault("started", time.perf_counter())
    code = proc.wait()
    reader.join(10)
    total = time.perf_counter() - start
    if code != 0 or len(seen) != 2:
        raise SystemExit(f"run failed ({code}):\n{''.join(errors)}")
    return {"staging": seen["started"] - seen["submitted"], "total": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runtime", default="process", choices=["process", "docker"])
    parser.add_argument("--pollinator", default=POLLINATOR, help="the command to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    env["POLLINATOR_LOCAL_IDLE"] = "120"
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp:
        root = Path(tmp) / "demo"
        make_project(args.pollinator, root, env, args.files, args.mb)
        try:
            first = run_once(args.pollinator, root, env, args.runtime)
            time.sleep(float(os.environ.get("BENCH_PAUSE", "0")))
            again = run_once(args.pollinator, root, env, args.runtime)
        finally:
            subprocess.run(
                [args.pollinator, "executor", "stop"], cwd=root, env=env, capture_output=True
            )
            staged = STAGED.findall((root / ".pollinator" / "local" / "agent.log").read_text())
    for run, seconds in zip((first, again), staged, strict=False):
        run["executor"] = float(seconds)
    report = {"files": args.files, "mb": args.mb, "first": first, "unchanged re-run": again}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.files} files, {args.mb} MB, runtime {args.runtime}:")
        for name in ("first", "unchanged re-run"):
            run = report[name]
            assert isinstance(run, dict)
            inside = f" (executor {run['executor']:.2f} s)" if "executor" in run else ""
            print(
                f"  {name:17} staging {run['staging']:6.2f} s{inside}   total {run['total']:6.2f} s"
            )
    return 0 if again["staging"] < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
