"""Transport and error handling of the Colonies client, against STUB servers.

The stubs here are deliberately not the simulator: they produce what a healthy server never
would (hangs, HTML from a proxy, any refusal on demand) and record exactly what the client
sent. Method coverage against the simulator is in test_client.py, TLS in test_client_tls.py.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pollinator_core.colonies.client import (
    AccessDenied,
    BadRequest,
    ColoniesClient,
    ColoniesError,
    NotFound,
    ServerUnavailable,
    Unsupported,
)
from pollinator_core.colonies.config import ClientConfig, ConfigError
from pollinator_core.colonies.crypto import generate_private_key, id_from_private_key, recover_id
from pollinator_core.colonies.models import File, FunctionSpec, ProcessState
from pollinator_core.errors import InfraError

KEY = generate_private_key()
Reply = tuple[int, bytes]


def envelope(payloadtype: str, payload: Any, *, error: bool = False) -> bytes:
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps({"payloadtype": payloadtype, "payload": encoded, "error": error}).encode()


def error_reply(status: int, message: str) -> Reply:
    return status, envelope("error", {"status": status, "message": message}, error=True)


class StubServer:
    """A stub HTTP server: records each request and answers with ``self.reply(request)``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.reply: Callable[[dict[str, Any]], Reply] = lambda _: (200, envelope("x", {}))
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the pool expects
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def setup(self) -> None:
                stub.connections += 1
                super().setup()

            def do_GET(self) -> None:
                self._send((200, b"") if self.path == "/health" else (404, b"no"))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                stub.requests.append(request)
                self._send(stub.reply(request))

            def _send(self, reply: Reply) -> None:
                status, data = reply
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(base64.b64decode(r["payload"])) for r in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.stop()


def make_client(port: int, **kw: Any) -> ColoniesClient:
    kw.setdefault("prvkey", KEY)
    kw.setdefault("timeout", 5.0)
    return ColoniesClient(ClientConfig("127.0.0.1", port, **kw))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_importing_the_client_stays_light() -> None:
    code = (
        "import sys, pollinator_core.colonies.client; "
        "print(sorted({'aiohttp', 'asyncio', 'rich'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- envelope and decoding ---------------------------------------------------------------


def test_request_is_a_signed_envelope_over_the_base64_payload(stub: StubServer) -> None:
    stub.reply = lambda _: (200, envelope("getprocessmsg", {"processid": "p1", "state": 2}))
    process = make_client(stub.port).get_process("p1")
    assert process.processid == "p1" and process.state is ProcessState.SUCCESS
    (request,) = stub.requests
    assert set(request) == {"signature", "payloadtype", "payload"}
    assert request["payloadtype"] == "getprocessmsg"
    assert json.loads(base64.b64decode(request["payload"])) == {
        "processid": "p1",
        "msgtype": "getprocessmsg",
    }
    assert len(request["signature"]) == 130
    assert recover_id(request["payload"], request["signature"]) == id_from_private_key(KEY)


def test_replies_decode_go_style(stub: StubServer) -> None:
    stub.reply = lambda _: (
        200,
        envelope("x", {"ProcessID": "p", "errors": None, "in": None, "extra": 1}),
    )
    process = make_client(stub.port).get_process("p")
    assert (process.processid, process.errors, process.in_) == ("p", [], [])
    stub.reply = lambda _: (200, envelope("getprocessesmsg", None))
    assert make_client(stub.port).get_processes("c", ProcessState.WAITING) == []


def test_version_and_server_info_go_unsigned(stub: StubServer) -> None:
    stub.reply = lambda r: (200, envelope(r["payloadtype"], {"buildversion": "v9", "x": 1}))
    client = ColoniesClient(ClientConfig("127.0.0.1", stub.port))  # no key at all
    assert client.version() == "v9"
    assert client.server_info()["x"] == 1
    assert [r["signature"] for r in stub.requests] == ["", ""]


def test_signed_call_without_a_key_is_a_config_error(stub: StubServer) -> None:
    client = ColoniesClient(ClientConfig("127.0.0.1", stub.port))
    with pytest.raises(ConfigError, match="COLONIES_PRVKEY"):
        client.get_colonies()
    assert stub.requests == []


@pytest.mark.parametrize(
    ("status", "cls", "exit_code"),
    [
        (400, BadRequest, 2),
        (403, AccessDenied, 3),
        (404, NotFound, 2),
        (409, ColoniesError, 3),
        (500, NotFound, 2),  # the official server's 500 for several missing things
        (503, ServerUnavailable, 3),
    ],
)
def test_error_replies_become_typed_exceptions(
    stub: StubServer, status: int, cls: type[ColoniesError], exit_code: int
) -> None:
    stub.reply = lambda _: error_reply(status, "Process with Id\n x not found")
    with pytest.raises(cls) as info:
        make_client(stub.port).get_process("x")
    error = info.value
    assert type(error) is cls
    assert (error.status, error.msgtype, error.exit_code) == (status, "getprocessmsg", exit_code)
    assert error.server_message == "Process with Id x not found"
    text = str(error)
    assert "\n" not in text and f"127.0.0.1:{stub.port}" in text and "not found" in text
    assert isinstance(error, InfraError) == (exit_code == 3 and cls is not ColoniesError)


def test_an_internal_error_is_a_plain_colonies_error(stub: StubServer) -> None:
    stub.reply = lambda _: error_reply(500, "internal server error")
    with pytest.raises(ColoniesError) as info:
        make_client(stub.port).get_colonies()
    assert type(info.value) is ColoniesError and info.value.exit_code == 3


def test_two_error_envelopes_in_one_body_decode_as_the_first(stub: StubServer) -> None:
    """The official server writes some errors twice into one body (400, then 500): what the
    real server sends for a NUL byte in addlogmsg (tests/test_differential.py measures it)."""
    message = 'pq: invalid byte sequence for encoding "UTF8": 0x00'
    first, second = error_reply(400, message)[1], error_reply(500, message)[1]
    stub.reply = lambda _: (400, first + second)
    with pytest.raises(BadRequest) as info:
        make_client(stub.port).add_log("p", "a\x00b")
    assert (info.value.status, info.value.server_message) == (400, message)


def test_a_refusal_about_the_request_does_not_blame_the_key(stub: StubServer) -> None:
    """The official server's 403 for a log line of a process that has just ended (a cancel
    racing the executor's output) is about the process, not the key."""
    stub.reply = lambda _: error_reply(403, "Failed to set output, process is not running")
    with pytest.raises(AccessDenied) as info:
        make_client(stub.port).add_log("p", "line\n")
    assert "key" not in str(info.value)
    assert str(info.value).endswith("(403): Failed to set output, process is not running.")


def test_a_message_type_the_server_does_not_know_is_unsupported(stub: StubServer) -> None:
    """v1.8.x answers cancelprocessmsg with 403 'invalid rpcMsg.PayloadType': the server is too
    old, whatever the key (tests/test_real_server.py runs it against v1.8.7)."""
    stub.reply = lambda request: (
        error_reply(403, "invalid rpcMsg.PayloadType, cancelprocessmsg")
        if request["payloadtype"] == "cancelprocessmsg"
        else (200, envelope("versionmsg", {"buildversion": "v1.8.7"}))
    )
    with pytest.raises(Unsupported) as info:
        make_client(stub.port).cancel_process("p")
    assert info.value.exit_code == 3
    assert "(v1.8.7) cannot cancel processes" in str(info.value)
    assert "key" not in str(info.value)


def test_access_denied_names_the_signing_id_not_the_key(stub: StubServer) -> None:
    stub.reply = lambda _: error_reply(403, "Access denied, not a member of colony")
    with pytest.raises(AccessDenied) as info:
        make_client(stub.port).get_colonies()
    assert id_from_private_key(KEY) in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"<html><body>502 Bad Gateway</body></html>"),
        (200, b"<html>a web page</html>"),
        (200, b'{"payloadtype":"x","payload":"%%% not base64","error":false}'),
        (302, b""),
    ],
)
def test_replies_that_are_not_colonies_replies(stub: StubServer, status: int, body: bytes) -> None:
    stub.reply = lambda _: (status, body)
    with pytest.raises(ServerUnavailable) as info:
        make_client(stub.port).get_colonies()
    assert info.value.status == status
    assert "not a Colonies reply" in str(info.value)


# --- assign --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        error_reply(404, "No process available for assignment"),
        error_reply(408, "Assignment timeout: colony assignments are paused"),
        error_reply(503, "No processes available: colony assignments are paused"),
    ],
)
def test_assign_returns_none_when_nothing_is_assigned(stub: StubServer, reply: Reply) -> None:
    stub.reply = lambda _: reply
    assert make_client(stub.port).assign("c", timeout=1) is None


def test_assign_still_raises_on_a_proxy_503(stub: StubServer) -> None:
    stub.reply = lambda _: (503, b"<html>Service Unavailable</html>")
    with pytest.raises(ServerUnavailable):
        make_client(stub.port).assign("c", timeout=1)


def test_assign_sends_whole_seconds_and_waits_longer_than_the_long_poll(
    stub: StubServer,
) -> None:
    def slow(_: dict[str, Any]) -> Reply:
        time.sleep(1.0)  # longer than the client timeout, shorter than the long-poll
        return 200, envelope("assignprocessmsg", {"processid": "p", "state": 1})

    stub.reply = slow
    process = make_client(stub.port, timeout=0.5).assign("c", timeout=1.2, cpu="100m", mem="1Gi")
    assert process is not None and process.state is ProcessState.RUNNING
    assert stub.payloads() == [
        {
            "colonyname": "c",
            "timeout": 2,
            "availablecpu": "100m",
            "availablemem": "1Gi",
            "msgtype": "assignprocessmsg",
        }
    ]
    stub.reply = lambda _: error_reply(404, "No process available for assignment")
    make_client(stub.port).assign("c", timeout=0)
    assert stub.payloads()[-1]["timeout"] == -1  # one attempt: 0 would be a 400


# --- unreachable servers -------------------------------------------------------------------


def test_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    client = make_client(port, retries=0)
    with pytest.raises(ServerUnavailable) as info:
        client.get_colonies()
    text = str(info.value)
    assert text == (
        f"Cannot reach the Colonies server at 127.0.0.1:{port}: connection failed "
        "(connection refused)."
    )
    assert info.value.exit_code == 3 and isinstance(info.value, InfraError)
    assert client.health() is False


def retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum(": retrying (" in r.getMessage() for r in caplog.records)


def test_reads_are_retried_on_refused_connections(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pollinator.client")
    client = make_client(free_port(), retries=2)
    with pytest.raises(ServerUnavailable):
        client.get_process("p")
    assert retries(caplog) == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.submit(FunctionSpec(funcname="f")),
        lambda c: c.assign("c", 1),
        lambda c: c.add_log("p", "line"),
        lambda c: c.add_file(File(name="f")),
        lambda c: c.close_successful("p"),
        lambda c: c.close_failed("p", ["boom"]),
    ],
    ids=["submit", "assign", "add_log", "add_file", "close_successful", "close_failed"],
)
def test_unsafe_calls_are_never_retried(
    caplog: pytest.LogCaptureFixture, call: Callable[[ColoniesClient], object]
) -> None:
    caplog.set_level(logging.DEBUG, logger="pollinator.client")
    with pytest.raises(ServerUnavailable):
        call(make_client(free_port(), retries=3))
    assert retries(caplog) == 0


def test_a_read_survives_a_server_that_comes_up_during_the_retries() -> None:
    port = free_port()
    client = make_client(port, retries=4)  # backoff 0, 0.4, 0.8, 1.6 s
    late: list[StubServer] = []
    timer = threading.Timer(0.2, lambda: late.append(StubServer(port=port)))
    timer.start()
    try:
        with pytest.raises(ServerUnavailable):
            client.submit(FunctionSpec())  # refused at once: no retry
        assert client.get_colonies() == []  # stub default reply: {} -> no colonies
    finally:
        timer.join()
        for server in late:
            server.stop()


def test_read_timeout_is_not_retried() -> None:
    with socket.socket() as listener:  # accepts TCP connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServerUnavailable) as info:
            make_client(port, timeout=0.3, retries=3).get_colonies()
        assert time.monotonic() - started < 1.5
    assert str(info.value) == (
        f"Cannot reach the Colonies server at 127.0.0.1:{port}: "
        "no reply to getcoloniesmsg within 0.3 s."
    )


def test_unknown_host_is_named() -> None:
    client = ColoniesClient(ClientConfig("no-such-host.invalid", prvkey=KEY, retries=0))
    with pytest.raises(ServerUnavailable, match=r"no-such-host\.invalid"):
        client.get_colonies()


def test_health(stub: StubServer) -> None:
    assert make_client(stub.port).health() is True


def test_pooled_client_is_thread_safe(stub: StubServer) -> None:
    stub.reply = lambda r: (
        200,
        envelope("x", {"processid": json.loads(base64.b64decode(r["payload"]))["processid"]}),
    )
    client = make_client(stub.port)
    results: list[bool] = []

    def work(n: int) -> None:
        for i in range(20):
            pid = f"{n}-{i}"
            results.append(client.with_key(KEY).get_process(pid).processid == pid)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 160
    assert stub.connections <= 16  # keep-alive: connections are reused, not one per call


# --- secrets --------------------------------------------------------------------------------


def test_private_keys_never_leak(stub: StubServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    colony_key = generate_private_key()
    config = ClientConfig("127.0.0.1", stub.port, prvkey=KEY, colony_prvkey=colony_key)
    client = ColoniesClient(config)
    errors: list[BaseException] = []

    def collect(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            errors.append(exc)

    for status in (400, 403, 404, 500):
        stub.reply = functools.partial(lambda s, _: error_reply(s, "refused"), status)
        collect(client.get_colonies)
        collect(client.with_key(colony_key).get_colonies)
    stub.reply = lambda _: (200, b"garbage")
    collect(client.get_colonies)
    refused = ColoniesClient(ClientConfig("127.0.0.1", free_port(), prvkey=KEY, retries=1))
    collect(refused.get_colonies)
    collect(lambda: refused.submit(FunctionSpec()))
    collect(lambda: client.with_key(KEY[:-1] + "g"))
    collect(lambda: ClientConfig("h", prvkey=KEY[:-2]))
    collect(
        lambda: ClientConfig.from_env({"COLONIES_SERVER_HOST": "h", "COLONIES_PRVKEY": KEY + "0"})
    )
    assert len(errors) == 14
    texts = [repr(config), str(config), repr(client), caplog.text]
    texts += ["".join(traceback.format_exception(e)) + repr(e) for e in errors]
    for text in texts:
        assert KEY not in text and KEY[:-2] not in text and colony_key not in text
    assert colony_key not in repr(client.with_key(colony_key))
