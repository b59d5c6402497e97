"""The Kubernetes runtime on the test cluster: how soon a job's output arrives, and how many API
requests following N jobs costs.

    python benchmarks/bench_k8s.py [--starts 5] [--jobs 1 10 50] [--window 60] [--json]

Needs the cluster of tests/infra/k8s_up.sh (read from its env file). The runtime is the one
the executor uses (K8sRuntime, default settings: status polled at most every 10 s, one log
stream per pod), driven directly, without a Colonies server:

- **first line**: from the start of ``submit`` to the first output byte out of ``logs()``, for
  --starts jobs one after another (median, min, max). It includes the Job's creation, the
  scheduler, the kubelet starting the container, the poller noticing it runs, and the stream.
- **requests per minute**: N jobs (``sleep``) submitted at once and followed as the executor
  follows them (a thread per job draining ``logs()``); once every pod runs, the API requests
  the runtime makes in --window seconds are counted (Kube.calls, every request by kind) and
  scaled to a minute. Then the jobs are cancelled and cleaned up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pollinator_k8s.kube import Kube
from pollinator_k8s.runtime import K8sRuntime
from pollinator_k8s.settings import SETTINGS

from pollinator_core.api import Job, JobState, Reason, Termination

CI_DIR = Path(os.environ.get("POLLINATOR_CI_DIR", "/tmp/pollinator-ci"))


def cluster_env() -> dict[str, str]:
    path = CI_DIR / "k8s.env"
    if not path.exists():
        sys.exit(f"no {path}: start the cluster with bash tests/infra/k8s_up.sh")
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


def runtime(env: dict[str, str]) -> K8sRuntime:
    settings = SETTINGS.load(
        None,
        {
            "kubeconfig": env["POLLINATOR_K8S_KUBECONFIG"],
            "namespace": env["POLLINATOR_K8S_NAMESPACE"],
            "image_pull_policy": "Never",
            "kill_grace": "2",
        },
        env={},
    )
    made = K8sRuntime(Kube.connect(settings), settings)
    made.owner = f"bench-{uuid.uuid4().hex}"  # its own label: only its Jobs are listed
    return made


def job(env: dict[str, str], command: str, cpu_millis: int) -> Job:
    return Job(
        process_id=uuid.uuid4().hex * 2,
        image=env["POLLINATOR_K8S_IMAGE"],
        command=command,
        cpu_millis=cpu_millis,
        mem_bytes=32 * 1024**2,
        walltime=600,
    )


def finish(rt: K8sRuntime, handles: list[str]) -> None:
    """Cancel the jobs, wait until their pods are gone, clean up."""
    for handle in handles:
        rt.cancel(handle, Termination(Reason.CANCELLED, detail="benchmark done"))
    deadline = time.monotonic() + 120
    while not all(rt.status(h).finished for h in handles) and time.monotonic() < deadline:
        time.sleep(0.5)
    for handle in handles:
        rt.cleanup(handle)


def first_line(env: dict[str, str], starts: int) -> dict[str, float]:
    rt = runtime(env)
    seconds = []
    try:
        for _ in range(starts):
            started = time.monotonic()
            # A project's default cpu (1 core): a limit of a few millicores slows the
            # container's own start by seconds (CFS quota).
            handle = rt.submit(job(env, "echo first; sleep 30", 1000))
            for item in rt.logs(handle):
                if isinstance(item, bytes) and item:
                    seconds.append(time.monotonic() - started)
                    break
            finish(rt, [handle])
    finally:
        rt.close()
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "runs": len(seconds),
    }


def requests_per_minute(env: dict[str, str], count: int, window: float) -> dict[str, Any]:
    rt = runtime(env)
    # 50 jobs must fit the 2 cores of the test node: 20 millicores each.
    handles = [rt.submit(job(env, "echo up; sleep 600", 20)) for _ in range(count)]
    stop = threading.Event()

    def drain(handle: str) -> None:
        for _ in rt.logs(handle):
            if stop.is_set():
                return

    followers = [threading.Thread(target=drain, args=(h,), daemon=True) for h in handles]
    for follower in followers:
        follower.start()
    try:
        deadline = time.monotonic() + 300
        while not all(rt.status(h).state is JobState.RUNNING for h in handles):
            if time.monotonic() > deadline:
                raise SystemExit(f"{count} jobs did not all run within 300 s")
            time.sleep(0.5)
        time.sleep(5)  # let the streams open and the poller slow down, as in a long run
        before = dict(rt.kube.calls)
        time.sleep(window)
        after = dict(rt.kube.calls)
    finally:
        stop.set()
        for handle in handles:
            finish(rt, [handle])
        rt.close()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v}
    per_minute = sum(delta.values()) * 60.0 / window
    return {"jobs": count, "per_minute": round(per_minute, 1), "by_kind": delta}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = cluster_env()
    report: dict[str, Any] = {"first_line": first_line(env, args.starts), "requests": []}
    for count in args.jobs:
        report["requests"].append(requests_per_minute(env, count, args.window))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    first = report["first_line"]
    print(
        f"submit -> first log line: median {first['median']:.2f} s "
        f"(min {first['min']:.2f}, max {first['max']:.2f}, {first['runs']} jobs)"
    )
    print(f"API requests per minute while following N running jobs ({args.window:.0f} s window):")
    for row in report["requests"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(row["by_kind"].items()))
        print(f"  {row['jobs']:3d} jobs: {row['per_minute']:6.1f}/min  ({kinds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
