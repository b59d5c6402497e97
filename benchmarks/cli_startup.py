"""Cold start of ``pollinator --help``: the median of fresh processes, beside ``python -c pass``.

Each run is a new interpreter, so nothing is cached in memory; compiled ``.pyc`` files and the
OS page cache are warm (one unmeasured run first makes sure of it), as they are for a user who
has run the tool before. Target (DESIGN.md): median under 0.25 s.

    python benchmarks/cli_startup.py [--runs 10]

Exits 1 when the median misses the target.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.25


def median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, check=True, capture_output=True)  # warm-up, not measured
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    beside_python = Path(sys.executable).parent / "pollinator"
    pollinator = str(beside_python) if beside_python.exists() else shutil.which("pollinator")
    if pollinator is None:
        sys.exit("pollinator is not installed in this environment (pip install -e .)")
    cli = median_seconds([pollinator, "--help"], args.runs)
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    print(f"pollinator --help  median {cli:.3f} s over {args.runs} runs")
    print(f"python -c pass     median {bare:.3f} s")
    print(f"ratio              {cli / bare:.1f}x")
    verdict = "met" if cli < TARGET else "MISSED"
    print(f"target             < {TARGET} s: {verdict}")
    return 0 if cli < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
