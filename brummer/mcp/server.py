"""MCPServer: the Model Context Protocol over Streamable HTTP (werkzeug, threads) and stdio.

One endpoint, ``http://127.0.0.1:<port>/mcp``:

- ``POST`` a JSON-RPC message (or a batch, for revisions that allow them). ``initialize``
  creates a session and answers its id in ``Mcp-Session-Id``; every later request must
  carry it (missing: 400, unknown or ended: 404). The answer is ``application/json``, or a
  one-shot SSE stream when the client accepts only ``text/event-stream``. A body with only
  notifications or responses is answered ``202 Accepted``.
- ``GET`` with ``Accept: text/event-stream`` opens the session's notification stream:
  ``notifications/message`` for log lines, process starts and exits and detected errors,
  ``notifications/resources/updated`` for subscribed resources, and ``: keep-alive``
  comments every ``keepalive`` seconds. One stream per session (a second one: 409).
- ``DELETE`` ends the session.

Security: the server binds 127.0.0.1 (or ::1) only; a request whose ``Origin`` or
``Host`` is not local is refused with 403 (DNS rebinding); bodies over ``max_body`` bytes
get 413. ``MCP-Protocol-Version``, when sent, must name a supported revision (else 400).

The same protocol runs over stdio (:meth:`MCPServer.serve_stdio`): one JSON message per
line in, one per line out, nothing else on stdout.

Not for: remote access. There is no authentication; the server is for the local machine.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import queue
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, TSLock, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.mcp import discovery
from brummer.mcp._http import KeepAliveHandler
from brummer.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Notification,
    Request as RPCRequest,
    Response as RPCResponse,
    RPCError,
    decode,
    encode,
    error_response,
    notification,
    result_response,
)
from brummer.mcp.tools import BrummerCatalog, Catalog

__all__ = [
    "LATEST_PROTOCOL_VERSION",
    "LOG_LEVELS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "MCPServer",
]

_LOG = logging.getLogger("brummer.mcp")
_COMPONENT = "mcp"

SUPPORTED_PROTOCOL_VERSIONS: tuple[str, ...] = (
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
)
LATEST_PROTOCOL_VERSION = SUPPORTED_PROTOCOL_VERSIONS[0]
_BATCH_VERSIONS = frozenset({"2024-11-05", "2025-03-26"})
_STRUCTURED_VERSIONS = frozenset({"2025-06-18", "2025-11-25"})
LOG_LEVELS: tuple[str, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DEFAULT_PORT = 7777
MAX_BODY = 4 * 1024 * 1024  # bytes of one POST body
MAX_SESSIONS = 256
SESSION_IDLE = 3600.0  # seconds; idle sessions without a stream are dropped after this
STREAM_QUEUE = 1000  # notifications held per stream before the oldest are dropped
KEEPALIVE = 15.0  # seconds between SSE keep-alive comments
JOIN_TIMEOUT = 5.0  # seconds stop() waits for each thread
_CLOSE = object()  # stream sentinel
INSTRUCTIONS = (
    "brummer runs this project's scripts and watches their output. Use scripts_list and "
    "scripts_run to start things, logs_search and errors_list to see what went wrong, "
    "urls_list and proxy_requests for web servers."
)
_EVENT_URIS: dict[str, tuple[str, ...]] = {
    "log.line": ("logs://recent",),
    "error.detected": ("logs://errors",),
    "process.started": ("processes://active",),
    "process.exited": ("processes://active",),
    "proxy.request": ("proxy://requests",),
    "telemetry.event": ("telemetry://errors",),
}


def _server_version() -> str:
    try:
        from importlib.metadata import version

        return version("brummer")
    except Exception:
        return "0.1.0"


class _Session:
    """One client's session. Fields are guarded by the server's lock."""

    __slots__ = (
        "client",
        "created",
        "dropped",
        "id",
        "last_seen",
        "level",
        "pending",
        "sink",
        "stream",
        "subscriptions",
        "version",
    )

    def __init__(self, session_id: str, version: str, client: Mapping[str, Any]) -> None:
        self.id = session_id
        self.version = version
        self.client = dict(client)
        self.level = LOG_LEVELS.index("info")
        self.subscriptions: set[str] = set()
        self.stream: queue.Queue[Any] | None = None
        self.sink: Callable[[dict[str, Any]], None] | None = None
        self.pending: set[str] = set()  # resource URIs with an update queued, not yet sent
        self.created = time.monotonic()
        self.last_seen = self.created
        self.dropped = 0


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class MCPServer:
    """The MCP server of one brummer (Streamable HTTP and stdio).

    Thread safety: TS. ``start``/``stop`` may be called from any thread; ``stop`` is
    idempotent, joins every thread it started and closes every socket. Requests are served
    concurrently, one thread per connection.

    Args:
        container: optional object with ``processes``, ``logs``, ``proxy``, ``events``,
            ``config`` and ``work_dir`` attributes (the ``Brummer`` container); components
            given by keyword win over the container's.
        port: TCP port (default 7777; 0 picks a free one). A busy port falls back to a free
            one unless ``port_fallback`` is False.
        host: 127.0.0.1, localhost or ::1 — nothing else is accepted.
        processes, logs, proxy, events: the components; any may be None.
        command_run_enabled: allow the ``command_run`` tool.
        catalog: serve this catalogue instead of the brummer tools (the hub does).
        name: the ``serverInfo`` name.
        announce: write the discovery instance file once listening (default: True when a
            container is given).
        project_dir: the project directory named in the instance file.
        max_body: largest accepted POST body, in bytes.
        keepalive: seconds between SSE keep-alive comments.
        instructions: the ``instructions`` text sent on initialize.
    """

    def __init__(
        self,
        container: Any = None,
        /,
        *,
        port: int | None = DEFAULT_PORT,
        host: str = "127.0.0.1",
        processes: Any = None,
        logs: Any = None,
        proxy: Any = None,
        events: Any = None,
        command_run_enabled: bool | None = None,
        catalog: Catalog | None = None,
        name: str = "brummer",
        announce: bool | None = None,
        project_dir: str | None = None,
        port_fallback: bool = True,
        max_body: int = MAX_BODY,
        keepalive: float = KEEPALIVE,
        instructions: str = INSTRUCTIONS,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"the MCP server binds the local machine only, not {host!r}",
                hint="use host='127.0.0.1' (the default); the server has no authentication",
            )
        port = DEFAULT_PORT if port is None else port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"port must be 0..65535, not {port!r}",
                hint="pass a free TCP port, or 0 for any free port",
            )
        if not isinstance(max_body, int) or max_body < 1024:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"max_body must be an int ≥ 1024, not {max_body!r}",
                hint="pass the largest request body to accept, in bytes",
            )
        self._keepalive = check_timeout(_COMPONENT, keepalive, name="keepalive") or KEEPALIVE
        if container is not None:
            processes = processes if processes is not None else container.processes
            logs = logs if logs is not None else container.logs
            proxy = proxy if proxy is not None else container.proxy
            events = events if events is not None else container.events
            config = getattr(container, "config", None)
            if command_run_enabled is None:
                command_run_enabled = bool(getattr(config, "command_run", False))
            project_dir = project_dir or getattr(container, "work_dir", None)
        self._events = events
        self._catalog: Catalog = catalog or BrummerCatalog(
            processes=processes,
            logs=logs,
            proxy=proxy,
            command_run_enabled=bool(command_run_enabled),
        )
        self._name = name
        self._instructions = instructions
        self._host = host
        self._requested_port = port
        self._port_fallback = port_fallback
        self._max_body = max_body
        self._announce = container is not None if announce is None else announce
        self._project_dir = os.path.abspath(project_dir or os.getcwd())
        self._server_version = _server_version()
        self._lock = TSLock("mcp")  # guards everything below; never held while doing I/O
        self._state = "new"  # new -> running -> stopped
        self._sessions: dict[str, _Session] = {}
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._http: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._subscription: Any = None
        self._instance: discovery.InstanceInfo | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------ lifecycle

    @property
    @contract(ThreadSafety.TS)
    def port(self) -> int:
        """The port the server listens on (0 before ``start``).

        Thread safety: TS.
        """
        with self._lock:
            return self._port

    @property
    @contract(ThreadSafety.TS)
    def url(self) -> str:
        """The endpoint, ``http://127.0.0.1:<port>/mcp``.

        Thread safety: TS.
        """
        host = "[::1]" if self._host == "::1" else self._host
        return f"http://{host}:{self.port}/mcp"

    @property
    @contract(ThreadSafety.TS)
    def is_running(self) -> bool:
        """True between ``start`` and ``stop``.

        Thread safety: TS.
        """
        with self._lock:
            return self._state == "running"

    @property
    @contract(ThreadSafety.TS)
    def instance(self) -> discovery.InstanceInfo | None:
        """The discovery record written at start (None when not announced).

        Thread safety: TS.
        """
        with self._lock:
            return self._instance

    @contract(ThreadSafety.TS, timeout=5.0)
    def start(self) -> None:
        """Bind, start serving HTTP in a thread, subscribe to the bus, announce the instance.

        Thread safety: TS. A second call while running is a no-op.

        Raises:
            BrummerError: RESOURCE_LIMIT when the port is busy and fallback is off (or no
                port is free); INVALID_STATE after ``stop``.
        """
        with self._lock:
            if self._state == "running":
                return
            if self._state == "stopped":
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    "this MCP server was stopped and cannot be started again",
                    hint="create a new MCPServer",
                )
            sock = self._bind()
            try:
                handler = type("_BoundHandler", (KeepAliveHandler,), {"owner": self})
                http = make_server(
                    self._host,
                    sock.getsockname()[1],
                    self._wsgi,
                    threaded=True,
                    request_handler=handler,
                    fd=sock.fileno(),
                )
            finally:
                sock.close()  # make_server holds its own duplicate
            self._http = http
            self._port = int(http.server_address[1])
            self._thread = threading.Thread(
                target=http.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"brummer-mcp-http-{self._port}",
                daemon=True,
            )
            self._thread.start()
            self._state = "running"
        self._subscribe()
        if self._announce:
            self._write_instance()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if self._host == "::1" else socket.AF_INET
        try:
            return socket.create_server((self._host, self._requested_port), family=family)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not self._port_fallback:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.RESOURCE_LIMIT,
                    f"cannot listen on {self._host}:{self._requested_port}: {exc.strerror}",
                    hint="stop what uses the port, or pass another port (0 for any free one)",
                    context={"port": self._requested_port},
                    cause=exc,
                ) from exc
            _LOG.warning("MCP port %d is busy; using a free port", self._requested_port)
        try:
            return socket.create_server((self._host, 0), family=family)
        except OSError as exc:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.RESOURCE_LIMIT,
                f"cannot listen on {self._host}: {exc.strerror}",
                hint="free some sockets or file descriptors",
                cause=exc,
            ) from exc

    def _subscribe(self) -> None:
        if self._events is None or not hasattr(self._events, "subscribe_all"):
            return
        try:
            sub = self._events.subscribe_all(self._on_event)
        except BrummerError as err:
            _LOG.warning("MCP notifications are off: %s", err)
            return
        with self._lock:
            self._subscription = sub

    def _write_instance(self) -> None:
        info = discovery.InstanceInfo(
            id=discovery.new_instance_id(self._project_dir),
            name=os.path.basename(self._project_dir) or "brummer",
            directory=self._project_dir,
            port=self.port,
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            host="::1" if self._host == "::1" else "127.0.0.1",
        )
        try:
            discovery.write_instance(info)
        except BrummerError as err:
            _LOG.warning("this brummer will not be found by the hub: %s", err)
            return
        with self._lock:
            self._instance = info

    @contract(ThreadSafety.TS, timeout=JOIN_TIMEOUT * 2, guarantees="idempotent")
    def stop(self) -> None:
        """Stop serving: end every stream, close every connection, join every thread.

        Thread safety: TS. Idempotent; safe from any thread (not from a request handler of
        this server, which it would wait for).
        """
        with self._lock:
            if self._state == "stopped":
                return
            was_running = self._state == "running"
            self._state = "stopped"
            sessions = list(self._sessions.values())
            self._sessions.clear()
            subscription, self._subscription = self._subscription, None
            instance = self._instance
            http, thread = self._http, self._thread
        if instance is not None:
            discovery.remove_instance(instance.id)
        if subscription is not None:
            with contextlib.suppress(BrummerError):
                self._events.unsubscribe(subscription)
        for session in sessions:
            self._close_stream(session)
        if not was_running or http is None or thread is None:
            return
        http.shutdown()
        thread.join(JOIN_TIMEOUT)
        http.server_close()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for worker in connections.values():
            worker.join(max(0.0, deadline - time.monotonic()))

    @contract(ThreadSafety.TS)
    def register_connection(self, conn: socket.socket, thread: threading.Thread) -> bool:
        """Record a live HTTP connection (called by the request handler).

        Thread safety: TS. Returns False once the server is stopping: close the connection.
        """
        with self._lock:
            if self._state != "running":
                return False
            self._connections[conn] = thread
            return True

    @contract(ThreadSafety.TS)
    def unregister_connection(self, conn: socket.socket) -> None:
        """Forget a closed HTTP connection.

        Thread safety: TS.
        """
        with self._lock:
            self._connections.pop(conn, None)

    @contract(ThreadSafety.TS)
    def session_ids(self) -> list[str]:
        """The ids of the open sessions.

        Thread safety: TS. A snapshot.
        """
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------------------- protocol

    @contract(ThreadSafety.TS)
    def handle_message(
        self,
        message: RPCRequest | Notification | RPCResponse,
        session_id: str | None,
        *,
        version: str | None = None,
    ) -> dict[str, Any] | None:
        """Serve one decoded message for a session; return the response (None if none is due).

        Thread safety: TS. ``version`` (the request's ``MCP-Protocol-Version``) overrides the
        session's negotiated revision for this message.
        """
        if not isinstance(message, RPCRequest):
            if isinstance(message, Notification):
                self._touch(session_id)
            return None
        started = time.perf_counter()
        error: str | None = None
        try:
            result = self._dispatch(message, session_id, version)
            response = result_response(message.id, result)
            if isinstance(result, dict) and result.get("isError"):
                error = "tool error"
        except RPCError as err:
            response = error_response(message.id, err.code, err.message, err.data)
            error = err.message
        except Exception as exc:
            _LOG.exception("MCP method %s failed", message.method)
            response = error_response(message.id, INTERNAL_ERROR, f"Internal error: {exc!r}")
            error = repr(exc)
        self._activity(message, session_id, time.perf_counter() - started, error)
        return response

    def _dispatch(self, message: RPCRequest, session_id: str | None, version: str | None) -> Any:
        params = message.params if message.params is not None else {}
        if not isinstance(params, dict):
            raise RPCError(INVALID_PARAMS, "params must be an object")
        method = message.method
        version = version or self._version_of(session_id)
        if method == "initialize":
            return self._initialize_result(params)
        if method == "ping":
            return {}
        if method == "tools/list":
            structured = version in _STRUCTURED_VERSIONS
            return {
                "tools": [t.describe(structured=structured) for t in self._catalog.list_tools()]
            }
        if method == "tools/call":
            name = params.get("name")
            arguments = params.get("arguments", {})
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise RPCError(
                    INVALID_PARAMS, 'tools/call needs "name" (string) and "arguments" (object)'
                )
            result = self._catalog.call_tool(name, arguments)
            return result.to_mcp(structured=version in _STRUCTURED_VERSIONS)
        if method == "resources/list":
            return {"resources": self._catalog.list_resources()}
        if method == "resources/templates/list":
            return {"resourceTemplates": []}
        if method == "resources/read":
            return {"contents": self._catalog.read_resource(_string_param(params, "uri"))}
        if method in ("resources/subscribe", "resources/unsubscribe"):
            uri = _string_param(params, "uri")
            self._catalog.read_resource(uri)  # unknown URI: RESOURCE_NOT_FOUND
            self._set_subscription(session_id, uri, method == "resources/subscribe")
            return {}
        if method == "prompts/list":
            return {"prompts": self._catalog.list_prompts()}
        if method == "prompts/get":
            arguments = params.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise RPCError(INVALID_PARAMS, "prompt arguments must be an object")
            return self._catalog.get_prompt(_string_param(params, "name"), arguments)
        if method == "logging/setLevel":
            level = params.get("level")
            if level not in LOG_LEVELS:
                raise RPCError(INVALID_PARAMS, f"level must be one of {', '.join(LOG_LEVELS)}")
            self._set_level(session_id, str(level))
            return {}
        raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize_result(self, params: Mapping[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        version = _negotiate(requested)
        return {
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": False},
                "resources": {"subscribe": True, "listChanged": False},
                "prompts": {"listChanged": False},
                "logging": {},
            },
            "serverInfo": {"name": self._name, "version": self._server_version},
            "instructions": self._instructions,
        }

    def _version_of(self, session_id: str | None) -> str:
        with self._lock:
            session = self._sessions.get(session_id or "")
            return session.version if session is not None else LATEST_PROTOCOL_VERSION

    def _touch(self, session_id: str | None) -> None:
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is not None:
                session.last_seen = time.monotonic()

    def _set_subscription(self, session_id: str | None, uri: str, on: bool) -> None:
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is None:
                return
            if on:
                session.subscriptions.add(uri)
            else:
                session.subscriptions.discard(uri)

    def _set_level(self, session_id: str | None, level: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is not None:
                session.level = LOG_LEVELS.index(level)

    def _new_session(self, params: Mapping[str, Any]) -> _Session:
        version = _negotiate(params.get("protocolVersion"))
        client = params.get("clientInfo")
        session = _Session(
            secrets.token_hex(16), version, client if isinstance(client, dict) else {}
        )
        evicted: list[_Session] = []
        with self._lock:
            idle_before = time.monotonic() - SESSION_IDLE
            for old in list(self._sessions.values()):
                if old.stream is None and old.sink is None and old.last_seen < idle_before:
                    evicted.append(self._sessions.pop(old.id))
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                evicted.append(self._sessions.pop(oldest.id))
            self._sessions[session.id] = session
        for old in evicted:
            self._close_stream(old)
        self._publish("mcp.connected", {"session_id": session.id, "client": session.client})
        return session

    def _end_session(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self._close_stream(session)
        self._publish("mcp.disconnected", {"session_id": session_id})
        return True

    def _close_stream(self, session: _Session) -> None:
        with self._lock:
            stream, session.stream = session.stream, None
            session.sink = None
        if stream is not None:
            _put_dropping(stream, _CLOSE)

    # -------------------------------------------------------------------- notifications

    @contract(ThreadSafety.TS)
    def notify(self, method: str, params: Mapping[str, Any], *, level: str | None = None) -> int:
        """Send a notification to every session with an open stream; return how many got it.

        Thread safety: TS. With ``level`` (for ``notifications/message``) sessions whose
        logging level is higher are skipped. Never blocks: a full stream drops its oldest.
        """
        message = notification(method, params)
        rank = LOG_LEVELS.index(level) if level in LOG_LEVELS else -1
        with self._lock:
            sinks = [
                s.sink for s in self._sessions.values() if s.sink is not None and rank >= s.level
            ]
        for sink in sinks:
            sink(message)
        return len(sinks)

    def _on_event(self, event: Any) -> None:
        kind = str(getattr(event.type, "value", event.type))
        if kind.startswith("mcp."):
            return
        with self._lock:
            listening = any(s.sink is not None for s in self._sessions.values())
        if not listening:
            return  # nobody has a stream: skip building notifications
        for uri in _EVENT_URIS.get(kind, ()):
            self._resource_updated(uri)
        data = dict(event.data)
        base = {"event": kind, "process_id": event.process_id}
        if kind == "log.line":
            level = "error" if data.get("is_error") else "info"
            lines = data.get("lines")
            if lines is None:
                lines = [data.get("content", "")]
            for line in lines:
                payload = {
                    **base,
                    "process_name": data.get("name", data.get("process_name")),
                    "content": line,
                    "is_error": bool(data.get("is_error")),
                }
                self.notify("notifications/message", _log_params(level, payload), level=level)
        elif kind in ("process.started", "process.exited", "error.detected"):
            level = "info"
            if kind == "error.detected":
                level = "error"
            elif kind == "process.exited" and data.get("exit_code") not in (0, None):
                level = "info" if data.get("stopped") else "warning"
            payload = {**base, **_jsonish(data)}
            self.notify("notifications/message", _log_params(level, payload), level=level)

    def _resource_updated(self, uri: str) -> None:
        with self._lock:
            targets = []
            for session in self._sessions.values():
                if uri in session.subscriptions and session.sink is not None:
                    if uri in session.pending:
                        continue  # one queued update per URI is enough
                    session.pending.add(uri)
                    targets.append(session.sink)
        message = notification("notifications/resources/updated", {"uri": uri})
        for sink in targets:
            sink(message)

    # ------------------------------------------------------------------------ events

    def _publish(self, kind: str, data: Mapping[str, Any]) -> None:
        bus = self._events
        if bus is None:
            return
        try:
            from brummer.events import Event

            event = Event(kind, data)
            publish = getattr(bus, "publish_async", None) or bus.publish
            publish(event)
        except Exception as exc:
            _LOG.debug("could not publish %s: %r", kind, exc)

    def _activity(
        self, message: RPCRequest, session_id: str | None, duration: float, error: str | None
    ) -> None:
        if self._events is None:
            return
        params = message.params if isinstance(message.params, dict) else {}
        data: dict[str, Any] = {
            "session_id": session_id,
            "method": message.method,
            "duration": duration,
            "ok": error is None,
        }
        if message.method == "tools/call":
            data["tool"] = params.get("name")
        if error is not None:
            data["error"] = error[:200]
        self._publish("mcp.activity", data)

    # --------------------------------------------------------------------------- HTTP

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._route(request, environ)
        except Exception:
            _LOG.exception("MCP HTTP request failed")
            response = _json_error(500, None, INTERNAL_ERROR, "Internal error")
        if (
            not environ.get("brummer.body_read")
            and request.content_length in (0, None)
            and "chunked" not in request.headers.get("Transfer-Encoding", "")
        ):
            environ["brummer.body_read"] = True
        return response(environ, start_response)

    def _route(self, request: Request, environ: dict[str, Any]) -> Response:
        refusal = self._check_origin(request)
        if refusal is not None:
            return refusal
        if request.path == "/health":
            return _json(200, {"status": "ok", "sessions": len(self.session_ids())})
        if request.path.rstrip("/") != "/mcp":
            return _json_error(404, None, INVALID_REQUEST, f"Not found: {request.path}; use /mcp")
        version = request.headers.get("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            return _json_error(
                400,
                None,
                INVALID_REQUEST,
                f"Unsupported MCP-Protocol-Version {version!r}",
                {"supported": list(SUPPORTED_PROTOCOL_VERSIONS)},
            )
        if request.method == "POST":
            return self._post(request, environ)
        if request.method == "GET":
            return self._get(request)
        if request.method == "DELETE":
            session, refusal = self._session_for(request)
            if session is None:
                return refusal or _json(404, {})
            self._end_session(session.id)
            return Response(b"", status=200)
        response = _json_error(405, None, INVALID_REQUEST, f"Method {request.method} not allowed")
        response.headers["Allow"] = "GET, POST, DELETE"
        return response

    def _check_origin(self, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None:  # "null" (sandboxed frames, file: pages) is not local either
            host = urlsplit(origin).hostname or ""
            if host not in _LOCAL_HOSTS:
                return _json_error(403, None, INVALID_REQUEST, f"Forbidden: Origin {origin!r}")
        host_header = request.headers.get("Host", "")
        hostname = urlsplit(f"//{host_header}").hostname or ""
        if host_header and hostname not in _LOCAL_HOSTS:
            return _json_error(403, None, INVALID_REQUEST, f"Forbidden: Host {host_header!r}")
        return None

    def _session_for(self, request: Request) -> tuple[_Session | None, Response | None]:
        session_id = request.headers.get("Mcp-Session-Id")
        if not session_id:
            return None, _json_error(
                400, None, INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"
            )
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.last_seen = time.monotonic()
        if session is None:
            return None, _json_error(
                404, None, INVALID_REQUEST, "Session not found; initialize a new one"
            )
        return session, None

    def _post(self, request: Request, environ: dict[str, Any]) -> Response:
        accept = request.headers.get("Accept", "*/*")
        wants_json = "application/json" in accept or "*/*" in accept
        wants_sse = "text/event-stream" in accept
        if not (wants_json or wants_sse):
            return _json_error(
                406,
                None,
                INVALID_REQUEST,
                "Accept must include application/json or text/event-stream",
            )
        if request.mimetype != "application/json":
            return _json_error(415, None, INVALID_REQUEST, "Content-Type must be application/json")
        # One byte over the limit: werkzeug stops a chunked body at the limit without an
        # error, so a body that reaches limit + 1 is the only sign that it was too large.
        request.max_content_length = self._max_body + 1
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            body = None
        if body is None or len(body) > self._max_body:
            return _json_error(
                413, None, INVALID_REQUEST, f"Request body over {self._max_body} bytes"
            )
        environ["brummer.body_read"] = True
        try:
            decoded = decode(body)
        except RPCError as err:
            return _json_error(400, err.request_id, err.code, err.message)
        messages = decoded.messages
        first = messages[0]
        if isinstance(first, RPCRequest) and first.method == "initialize":
            if decoded.batch:
                return _json_error(400, first.id, INVALID_REQUEST, "initialize must not be batched")
            params = first.params if isinstance(first.params, dict) else {}
            session = self._new_session(params)
        else:
            if not decoded.batch and isinstance(first, RPCError):
                return _json_error(400, first.request_id, first.code, first.message)
            found, refusal = self._session_for(request)
            if found is None:
                assert refusal is not None
                return refusal
            session = found
            if decoded.batch and session.version not in _BATCH_VERSIONS:
                return _json_error(
                    400,
                    None,
                    INVALID_REQUEST,
                    f"JSON-RPC batches are not allowed in protocol revision {session.version}",
                )
        responses = []
        for message in messages:
            if isinstance(message, RPCError):
                responses.append(message.to_response())
                continue
            answer = self.handle_message(
                message, session.id, version=request.headers.get("MCP-Protocol-Version")
            )
            if answer is not None:
                responses.append(answer)
        if not responses:
            return Response(b"", status=202)
        payload: Any = responses if decoded.batch else responses[0]
        headers = {"Mcp-Session-Id": session.id}
        if wants_sse and not wants_json:
            events = [_sse(r) for r in responses]
            return Response(iter(events), status=200, headers=headers, mimetype="text/event-stream")
        return Response(encode(payload), status=200, headers=headers, mimetype="application/json")

    def _get(self, request: Request) -> Response:
        if "text/event-stream" not in request.headers.get("Accept", ""):
            return _json_error(406, None, INVALID_REQUEST, "Accept must include text/event-stream")
        session, refusal = self._session_for(request)
        if session is None:
            assert refusal is not None
            return refusal
        stream: queue.Queue[Any] = queue.Queue(maxsize=STREAM_QUEUE)
        with self._lock:
            if session.stream is not None or session.id not in self._sessions:
                return _json_error(409, None, INVALID_REQUEST, "This session already has a stream")
            session.stream = stream
            session.sink = lambda message: self._enqueue(session, stream, message)
        return Response(
            self._stream(session, stream),
            status=200,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "Mcp-Session-Id": session.id},
        )

    def _enqueue(
        self, session: _Session, stream: queue.Queue[Any], message: dict[str, Any]
    ) -> None:
        if _put_dropping(stream, message):
            with self._lock:
                session.dropped += 1

    def _stream(self, session: _Session, stream: queue.Queue[Any]) -> Iterator[bytes]:
        try:
            yield b": stream open\n\n"
            while True:
                try:
                    item = stream.get(timeout=self._keepalive)
                except queue.Empty:
                    yield b": keep-alive\n\n"
                    continue
                if item is _CLOSE:
                    return
                if item.get("method") == "notifications/resources/updated":
                    with self._lock:
                        session.pending.discard(item["params"]["uri"])
                yield _sse(item)
        finally:
            with self._lock:
                if session.stream is stream:
                    session.stream = None
                    session.sink = None

    # -------------------------------------------------------------------------- stdio

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def serve_stdio(self, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
        """Serve one client over stdin/stdout (newline-delimited JSON) until stdin ends.

        Thread safety: TS. Blocks the calling thread. Only protocol messages go to stdout;
        notifications are written between responses under a lock.
        """
        reader = stdin if stdin is not None else sys.stdin.buffer
        writer = stdout if stdout is not None else sys.stdout.buffer
        write_lock = threading.Lock()

        def send(message: Any) -> None:
            data = encode(message) + b"\n"
            with write_lock:
                try:
                    writer.write(data)
                    writer.flush()
                except (OSError, ValueError):
                    _LOG.debug("stdout is closed; dropping a message")

        session = _Session("stdio-" + secrets.token_hex(8), LATEST_PROTOCOL_VERSION, {})
        session.sink = send
        with self._lock:
            self._sessions[session.id] = session
        self._subscribe_for_stdio()
        try:
            for raw in iter(reader.readline, b""):
                line = raw.strip()
                if not line:
                    continue
                self._stdio_line(line, session, send)
        finally:
            self._end_session(session.id)
            self._unsubscribe_for_stdio()

    def _stdio_line(self, line: bytes, session: _Session, send: Callable[[Any], None]) -> None:
        try:
            decoded = decode(line)
        except RPCError as err:
            send(err.to_response())
            return
        responses = []
        for message in decoded.messages:
            if isinstance(message, RPCError):
                responses.append(message.to_response())
                continue
            if isinstance(message, RPCRequest) and message.method == "initialize":
                params = message.params if isinstance(message.params, dict) else {}
                with self._lock:
                    session.version = _negotiate(params.get("protocolVersion"))
                    client = params.get("clientInfo")
                    session.client = dict(client) if isinstance(client, dict) else {}
            answer = self.handle_message(message, session.id)
            if answer is not None:
                responses.append(answer)
        if responses:
            send(responses if decoded.batch else responses[0])

    def _subscribe_for_stdio(self) -> None:
        with self._lock:
            needed = self._subscription is None and self._state != "running"
        if needed:
            self._subscribe()

    def _unsubscribe_for_stdio(self) -> None:
        with self._lock:
            if self._state == "running":
                return
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(BrummerError):
                self._events.unsubscribe(subscription)


def _negotiate(requested: object) -> str:
    if isinstance(requested, str) and requested in SUPPORTED_PROTOCOL_VERSIONS:
        return requested
    return LATEST_PROTOCOL_VERSION


def _string_param(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise RPCError(INVALID_PARAMS, f'"{key}" must be a non-empty string')
    return value


def _log_params(level: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"level": level, "logger": "brummer", "data": dict(data)}


def _jsonish(data: Mapping[str, Any]) -> dict[str, Any]:
    from brummer.mcp._schema import jsonable

    out: dict[str, Any] = jsonable(dict(data))
    return out


def _put_dropping(stream: queue.Queue[Any], item: Any) -> bool:
    """Put without blocking; when full drop the oldest item. Return whether one was dropped."""
    dropped = False
    while True:
        try:
            stream.put_nowait(item)
            return dropped
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                stream.get_nowait()
                dropped = True


def _sse(message: Any) -> bytes:
    return b"event: message\ndata: " + encode(message) + b"\n\n"


def _json(status: int, payload: Any) -> Response:
    return Response(encode(payload), status=status, mimetype="application/json")


def _json_error(
    status: int, request_id: Any, code: int, message: str, data: Any = None
) -> Response:
    return _json(status, error_response(request_id, code, message, data))
