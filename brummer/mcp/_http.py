"""A werkzeug request handler with HTTP/1.1 keep-alive, and connection tracking for stop().

werkzeug's own ``WSGIRequestHandler`` closes every connection after one response. MCP
clients send many small requests on one connection, so this handler keeps it open when the
request body was read completely (the app says so in ``environ["brummer.body_read"]``) and
the client did not ask to close. Responses without a Content-Length are sent chunked (SSE
streams). A client that goes away mid-stream ends the stream: the app iterator is closed.

Every live connection and its thread are registered with the owner so that ``stop()`` can
shut the sockets down and join the threads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from werkzeug.serving import WSGIRequestHandler

_LOG = logging.getLogger("brummer.mcp")
IDLE_TIMEOUT = 300.0  # seconds an idle keep-alive connection is kept


class Owner(Protocol):
    def register_connection(self, conn: socket.socket, thread: threading.Thread) -> bool: ...

    def unregister_connection(self, conn: socket.socket) -> None: ...


class KeepAliveHandler(WSGIRequestHandler):
    """One connection; any number of requests on it."""

    owner: Owner
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):  # small responses must not wait for delayed ACKs
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.owner.register_connection(self.connection, threading.current_thread()):
            # The server is stopping and will not shut this socket down for us: do it now,
            # or the first read waits for the client (up to IDLE_TIMEOUT).
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner.unregister_connection(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _LOG.debug("%s %s -> %s", self.command, self.path, code)

    def log_error(self, fmt: str, *args: Any) -> None:
        _LOG.debug("http: " + fmt, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        self.environ = environ
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return self.wfile.write

        try:
            app_iter: Iterable[bytes] = self.server.app(environ, start_response)
        except Exception:
            _LOG.exception("MCP HTTP app failed")
            self._plain(500, b"internal error\n")
            return
        try:
            self._send(environ, started, app_iter)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _send(self, environ: dict[str, Any], started: list[Any], app_iter: Iterable[bytes]) -> None:
        status, headers = started
        code = int(status.split(None, 1)[0])
        self.send_response(code, status.split(None, 1)[1] if " " in status else "")
        keys = set()
        for key, value in headers:
            self.send_header(key, value)
            keys.add(key.lower())
        chunked = "content-length" not in keys and code not in (204, 304) and code >= 200
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if not environ.get("brummer.body_read") or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        for data in app_iter:
            if not data:
                continue
            if chunked:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            else:
                self.wfile.write(data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _plain(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
