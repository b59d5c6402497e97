"""The simulator beside the official Colonies server on this machine: throughput and RPC latency.

    python benchmarks/bench_server.py [--runs 5] [--seconds 4] [--clients 1 8] [--calls 300]
                                      [--servers simulator official official-distributed] [--json]

Servers: ``simulator`` is ``python -m pollinator_simulator`` in a process of its own (as in
bench_simulator.py); ``official`` and ``official-distributed`` are the v1.9.12 instances that
tests/infra/colonies_up.sh runs (exclusive assign, as the official deployment, and the server's
default distributed assign), read from its env files. Each server gets a fresh colony and user
for the run (the official ones are removed afterwards). Same client (Pollinator's
ColoniesClient, pooled keep-alive HTTP), same load:

- cycles/s: each client is an approved executor with its own executor type that loops
  submit -> assign -> close; the rate counts closes across clients (median of --runs runs).
- RPC latency: --calls sequential getprocessmsg and addlogmsg calls on one RUNNING process
  (median and p95, ms).

Ratios are official / simulator. The official server is reached through the socat bridge into
its network namespace (TCP -> Unix socket -> TCP): measured from inside the namespace, the
bridge adds 0.1-0.2 ms per call, and a fork per new connection (the clients keep theirs open).
Its PostgreSQL runs with Debian's defaults (fsync on), as a production database would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cycles
from sim_process import simulator_process

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.config import ClientConfig
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key
from pollinator_core.colonies.models import Colony, Conditions, Executor, FunctionSpec, User

#: Where tests/infra/colonies_up.sh writes its env files (the same default as the script).
CI_DIR = Path(os.environ.get("POLLINATOR_CI_DIR", "/tmp/pollinator-ci"))
ENV_FILES = {"official": "colonies.env", "official-distributed": "colonies-dist.env"}


@dataclass
class Target:
    """A server with a colony of the benchmark's own."""

    name: str
    host: str
    port: int
    colony: str
    colony_prvkey: str
    user_prvkey: str

    def client(self, prvkey: str) -> ColoniesClient:
        config = ClientConfig(
            host=self.host, port=self.port, colony_name=self.colony, prvkey=prvkey, timeout=30
        )
        return ColoniesClient(config)


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@contextmanager
def own_colony(name: str, host: str, port: int, server_prvkey: str) -> Iterator[Target]:
    """A fresh colony and user on the server; the colony is removed afterwards."""
    colony = f"bench-{uuid.uuid4().hex[:8]}"
    colony_key, user_key = generate_private_key(), generate_private_key()
    admin = ColoniesClient(ClientConfig(host=host, port=port, prvkey=server_prvkey, timeout=30))
    admin.add_colony(Colony(colonyid=id_from_private_key(colony_key), name=colony))
    try:
        admin.with_key(colony_key).add_user(
            User(colonyname=colony, userid=id_from_private_key(user_key), name="bench-user")
        )
        yield Target(name, host, port, colony, colony_key, user_key)
    finally:
        admin.remove_colony(colony)
        admin.close()


@contextmanager
def target(name: str, ci_dir: Path) -> Iterator[Target]:
    if name == "simulator":
        with simulator_process() as (exports, _):
            host, port = exports["COLONIES_SERVER_HOST"], int(exports["COLONIES_SERVER_PORT"])
            with own_colony(name, host, port, exports["COLONIES_SERVER_PRVKEY"]) as t:
                yield t
        return
    env = read_env(ci_dir / ENV_FILES[name])
    host, port = env["COLONIES_SERVER_HOST"], int(env["COLONIES_SERVER_PORT"])
    with own_colony(name, host, port, env["COLONIES_SERVER_PRVKEY"]) as t:
        yield t


def make_executor(t: Target, executortype: str) -> ColoniesClient:
    prvkey = generate_private_key()
    name = f"{executortype}-{uuid.uuid4().hex[:6]}"
    owner = t.client(t.colony_prvkey)
    owner.add_executor(
        Executor(
            executorid=id_from_private_key(prvkey),
            executortype=executortype,
            executorname=name,
            colonyname=t.colony,
        )
    )
    owner.approve_executor(t.colony, name)
    owner.close()
    return t.client(prvkey)


def spec(colony: str, executortype: str) -> FunctionSpec:
    return FunctionSpec(
        funcname="bench",
        maxexectime=-1,
        maxwaittime=-1,
        maxretries=-1,
        conditions=Conditions(colonyname=colony, executortype=executortype, executornames=[]),
    )


def cycles_per_second(t: Target, clients: int, seconds: float, run: int) -> float:
    types = [f"bench-{run}-{i}" for i in range(clients)]
    executors = [make_executor(t, kind) for kind in types]
    return cycles.drive(executors, t.colony, types, seconds, spec)


def rpc_latencies(t: Target, calls: int) -> dict[str, list[float]]:
    executor = make_executor(t, "latency")
    user = t.client(t.user_prvkey)
    process = user.submit(spec(t.colony, "latency"))
    assigned = executor.assign(t.colony, 10)
    assert assigned is not None and assigned.processid == process.processid
    timings: dict[str, list[float]] = {"getprocess": [], "addlog": []}
    for n in range(calls):
        began = time.perf_counter()
        user.get_process(process.processid)
        timings["getprocess"].append(time.perf_counter() - began)
        began = time.perf_counter()
        executor.add_log(process.processid, f"line {n}\n")
        timings["addlog"].append(time.perf_counter() - began)
    executor.close_successful(process.processid, [])
    executor.close()
    user.close()
    return timings


def measure(t: Target, args: argparse.Namespace) -> dict[str, dict[str, object]]:
    result: dict[str, dict[str, object]] = {}
    for clients in args.clients:
        rates = [cycles_per_second(t, clients, args.seconds, run) for run in range(args.runs)]
        result[f"cycles_per_s_{clients}_clients"] = {
            "median": round(statistics.median(rates), 1),
            "runs": [round(r, 1) for r in rates],
        }
    for rpc, samples in rpc_latencies(t, args.calls).items():
        ordered = sorted(samples)
        result[f"{rpc}_ms"] = {
            "median": round(statistics.median(ordered) * 1000, 2),
            "p95": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        }
    return result


def ratios(results: dict[str, dict[str, dict[str, object]]]) -> dict[str, dict[str, float]]:
    """Each official server's medians divided by the simulator's."""
    base = results.get("simulator")
    out: dict[str, dict[str, float]] = {}
    for name, values in results.items():
        if name == "simulator" or base is None:
            continue
        out[name] = {
            key: round(float(str(v["median"])) / float(str(base[key]["median"])), 2)
            for key, v in values.items()
            if float(str(base[key]["median"]))
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--calls", type=int, default=300, help="calls per RPC for latency")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=["simulator", *ENV_FILES],
        default=["simulator", *ENV_FILES],
    )
    parser.add_argument("--ci-dir", type=Path, default=CI_DIR, help="where the env files are")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    missing = [
        str(args.ci_dir / ENV_FILES[s])
        for s in args.servers
        if s in ENV_FILES and not (args.ci_dir / ENV_FILES[s]).is_file()
    ]
    if missing:
        print(
            f"bench_server: no official Colonies server to measure: {', '.join(missing)} "
            "missing. Start the servers with `bash tests/infra/colonies_up.sh` (as root), or "
            "measure the simulator alone with `--servers simulator`.",
            file=sys.stderr,
        )
        return 2
    results: dict[str, dict[str, dict[str, object]]] = {}
    for name in args.servers:
        with target(name, args.ci_dir) as t:
            results[name] = measure(t, args)
    relative = ratios(results)
    if args.json:
        print(json.dumps({"results": results, "ratio_official_to_simulator": relative}, indent=2))
        return 0
    for name, values in results.items():
        print(f"[{name}]")
        for key, value in values.items():
            print(f"  {key}: {value}")
    for name, ratio_values in relative.items():
        print(f"[{name} / simulator]")
        for key, ratio in ratio_values.items():
            print(f"  {key}: {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
