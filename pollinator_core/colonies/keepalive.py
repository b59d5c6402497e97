"""Keep-alive HTTP(S) connections to one origin: one ``http.client`` connection per thread.

Both hot paths of a sync, the Colonies RPCs and the small S3 requests, are thousands of tiny
request/response pairs. Through urllib3 each costs about 1.7 times the CPU of a bare
``http.client`` exchange (pool manager, URL parsing, retry and response layers;
benchmarks/bench_transport.py), and on a small machine shared with the servers that CPU is
what a cold sync waits for. What urllib3 added that matters is kept: a pooled connection the
server has closed is noticed before it is reused, and a connection that could not be opened
is told apart (:class:`ConnectFailed`: nothing was sent, so any request may be resent) from
one that failed later (the request may have been processed).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

# A connection used this recently is not probed before reuse: servers close idle connections
# after seconds, not milliseconds, and a probe is a syscall on every request of a busy sync.
_FRESH = 1.0


class ConnectFailed(OSError):
    """No connection could be opened, so nothing was sent; ``__cause__`` says why."""


class _OneWrite:
    """http.client writes a request's header block and its body separately: two packets, and
    two wake-ups of the server where one would do. This sends them as one write."""

    _hold_next = False  # the next write is a header block to keep for the body's write
    _held = b""

    def hold_headers(self, body: bytes | None) -> None:
        """Call before a request: with a body, its header block waits for the body."""
        self._hold_next = bool(body)

    def send(self, data: Any) -> None:
        if self._hold_next and isinstance(data, bytes):
            self._hold_next, self._held = False, data
            return
        if self._held:
            data, self._held = self._held + bytes(data), b""
        super().send(data)  # type: ignore[misc]


class _HTTP(_OneWrite, http.client.HTTPConnection):
    pass


class _HTTPS(_OneWrite, http.client.HTTPSConnection):
    pass


class Origin:
    """``host:port`` over HTTP, or HTTPS with ``context``; thread-safe.

    ``timeout`` bounds connecting and, unless a request passes its own, each reply.
    """

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext | None, timeout: float
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._context = context
        self._local = threading.local()
        self._open: weakref.WeakSet[_HTTP | _HTTPS] = weakref.WeakSet()
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One exchange: (status, body). Raises :class:`ConnectFailed`, or the
        ``OSError``/``http.client.HTTPException`` that broke the exchange after the connection
        was open."""
        conn = self._connection()
        try:
            assert conn.sock is not None
            conn.sock.settimeout(self.timeout if timeout is None else timeout)
            conn.hold_headers(body)
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self._drop(conn)
            raise
        if response.will_close:
            self._drop(conn)
        else:
            self._local.used = time.monotonic()
        return response.status, data

    def close(self) -> None:
        """Close every connection, whichever thread opened it; the next request reconnects."""
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            conn.close()

    def _connection(self) -> _HTTP | _HTTPS:
        conn: _HTTP | _HTTPS | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            idle = time.monotonic() - getattr(self._local, "used", 0.0)
            if idle < _FRESH or not _dropped(conn.sock):
                return conn
        if conn is not None:
            self._drop(conn)
        if self._context is not None:
            conn = _HTTPS(self.host, self.port, timeout=self.timeout, context=self._context)
        else:
            conn = _HTTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            conn.close()
            raise ConnectFailed(str(exc)) from exc
        self._local.conn = conn
        with self._lock:
            self._open.add(conn)
        return conn

    def _drop(self, conn: _HTTP | _HTTPS) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None


def _dropped(sock: socket.socket) -> bool:
    """Readable while idle: the server closed it (EOF) or broke protocol."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True
