"""A synchronous, thread-safe Colonies client over keep-alive HTTP(S), one connection per thread.

Every call is one signed RPC to ``POST /api`` (reference/colonies-protocol.md, section 1):
the payload is base64 of the message JSON, the signature covers that base64 text, and the
reply's base64 payload is decoded Go-style into the models. Server refusals become typed
exceptions; a server that cannot be reached becomes :class:`ServerUnavailable`.

Only calls that are safe to repeat are retried, and only when the connection itself fails:
a submit, assign, log line, file record or close that is sent twice could happen twice.

The private key a client signs with never reaches a log line, an exception or a repr.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pollinator_core.colonies import crypto
from pollinator_core.colonies.config import ClientConfig, ConfigError, check_private_key
from pollinator_core.colonies.keepalive import ConnectFailed, Origin
from pollinator_core.colonies.models import (
    Attribute,
    Colony,
    Executor,
    File,
    FileData,
    Function,
    FunctionSpec,
    Label,
    Log,
    Process,
    ProcessGraph,
    ProcessState,
    Snapshot,
    User,
    WorkflowSpec,
    from_dict,
    from_list,
    to_dict,
)
from pollinator_core.errors import InfraError, PollinatorError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("pollinator.client")
T = TypeVar("T")

_HEADERS = {"Content-Type": "application/json"}
# The longest server message kept in an exception: one readable line, not a dump.
_MAX_MESSAGE = 300
# What OpenSSL says when the other end answers a TLS handshake in plain HTTP.
_PLAIN_HTTP_TLS = re.compile(
    r"WRONG_VERSION_NUMBER|wrong version number|record layer failure|packet length too long"
    r"|HTTP_REQUEST|http request",
    re.IGNORECASE,
)


class ColoniesError(PollinatorError):
    """The Colonies server refused a request (subclasses say why) or could not be reached.

    ``status`` is the HTTP/Colonies status (0 when no reply came), ``msgtype`` the RPC and
    ``server_message`` the server's own words (empty when it sent none).
    """

    exit_code = 3

    def __init__(
        self, message: str, *, status: int = 0, msgtype: str = "", server_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.msgtype = msgtype
        self.server_message = server_message


class BadRequest(ColoniesError):
    """400: the request was malformed or its content invalid (a spec, a count, a timeout)."""

    exit_code = 2


class NotFound(ColoniesError):
    """404: no such process, file, snapshot, colony..."""

    exit_code = 2


class AccessDenied(ColoniesError, InfraError):
    """403: the signing key may not do this; in practice a misconfigured key (exit 3)."""


class ServerUnavailable(ColoniesError, InfraError):
    """No usable reply: refused, timed out, TLS failure, 502/503/504 or not a Colonies reply.

    A 500 that carries the server's own error message is a ColoniesError (or NotFound): the
    server is up and said why it refused.
    """


class Unsupported(ColoniesError, InfraError):
    """The server does not know this RPC: an older release (v1.8.x has no cancelprocessmsg)."""


class WaitTimeout(ColoniesError):
    """A process did not reach the awaited state in time."""

    exit_code = 1


# The official server answers 500 for several missing things (snapshots, graphs, executors).
_MISSING = re.compile(r"not found|does not exist", re.IGNORECASE)
# Its answer (403) to a message type it does not know, before it looks at the signature.
_UNKNOWN_RPC = "invalid rpcMsg.PayloadType"
# How its refusals of the signing key begin (not a member, not the owner, not approved); other
# 403s are about the request, such as a log line for a process that has just ended.
_ACCESS_DENIED = "access denied"


def _error_class(status: int, message: str) -> type[ColoniesError]:
    """The exception for a Colonies error reply (the server did answer, with its reason)."""
    if message.startswith(_UNKNOWN_RPC):
        return Unsupported
    if status == 400:
        return BadRequest
    if status in (401, 403):
        return AccessDenied
    if status == 404 or (status == 500 and _MISSING.search(message)):
        return NotFound
    if status in (502, 503, 504):
        return ServerUnavailable
    return ColoniesError


def _first_envelope(data: bytes | str) -> Any:
    """The first JSON document of a reply body.

    The official server sometimes reports one error twice into the same body (a handler that
    writes its 400 and then a 500 for the same failure, e.g. a NUL byte in addlogmsg): two
    envelopes back to back, which is not one JSON document. The first says what happened.
    """
    text = data.decode() if isinstance(data, bytes) else data
    reply, _ = json.JSONDecoder().raw_decode(text.lstrip())
    return reply


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _ssl_context(config: ClientConfig) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"The CA file {config.ca_file!r} cannot be used to verify the Colonies server "
            f"({_one_line(str(exc))})."
        ) from None
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    import asyncio  # lazily, as everything that only subscriptions need
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class ColoniesClient:
    """Typed Colonies RPCs; sign with ``config.prvkey`` or, through :meth:`with_key`, another key.

    Instances are immutable and thread-safe (one keep-alive connection per thread); siblings
    from :meth:`with_key` share those connections, so :meth:`close` closes them all.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._prvkey = config.prvkey
        self._ssl = _ssl_context(config) if config.tls else None
        if config.tls and config.insecure:
            # Skipping verification is the user's explicit choice: say it once, not per request.
            log.warning("TLS certificate verification is off for %s", config.address)
        self._origin = Origin(config.host, config.port, context=self._ssl, timeout=config.timeout)

    def __repr__(self) -> str:
        return f"ColoniesClient({self.config.base_url}, colony={self.config.colony_name!r})"

    def with_key(self, prvkey: str) -> ColoniesClient:
        """A sibling client signing with ``prvkey`` (server, colony or executor key)."""
        check_private_key(prvkey, "The private key given to the Colonies client")
        sibling = copy.copy(self)
        sibling._prvkey = prvkey
        return sibling

    @property
    def signer_id(self) -> str:
        """The Colonies ID this client signs as (public: derived from the key)."""
        return crypto.id_from_private_key(self._key())

    def close(self) -> None:
        self._origin.close()

    # --- transport -----------------------------------------------------------------------

    def _key(self) -> str:
        if not self._prvkey:
            raise ConfigError(
                "No Colonies private key is configured to sign requests with: set COLONIES_PRVKEY."
            )
        return self._prvkey

    def _envelope(self, msgtype: str, body: dict[str, Any], *, signed: bool = True) -> str:
        text = json.dumps({**body, "msgtype": msgtype}, separators=(",", ":"))
        payload = base64.b64encode(text.encode()).decode("ascii")
        signature = crypto.sign(payload, self._key()) if signed else ""
        return json.dumps({"signature": signature, "payloadtype": msgtype, "payload": payload})

    def _call(
        self,
        msgtype: str,
        body: dict[str, Any] | None = None,
        *,
        safe: bool,
        signed: bool = True,
        wait: float = 0.0,
    ) -> Any:
        """One RPC; ``safe`` allows retries on connection failure, ``wait`` extends the read."""
        envelope = self._envelope(msgtype, body or {}, signed=signed).encode()
        started = time.monotonic()
        status, data = self._exchange(msgtype, envelope, safe=safe, read=self.config.timeout + wait)
        log.debug(
            "%s %s -> %d in %.1f ms",
            self.config.address,
            msgtype,
            status,
            (time.monotonic() - started) * 1000,
        )
        return self._decode(msgtype, status, data)

    def _exchange(self, msgtype: str, body: bytes, *, safe: bool, read: float) -> tuple[int, bytes]:
        """POST /api; a call that is safe to repeat is resent while no connection opens, with
        backoff (0, 0.4, 0.8, 1.6, 2, 2... s)."""
        for attempt in range(self.config.retries + 1):
            if attempt > 1:
                time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
            try:
                return self._origin.request("POST", "/api", body, _HEADERS, timeout=read)
            except ConnectFailed as exc:
                tls = isinstance(exc.__cause__, ssl.SSLError)  # a setting: it would fail again
                if not safe or tls or attempt == self.config.retries:
                    raise self._unreachable(msgtype, exc, read) from exc
                log.debug(
                    "%s %s: retrying (%d of %d) after: %s",
                    self.config.address,
                    msgtype,
                    attempt + 1,
                    self.config.retries,
                    exc,
                )
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(msgtype, exc, read) from exc
        raise AssertionError("unreachable")

    def _unreachable(self, msgtype: str, exc: Exception, read: float) -> ServerUnavailable:
        connecting = isinstance(exc, ConnectFailed)
        reason = exc.__cause__ if connecting and exc.__cause__ is not None else exc
        if isinstance(reason, socket.gaierror):
            what = f"the host name {self.config.host!r} cannot be resolved"
        elif isinstance(reason, ssl.SSLError) and _PLAIN_HTTP_TLS.search(str(reason)):
            what = (
                f"TLS failed ({_one_line(str(reason))}): the server does not speak TLS on this "
                "port; if it serves plain HTTP, set COLONIES_SERVER_TLS=false"
            )
        elif isinstance(reason, ssl.SSLError):
            what = (
                f"TLS failed ({_one_line(str(reason))}); trust the server's CA with "
                "COLONIES_CA_FILE, or skip verification with COLONIES_SKIP_TLS_VERIFY=true"
            )
        elif connecting and isinstance(reason, TimeoutError):
            what = f"connecting timed out after {self.config.timeout:g} s"
        elif connecting:
            strerror = getattr(reason, "strerror", None)
            what = f"connection failed ({(strerror or str(reason) or 'no reason given').lower()})"
        elif isinstance(reason, TimeoutError):
            what = f"no reply to {msgtype} within {read:g} s"
        elif isinstance(reason, (ConnectionError, http.client.HTTPException)):
            what = f"the connection broke during {msgtype}"
        else:
            what = _one_line(str(reason)) or type(reason).__name__
        return ServerUnavailable(
            f"Cannot reach the Colonies server at {self.config.address}: {what}.", msgtype=msgtype
        )

    def _decode(self, msgtype: str, status: int, data: bytes | str) -> Any:
        try:
            reply = _first_envelope(data)
            raw = reply.get("payload")
            payload = json.loads(base64.b64decode(raw, validate=True)) if raw else None
            failed = bool(reply.get("error")) or status != 200
        except (ValueError, TypeError, AttributeError):
            raise ServerUnavailable(
                f"The server at {self.config.address} answered {msgtype} with HTTP {status} "
                "and a body that is not a Colonies reply: is it a Colonies server?",
                status=status,
                msgtype=msgtype,
            ) from None
        if not failed:
            return payload
        detail = payload if isinstance(payload, dict) else {}
        code = detail.get("status")
        code = code if isinstance(code, int) and code >= 400 else status
        message = _one_line(str(detail.get("message") or ""))
        text = f"The Colonies server at {self.config.address} refused {msgtype} ({code})"
        about_key = not message or message.lower().startswith(_ACCESS_DENIED)
        if self._prvkey and (code == 401 or (code == 403 and about_key)):
            text += (
                f"; the key in use signs as {self.signer_id}: check that it is the right "
                "Colonies private key for this"
            )
        raise _error_class(code, message)(
            f"{text}: {message or 'no reason given'}.",
            status=code,
            msgtype=msgtype,
            server_message=message,
        )

    # --- server --------------------------------------------------------------------------

    def version(self) -> str:
        """The server's build version (answered without checking the signature)."""
        data = self._call("versionmsg", safe=True, signed=False)
        return str(data.get("buildversion", "")) if isinstance(data, dict) else ""

    def server_info(self) -> dict[str, Any]:
        data = self._call("getserverinfomsg", safe=True, signed=False)
        return data if isinstance(data, dict) else {}

    def health(self) -> bool:
        """True when ``GET /health`` answers 200; never raises."""
        try:
            status, _ = self._origin.request("GET", "/health", None, {})
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    # --- colonies ------------------------------------------------------------------------

    def add_colony(self, colony: Colony) -> Colony:
        return from_dict(
            Colony, self._call("addcolonymsg", {"colony": to_dict(colony)}, safe=False)
        )

    def remove_colony(self, name: str) -> None:
        self._call("removecolonymsg", {"colonyname": name}, safe=True)

    def get_colonies(self) -> list[Colony]:
        return from_list(Colony, self._call("getcoloniesmsg", safe=True))

    def get_colony(self, name: str) -> Colony:
        return from_dict(Colony, self._call("getcolonymsg", {"colonyname": name}, safe=True))

    def get_colony_stats(self, name: str) -> dict[str, Any]:
        data = self._call("getcolonystatsmsg", {"colonyname": name}, safe=True)
        return data if isinstance(data, dict) else {}

    # --- users ---------------------------------------------------------------------------

    def add_user(self, user: User) -> User:
        return from_dict(User, self._call("addusermsg", {"user": to_dict(user)}, safe=False))

    def get_users(self, colony: str) -> list[User]:
        return from_list(User, self._call("getusersmsg", {"colonyname": colony}, safe=True))

    def get_user(self, colony: str, name: str) -> User:
        data = self._call("getusermsg", {"colonyname": colony, "name": name}, safe=True)
        return from_dict(User, data)

    def remove_user(self, colony: str, name: str) -> None:
        self._call("removeusermsg", {"colonyname": colony, "name": name}, safe=True)

    # --- executors -----------------------------------------------------------------------

    def add_executor(self, executor: Executor) -> Executor:
        record = to_dict(executor)
        # Their shape changed at colonies v1.9.6 (objects, then lists): without them, servers
        # of both shapes take the record.
        for key in ("capabilities", "location"):
            record.pop(key, None)
        data = self._call("addexecutormsg", {"executor": record}, safe=False)
        return from_dict(Executor, data)

    def _executor_call(self, msgtype: str, colony: str, name: str) -> Any:
        return self._call(msgtype, {"colonyname": colony, "executorname": name}, safe=True)

    def approve_executor(self, colony: str, name: str) -> None:
        self._executor_call("approveexecutormsg", colony, name)

    def reject_executor(self, colony: str, name: str) -> None:
        self._executor_call("rejectexecutormsg", colony, name)

    def remove_executor(self, colony: str, name: str) -> None:
        self._executor_call("removeexecutormsg", colony, name)

    def get_executor(self, colony: str, name: str) -> Executor:
        return from_dict(Executor, self._executor_call("getexecutormsg", colony, name))

    def get_executors(self, colony: str) -> list[Executor]:
        return from_list(Executor, self._call("getexecutorsmsg", {"colonyname": colony}, safe=True))

    # --- functions -----------------------------------------------------------------------

    def add_function(self, fn: Function) -> Function:
        return from_dict(Function, self._call("addfunctionmsg", {"fun": to_dict(fn)}, safe=False))

    def get_functions(self, colony: str, executor_name: str = "") -> list[Function]:
        body = {"colonyname": colony, "executorname": executor_name}
        return from_list(Function, self._call("getfunctionsmsg", body, safe=True))

    def remove_function(self, function_id: str) -> None:
        self._call("removefunctionmsg", {"functionid": function_id}, safe=True)

    # --- processes -----------------------------------------------------------------------

    def submit(self, spec: FunctionSpec) -> Process:
        return from_dict(
            Process, self._call("submitfuncspecmsg", {"spec": to_dict(spec)}, safe=False)
        )

    def assign(self, colony: str, timeout: float, cpu: str = "", mem: str = "") -> Process | None:
        """Long-poll up to ``timeout`` s for a process (<= 0: one attempt); None if none came."""
        seconds = math.ceil(timeout) if timeout > 0 else -1  # the server wants whole seconds
        body = {"colonyname": colony, "timeout": seconds, "availablecpu": cpu, "availablemem": mem}
        try:
            data = self._call("assignprocessmsg", body, safe=False, wait=max(seconds, 0))
        except NotFound:
            return None  # the long-poll expired: "No process available for assignment"
        except ColoniesError as exc:
            # 408/503 with the server's own message: assignments are paused in this colony.
            if exc.status in (408, 503) and exc.server_message:
                return None
            raise
        return from_dict(Process, data)

    def heartbeat(self, colony: str) -> Process | None:
        """Tell the server this executor is alive without taking work.

        The official server marks an executor alive only when it calls assign, and removes one
        not heard from for its stale-executor window (600 s by default), putting its running
        processes back in the queue. A busy executor therefore sends a one-shot assign whose
        available cpu, -1 millicores, no process can fit (``CPU <= -1``): the server marks it
        alive and answers "no process". None, then; a process only if a server ignores cpu.
        """
        return self.assign(colony, -1, cpu="-1m")

    def close_successful(self, process_id: str, out: list[Any] | None = None) -> None:
        body = {"processid": process_id, "out": out or []}
        self._call("closesuccessfulmsg", body, safe=False)

    def close_failed(self, process_id: str, errors: list[str]) -> None:
        self._call("closefailedmsg", {"processid": process_id, "errors": errors}, safe=False)

    def set_output(self, process_id: str, out: list[Any]) -> None:
        self._call("setoutputmsg", {"processid": process_id, "out": out}, safe=True)

    def get_process(self, process_id: str) -> Process:
        return from_dict(Process, self._call("getprocessmsg", {"processid": process_id}, safe=True))

    def get_processes(
        self,
        colony: str,
        state: ProcessState,
        count: int = 100,
        executor_type: str = "",
        label: str = "",
        initiator: str = "",
    ) -> list[Process]:
        body = {
            "colonyname": colony,
            "count": count,
            "state": int(state),
            "executortype": executor_type,
            "label": label,
            "initiator": initiator,
        }
        return from_list(Process, self._call("getprocessesmsg", body, safe=True))

    def remove_process(self, process_id: str, all: bool = False) -> None:
        self._call("removeprocessmsg", {"processid": process_id, "all": all}, safe=True)

    def remove_all_processes(self, colony: str, state: int = -1) -> None:
        """Remove the colony's processes in ``state`` (-1: every state)."""
        body = {"colonyname": colony, "state": int(state)}
        self._call("removeallprocessesmsg", body, safe=True)

    def cancel_process(self, process_id: str) -> None:
        try:
            self._call("cancelprocessmsg", {"processid": process_id}, safe=True)
        except Unsupported as exc:
            version = self.version() or "version unknown"
            raise Unsupported(
                f"The Colonies server at {self.config.address} ({version}) cannot cancel "
                "processes: cancelprocessmsg came with colonies v1.9, and releases before it "
                "(v1.8.x) refuse it. Upgrade the server to cancel runs; the process runs on "
                "until it ends or reaches its maxexectime.",
                status=exc.status,
                msgtype=exc.msgtype,
                server_message=exc.server_message,
            ) from None

    def pause_assignments(self, colony: str) -> None:
        self._call("pauseassignmentsmsg", {"colonyname": colony}, safe=True)

    def resume_assignments(self, colony: str) -> None:
        self._call("resumeassignmentsmsg", {"colonyname": colony}, safe=True)

    # --- logs ----------------------------------------------------------------------------

    def add_log(self, process_id: str, message: str) -> None:
        self._call("addlogmsg", {"processid": process_id, "message": message}, safe=False)

    def get_logs(
        self,
        colony: str,
        process_id: str,
        count: int = 100,
        since: int = 0,
        executor_name: str = "",
        latest: bool = False,
    ) -> list[Log]:
        """Log lines, oldest first; ``since`` (ns) is exclusive; ``latest`` gives the newest."""
        body = {
            "colonyname": colony,
            "processid": process_id,
            "executorname": executor_name,
            "count": count,
            "since": since,
            "latest": latest,
        }
        return from_list(Log, self._call("getlogsmsg", body, safe=True))

    # --- attributes ----------------------------------------------------------------------

    def add_attribute(self, attr: Attribute) -> Attribute:
        data = self._call("addattributemsg", {"attribute": to_dict(attr)}, safe=False)
        return from_dict(Attribute, data)

    def get_attribute(self, attribute_id: str) -> Attribute:
        data = self._call("getattributemsg", {"attributeid": attribute_id}, safe=True)
        return from_dict(Attribute, data)

    # --- files (metadata only: the bytes live in S3) -------------------------------------

    def add_file(self, file: File) -> File:
        return from_dict(File, self._call("addfilemsg", {"file": to_dict(file)}, safe=False))

    def get_file(
        self,
        colony: str,
        *,
        file_id: str = "",
        label: str = "",
        name: str = "",
        latest: bool = True,
    ) -> list[File]:
        """Revisions of one file, by ID or by label + name (only the newest when ``latest``)."""
        body = {
            "colonyname": colony,
            "fileid": file_id,
            "label": label,
            "name": name,
            "latest": latest,
        }
        return from_list(File, self._call("getfilemsg", body, safe=True))

    def get_files(self, colony: str, label: str) -> list[FileData]:
        """The newest revision of every name directly under ``label``."""
        body = {"colonyname": colony, "label": label}
        return from_list(FileData, self._call("getfilesmsg", body, safe=True))

    def get_file_labels(self, colony: str, name: str = "", exact: bool = False) -> list[Label]:
        body = {"colonyname": colony, "name": name, "exact": exact}
        return from_list(Label, self._call("getfilelabelsmsg", body, safe=True))

    def remove_file(
        self, colony: str, *, file_id: str = "", label: str = "", name: str = ""
    ) -> None:
        body = {"colonyname": colony, "fileid": file_id, "label": label, "name": name}
        self._call("removefilemsg", body, safe=True)

    # --- snapshots -----------------------------------------------------------------------

    def create_snapshot(self, colony: str, label: str, name: str) -> Snapshot:
        body = {"colonyname": colony, "label": label, "name": name}
        return from_dict(Snapshot, self._call("createsnapshotmsg", body, safe=False))

    def get_snapshot(self, colony: str, *, snapshot_id: str = "", name: str = "") -> Snapshot:
        body = {"colonyname": colony, "snapshotid": snapshot_id, "name": name}
        return from_dict(Snapshot, self._call("getsnapshotmsg", body, safe=True))

    def get_snapshots(self, colony: str) -> list[Snapshot]:
        return from_list(Snapshot, self._call("getsnapshotsmsg", {"colonyname": colony}, safe=True))

    def remove_snapshot(self, colony: str, *, snapshot_id: str = "", name: str = "") -> None:
        body = {"colonyname": colony, "snapshotid": snapshot_id, "name": name}
        self._call("removesnapshotmsg", body, safe=True)

    def remove_all_snapshots(self, colony: str) -> None:
        self._call("removeallsnapshotmsg", {"colonyname": colony}, safe=True)

    # --- workflows -----------------------------------------------------------------------

    def submit_workflow(self, spec: WorkflowSpec) -> ProcessGraph:
        data = self._call("submitworkflowspecmsg", {"spec": to_dict(spec)}, safe=False)
        return from_dict(ProcessGraph, data)

    def get_process_graph(self, graph_id: str) -> ProcessGraph:
        data = self._call("getprocessgraphmsg", {"processgraphid": graph_id}, safe=True)
        return from_dict(ProcessGraph, data)

    def get_process_graphs(
        self, colony: str, count: int = 100, state: ProcessState | None = None
    ) -> list[ProcessGraph]:
        """Graphs in ``state``; None asks for each state in turn (the server has no "any")."""
        states = list(ProcessState) if state is None else [state]
        graphs: list[ProcessGraph] = []
        for one in states:
            body = {"colonyname": colony, "count": count, "state": int(one)}
            graphs += from_list(ProcessGraph, self._call("getprocessgraphsmsg", body, safe=True))
        return graphs[:count]

    # --- subscriptions -------------------------------------------------------------------

    def wait_for_state(self, process_id: str, state: ProcessState, timeout: float) -> Process:
        """Block until the process is in ``state`` or has finished in another state.

        Uses the ``/pubsub`` WebSocket: one subscription for ``state`` and one per finished
        state, so waiting for SUCCESS does not hang on a FAILED process. Raises WaitTimeout.
        """
        process = self.get_process(process_id)
        if process.state == state or process.state.finished:
            return process
        return _run(self._wait(process, state, timeout))

    async def _wait(self, process: Process, state: ProcessState, timeout: float) -> Process:
        import asyncio

        import aiohttp  # lazily: importing the client must stay light

        states = {state, ProcessState.SUCCESS, ProcessState.FAILED, ProcessState.CANCELLED}
        deadline = time.monotonic() + timeout
        scheme = "wss" if self.config.tls else "ws"
        url = f"{scheme}://{self.config.address}/pubsub"
        # No overall limit (aiohttp's default is 300 s): the wait is bounded by ``deadline``.
        limits = aiohttp.ClientTimeout(total=None, connect=self.config.timeout)
        async with aiohttp.ClientSession(timeout=limits) as session:
            tasks = [
                asyncio.create_task(self._subscribe(session, url, process, s, timeout))
                for s in states
            ]
            try:
                pending: set[asyncio.Task[Process | None]] = set(tasks)
                while pending:
                    done, pending = await asyncio.wait(
                        pending,
                        timeout=max(deadline - time.monotonic(), 0),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if not done:
                        break
                    for task in done:
                        found = task.result()
                        if found is not None:
                            return found
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        if time.monotonic() < deadline:
            raise ServerUnavailable(
                f"The Colonies server at {self.config.address} closed the subscription to "
                f"process {process.processid} early.",
                msgtype="subscribeprocessmsg",
            )
        raise WaitTimeout(
            f"Process {process.processid} did not reach {state.name} within {timeout:g} s.",
            msgtype="subscribeprocessmsg",
        )

    async def _subscribe(
        self,
        session: aiohttp.ClientSession,
        url: str,
        process: Process,
        state: ProcessState,
        timeout: float,
    ) -> Process | None:
        """The process once it is in ``state``; None when the server ends the subscription."""
        import aiohttp

        body = {
            "processid": process.processid,
            "colonyname": process.spec.conditions.colonyname,
            "executortype": process.spec.conditions.executortype,
            "state": int(state),
            "timeout": max(math.ceil(timeout), 1),
        }
        envelope = self._envelope("subscribeprocessmsg", body)
        try:
            async with session.ws_connect(url, ssl=self._ssl or True) as ws:
                await ws.send_str(envelope)
                async for frame in ws:
                    if frame.type == aiohttp.WSMsgType.TEXT:
                        data = self._decode("subscribeprocessmsg", 200, frame.data)
                        return from_dict(Process, data)
                    if frame.type == aiohttp.WSMsgType.ERROR:
                        break
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(
                f"Cannot subscribe at {url}: {_one_line(str(exc)) or type(exc).__name__}.",
                msgtype="subscribeprocessmsg",
            ) from exc
        return None
