"""Client CPU per Colonies RPC: Pollinator's keep-alive transport against urllib3, side by side.

    python benchmarks/bench_transport.py [--calls 5000] [--threads 16] [--runs 3]

The simulator runs as its own process. Both sides send the same unsigned ``versionmsg``
envelope from the same number of threads and decode the reply; the urllib3 side is a
``PoolManager`` sized to the threads, as a client built on it would be. Reported: medians over
the runs (the two alternate run by run) of client CPU per call, simulator CPU per call and wall
time per call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sim_process import simulator_process


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with simulator_process() as (exports, proc):
        os.environ.update(exports)
        import urllib3

        from pollinator_core.colonies.client import ColoniesClient
        from pollinator_core.colonies.config import ClientConfig

        client = ColoniesClient(ClientConfig.from_env())
        body = client._envelope("versionmsg", {}, signed=False).encode()
        pool = urllib3.PoolManager(maxsize=args.threads)
        url = f"{client.config.base_url}/api"

        def via_urllib3() -> None:
            response = pool.request(
                "POST", url, body=body, headers={"Content-Type": "application/json"}
            )
            client._decode("versionmsg", response.status, response.data)

        sides: dict[str, Callable[[], object]] = {
            "pollinator": client.version,
            "urllib3": via_urllib3,
        }
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, call in sides.items():
                sim0, cpu0, wall0 = process_cpu(proc.pid), time.process_time(), time.perf_counter()
                with ThreadPoolExecutor(args.threads) as threads:
                    list(threads.map(lambda _, c=call: c(), range(args.calls)))
                n = args.calls / 1e6
                samples[name].append(
                    (
                        (time.process_time() - cpu0) / n,
                        (process_cpu(proc.pid) - sim0) / n,
                        (time.perf_counter() - wall0) / n,
                    )
                )
    print(f"{args.calls} calls from {args.threads} threads, medians of {args.runs} runs")
    print(f"{'transport':<12} {'client CPU':>12} {'server CPU':>12} {'wall':>10}")
    for name, runs in samples.items():
        client_us, sim_us, wall_us = (statistics.median(col) for col in zip(*runs, strict=True))
        print(f"{name:<12} {client_us:9.0f} us {sim_us:9.0f} us {wall_us:7.0f} us")


if __name__ == "__main__":
    main()
