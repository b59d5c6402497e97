"""The keep-alive transport under the Colonies client and the S3 requests, against a real
HTTP/1.1 server on loopback (http.server), so the connection handling is exercised for real."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pollinator_core.colonies import keepalive
from pollinator_core.colonies.keepalive import ConnectFailed, Origin


class Server:
    """Echoes each POST body; ``close_after`` makes it hang up after answering (without saying
    so, as an idle timeout does). Counts the TCP connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.close_after = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = server.close_after

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


def origin(port: int) -> Origin:
    return Origin("127.0.0.1", port, context=None, timeout=5.0)


def test_connections_are_kept_alive_one_per_thread(server: Server) -> None:
    o = origin(server.port)
    replies: list[tuple[int, bytes]] = []

    def work() -> None:
        for i in range(5):
            replies.append(o.request("POST", "/", f"n{i}".encode(), {}))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(body for _, body in replies) == sorted([f"n{i}".encode() for i in range(5)] * 3)
    assert server.connections == 3


def test_headers_and_body_leave_in_one_write(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_send = http.client.HTTPConnection.send

    def record(self: http.client.HTTPConnection, data: Any) -> None:
        writes.append(bytes(data))
        real_send(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", record)
    status, body = origin(server.port).request("POST", "/x", b"payload", {"X-A": "1"})
    assert (status, body) == (200, b"payload")
    assert len(writes) == 1
    assert writes[0].startswith(b"POST /x HTTP/1.1\r\n")
    assert writes[0].endswith(b"\r\n\r\npayload")


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keepalive, "_FRESH", 0.0)  # probe every reuse
    server.close_after = True
    o = origin(server.port)
    assert o.request("POST", "/", b"a", {})[1] == b"a"
    time.sleep(0.2)  # the server hangs up without a Connection: close header
    assert o.request("POST", "/", b"b", {}) == (200, b"b")
    assert server.connections == 2


def test_a_refused_connection_is_connect_failed_with_its_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectFailed) as info:
        origin(port).request("POST", "/", b"x", {})
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_close_closes_what_every_thread_opened(server: Server) -> None:
    o = origin(server.port)
    t = threading.Thread(target=o.request, args=("POST", "/", b"x", {}))
    t.start()
    t.join()
    o.request("POST", "/", b"y", {})
    o.close()
    assert o.request("POST", "/", b"z", {}) == (200, b"z")
    assert server.connections == 3
