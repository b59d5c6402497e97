"""The test kit for plugin authors, installed with Pollinator and loaded by pytest on its own.

Installing Pollinator registers :mod:`pollinator_core.testing.plugin` as a pytest plugin (the
``pytest11`` entry point), which provides two fixtures:

- ``pollinator_sim``: a simulator of the Colonies server on a loopback port, with a colony, a
  member user and an approved executor (:class:`SimColony`);
- ``pollinator_executor``: starts the core's executor loop on a runtime of yours against that
  simulator (:class:`LoopHarness`): submit, wait, read the log and the termination record,
  kill and restart it, shut it down.

And, to import in a test module:

- :class:`RuntimeConformance`: the runtime contract as tests; subclass it with a
  ``make_runtime()`` and your runtime is checked for exit codes, output lines, environment,
  mounts, walltime, cancel, cleanup and adoption;
- :func:`run_job`: run one job on a runtime directly, as the loop would;
- :class:`FakeScheduler` and :class:`FakeBatchRuntime`: a batch runtime over an in-memory
  scheduler a test scripts, with faults on demand (an outage, a status call that hangs, a log
  stream that breaks);
- :func:`only_plugins`: a plugin manager with only your plugin, to call its hooks alone.

Names load on first use, so that pytest starting up costs nothing until a test uses the kit.

Layer 11. May import every layer below it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pollinator_core.testing.conformance import RuntimeConformance
    from pollinator_core.testing.fake_batch import FakeBatchRuntime, FakeJob, FakeScheduler
    from pollinator_core.testing.harness import LoopHarness, NoFiles, function_spec
    from pollinator_core.testing.jobs import JobRun, run_job
    from pollinator_core.testing.plugins import only_plugins
    from pollinator_core.testing.simulator import SimColony, start_simulator

_HOMES: dict[str, str] = {
    "FakeBatchRuntime": "pollinator_core.testing.fake_batch",
    "FakeJob": "pollinator_core.testing.fake_batch",
    "FakeScheduler": "pollinator_core.testing.fake_batch",
    "JobRun": "pollinator_core.testing.jobs",
    "LoopHarness": "pollinator_core.testing.harness",
    "NoFiles": "pollinator_core.testing.harness",
    "RuntimeConformance": "pollinator_core.testing.conformance",
    "SimColony": "pollinator_core.testing.simulator",
    "function_spec": "pollinator_core.testing.harness",
    "only_plugins": "pollinator_core.testing.plugins",
    "run_job": "pollinator_core.testing.jobs",
    "start_simulator": "pollinator_core.testing.simulator",
}

__all__ = [
    "FakeBatchRuntime",
    "FakeJob",
    "FakeScheduler",
    "JobRun",
    "LoopHarness",
    "NoFiles",
    "RuntimeConformance",
    "SimColony",
    "function_spec",
    "only_plugins",
    "run_job",
    "start_simulator",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
