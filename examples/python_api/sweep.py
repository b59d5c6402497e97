"""A small parameter sweep with Pollinator's Python API: one run per learning rate, all at once,
then a table of how each ended and where its results are.

    python examples/python_api/sweep.py ~/pollinator-demo 0.1 0.01 0.001

The project's main.py gets ``--lr VALUE`` after its own path (``sys.argv[1:]``). Runs go to the
project's backend (local by default) and wait in its queue when they exceed what it runs at
once.
"""

from __future__ import annotations

import sys

import pollinator


def main(project: str, rates: list[str]) -> int:
    started = [
        pollinator.submit(project, args=["--lr", rate], name=f"lr {rate}", walltime="10m")
        for rate in rates
    ]
    failed = 0
    for run in started:
        outcome = run.wait()
        where = run.fetch_results().directory if outcome.succeeded else "-"
        print(f"{run.name:10} {outcome.state:9} exit {outcome.exit_code}  {where}")
        if not outcome.succeeded:
            failed += 1
            print(outcome.output_tail)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
