"""The kit's pytest plugin, loaded through the ``pytest11`` entry point of the pollinator
distribution: installing Pollinator gives every test session these fixtures.

- ``pollinator_sim``: a :class:`~pollinator_core.testing.SimColony`, a simulator of the
  Colonies server on a loopback port with the colony ``test``, a member user and an approved
  executor; one per test.
- ``pollinator_executor``: a function that starts the executor loop on a runtime against
  ``pollinator_sim``, ``pollinator_executor(runtime, max_jobs=2)``, and returns its
  :class:`~pollinator_core.testing.LoopHarness`; every harness it started is shut down after
  the test.

Kept cheap to import: pytest loads it in every session of an environment with Pollinator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The kit's modules assert: pytest rewrites them for readable failures, if told before import.
pytest.register_assert_rewrite(
    "pollinator_core.testing.conformance",
    "pollinator_core.testing.fake_batch",
    "pollinator_core.testing.harness",
    "pollinator_core.testing.jobs",
)

if TYPE_CHECKING:
    from pollinator_core.execution.runtime import Runtime
    from pollinator_core.testing.harness import LoopHarness
    from pollinator_core.testing.simulator import SimColony


@pytest.fixture
def pollinator_sim() -> Iterator[SimColony]:
    """A simulator with the colony ``test``, a member user and an approved executor."""
    from pollinator_core.testing.simulator import start_simulator

    with start_simulator() as sim:
        yield sim


@pytest.fixture
def pollinator_executor(
    pollinator_sim: SimColony, tmp_path: Path
) -> Iterator[Callable[..., LoopHarness]]:
    """``start(runtime, **settings)``: the executor loop on ``runtime``, started."""
    from pollinator_core.testing.harness import LoopHarness

    started: list[LoopHarness] = []

    def start(runtime: Runtime, **settings: Any) -> LoopHarness:
        fs_dir = tmp_path / f"executor-{len(started)}"
        return LoopHarness(pollinator_sim, runtime, fs_dir, family=started, **settings).start()

    yield start
    for harness in reversed(started):  # successors (restarts) included
        harness.shutdown()
