"""TLS: the simulator's own aiohttp app served over HTTPS/WSS with a self-signed certificate.

Verification is on by default (refused), and off only when asked (insecure) or satisfied by
the certificate given as the CA file. The WebSocket subscription follows the same rules.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pollinator_simulator.bootstrap import DevKeys, bootstrap, register_executor
from pollinator_simulator.server import Simulator
from sim_fixtures import SimColony, sim_colony, simulator  # noqa: F401  (pytest fixtures)

from pollinator_core.colonies.client import ColoniesClient, ServerUnavailable
from pollinator_core.colonies.config import ClientConfig, ConfigError
from pollinator_core.colonies.crypto import generate_private_key
from pollinator_core.colonies.models import Conditions, FunctionSpec, ProcessState

pytestmark = pytest.mark.timeout(60)
EXECUTOR_TYPE = "container-executor"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return cert, key


@dataclass
class TlsSimulator:
    port: int
    keys: DevKeys
    executor_prvkey: str

    def client(self, **kw: Any) -> ColoniesClient:
        kw.setdefault("retries", 0)
        config = ClientConfig("127.0.0.1", self.port, tls=True, prvkey=self.keys.prvkey, **kw)
        return ColoniesClient(config)


@pytest.fixture
def tls_simulator(certificate: tuple[Path, Path]) -> Iterator[TlsSimulator]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    keys, executor_prvkey = DevKeys.generate("tls"), generate_private_key()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> web.AppRunner:
        sim = Simulator(keys.server_id)
        bootstrap(sim, keys)
        register_executor(sim, keys.colony_name, executor_prvkey, "tls-executor", EXECUTOR_TYPE)
        runner = web.AppRunner(sim.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result()
    try:
        yield TlsSimulator(int(runner.addresses[0][1]), keys, executor_prvkey)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def round_trip(sim: TlsSimulator, client: ColoniesClient) -> None:
    """Submit, assign, close, and follow it over WSS: every transport the client uses."""
    colony = sim.keys.colony_name
    conditions = Conditions(colonyname=colony, executortype=EXECUTOR_TYPE)
    pid = client.submit(FunctionSpec(funcname="f", maxexectime=-1, conditions=conditions)).processid
    executor = client.with_key(sim.executor_prvkey)
    assert executor.assign(colony, timeout=5) is not None
    thread = threading.Timer(0.3, lambda: executor.close_successful(pid, ["tls"]))
    thread.start()
    done = client.wait_for_state(pid, ProcessState.SUCCESS, timeout=10)
    thread.join()
    assert done.state is ProcessState.SUCCESS and done.out == ["tls"]
    assert client.health() is True


def test_self_signed_certificate_is_refused_by_default(tls_simulator: TlsSimulator) -> None:
    client = tls_simulator.client()
    with pytest.raises(ServerUnavailable) as info:
        client.get_colony(tls_simulator.keys.colony_name)
    text = str(info.value)
    assert text.startswith(f"Cannot reach the Colonies server at 127.0.0.1:{tls_simulator.port}")
    assert "TLS failed" in text and "CERTIFICATE_VERIFY_FAILED" in text
    assert "COLONIES_CA_FILE" in text and "COLONIES_SKIP_TLS_VERIFY" in text
    assert "\n" not in text and info.value.exit_code == 3
    assert client.health() is False


def test_self_signed_certificate_is_accepted_when_insecure(tls_simulator: TlsSimulator) -> None:
    round_trip(tls_simulator, tls_simulator.client(insecure=True))


def test_self_signed_certificate_is_accepted_with_its_ca_file(
    tls_simulator: TlsSimulator, certificate: tuple[Path, Path]
) -> None:
    round_trip(tls_simulator, tls_simulator.client(ca_file=str(certificate[0])))


def test_plain_http_client_against_a_tls_server(tls_simulator: TlsSimulator) -> None:
    config = ClientConfig("127.0.0.1", tls_simulator.port, prvkey=tls_simulator.keys.prvkey)
    with pytest.raises(ServerUnavailable):
        ColoniesClient(config).get_colony(tls_simulator.keys.colony_name)


def test_tls_client_against_a_plain_http_server(sim_colony: SimColony) -> None:  # noqa: F811
    config = ClientConfig(
        sim_colony.host, sim_colony.port, tls=True, retries=0, prvkey=sim_colony.keys.prvkey
    )
    with pytest.raises(ServerUnavailable, match="TLS failed"):
        ColoniesClient(config).get_colonies()


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        ColoniesClient(ClientConfig("h", tls=True, ca_file=str(tmp_path / "missing.pem")))
