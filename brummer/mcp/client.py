"""MCPClient: a synchronous, thread-safe MCP client over Streamable HTTP.

Requests go out on a small pool of keep-alive ``http.client`` connections, so concurrent
callers do not wait for each other and sequential calls reuse one TCP connection.
``initialize`` is idempotent; ``call`` runs a tool and returns its structured result (or its
text); ``listen`` opens the server's notification stream in a thread; ``close`` ends the
session (``DELETE``), closes every connection and joins the thread.

Failures are ``BrummerError``: NETWORK when the server cannot be reached, TIMEOUT when it
does not answer in time, NOT_FOUND when the session is gone (the server restarted) or the
tool is unknown, INVALID_ARGUMENT when the server rejected the arguments, INVALID_STATE for
a tool that reported an error or a client used after ``close``.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from brummer.contracts import Cleanup, ThreadSafety, TSLock, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.mcp import jsonrpc
from brummer.mcp.server import LATEST_PROTOCOL_VERSION

__all__ = ["MCPClient"]

_LOG = logging.getLogger("brummer.mcp")
_COMPONENT = "mcp.client"
_CODE_FOR_RPC = {
    jsonrpc.METHOD_NOT_FOUND: ErrorCode.NOT_FOUND,
    jsonrpc.RESOURCE_NOT_FOUND: ErrorCode.NOT_FOUND,
    jsonrpc.INVALID_PARAMS: ErrorCode.INVALID_ARGUMENT,
    jsonrpc.INVALID_REQUEST: ErrorCode.INVALID_ARGUMENT,
    jsonrpc.PARSE_ERROR: ErrorCode.INVALID_ARGUMENT,
}
_TOOL_ERROR = re.compile(r"^\[[^\]]+\] ([A-Z_]+):")
MAX_IDLE = 8  # idle connections kept per client
MAX_REPLY = 32 * 1024 * 1024  # bytes of one reply body (and of one notification line)


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class MCPClient:
    """A client for one MCP server's Streamable HTTP endpoint.

    Thread safety: TS. Every method may be called from any thread; calls run concurrently
    on separate pooled connections.

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:7777/mcp``.
        timeout: default seconds for ``initialize``, ``ping`` and ``close``.
        client_name: the ``clientInfo`` name sent on initialize.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, client_name: str = "brummer") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"not an http:// MCP endpoint: {url!r}",
                hint="pass the server's URL, e.g. http://127.0.0.1:7777/mcp",
            )
        self._url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = parts.path or "/"
        self._timeout = check_timeout(_COMPONENT, timeout) or 10.0
        self._client_name = client_name
        self._ids = itertools.count(1)
        self._lock = TSLock("mcp.client")  # guards the fields below; never held during I/O
        self._init_lock = threading.Lock()  # serialises initialize (held during I/O)
        self._idle: list[http.client.HTTPConnection] = []
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._server_info: dict[str, Any] = {}
        self._connected = False
        self._closed = False
        self._listener: threading.Thread | None = None
        self._listen_conn: http.client.HTTPConnection | None = None

    # ---------------------------------------------------------------------- properties

    @property
    @contract(ThreadSafety.TS)
    def url(self) -> str:
        """The endpoint this client talks to.

        Thread safety: TS.
        """
        return self._url

    @property
    @contract(ThreadSafety.TS)
    def is_connected(self) -> bool:
        """True after a successful ``initialize`` until ``close`` or a lost session.

        Thread safety: TS. Atomic read.
        """
        with self._lock:
            return self._connected and not self._closed

    @property
    @contract(ThreadSafety.TS)
    def session_id(self) -> str | None:
        """The server's session id (None before ``initialize``).

        Thread safety: TS.
        """
        with self._lock:
            return self._session_id

    @property
    @contract(ThreadSafety.TS)
    def protocol_version(self) -> str | None:
        """The negotiated protocol revision (None before ``initialize``).

        Thread safety: TS.
        """
        with self._lock:
            return self._protocol_version

    @property
    @contract(ThreadSafety.TS)
    def server_info(self) -> dict[str, Any]:
        """The server's ``serverInfo`` (a copy).

        Thread safety: TS.
        """
        with self._lock:
            return dict(self._server_info)

    # ------------------------------------------------------------------------ protocol

    @contract(ThreadSafety.TS, timeout=10.0, guarantees="idempotent")
    def initialize(self, ctx: Any = None) -> None:
        """Open a session (initialize + notifications/initialized). Idempotent.

        Thread safety: TS. Concurrent callers wait for the one doing the handshake.

        Raises:
            BrummerError: NETWORK, TIMEOUT, INVALID_STATE after ``close``.
        """
        timeout = self._timeout_from(ctx, self._timeout)
        with self._init_lock:
            if self.is_connected:
                return
            self._check_open()
            with self._lock:
                self._session_id = None
            result = self._request(
                "initialize",
                {
                    "protocolVersion": LATEST_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": self._client_name, "version": "0.1.0"},
                },
                timeout,
            )
            with self._lock:
                self._protocol_version = str(result.get("protocolVersion", ""))
                self._server_info = dict(result.get("serverInfo") or {})
            self._notify("notifications/initialized", timeout)
            with self._lock:
                self._connected = True

    @contract(ThreadSafety.TS, timeout=30.0)
    def call(
        self, tool: str, params: Mapping[str, Any] | None = None, *, timeout: float = 30.0
    ) -> Any:
        """Run a tool; return its ``structuredContent``, else its text (parsed if JSON).

        Thread safety: TS. Initializes first when needed.

        Raises:
            BrummerError: what the tool reported (its code when it names one, else
                INVALID_STATE); NOT_FOUND for an unknown tool; INVALID_ARGUMENT when the
                server rejected the request; NETWORK; TIMEOUT.
        """
        result = self.call_tool(tool, params, timeout=timeout)
        text = "".join(
            item.get("text", "") for item in result.get("content", ()) if isinstance(item, dict)
        )
        if result.get("isError"):
            match = _TOOL_ERROR.match(text)
            code = ErrorCode.INVALID_STATE
            if match and match.group(1) in ErrorCode.__members__:
                code = ErrorCode[match.group(1)]
            raise BrummerError(
                _COMPONENT,
                code,
                f"tool {tool} failed: {text}",
                hint="read the message; fix the arguments or the project and call again",
                context={"tool": tool},
            )
        if "structuredContent" in result:
            return result["structuredContent"]
        try:
            return json.loads(text)
        except ValueError:
            return text

    @contract(ThreadSafety.TS, timeout=30.0)
    def call_tool(
        self, tool: str, params: Mapping[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Run a tool and return the raw ``CallToolResult`` (errors included, not raised).

        Thread safety: TS.

        Raises:
            BrummerError: protocol and transport failures (see :meth:`call`).
        """
        self.initialize()
        timeout = check_timeout(_COMPONENT, timeout) or 30.0
        result = self._request(
            "tools/call", {"name": tool, "arguments": dict(params or {})}, timeout
        )
        if not isinstance(result, dict):
            raise self._protocol_error("tools/call returned a result that is not an object")
        return result

    @contract(ThreadSafety.TS, timeout=30.0)
    def request(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float = 30.0
    ) -> Any:
        """Send any request in the session and return its result.

        Thread safety: TS. Initializes first when needed.
        """
        self.initialize()
        return self._request(method, params, check_timeout(_COMPONENT, timeout) or 30.0)

    @contract(ThreadSafety.TS, timeout=10.0)
    def list_tools(self) -> list[dict[str, Any]]:
        """The server's tools.

        Thread safety: TS.
        """
        result = self.request("tools/list", {}, timeout=self._timeout)
        return list(result.get("tools", []))

    @contract(ThreadSafety.TS, timeout=10.0)
    def ping(self, timeout: float | None = None) -> float:
        """Send MCP ``ping``; return the round-trip time in seconds.

        Thread safety: TS.

        Raises:
            BrummerError: NETWORK, TIMEOUT, NOT_FOUND (session gone).
        """
        limit = check_timeout(_COMPONENT, timeout) or self._timeout
        self.initialize()
        started = time.perf_counter()
        self._request("ping", None, limit)
        return time.perf_counter() - started

    @contract(ThreadSafety.TS, timeout=10.0)
    def listen(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """Open the notification stream; ``handler`` gets every message, in a thread.

        Thread safety: TS. One stream per client; ``close`` ends it. A handler that
        raises is logged and the stream goes on.

        Raises:
            BrummerError: INVALID_STATE when a stream is already open; NETWORK; NOT_FOUND.
        """
        self.initialize()
        conn = self._new_connection(self._timeout)
        try:
            conn.request("GET", self._path, headers=self._headers(accept="text/event-stream"))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._network_error(exc) from exc
        if response.status != 200:
            body = response.read()
            conn.close()
            raise self._http_error(response.status, body)
        if conn.sock is not None:
            conn.sock.settimeout(None)
        with self._lock:
            if self._listener is not None or self._closed:
                conn.close()
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    "this client already listens (or is closed)",
                    hint="use one listen() per client",
                )
            self._listen_conn = conn
            self._listener = threading.Thread(
                target=self._listen_loop,
                args=(response, handler),
                name="brummer-mcp-client-listen",
                daemon=True,
            )
            self._listener.start()

    def _listen_loop(
        self, response: http.client.HTTPResponse, handler: Callable[[dict[str, Any]], None]
    ) -> None:
        try:
            for message in _sse_messages(response):
                try:
                    handler(message)
                except Exception:
                    _LOG.exception("MCP notification handler failed")
        except Exception as exc:  # closed under us by close(), or the server went away
            _LOG.debug("MCP notification stream ended: %r", exc)

    @contract(ThreadSafety.TS, timeout=5.0, guarantees="idempotent")
    def close(self) -> None:
        """End the session (best effort), close every connection, join the listener.

        Thread safety: TS. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            session_id = self._session_id
            connected = self._connected
            self._closed = True
            self._connected = False
            listen_conn, self._listen_conn = self._listen_conn, None
            listener, self._listener = self._listener, None
        if listen_conn is not None and listen_conn.sock is not None:
            with contextlib.suppress(OSError):
                listen_conn.sock.shutdown(socket.SHUT_RDWR)
        if session_id is not None and connected:
            with contextlib.suppress(BrummerError):
                self._roundtrip("DELETE", None, min(self._timeout, 2.0), allow_closed=True)
        if listen_conn is not None:
            listen_conn.close()
        if listener is not None:
            listener.join(5.0)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ---------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        with self._lock:
            closed = self._closed
        if closed:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_STATE,
                "this MCP client is closed",
                hint="create a new MCPClient",
            )

    def _timeout_from(self, ctx: Any, default: float) -> float:
        if ctx is None:
            return default
        raise_if_done = getattr(ctx, "raise_if_done", None)
        if callable(raise_if_done):
            raise_if_done()
        remaining = getattr(ctx, "remaining", None)
        left = remaining() if callable(remaining) else None
        return default if left is None else max(0.001, min(default, float(left)))

    def _headers(self, *, accept: str = "application/json, text/event-stream") -> dict[str, str]:
        headers = {"Accept": accept, "Content-Type": "application/json"}
        with self._lock:
            if self._session_id:
                headers["Mcp-Session-Id"] = self._session_id
            if self._protocol_version:
                headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    def _request(self, method: str, params: Mapping[str, Any] | None, timeout: float) -> Any:
        request_id = next(self._ids)
        body = jsonrpc.encode(jsonrpc.request(request_id, method, params))
        status, headers, data = self._roundtrip("POST", body, timeout)
        if method == "initialize" and status == 200:
            session = headers.get("mcp-session-id")
            with self._lock:
                self._session_id = session
        if status == 404:
            with self._lock:
                had_session = self._session_id is not None
                self._connected = False
            if had_session and method != "initialize":
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.NOT_FOUND,
                    f"the server at {self._url} no longer knows this session",
                    hint="the instance restarted; initialize again",
                    temporary=True,
                )
        message = self._parse_reply(data, headers.get("content-type", ""), request_id)
        if message is None:
            raise self._http_error(status, data)
        if message.error is not None:
            code = int(message.error.get("code", jsonrpc.INTERNAL_ERROR))
            raise BrummerError(
                _COMPONENT,
                _CODE_FOR_RPC.get(code, ErrorCode.INVALID_STATE),
                f"{method}: {message.error.get('message', 'error')} ({code})",
                hint="check the method and its parameters",
                context={"rpc_code": code, "data": message.error.get("data")},
            )
        return message.result

    def _notify(self, method: str, timeout: float) -> None:
        body = jsonrpc.encode(jsonrpc.notification(method))
        status, _headers, data = self._roundtrip("POST", body, timeout)
        if status >= 400:
            raise self._http_error(status, data)

    def _parse_reply(
        self, data: bytes, content_type: str, request_id: int
    ) -> jsonrpc.Response | None:
        candidates: list[Any] = []
        try:
            if content_type.startswith("text/event-stream"):
                candidates = list(_sse_payloads(data))
            elif data:
                candidates = [json.loads(data)]
        except ValueError:
            return None
        for candidate in candidates:
            for item in candidate if isinstance(candidate, list) else [candidate]:
                try:
                    message = jsonrpc.decode_message(item)
                except jsonrpc.RPCError:
                    continue
                if isinstance(message, jsonrpc.Response) and message.id in (request_id, None):
                    return message
        return None

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _roundtrip(
        self, method: str, body: bytes | None, timeout: float, *, allow_closed: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        if not allow_closed:
            self._check_open()
        for attempt in range(2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = self._new_connection(timeout)
            elif conn.sock is not None:
                conn.sock.settimeout(timeout)
            conn.timeout = timeout
            deadline = time.monotonic() + timeout
            response: http.client.HTTPResponse | None = None
            try:
                conn.request(method, self._path, body=body, headers=self._headers())
                response = conn.getresponse()
                data = _read_reply(response, deadline)
            except _ReplyTooLarge as exc:
                _discard(conn, response)
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.RESOURCE_LIMIT,
                    f"{self._url} sent a reply over {MAX_REPLY} bytes",
                    hint="is this an MCP endpoint? check the URL (the port may be reused)",
                    cause=exc,
                ) from exc
            except TimeoutError as exc:
                _discard(conn, response)
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.TIMEOUT,
                    f"{self._url} did not answer within {timeout} s",
                    hint="the instance is busy or hung; retry or raise the timeout",
                    cause=exc,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                _discard(conn, response)
                if reused and attempt == 0:
                    continue  # the server closed an idle connection: retry on a fresh one
                raise self._network_error(exc) from exc
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                conn.close()
            else:
                with self._lock:
                    keep = not self._closed and len(self._idle) < MAX_IDLE
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()
            return response.status, headers, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _network_error(self, exc: BaseException) -> BrummerError:
        with self._lock:
            self._connected = False
        return BrummerError(
            _COMPONENT,
            ErrorCode.NETWORK,
            f"cannot reach {self._url}: {exc}",
            hint="is the brummer instance running? check its port",
            cause=exc,
        )

    def _http_error(self, status: int, body: bytes) -> BrummerError:
        text = body[:200].decode("utf-8", "replace")
        code = ErrorCode.NOT_FOUND if status == 404 else ErrorCode.INVALID_STATE
        return BrummerError(
            _COMPONENT,
            code,
            f"{self._url} answered HTTP {status}: {text}",
            hint="is this an MCP endpoint? check the URL and the session",
            context={"status": status},
        )

    def _protocol_error(self, message: str) -> BrummerError:
        return BrummerError(_COMPONENT, ErrorCode.INVALID_STATE, message, hint="check the server")


class _ReplyTooLarge(Exception):
    pass


def _discard(conn: http.client.HTTPConnection, response: http.client.HTTPResponse | None) -> None:
    # A response that will close holds the socket's file open after conn.close(): close
    # it too, or the descriptor (and the peer's connection) lives until garbage collection.
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()
    conn.close()


def _read_reply(response: http.client.HTTPResponse, deadline: float) -> bytes:
    """The whole body, within the deadline (not just per read) and at most MAX_REPLY bytes."""
    parts: list[bytes] = []
    size = 0
    while data := response.read1(65536):
        size += len(data)
        if size > MAX_REPLY:
            raise _ReplyTooLarge(f"more than {MAX_REPLY} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError("the reply did not end in time")
        parts.append(data)
    response.close()  # read1() leaves a finished response open; the connection needs it closed
    return b"".join(parts)


def _sse_payloads(data: bytes) -> Iterator[Any]:
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            yield json.loads(b"\n".join(lines))


def _sse_messages(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    data: list[bytes] = []
    while True:
        line = response.readline(MAX_REPLY + 1)
        if not line:
            return
        if len(line) > MAX_REPLY:
            raise _ReplyTooLarge(f"a notification line over {MAX_REPLY} bytes")
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                message = json.loads(b"\n".join(data))
                data = []
                if isinstance(message, dict):
                    yield message
            continue
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip())
