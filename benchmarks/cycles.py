"""The submit -> assign -> close loop both server benchmarks time, one thread per executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pollinator_core.colonies.client import ColoniesClient
from pollinator_core.colonies.models import FunctionSpec


def drive(
    executors: Sequence[ColoniesClient],
    colony: str,
    types: Sequence[str],
    seconds: float,
    spec: Callable[[str, str], FunctionSpec],
) -> float:
    """Cycles per second: each executor submits a process of its own type, assigns it and
    closes it, as fast as it can, all starting together for ``seconds``. Closes the clients."""
    counts = [0] * len(executors)
    start = threading.Barrier(len(executors) + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        client = executors[i]
        start.wait()
        while time.monotonic() < stop_at[0]:
            client.submit(spec(colony, types[i]))
            process = client.assign(colony, 10)
            assert process is not None
            client.close_successful(process.processid, [])
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(executors))]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    for client in executors:
        client.close()
    return sum(counts) / elapsed
