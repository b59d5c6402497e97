"""``pollinator run --backend local --follow`` end to end, and log latency, as a user sees them.

    python benchmarks/bench_run.py [--runs 10] [--lines 20] [--runtimes process docker]
                                   [--image localhost/pollinator-python:bookworm] [--json]

For each runtime, a fresh project from ``pollinator new`` (the generated example, untouched but
for the Docker image, which must be local: there is no registry here):

- cold: the first ``run --follow``, which also starts the project's local agent;
- end to end: the median wall time of the next --runs ``run --follow`` commands (sync up,
  snapshot, submit, run, stream the output, pull the result), each a fresh CLI process;
- log latency: a job prints --lines lines 0.2 s apart, each carrying time.time() at print; the
  benchmark reads ``run --follow``'s stdout as it comes and takes (time read - time printed)
  per line (median, p95). Same machine, same clock.

Targets (DESIGN.md): end to end on the process runtime under 2 s; log latency median under
0.5 s. Exits 1 when the process runtime misses either. Docker is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLLINATOR = str(Path(sys.executable).with_name("pollinator"))
DEFAULT_IMAGE = "localhost/pollinator-python:bookworm"
E2E_TARGET = 2.0
LATENCY_TARGET = 0.5
TICKER = """\
import time
for i in range({lines}):
    print(f"tick {{time.time():.6f}}", flush=True)
    time.sleep(0.2)
"""


def make_project(root: Path, env: dict[str, str], image: str) -> None:
    subprocess.run([POLLINATOR, "new", str(root)], env=env, check=True, capture_output=True)
    path = root / "project.yaml"
    path.write_text(path.read_text().replace("python:3.12-rc-bookworm", image))


def run_once(root: Path, env: dict[str, str], runtime: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [POLLINATOR, "run", "--follow", "--runtime", runtime],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def latencies(root: Path, env: dict[str, str], runtime: str, lines: int) -> list[float]:
    (root / "cfs" / "src" / "main.py").write_text(TICKER.format(lines=lines))
    proc = subprocess.Popen(
        [POLLINATOR, "run", "--follow", "--runtime", runtime],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    found = []
    for line in proc.stdout:
        if line.startswith("tick "):
            found.append(time.time() - float(line.split()[1]))
    if proc.wait() != 0:
        raise SystemExit("the latency run failed")
    return found


def bench(runtime: str, runs: int, lines: int, image: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        root = Path(tmp) / "demo"
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
        make_project(root, env, image)
        try:
            cold = run_once(root, env, runtime)
            warm = [run_once(root, env, runtime) for _ in range(runs)]
            lat = sorted(latencies(root, env, runtime, lines))
        finally:
            subprocess.run([POLLINATOR, "executor", "stop"], cwd=root, env=env, capture_output=True)
    return {
        "cold_s": cold,
        "e2e_median_s": statistics.median(warm),
        "e2e_min_s": min(warm),
        "e2e_max_s": max(warm),
        "latency_median_s": statistics.median(lat),
        "latency_p95_s": lat[min(len(lat) - 1, int(len(lat) * 0.95))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--runtimes", nargs="+", default=["process", "docker"])
    parser.add_argument("--image", default=os.environ.get("POLLINATOR_TEST_IMAGE", DEFAULT_IMAGE))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {rt: bench(rt, args.runs, args.lines, args.image) for rt in args.runtimes}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{'runtime':<9}{'cold':>8}{'e2e med':>9}{'min':>7}{'max':>7}{'lat med':>9}{'p95':>7}"
        )
        for rt, r in results.items():
            print(
                f"{rt:<9}{r['cold_s']:>7.2f}s{r['e2e_median_s']:>8.2f}s{r['e2e_min_s']:>6.2f}s"
                f"{r['e2e_max_s']:>6.2f}s{r['latency_median_s']:>8.3f}s{r['latency_p95_s']:>6.3f}s"
            )
    process = results.get("process")
    if process and (
        process["e2e_median_s"] >= E2E_TARGET or process["latency_median_s"] >= LATENCY_TARGET
    ):
        print("process runtime misses a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
