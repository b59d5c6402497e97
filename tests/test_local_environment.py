"""Which environment a local run gets (issue 13, item 7): a host-process job gets the
environment of the `pollinator run` that submitted it, minus Pollinator's and Colonies'
credentials, with project.yaml's env on top; never the environment of the shell that happened
to start the background agent. A job in a container gets project.yaml's env only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_local import RUNTIMES, LocalProject

SHOW_ENV = """\
import os
for name in ("MY_TOKEN", "ONLY_FIRST", "FROM_YAML", "COLONIES_PRVKEY", "AWS_S3_SECRETKEY"):
    print(name, os.environ.get(name, "-"))
"""


@pytest.fixture(params=RUNTIMES)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalProject]:
    image = request.getfixturevalue("docker_engine").image if request.param == "docker" else ""
    made = LocalProject(tmp_path / "demo", request.param, image)
    made.write_main(SHOW_ENV)
    made.edit_yaml("# env:", "env:\n  FROM_YAML: yaml\n# was env:")
    yield made
    made.cli("executor", "stop")


def test_each_run_gets_the_environment_of_the_command_that_submitted_it(
    project: LocalProject,
) -> None:
    secrets = {"COLONIES_PRVKEY": "0" * 64, "AWS_S3_SECRETKEY": "s3cret"}
    first = project.run_pairs(MY_TOKEN="first", ONLY_FIRST="yes", **secrets)
    second = project.run_pairs(MY_TOKEN="second")  # the agent the first run started still runs
    if project.runtime == "process":
        assert (first["MY_TOKEN"], first["ONLY_FIRST"]) == ("first", "yes")
        assert (second["MY_TOKEN"], second["ONLY_FIRST"]) == ("second", "-")
    else:  # a container: its image's environment and project.yaml's env, nothing of the host
        assert first["MY_TOKEN"] == second["MY_TOKEN"] == first["ONLY_FIRST"] == "-"
    for run in (first, second):
        assert run["FROM_YAML"] == "yaml"
        assert run["COLONIES_PRVKEY"] == run["AWS_S3_SECRETKEY"] == "-"
    # What was handed over is gone once the job started.
    assert not list((project.root / ".pollinator" / "local" / "submit-env").iterdir())


def test_a_reference_that_names_no_handed_over_file_falls_back_to_the_executor_environment(
    tmp_path: Path,
) -> None:
    from pollinator_core.execution.job import Job
    from pollinator_core.runs.hostenv import REFERENCE, take_over

    (tmp_path / "secret.json").write_text('{"A": "b"}')
    for reference in ("../secret", "0" * 32):
        job = take_over(
            tmp_path / "env", Job("p", "", "true", env={REFERENCE: reference, "X": "1"})
        )
        assert job.host_env is None
        assert job.env == {"X": "1"}
    assert (tmp_path / "secret.json").exists()
