"""`pollinator simulator serve` / `python -m pollinator_simulator` as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pollinator_simulator.bootstrap import DevKeys
from sim_fixtures import RawRpc

from pollinator_core.cli.simulator import simulator
from pollinator_core.errors import UsageError

pytestmark = pytest.mark.timeout(60)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLONIES_")}
    env.update(extra)
    return env


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pollinator_simulator", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    while True:
        line = proc.stderr.readline()
        seen += line
        if not line:
            raise AssertionError("the simulator exited: " + seen)
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    return out, err


def _exports(text: str) -> dict[str, str]:
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )


def test_dev_stack_prints_working_keys_and_logs_none(tmp_path: Path) -> None:
    db = tmp_path / "dev.db"
    proc, url = _start(["--db", str(db)], _env())
    assert proc.stdout is not None
    first = [proc.stdout.readline() for _ in range(9)]
    env = _exports("".join(first))
    assert env["COLONIES_SERVER_PORT"] == url.rsplit(":", 1)[1]
    raw = RawRpc(url)
    colonies = raw.call(env["COLONIES_SERVER_PRVKEY"], "getcoloniesmsg")
    assert colonies == [{"colonyid": env["COLONIES_COLONY_ID"], "name": "dev"}]
    spec = {"conditions": {"colonyname": "dev", "executortype": "t"}}
    raw.call(env["COLONIES_PRVKEY"], "submitfuncspecmsg", spec=spec)
    _, stderr = _stop(proc)
    secrets = [v for k, v in env.items() if k.endswith("PRVKEY")]
    assert secrets and not any(s in stderr for s in secrets)
    # A restart on the same database reuses (and prints again) the same keys.
    proc, url = _start(["--db", str(db)], _env())
    out, _ = _stop(proc)
    assert _exports(out)["COLONIES_PRVKEY"] == env["COLONIES_PRVKEY"]


def test_bootstraps_the_colony_from_the_environment(tmp_path: Path) -> None:
    keys = DevKeys.generate("team")
    env = _env(
        COLONIES_SERVER_PRVKEY=keys.server_prvkey,
        COLONIES_COLONY_NAME=keys.colony_name,
        COLONIES_COLONY_PRVKEY=keys.colony_prvkey,
        COLONIES_PRVKEY=keys.prvkey,
    )
    for _ in range(2):  # idempotent across restarts
        proc, url = _start(["--db", str(tmp_path / "team.db")], env)
        users = RawRpc(url).call(keys.prvkey, "getusersmsg", colonyname="team")
        assert [u["userid"] for u in users] == [keys.member_id]
        out, err = _stop(proc)
        assert out == ""  # nothing to print: the user has the keys
        assert keys.prvkey not in err and keys.colony_prvkey not in err


def test_refuses_a_remote_address_and_partial_keys() -> None:
    runner = CliRunner()
    result = runner.invoke(simulator, ["serve", "--host", "0.0.0.0"])
    assert isinstance(result.exception, UsageError)
    assert "--allow-remote" in str(result.exception)
    result = runner.invoke(simulator, ["serve"], env={"COLONIES_COLONY_NAME": "x"})
    assert isinstance(result.exception, UsageError) and "missing" in str(result.exception)
    done = subprocess.run(
        [sys.executable, "-m", "pollinator_simulator", "--host", "192.0.2.1"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--allow-remote" in done.stderr
