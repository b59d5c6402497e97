"""Simulator throughput and log-follow latency, over loopback HTTP.

    python benchmarks/bench_simulator.py [--runs 5] [--seconds 4] [--clients 1 8] [--db]

The simulator runs as its own process (``python -m pollinator_simulator --port 0``), as a user
would run it; clients are threads using Pollinator's ColoniesClient (pooled keep-alive HTTP).

- cycles/s: each client is an approved executor with its own executor type that loops
  submit -> assign -> close; the rate counts closes across clients (median of --runs runs).
- follow latency: an executor adds log lines to a running process while a follower polls
  getlogsmsg(since=last timestamp) every --poll seconds, as ``pollinator run`` follows a job;
  latency = the moment the follower sees the line - the moment addlog was sent (median, p95).

--db repeats everything with ``--db FILE`` (write-through SQLite). Results go to stdout as a
table, and as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cycles
from sim_process import simulator_process

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.colonies.models import Conditions, Executor, FunctionSpec


@dataclass
class Server:
    env: dict[str, str]
    process: subprocess.Popen[str]

    def client(self, prvkey: str) -> ColoniesClient:
        config = ClientConfig(
            host=self.env["COLONIES_SERVER_HOST"],
            port=int(self.env["COLONIES_SERVER_PORT"]),
            colony_name=self.env["COLONIES_COLONY_NAME"],
            prvkey=prvkey,
            timeout=30,
        )
        return ColoniesClient(config)


@contextmanager
def simulator(db: Path | None) -> Iterator[Server]:
    with simulator_process(db) as (exports, proc):
        yield Server(exports, proc)


def make_executor(server: Server, name: str, executortype: str) -> ColoniesClient:
    owner = server.client(server.env["COLONIES_COLONY_PRVKEY"])
    prvkey = generate_private_key()
    colony = server.env["COLONIES_COLONY_NAME"]
    owner.add_executor(
        Executor(
            executorid=id_from_private_key(prvkey),
            executortype=executortype,
            executorname=name,
            colonyname=colony,
        )
    )
    owner.approve_executor(colony, name)
    return server.client(prvkey)


def spec(colony: str, executortype: str) -> FunctionSpec:
    return FunctionSpec(
        funcname="bench",
        maxexectime=-1,
        maxwaittime=-1,
        maxretries=-1,
        conditions=Conditions(colonyname=colony, executortype=executortype),
    )


def cycles_per_second(server: Server, clients: int, seconds: float, run: int) -> float:
    types = [f"bench-{run}-{i}" for i in range(clients)]
    executors = [make_executor(server, kind, kind) for kind in types]
    return cycles.drive(executors, server.env["COLONIES_COLONY_NAME"], types, seconds, spec)


def follow_latencies(server: Server, lines: int, poll: float, gap: float) -> list[float]:
    colony = server.env["COLONIES_COLONY_NAME"]
    executor = make_executor(server, "follow-writer", "follow")
    user = server.client(server.env["COLONIES_PRVKEY"])
    process = user.submit(spec(colony, "follow"))
    assigned = executor.assign(colony, 10)
    assert assigned is not None and assigned.processid == process.processid
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()

    def follow() -> None:
        since = 0
        while not done.is_set() or len(latencies) < lines:
            for log in user.get_logs(colony, process.processid, count=500, since=since):
                latencies.append(time.monotonic() - sent[log.message])
                since = log.timestamp
            time.sleep(poll)

    follower = threading.Thread(target=follow)
    follower.start()
    for n in range(lines):
        message = f"line {n}"
        sent[message] = time.monotonic()
        executor.add_log(process.processid, message)
        # A random gap, so lines do not phase-lock with the follower's polls.
        time.sleep(random.uniform(0.5, 1.5) * gap)
    done.set()
    follower.join(30)
    executor.close_successful(process.processid, [])
    return latencies


def measure(db: Path | None, args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {"storage": "sqlite" if db else "memory"}
    with simulator(db) as server:
        for clients in args.clients:
            rates = [
                cycles_per_second(server, clients, args.seconds, run) for run in range(args.runs)
            ]
            result[f"cycles_per_s_{clients}_clients"] = {
                "median": round(statistics.median(rates), 1),
                "runs": [round(r, 1) for r in rates],
            }
        lat = sorted(follow_latencies(server, args.lines, args.poll, args.gap))
        result["follow_latency_ms"] = {
            "poll_interval_ms": args.poll * 1000,
            "median": round(statistics.median(lat) * 1000, 1),
            "p95": round(lat[int(len(lat) * 0.95) - 1] * 1000, 1),
            "lines": len(lat),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--lines", type=int, default=60, help="log lines for the latency test")
    parser.add_argument("--poll", type=float, default=0.05, help="follower poll interval (s)")
    parser.add_argument("--gap", type=float, default=0.05, help="mean time between lines (s)")
    parser.add_argument("--db", action="store_true", help="also measure with --db (SQLite)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = [measure(None, args)]
    if args.db:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(measure(Path(tmp) / "bench.db", args))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"[{r['storage']}]")
        for key, value in r.items():
            if key != "storage":
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
