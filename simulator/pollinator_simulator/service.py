"""``pollinator simulator serve``: a standalone simulator process (a development stack).

Keys come from the environment the official tools use. With COLONIES_SERVER_PRVKEY,
COLONIES_COLONY_NAME, COLONIES_COLONY_PRVKEY and COLONIES_PRVKEY set, that colony is bootstrapped
(idempotently) and COLONIES_PRVKEY's ID made a member. With none of them set, keys are generated
(or, with --db, the ones generated on a previous start are reused), the colony bootstrapped, and
the ``export`` lines a shell needs are printed to stdout: the one place a key is ever printed,
because a development stack is what was asked for. COLONIES_SERVER_ID alone only names the server
owner. COLONIES_ALLOW_EXECUTOR_REREGISTER=true lets an executor name be registered again, as
on the official server (off unless set). Logs go to stderr and never contain keys.
COLONIES_CRON_CHECKER_PERIOD and COLONIES_GENERATOR_CHECKER_PERIOD (milliseconds, 1000 by
default) set how often crons and generators are looked at, as on the official server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from pollinator_core.colonies.crypto import CryptoError, id_from_private_key
from pollinator_core.errors import InfraError, UsageError

from .bootstrap import DevKeys, bootstrap, keys_from_env
from .server import Simulator
from .wire import ApiError

log = logging.getLogger("pollinator_simulator")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keys(env: Mapping[str, str], sim: Simulator) -> tuple[DevKeys | None, bool]:
    """The keys to bootstrap, and whether they are development keys to print."""
    try:
        keys = keys_from_env(env)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if keys is not None:
        return keys, False
    if env.get("COLONIES_SERVER_ID"):
        return None, False
    if sim.state.dev_keys is not None:
        return DevKeys(**sim.state.dev_keys), True
    keys = DevKeys.generate()
    sim.state.save_dev_keys(dataclasses.asdict(keys))
    return keys, True


def _period(env: Mapping[str, str], name: str) -> float:
    """A checker period in seconds, from milliseconds in the environment (default 1 s)."""
    text = env.get(name, "").strip()
    if not text:
        return 1.0
    if not text.isdigit() or int(text) == 0:
        raise UsageError(f"{name} must be a whole number of milliseconds above 0, not {text!r}")
    return int(text) / 1000


# Go's strconv.ParseBool, which the official server reads its flags with.
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_GO_BOOLS |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def reregister_allowed(env: Mapping[str, str]) -> bool:
    """COLONIES_ALLOW_EXECUTOR_REREGISTER, read as the official server reads it (unset: no)."""
    value = env.get("COLONIES_ALLOW_EXECUTOR_REREGISTER", "")
    if value == "":
        return False
    if value not in _GO_BOOLS:
        raise UsageError(f"COLONIES_ALLOW_EXECUTOR_REREGISTER must be true or false, not {value!r}")
    return _GO_BOOLS[value]


async def serve(host: str, port: int, db: Path | None, env: Mapping[str, str], out: TextIO) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (committing the database)."""
    # Handlers first: a supervisor may signal as soon as "listening on" is printed.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(
        env.get("COLONIES_SERVER_ID", ""),
        db_path=db,
        cron_period=_period(env, "COLONIES_CRON_CHECKER_PERIOD"),
        generator_period=_period(env, "COLONIES_GENERATOR_CHECKER_PERIOD"),
        allow_executor_reregister=reregister_allowed(env),
    )
    try:
        keys, print_keys = _keys(env, sim)
        if keys is not None:
            sim.authz.server_id = keys.server_id
            bootstrap(sim, keys)
        port = await sim.start(host, port)
    except (UsageError, CryptoError, ApiError) as err:
        await sim.stop()
        raise UsageError(f"cannot bootstrap the simulator: {err}") from None
    except OSError as err:
        await sim.stop()
        raise InfraError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    if keys is not None and print_keys:
        out.write("\n".join(keys.export_lines(host, port)) + "\n")
        out.flush()
    log.info("ready (server owner %s...)", sim.authz.server_id[:8])
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await sim.stop()


def run(
    host: str, port: int, db: Path | None, allow_remote: bool, env: Mapping[str, str], out: TextIO
) -> None:
    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"refusing to listen on {host}: the simulator is a development server; "
            "pass --allow-remote to expose it beyond this machine"
        )
    for name in ("COLONIES_CRON_CHECKER_PERIOD", "COLONIES_GENERATOR_CHECKER_PERIOD"):
        _period(env, name)  # checked here, before anything starts
    reregister_allowed(env)  # checked here, before anything starts
    try:
        keys = keys_from_env(env)
        if keys is not None:
            for name in ("server_prvkey", "colony_prvkey", "prvkey"):
                id_from_private_key(getattr(keys, name))
    except (ValueError, CryptoError) as err:
        raise UsageError(f"the COLONIES_* keys are unusable: {err}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(host, port, db, env, out))
